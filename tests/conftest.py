"""Shared fixtures. Importing the package first runs the torchvision guard before any test imports torchvision."""

import os
from pathlib import Path

import pytest
import torch

import cnn_explorer  # noqa: F401

# isort: split
import torchvision.models

from cnn_explorer.sources.imagenet import IMAGENET_MODELS

# Tests never download: a model whose weights are not cached must fail fast, as offline.
os.environ.setdefault("CNN_EXPLORER_OFFLINE", "1")


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torch home whose hub cache holds randomly initialised ImageNet state_dicts under torchvision's file names.

    The models are real torchvision architectures, so every layer, shape and computation is the one the trained
    weights would give; only the values are random (seeded). Nothing is downloaded.
    """
    home = tmp_path_factory.mktemp("torch_home")
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name in IMAGENET_MODELS:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        torch.manual_seed(0)
        state = torchvision.models.get_model(name, weights=None).state_dict()
        torch.save(state, checkpoints / Path(weights.url).name)
    return home


@pytest.fixture
def cached_hub(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``TORCH_HOME`` set to :func:`hub_cache` for this test: the ImageNet models load offline."""
    monkeypatch.setenv("TORCH_HOME", str(hub_cache))
    return hub_cache


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run faster on one intra-op thread than on several competing for a busy machine's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
