"""Fixtures of the trust tests: the shipped TinyVGG, a shape it was made for and its Grad-CAM, one per test module."""

import pytest
import torch

from cnn_explorer import explain, load_model
from cnn_explorer.images import load_sample, samples_for
from cnn_explorer.zoo import LoadedModel


@pytest.fixture(scope="module")
def tinyvgg() -> LoadedModel:
    return load_model("tinyvgg-shapes")


@pytest.fixture(scope="module")
def shape_input(tinyvgg) -> torch.Tensor:
    return tinyvgg.preprocess(load_sample(samples_for("tinyvgg-shapes", made_for_it=True)[0]))


@pytest.fixture(scope="module")
def gradcam(tinyvgg, shape_input):
    return explain(tinyvgg, shape_input, "gradcam")
