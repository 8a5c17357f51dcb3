"""What the pages should show, computed with the library alone (no Streamlit, no cache, no server).

Shared by the AppTest and browser tiers. Predictions never come from the page: they are recomputed with
``load_model``, ``load_image``, ``model.preprocess`` and a softmax over ``model.module``, so a page that shows the
wrong class or probability fails.
"""

import io

import numpy as np
import torch
from PIL import Image

from cnn_explorer import data, ui
from cnn_explorer.images import default_sample, load_image, sample_bytes, samples_for
from cnn_explorer.zoo import LoadedModel, available_models, load_model


class Expected:
    @staticmethod
    def default_model() -> str:
        """The model the sidebar starts with: ``ui.DEFAULT_MODEL``, or the first model while it is not shipped."""
        names = available_models()
        return ui.DEFAULT_MODEL if ui.DEFAULT_MODEL in names else names[0]

    @staticmethod
    def sample_keys(model_name: str) -> list[str]:
        """The samples the sidebar offers for a model: the general ones and those made for it."""
        return samples_for(model_name)

    @staticmethod
    def first_sample(model_name: str) -> str:
        """The sample the sidebar picks for a model: the first one made for it, else the first one offered."""
        return default_sample(model_name)

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
    def default_top() -> tuple[str, float]:
        model_name = Expected.default_model()
        return Expected.top(load_model(model_name), sample_bytes(Expected.first_sample(model_name)))

    @staticmethod
    def default_title() -> str:
        model_name = Expected.default_model()
        return Expected.title(model_name, sample_bytes(Expected.first_sample(model_name)))

    @staticmethod
    def sample_predicted_otherwise(model_name: str) -> tuple[str, str]:
        """The first sample offered for a model that it classifies otherwise than its default sample, and that class.

        What a person does to see a second prediction: pick the next sample in the sidebar.
        """
        model = load_model(model_name)
        first, _ = Expected.top(model, sample_bytes(Expected.first_sample(model_name)))
        for key in samples_for(model_name):
            predicted, _ = Expected.top(model, sample_bytes(key))
            if predicted != first:
                return key, predicted
        raise AssertionError(f"{model_name} classifies every sample as {first!r}")

    @staticmethod
    def image_predicted_otherwise(model_name: str, other_than: str) -> tuple[bytes, str]:
        """A generated PNG the model classifies as a class other than ``other_than``, and that class.

        Prefers an image the model gets right (its true class is the predicted one), so screenshots make sense.
        """
        model = load_model(model_name)
        fallback = None
        for true_name, img in _candidate_images(model.class_names):
            # Shown 8× larger than a digit scan: the page then displays a picture rather than a few pixels.
            if img.width < 32:
                img = img.resize((img.width * 8, img.height * 8), Image.Resampling.NEAREST)
            buffer = io.BytesIO()
            img.save(buffer, format="PNG")
            encoded = buffer.getvalue()
            predicted, _ = Expected.top(model, encoded)
            if predicted == other_than:
                continue
            if predicted == true_name:
                return encoded, predicted
            fallback = fallback or (encoded, predicted)
        assert fallback is not None, f"{model_name} classifies every candidate image as {other_than!r}"
        return fallback


def _candidate_images(class_names: tuple[str, ...]) -> list[tuple[str, Image.Image]]:
    """Images of known classes from the built-in datasets, those of the model's own classes first."""
    split = data.digits_split()
    digits = [(str(label), img) for img, label in zip(split.test_images[:20], split.test_labels[:20], strict=True)]
    rng = np.random.default_rng(7)
    shapes = [(name, data.draw_shape(label, rng)) for label, name in enumerate(data.SHAPE_CLASSES)]
    return digits + shapes if set(class_names) == set(data.DIGIT_CLASSES) else shapes + digits
