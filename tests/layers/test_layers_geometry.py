"""Receptive fields against the textbook recurrence by hand: ``rf_out = rf_in + (k − 1)·d·jump_in``,
``jump_out = jump_in·s``, along the main path (ResNet-18: 435 px)."""

import pytest
from layer_models import RESNET_SIDE  # tests/layers/layer_models.py

from cnn_explorer.layers import list_layers

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _hand_fields(chain: list[tuple[str, int, int, int]]) -> dict[str, tuple[int, int]]:
    """(name, kernel, stride, dilation) along a path → name: (rf, jump), by the textbook recurrence."""
    rf, jump, fields = 1, 1, {}
    for name, kernel, stride, dilation in chain:
        rf = rf + (kernel - 1) * dilation * jump
        jump = jump * stride
        fields[name] = (rf, jump)
    return fields


def test_tinyvgg_receptive_fields_by_hand(tinyvgg):
    fields = {info.name: (info.receptive_field, info.jump) for info in list_layers(tinyvgg)}
    expected = _hand_fields(
        [
            ("conv_1_1", 3, 1, 1),
            ("conv_1_2", 3, 1, 1),
            ("max_pool_1", 2, 2, 1),
            ("conv_2_1", 3, 1, 1),
            ("conv_2_2", 3, 1, 1),
            ("max_pool_2", 2, 2, 1),
        ]
    )
    assert expected == {
        "conv_1_1": (3, 1),
        "conv_1_2": (5, 1),
        "max_pool_1": (6, 2),
        "conv_2_1": (10, 2),
        "conv_2_2": (14, 2),
        "max_pool_2": (16, 4),
    }
    for name, value in expected.items():
        assert fields[name] == value, name
    assert fields["relu_1_1"] == fields["conv_1_1"] and fields["relu_2_2"] == fields["conv_2_2"]  # elementwise
    assert fields["flatten"][0] == fields["output"][0] == 64  # the whole input


def test_lenet_receptive_fields_by_hand(lenet):
    layers = list_layers(lenet)
    fields = {info.name: (info.receptive_field, info.jump) for info in layers}
    expected = _hand_fields([("c1", 5, 1, 1), ("s2", 2, 2, 1), ("c3", 5, 1, 1), ("s4", 2, 2, 1), ("c5", 5, 1, 1)])
    assert expected == {"c1": (5, 1), "s2": (6, 2), "c3": (14, 2), "s4": (16, 4), "c5": (32, 4)}
    for name, value in expected.items():
        assert fields[name] == value, name
    assert fields["tanh3"] == (14, 2)
    assert fields["f6"][0] == fields["output"][0] == 32
    assert not layers[0].whole_input and layers[-1].whole_input


def test_resnet18_receptive_field_is_435_by_hand(resnet):
    # The main path, written out: the stem, then two 3×3 convs per block, the first of layers 2–4 strided.
    chain = [("conv1", 7, 2, 1), ("maxpool", 3, 2, 1)]
    for stage in range(1, 5):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            chain += [(f"layer{stage}.{block}.conv1", 3, stride, 1), (f"layer{stage}.{block}.conv2", 3, 1, 1)]
    expected = _hand_fields(chain)
    assert expected["conv1"] == (7, 2)
    assert expected["maxpool"] == (11, 4)
    assert expected["layer1.0.conv1"] == (19, 4)
    assert expected["layer1.0.conv2"] == (27, 4)
    assert expected["layer2.0.conv1"] == (51, 8)
    assert expected["layer4.1.conv2"] == (435, 32)

    layers = list_layers(resnet)
    fields = {info.name: (info.receptive_field, info.jump) for info in layers}
    for name, value in expected.items():
        assert fields[name] == value, name
    # The residual sum follows the main path; the 1×1 shortcut reads the block input (layer1's output, 43 px).
    assert fields["layer2.0.relu#2"] == fields["layer2.0.bn2"] == (67, 8)
    assert fields["layer2.0.downsample.0"] == (43, 8)
    assert fields["layer4.1.relu#2"] == (435, 32)
    assert fields["fc"] == (RESNET_SIDE, RESNET_SIDE)
