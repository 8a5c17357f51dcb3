"""Fixtures of the playground tests: a seeded TinyVGG (random weights, no download), one per test module."""

import pytest
import torch
from toy_models import wrap  # tests/playground/toy_models.py

from cnn_explorer.architectures import TinyVGG
from cnn_explorer.zoo import LoadedModel


@pytest.fixture(scope="module")
def tinyvgg() -> LoadedModel:
    torch.manual_seed(0)
    return wrap(TinyVGG(num_classes=10), (3, 64, 64), "tinyvgg")
