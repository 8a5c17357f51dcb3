"""Fixtures of the attribution tests: the shipped TinyVGG and a shape it was made for, the trap net, and the zoo's
models (ResNet-18 from the tests' hub cache, nothing downloaded), one of each per test module."""

import pytest
import torch
from attribution_models import MODELS
from attribution_models import Trap as _Trap

from cnn_explorer import load_model
from cnn_explorer.images import load_sample, samples_for
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.zoo import LoadedModel


@pytest.fixture(scope="module")
def tinyvgg() -> LoadedModel:
    return load_model("tinyvgg-shapes")


@pytest.fixture(scope="module")
def shape_input(tinyvgg) -> torch.Tensor:
    return tinyvgg.preprocess(load_sample(samples_for("tinyvgg-shapes", made_for_it=True)[0]))


@pytest.fixture
def trap() -> LoadedModel:
    return LoadedModel(
        name="trap",
        module=_Trap().eval(),
        input_size=(3, 16, 16),
        class_names=("a", "b", "c", "d"),
        preprocess=Preprocess(resize=16, crop=16),
        summary="",
        card="",
    )


@pytest.fixture(scope="module")
def zoo_models(hub_cache) -> dict[str, LoadedModel]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(hub_cache))
        return {name: load_model(name) for name in MODELS}
