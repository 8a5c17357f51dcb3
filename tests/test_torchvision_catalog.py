"""What the app knows of torchvision without importing it: checked against torchvision itself, and the app's first
page shown without importing it."""

from __future__ import annotations

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


def test_the_first_page_imports_no_torchvision_captum_or_torchcam() -> None:
    # What the home page does for a built-in model: the library and the UI imported, the model picker listed (the
    # ImageNet models and whether they need a download), the built-in model loaded and run.
    script = (
        "import sys\n"
        "import streamlit\n"
        "from cnn_explorer import ui, zoo\n"
        "ready = {n: zoo.model_entry(n).is_ready() for n in zoo.available_models()}\n"
        "assert 'resnet18' in ready, ready\n"
        "model = zoo.load_model('tinyvgg-shapes')\n"
        "from PIL import Image\n"
        "zoo.predict(model, model.preprocess(Image.new('RGB', (80, 60), 'white')))\n"
        "print(sorted(m for m in ('torchvision', 'captum', 'torchcam') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
