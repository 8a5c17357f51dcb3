"""The layer table: every leaf with shapes, parameters and MACs counted by hand, one row per call of a reused
module; theoretical fields in input pixels."""

import pytest
import torch
import torchvision.models
from layer_models import RESNET_SIDE, assert_no_hooks, wrap  # tests/layers/layer_models.py

from cnn_explorer.layers import LAYER_DESCRIPTIONS, list_layers, theoretical_field

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tinyvgg_table_has_every_leaf_with_shapes_params_and_macs(tinyvgg):
    layers = list_layers(tinyvgg)
    assert [info.name for info in layers] == [name for name, _ in tinyvgg.module.named_children()]
    assert len(layers) == 12
    kinds = [info.kind for info in layers]
    assert kinds == ["Conv2d", "ReLU"] * 2 + ["MaxPool2d"] + ["Conv2d", "ReLU"] * 2 + ["MaxPool2d", "Flatten", "Linear"]
    shapes = {info.name: info.output_shape for info in layers}
    assert shapes["conv_1_1"] == (10, 62, 62)
    assert shapes["conv_1_2"] == (10, 60, 60)
    assert shapes["max_pool_1"] == (10, 30, 30)
    assert shapes["conv_2_2"] == (10, 26, 26)
    assert shapes["max_pool_2"] == (10, 13, 13)
    assert shapes["flatten"] == (1690,)
    assert shapes["output"] == (10,)
    assert layers[0].input_shape == (3, 64, 64)  # the first layer reads the image
    assert layers[-1].input_shape == (1690,)
    params = {info.name: info.params for info in layers}
    assert params["conv_1_1"] == 3 * 10 * 9 + 10
    assert params["conv_1_2"] == params["conv_2_1"] == params["conv_2_2"] == 10 * 10 * 9 + 10
    assert params["output"] == 1690 * 10 + 10
    assert params["relu_1_1"] == params["max_pool_1"] == params["flatten"] == 0
    assert sum(params.values()) == sum(p.numel() for p in tinyvgg.module.parameters())
    macs = {info.name: info.macs for info in layers}
    assert macs["conv_1_1"] == 62 * 62 * 10 * 3 * 9
    assert macs["conv_1_2"] == 60 * 60 * 10 * 10 * 9
    assert macs["output"] == 1690 * 10
    assert macs["relu_1_1"] == macs["max_pool_2"] == 0
    for info in layers:
        assert tinyvgg.module.get_submodule(info.path) is not None
        assert info.description == LAYER_DESCRIPTIONS[info.kind]
        assert (info.call, info.block) == (1, "")
    assert_no_hooks(tinyvgg.module)


def test_resnet_lists_each_call_of_a_reused_relu_and_the_shortcut(resnet):
    layers = list_layers(resnet)
    names = [info.name for info in layers]
    block = names[names.index("layer2.0.conv1") : names.index("layer2.1.conv1")]
    assert block == [
        "layer2.0.conv1", "layer2.0.bn1", "layer2.0.relu", "layer2.0.conv2", "layer2.0.bn2",
        "layer2.0.downsample.0", "layer2.0.downsample.1", "layer2.0.relu#2",
    ]  # fmt: skip
    second = layers[names.index("layer1.0.relu#2")]
    assert (second.path, second.call, second.block) == ("layer1.0.relu", 2, "BasicBlock")
    assert names[-2:] == ["avgpool", "fc"]
    assert layers[-1].input_shape == (512,)  # torch.flatten ran between them, outside any layer
    assert sum(info.params for info in layers) == sum(p.numel() for p in resnet.module.parameters())
    bn = layers[names.index("bn1")]
    assert bn.macs == 64 * (RESNET_SIDE // 2) ** 2  # one multiply-add per element
    assert_no_hooks(resnet.module)


def test_theoretical_field_in_input_pixels(tinyvgg, resnet, lenet):
    layers = list_layers(tinyvgg)
    assert theoretical_field(layers, "conv_1_1", 0, 0) == (0, 0, 3, 3)
    assert theoretical_field(layers, "conv_1_1", 61, 61) == (61, 61, 64, 64)
    assert theoretical_field(layers, "max_pool_1", 1, 2) == (2, 4, 8, 10)
    assert theoretical_field(layers, "max_pool_2", 12, 12) == (48, 48, 64, 64)
    assert theoretical_field(layers, "output") == (0, 0, 64, 64)
    assert theoretical_field(lenet, "c5", 0, 0) == (0, 0, 32, 32)
    resnet_layers = list_layers(resnet)
    # conv1 (k7, s2, p3): unit (0, 0) is centred on pixel 0, so its field −3…3 clips to 0…3.
    assert theoretical_field(resnet_layers, "conv1", 0, 0) == (0, 0, 4, 4)
    assert theoretical_field(resnet_layers, "conv1", 5, 7) == (7, 11, 14, 18)
    # maxpool (k3, s2, p1) on conv1: origin −3 − 1·2 = −5, size 11, jump 4.
    assert theoretical_field(resnet_layers, "maxpool", 3, 3) == (7, 7, 18, 18)
    assert theoretical_field(resnet_layers, "layer4.1.conv2", 1, 1) == (0, 0, RESNET_SIDE, RESNET_SIDE)
    with pytest.raises(ValueError, match="outside"):
        theoretical_field(layers, "conv_1_1", 62, 0)
    with pytest.raises(KeyError, match="conv_1_1"):
        theoretical_field(layers, "conv_9", 0, 0)


def test_squeeze_excitation_makes_later_units_see_the_whole_input():
    torch.manual_seed(4)
    model = wrap(torchvision.models.mobilenet_v3_small(), (3, 64, 64), 1000, "mobilenet_v3_small")
    layers = list_layers(model)
    by_name = {info.name: info for info in layers}
    assert by_name["features.0.0"].receptive_field == 3 and not by_name["features.0.0"].whole_input
    assert by_name["features.1.block.1.fc1"].block == "SqueezeExcitation"
    after_gate = by_name["features.1.block.2.0"]  # the 1×1 conv reading `scale * input`
    assert after_gate.whole_input and after_gate.jump == 4 and after_gate.output_shape == (16, 16, 16)
    assert theoretical_field(layers, after_gate.name, 5, 5) == (0, 0, 64, 64)
    assert all(info.description in LAYER_DESCRIPTIONS.values() for info in layers)  # none generic
    assert_no_hooks(model.module)
