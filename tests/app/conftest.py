"""AppTest fixtures: the app script, an isolated torch hub cache, and predictions computed with the library alone.

The expected values here never come from the page: they are recomputed with ``load_model``, ``load_image``,
``model.preprocess`` and a softmax over ``model.module``, so a page that shows the wrong class or probability fails.
"""

import io
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from cnn_explorer import data, ui
from cnn_explorer.images import SAMPLES, load_image, sample_bytes
from cnn_explorer.zoo import LoadedModel, available_models, load_model

APP = Path(__file__).resolve().parents[2] / "app.py"
RUN_TIMEOUT_S = 120  # the first run loads torch models on a busy 2-core machine


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Offline, an empty torch hub cache of our own, and no model or result cached by an earlier test."""
    monkeypatch.setenv("CNN_EXPLORER_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CNN_EXPLORER_HOME", str(tmp_path / "home"))
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def navigation_mode_as_served(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every AppTest run the way a running server runs every run after its first: through app.py's navigation.

    A ``pages/`` folder beside app.py makes Streamlit start in its old pages-folder mode (pages/*.py as pages of
    their own); the server leaves that mode for good the first time app.py calls ``st.navigation``. AppTest resets
    the flag before every run, so from the second run on it would run ``pages/home.py`` alone, without app.py and
    its sidebar (see ``test_a_run_that_asks_for_the_home_page_still_runs_app_py``). This keeps the flag where a
    running server has it.
    """
    original_init = PagesManager.__init__

    def init(self, *args, **kwargs) -> None:
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, navigation_mode_as_served: None) -> AppTest:
    """The app after its first run, started from a directory other than the repository root."""
    monkeypatch.chdir(tmp_path)
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


class Expected:
    """What the home page should show, computed with the library alone (no Streamlit, no cache)."""

    @staticmethod
    def default_model() -> str:
        """The model the sidebar starts with: ``ui.DEFAULT_MODEL``, or the first model while it is not shipped."""
        names = available_models()
        return ui.DEFAULT_MODEL if ui.DEFAULT_MODEL in names else names[0]

    @staticmethod
    def sample_keys(model_name: str) -> list[str]:
        """The samples the sidebar offers for a model: the general ones and those made for it."""
        return [key for key, sample in SAMPLES.items() if not sample.models or model_name in sample.models]

    @staticmethod
    def first_sample(model_name: str) -> str:
        """The sample the sidebar picks for a model: the first one made for it, else the first one offered."""
        suited = [key for key in Expected.sample_keys(model_name) if model_name in SAMPLES[key].models]
        return (suited or Expected.sample_keys(model_name))[0]

    @staticmethod
    def top(model: LoadedModel, image_bytes: bytes) -> tuple[str, float]:
        """The top class and its probability."""
        x = model.preprocess(load_image(image_bytes))
        with torch.no_grad():
            probabilities = torch.softmax(model.module(x)[0], dim=0)
        best = int(probabilities.argmax())
        return model.class_names[best], float(probabilities[best])

    @staticmethod
    def title(model_name: str, image_bytes: bytes) -> str:
        """The title of the home page, formatted as the page formats it."""
        name, probability = Expected.top(load_model(model_name), image_bytes)
        return f"{name} · {probability:.1%}"

    @staticmethod
    def default_title() -> str:
        model_name = Expected.default_model()
        return Expected.title(model_name, sample_bytes(Expected.first_sample(model_name)))

    @staticmethod
    def image_predicted_otherwise(model_name: str, other_than: str) -> tuple[bytes, str]:
        """A generated PNG that the model classifies as a class other than ``other_than``, and that class.

        Prefers an image the model gets right (its true class is the predicted one), so screenshots make sense.
        """
        model = load_model(model_name)
        fallback = None
        for true_name, img in _candidate_images(model.class_names):
            encoded = _png_bytes(img)
            predicted, _ = Expected.top(model, encoded)
            if predicted == other_than:
                continue
            if predicted == true_name:
                return encoded, predicted
            fallback = fallback or (encoded, predicted)
        assert fallback is not None, f"{model_name} classifies every candidate image as {other_than!r}"
        return fallback


@pytest.fixture
def expected() -> type[Expected]:
    return Expected


def _png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def _candidate_images(class_names: tuple[str, ...]) -> list[tuple[str, Image.Image]]:
    """Images of known classes from the built-in datasets, those of the model's own classes first."""
    split = data.digits_split()
    digits = [(str(label), img) for img, label in zip(split.test_images[:20], split.test_labels[:20], strict=True)]
    rng = np.random.default_rng(7)
    shapes = [(name, data.draw_shape(label, rng)) for label, name in enumerate(data.SHAPE_CLASSES)]
    return digits + shapes if set(class_names) == set(data.DIGIT_CLASSES) else shapes + digits
