"""AppTest fixtures: the app script, an isolated torch hub cache, and predictions computed with the library alone.

The expected values here never come from the page: they are recomputed with ``load_model``, ``load_image``,
``model.preprocess`` and a softmax over ``model.module``, so a page that shows the wrong class or probability fails.
"""

import sys
from pathlib import Path

import pytest
import streamlit as st
from expected import Expected  # tests/expected.py, shared by the app and browser tiers
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

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
    if "cnn_explorer.ui.layer_cache" in sys.modules:  # the Layers page draws the next layer in a thread: let it end
        sys.modules["cnn_explorer.ui.layer_cache"].wait_for_prepared_layers()
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


@pytest.fixture
def expected() -> type[Expected]:
    return Expected
