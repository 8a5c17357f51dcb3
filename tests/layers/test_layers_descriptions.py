"""What each kind of layer does: one sentence per kind the page shows, and a generic one naming the kind."""

import pytest

from cnn_explorer.layers import LAYER_DESCRIPTIONS, describe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_descriptions_cover_the_kinds_the_page_shows():
    kinds = [
        "Conv2d", "ReLU", "Tanh", "Sigmoid", "LeakyReLU", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
        "BatchNorm2d", "Dropout", "Flatten", "Linear", "Softmax", "Hardswish", "Hardsigmoid", "SiLU", "Identity",
        "SqueezeExcitation", "BasicBlock",
    ]  # fmt: skip
    for kind in kinds:
        assert kind in LAYER_DESCRIPTIONS and describe(kind) == LAYER_DESCRIPTIONS[kind]
        assert describe(kind).endswith(".") and len(describe(kind)) > 30
    assert "Upsample" in describe("Upsample")  # the generic fallback names the kind
