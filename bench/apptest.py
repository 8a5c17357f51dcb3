"""The app under Streamlit's AppTest as a served app runs it: for the benchmarks that rerun pages."""

from __future__ import annotations

import os
from pathlib import Path

# Debian's Chromium as the benchmarks drive it, and the page state that means a rerun has finished.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"

REPO = Path(__file__).resolve().parents[1]


def served_app(home: Path):
    """The app after its first run, offline, with a store and torch cache of its own under ``home``; every later
    run goes through app.py's navigation, as on a running server (the fix of tests/app/conftest.py's
    navigation_mode_as_served)."""
    os.environ.update(CNN_EXPLORER_OFFLINE="1", CNN_EXPLORER_HOME=str(home / "home"), TORCH_HOME=str(home / "torch"))
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    original = PagesManager.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.run()
    return at
