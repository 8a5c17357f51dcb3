"""What the app knows of torchvision without importing it: checked against torchvision itself, and the app's first
page shown without importing it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torchvision.models

from cnn_explorer import hub
from cnn_explorer.sources import imagenet
from cnn_explorer.torchvision_catalog import CLASSIFIERS, DEFAULT_WEIGHTS, models

REPO = Path(__file__).resolve().parents[1]


def test_the_classifiers_are_torchvisions_in_its_order() -> None:
    assert tuple(torchvision.models.list_models(module=torchvision.models)) == CLASSIFIERS


def test_the_default_weights_are_torchvisions() -> None:
    assert set(DEFAULT_WEIGHTS) == set(imagenet.IMAGENET_MODELS)
    for name, described in DEFAULT_WEIGHTS.items():
        weights = torchvision.models.get_model_weights(name).DEFAULT
        assert described.name == str(weights)
        assert hub.checkpoint_file(described.file) == hub._checkpoint_path(weights)
        assert described.parameters == weights.meta["num_params"]
        assert described.top1 == weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]


def test_models_is_torchvision_models() -> None:
    assert models() is torchvision.models


def test_the_first_page_imports_neither_torchvision_captum_torchcam_altair_pandas_scipy_nor_figures(
    tmp_path: Path,
) -> None:
    # The app's first run as a person's browser starts it (the Predict page of the built-in model), in a fresh
    # process: the libraries only other pages need stay unimported, a second or more of the cold start.
    script = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"app = AppTest.from_file({str(REPO / 'app.py')!r}, default_timeout=240)\n"
        "app.run()\n"
        "assert not app.exception, [e.value for e in app.exception]\n"
        "assert app.title[0].value.startswith('circle'), app.title[0].value\n"
        "later = ('torchvision', 'captum', 'torchcam', 'altair', 'pandas', 'scipy', 'matplotlib.figure')\n"
        "print(sorted(m for m in later if m in sys.modules))\n"
    )
    env = {**os.environ, "CNN_EXPLORER_HOME": str(tmp_path), "CNN_EXPLORER_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
