"""The layer explorer's library: layer table, capture, one unit's arithmetic, receptive fields, statistics.

Every number is checked against an independent reference: the layers run by hand, plain forward hooks,
``F.unfold`` / ``F.conv2d`` / ``torch.softmax``, and receptive fields propagated by hand with
``rf_out = rf_in + (k − 1)·d·jump_in``, ``jump_out = jump_in·s``.
"""

import random
import threading
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
import torchvision.models
from torch import nn

from cnn_explorer.architectures import LeNet5, TinyVGG
from cnn_explorer.layers import (
    LAYER_DESCRIPTIONS,
    UnknownLayer,
    activation_stats,
    capture_activations,
    capture_inputs,
    capture_layers,
    describe,
    effective_receptive_field,
    explain_unit,
    list_layers,
    theoretical_field,
)
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.zoo import LoadedModel, available_models, load_model, model_entry

SHIPPED = [n for n in ("tinyvgg-shapes", "lenet5-digits") if n in available_models() and model_entry(n).is_ready()]
RESNET_SIDE = 64  # receptive fields do not depend on the input size; a small input keeps the tests fast
WINDOW_KINDS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.Linear)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _wrap(module: nn.Module, input_size: tuple[int, int, int], classes: int, name: str = "test") -> LoadedModel:
    channels, side, _ = input_size
    return LoadedModel(
        name=name,
        module=module.eval(),
        input_size=input_size,
        class_names=tuple(f"class {i}" for i in range(classes)),
        preprocess=Preprocess(resize=side, crop=side, grayscale=channels == 1),
        summary=name,
        card=name,
    )


def _input(model: LoadedModel, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, *model.input_size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tinyvgg() -> LoadedModel:
    torch.manual_seed(0)
    return _wrap(TinyVGG(num_classes=10), (3, 64, 64), 10, "tinyvgg")


@pytest.fixture(scope="module")
def lenet() -> LoadedModel:
    torch.manual_seed(1)
    return _wrap(LeNet5(num_classes=10), (1, 32, 32), 10, "lenet")


@pytest.fixture(scope="module")
def resnet() -> LoadedModel:
    torch.manual_seed(2)
    module = torchvision.models.resnet18()
    for bn in (m for m in module.modules() if isinstance(m, nn.BatchNorm2d)):
        # Non-trivial statistics, so batch norm is more than the identity.
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -0.2, 0.2)
    return _wrap(module, (3, RESNET_SIDE, RESNET_SIDE), 1000, "resnet18")


class _Tricky(nn.Sequential):
    """Padding, stride, dilation, groups, 'same' + reflect padding, ceil mode, count_include_pad, divisor."""

    def __init__(self) -> None:
        super().__init__(
            OrderedDict(
                [
                    ("conv_a", nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2)),  # 19 → 10
                    ("leaky", nn.LeakyReLU(0.1)),
                    ("pool_a", nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)),  # 10 → 6
                    ("conv_b", nn.Conv2d(6, 6, (3, 2), padding="same", padding_mode="reflect", bias=False)),
                    ("avg_a", nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),  # → 4
                    ("conv_c", nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=6)),  # depthwise, 4 → 4
                    ("pool_b", nn.MaxPool2d(2, stride=1, dilation=2)),  # → 2
                    ("avg_b", nn.AvgPool2d(2, stride=1, padding=1, divisor_override=3)),  # → 3
                    ("sigmoid", nn.Sigmoid()),
                    ("flatten", nn.Flatten()),
                    ("dense", nn.Linear(54, 5)),
                    ("softmax", nn.Softmax(dim=1)),
                ]
            )
        )


@pytest.fixture(scope="module")
def tricky() -> LoadedModel:
    torch.manual_seed(3)
    return _wrap(_Tricky(), (4, 19, 19), 5, "tricky")


def _by_hand(model: LoadedModel, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run a sequential model's layers one after another."""
    outputs, h = {}, x
    with torch.no_grad():
        for name, layer in model.module.named_children():
            h = layer(h)
            outputs[name] = h
    return outputs


def _assert_no_hooks(module: nn.Module) -> None:
    for name, m in module.named_modules():
        hooks = (
            m._forward_hooks,
            m._forward_pre_hooks,
            m._backward_hooks,
            m._backward_pre_hooks,
            m._forward_hooks_with_kwargs,
            m._forward_pre_hooks_with_kwargs,
        )
        assert not any(hooks), f"hook left on {name!r}"


def _hand_fields(chain: list[tuple[str, int, int, int]]) -> dict[str, tuple[int, int]]:
    """(name, kernel, stride, dilation) along a path → name: (rf, jump), by the textbook recurrence."""
    rf, jump, fields = 1, 1, {}
    for name, kernel, stride, dilation in chain:
        rf = rf + (kernel - 1) * dilation * jump
        jump = jump * stride
        fields[name] = (rf, jump)
    return fields


# ── the layer table ──────────────────────────────────────────────────────────────────────────────────────────────


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
    _assert_no_hooks(tinyvgg.module)


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
    _assert_no_hooks(resnet.module)


# ── receptive fields ─────────────────────────────────────────────────────────────────────────────────────────────


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
    model = _wrap(torchvision.models.mobilenet_v3_small(), (3, 64, 64), 1000, "mobilenet_v3_small")
    layers = list_layers(model)
    by_name = {info.name: info for info in layers}
    assert by_name["features.0.0"].receptive_field == 3 and not by_name["features.0.0"].whole_input
    assert by_name["features.1.block.1.fc1"].block == "SqueezeExcitation"
    after_gate = by_name["features.1.block.2.0"]  # the 1×1 conv reading `scale * input`
    assert after_gate.whole_input and after_gate.jump == 4 and after_gate.output_shape == (16, 16, 16)
    assert theoretical_field(layers, after_gate.name, 5, 5) == (0, 0, 64, 64)
    assert all(info.description in LAYER_DESCRIPTIONS.values() for info in layers)  # none generic
    _assert_no_hooks(model.module)


# ── capture ──────────────────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("fixture", ["tinyvgg", "lenet", "tricky"])
def test_capture_equals_running_the_layers_by_hand(fixture, request):
    model = request.getfixturevalue(fixture)
    x = _input(model)
    captured = capture_activations(model, x)
    expected = _by_hand(model, x)
    assert list(captured) == list(expected) == [info.name for info in list_layers(model)]
    for name, value in expected.items():
        assert torch.equal(captured[name], value), name
        assert not captured[name].requires_grad
    _assert_no_hooks(model.module)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_capture_equals_running_the_layers_by_hand(name):
    model = load_model(name)
    x = _input(model, seed=5)
    captured = capture_activations(model, x)
    expected = _by_hand(model, x)
    assert list(captured) == list(expected)
    for layer, value in expected.items():
        assert torch.equal(captured[layer], value), layer
    layers = list_layers(model)
    assert sum(info.params for info in layers) == sum(p.numel() for p in model.module.parameters())
    assert [info.name for info in layers] == list(captured)


def test_capture_a_subset_in_execution_order_and_inputs(tinyvgg):
    x = _input(tinyvgg)
    captured = capture_activations(tinyvgg, x, ["output", "conv_1_1", "max_pool_1"])
    assert list(captured) == ["conv_1_1", "max_pool_1", "output"]
    inputs = capture_inputs(tinyvgg, x, ["conv_2_1", "conv_1_1"])
    assert torch.equal(inputs["conv_1_1"], x)
    assert torch.equal(inputs["conv_2_1"], captured["max_pool_1"])


def test_capture_layers_gives_outputs_and_inputs_in_one_pass(resnet):
    x = _input(resnet, seed=4)
    outputs, inputs = capture_layers(resnet, x)
    separate_outputs, separate_inputs = capture_activations(resnet, x), capture_inputs(resnet, x)
    assert list(outputs) == list(separate_outputs) == list(inputs) == list(separate_inputs)
    for name in outputs:
        assert torch.equal(outputs[name], separate_outputs[name]) and torch.equal(inputs[name], separate_inputs[name])
    assert torch.equal(inputs["conv1"], x)
    assert torch.equal(inputs["layer1.0.relu"], outputs["layer1.0.bn1"])  # read before the in-place ReLU ran
    assert torch.equal(inputs["layer2.0.downsample.0"], outputs["layer1.1.relu#2"])  # the shortcut: block input
    assert torch.equal(inputs["fc"], outputs["avgpool"].flatten(1))  # torch.flatten ran outside any layer
    _assert_no_hooks(resnet.module)


def test_resnet_capture_equals_plain_hooks_with_clones(resnet):
    x = _input(resnet)
    seen, calls, handles = {}, {}, []

    def hook(path):
        def record(module, args, output):
            calls[path] = calls.get(path, 0) + 1
            seen[path if calls[path] == 1 else f"{path}#{calls[path]}"] = output.detach().clone()

        return record

    for path, module in resnet.module.named_modules():
        if not list(module.children()):
            handles.append(module.register_forward_hook(hook(path)))
    try:
        with torch.no_grad():
            resnet.module(x)
    finally:
        for handle in handles:
            handle.remove()
    captured = capture_activations(resnet, x)
    assert list(captured) == list(seen) == [info.name for info in list_layers(resnet)]
    assert "layer1.0.relu#2" in captured
    for name, value in seen.items():
        assert torch.equal(captured[name], value), name
    _assert_no_hooks(resnet.module)


def test_resnet_values_are_snapshots_before_later_inplace_ops(resnet):
    x = _input(resnet, seed=1)
    captured = capture_activations(resnet, x)
    block = resnet.module.layer1[0]
    with torch.no_grad():
        bn1 = block.bn1(block.conv1(captured["maxpool"]))
        bn2 = block.bn2(block.conv2(bn1.clamp_min(0)))
        out = (bn2 + captured["maxpool"]).clamp_min(0)
    assert (bn1 < 0).any() and (bn2 < 0).any()  # the in-place ReLU / `+= identity` would have changed these
    assert torch.equal(captured["layer1.0.bn1"], bn1)
    assert torch.equal(captured["layer1.0.relu"], bn1.clamp_min(0))
    assert torch.equal(captured["layer1.0.bn2"], bn2)
    assert torch.equal(captured["layer1.0.relu#2"], out)


def test_capture_does_not_change_the_logits(resnet, tinyvgg):
    for model in (resnet, tinyvgg):
        x = _input(model, seed=2)
        with torch.no_grad():
            before = model.module(x)
        captured = capture_activations(model, x)
        capture_inputs(model, x)
        with torch.no_grad():
            after = model.module(x)
        assert torch.equal(before, after)
        assert torch.equal(captured[list(captured)[-1]], before)


def test_unknown_layers_name_the_valid_ones(tinyvgg):
    x = _input(tinyvgg)
    with pytest.raises(KeyError, match=r"Unknown layer 'conv_9'.*conv_1_1.*output"):
        capture_activations(tinyvgg, x, ["conv_9"])
    with pytest.raises(UnknownLayer, match=r"'relu_1_1#2'.*did not run"):
        capture_activations(tinyvgg, x, ["relu_1_1#2"])
    with pytest.raises(UnknownLayer, match="call number"):
        capture_inputs(tinyvgg, x, ["relu_1_1#x"])
    activations = capture_activations(tinyvgg, x, ["conv_1_1"])
    with pytest.raises(KeyError, match="capture it first"):
        explain_unit(tinyvgg, activations, x, "conv_1_2", (0, 0, 0))
    with pytest.raises(ValueError, match="not a position"):
        explain_unit(tinyvgg, activations, x, "conv_1_1", (10, 0, 0))
    with pytest.raises(KeyError, match="conv_1_1"):
        effective_receptive_field(tinyvgg, x, "nope", (0, 0, 0))
    _assert_no_hooks(tinyvgg.module)


class _Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def test_no_hooks_and_flags_left_when_the_forward_pass_raises():
    torch.manual_seed(6)
    module = nn.Sequential(
        OrderedDict([("conv", nn.Conv2d(3, 4, 3)), ("relu", nn.ReLU(inplace=True)), ("boom", _Boom())])
    )
    model = _wrap(module, (3, 16, 16), 4, "boom")
    x = _input(model)
    with pytest.raises(RuntimeError, match="boom"):
        capture_activations(model, x)
    with pytest.raises(RuntimeError, match="boom"):
        capture_inputs(model, x, ["boom"])
    with pytest.raises(RuntimeError, match="boom"):
        list_layers(model)
    with pytest.raises(RuntimeError, match="boom"):
        effective_receptive_field(model, x, "boom", (0, 0, 0))
    _assert_no_hooks(module)
    assert module.relu.inplace is True
    assert all(p.grad is None for p in module.parameters())
    # Layers before the failing one are still reachable: the pass stops early.
    assert effective_receptive_field(model, x, "relu", (0, 3, 3)).shape == (16, 16)
    assert not model.lock._is_owned()


# ── the arithmetic of one unit ───────────────────────────────────────────────────────────────────────────────────


def _positions(shape: tuple[int, ...], rng: random.Random, count: int = 25) -> list[tuple[int, ...]]:
    """Random positions plus every corner and edge midpoint (where padding matters)."""
    if len(shape) == 1:
        return [(i,) for i in sorted({rng.randrange(shape[0]) for _ in range(count)} | {0, shape[0] - 1})]
    channels, height, width = shape
    spots = {(rng.randrange(channels), rng.randrange(height), rng.randrange(width)) for _ in range(count)}
    for row in (0, height // 2, height - 1):
        for col in (0, width // 2, width - 1):
            spots.add((rng.randrange(channels), row, col))
    return sorted(spots)


def _check_unit(model: LoadedModel, activations, inputs, x, name: str, index: tuple[int, ...], unfolded=None) -> None:
    """Check one unit against references; ``unfolded`` caches each conv's ``F.unfold`` columns between calls."""
    unfolded = {} if unfolded is None else unfolded
    unit = explain_unit(model, activations, x, name, index, inputs=inputs)
    module = model.module.get_submodule(name)
    assert unit.captured == float(activations[name][0][index])
    # 1e-5, relative for large values: float32 cannot hold a logit of -392 closer than ~3e-5.
    assert unit.result == pytest.approx(unit.captured, abs=1e-5, rel=1e-6)
    layer_input = inputs[name][0]
    if isinstance(module, nn.Conv2d):
        assert torch.equal(unit.products, unit.patch * unit.weights)
        assert torch.equal(unit.weights, module.weight[index[0]])
        bias = None if unit.bias is None else torch.tensor([unit.bias])
        reference = F.conv2d(unit.patch[None], unit.weights[None], bias)[0, 0, 0, 0]
        assert unit.result == pytest.approx(float(reference), abs=1e-5, rel=1e-6)
        assert unit.channel_sums.sum().item() == pytest.approx(unit.total, abs=1e-9)
        if module.padding_mode == "zeros":  # an independent patch: F.unfold's column for this position
            key = (name, unit.input_channels)
            if key not in unfolded:
                unfolded[key] = F.unfold(
                    layer_input[list(unit.input_channels)][None],
                    module.kernel_size,
                    dilation=module.dilation,
                    padding=module.padding,
                    stride=module.stride,
                )[0]
            column = unfolded[key][:, index[1] * activations[name].shape[-1] + index[2]]
            assert torch.equal(unit.patch.flatten(), column)
    elif isinstance(module, nn.Linear):
        assert torch.equal(unit.patch, layer_input)
        assert torch.equal(unit.products, unit.patch * module.weight[index[0]])
    elif isinstance(module, nn.MaxPool2d):
        assert unit.patch[unit.argmax] == unit.patch.max()
        assert unit.result == unit.captured  # a max is exact
    elif isinstance(module, nn.AvgPool2d):
        assert unit.result == pytest.approx(unit.patch.double().sum().item() / unit.divisor, abs=1e-12)


@pytest.mark.parametrize("fixture", ["tinyvgg", "lenet", "tricky"])
def test_explain_every_window_layer_at_many_positions(fixture, request):
    model = request.getfixturevalue(fixture)
    x = _input(model, seed=3)
    activations, inputs = capture_activations(model, x), capture_inputs(model, x)
    rng = random.Random(0)
    checked, unfolded = 0, {}
    for info in list_layers(model):
        if isinstance(model.module.get_submodule(info.path), WINDOW_KINDS):
            for index in _positions(info.output_shape, rng):
                _check_unit(model, activations, inputs, x, info.name, index, unfolded)
                checked += 1
    assert checked > 100


@pytest.mark.parametrize("name", SHIPPED)
def test_explain_every_window_layer_of_the_shipped_models(name):
    model = load_model(name)
    x = _input(model, seed=4)
    activations, inputs = capture_activations(model, x), capture_inputs(model, x)
    rng, unfolded = random.Random(1), {}
    for info in list_layers(model):
        if isinstance(model.module.get_submodule(info.path), WINDOW_KINDS):
            for index in _positions(info.output_shape, rng):
                _check_unit(model, activations, inputs, x, info.name, index, unfolded)


def test_tricky_layers_at_every_position(tricky):
    x = _input(tricky, seed=7)
    activations, inputs = capture_activations(tricky, x), capture_inputs(tricky, x)
    unfolded = {}
    for name in ("conv_a", "pool_a", "conv_b", "avg_a", "conv_c", "pool_b", "avg_b"):
        channels, height, width = activations[name].shape[1:]
        for index in [(c, i, j) for c in (0, channels - 1) for i in range(height) for j in range(width)]:
            _check_unit(tricky, activations, inputs, x, name, index, unfolded)


def test_grouped_strided_dilated_conv_window(tricky):
    x = _input(tricky)
    activations = capture_activations(tricky, x)
    unit = explain_unit(tricky, activations, x, "conv_a", (4, 0, 0))  # output channel 4 is in group 1
    assert unit.input_channels == (2, 3)
    assert unit.patch.shape == unit.weights.shape == (2, 3, 3)
    assert unit.window == (-2, -2, 5, 5)  # stride 2, padding 2, dilated kernel spans 5
    assert unit.image_window == (0, 0, 3, 3)  # its input is the image: the window clipped to it
    assert torch.equal(unit.patch[:, 0, :], torch.zeros(2, 3))  # the top row lies in the padding
    assert torch.equal(unit.patch[:, 1:, 1:], x[0, 2:4, 0:3:2, 0:3:2])
    deeper = explain_unit(tricky, activations, x, "conv_b", (0, 0, 0))
    assert deeper.image_window is None
    ceil = explain_unit(tricky, activations, x, "avg_a", (0, 3, 3))  # ceil mode: the window runs past the input
    assert ceil.window == (5, 5, 3, 3) and ceil.divisor == 1.0


def test_explain_without_captured_inputs_runs_up_to_the_layer(resnet):
    x = _input(resnet, seed=3)
    activations = capture_activations(resnet, x)
    inputs = capture_inputs(resnet, x)
    for name, index in [
        ("conv1", (3, 0, 0)),
        ("maxpool", (5, 0, 3)),
        ("layer1.0.conv2", (7, 4, 4)),
        ("layer2.0.downsample.0", (9, 2, 3)),  # reads the block input, not the layer before it
        ("layer1.0.bn1", (1, 2, 2)),
        ("layer1.0.relu#2", (2, 3, 1)),
        ("avgpool", (11, 0, 0)),
        ("fc", (17,)),
    ]:
        with_inputs = explain_unit(resnet, activations, x, name, index, inputs=inputs)
        without = explain_unit(resnet, activations, x, name, index)
        assert with_inputs.result == without.result
        assert with_inputs.result == pytest.approx(with_inputs.captured, abs=1e-5, rel=1e-5), name
    conv1 = explain_unit(resnet, activations, x, "conv1", (0, 0, 0), inputs=inputs)
    assert conv1.window == (-3, -3, 7, 7) and conv1.image_window == (0, 0, 4, 4)
    _assert_no_hooks(resnet.module)


def test_final_linear_layer_shows_the_softmax(tinyvgg, tricky):
    x = _input(tinyvgg)
    activations = capture_activations(tinyvgg, x)
    unit = explain_unit(tinyvgg, activations, x, "output", (3,))
    logits = activations["output"][0]
    softmax = unit.softmax
    assert torch.equal(softmax.logits, logits)
    assert torch.allclose(softmax.probabilities.float(), torch.softmax(logits, dim=0), atol=1e-7)
    assert torch.allclose(softmax.exps, torch.exp(logits.double() - logits.max().double()))
    assert softmax.total == pytest.approx(softmax.exps.sum().item())
    assert softmax.probabilities.sum().item() == pytest.approx(1.0)
    # A softmax layer explains itself; the linear layer before it is then not the last.
    y = _input(tricky)
    tricky_activations = capture_activations(tricky, y)
    assert explain_unit(tricky, tricky_activations, y, "dense", (0,)).softmax is None
    probability = explain_unit(tricky, tricky_activations, y, "softmax", (2,))
    assert probability.result == pytest.approx(probability.captured, abs=1e-7)
    assert torch.allclose(probability.softmax.probabilities.float(), tricky_activations["softmax"][0], atol=1e-7)


def test_elementwise_layers_before_and_after(tinyvgg, lenet, tricky, resnet):
    cases = [
        (tinyvgg, "relu_1_1", "conv_1_1", lambda v: max(v, 0.0)),
        (lenet, "tanh3", "c3", lambda v: float(torch.tanh(torch.tensor(v)))),
        (tricky, "leaky", "conv_a", lambda v: v if v > 0 else 0.1 * v),
        (tricky, "sigmoid", "avg_b", lambda v: float(torch.sigmoid(torch.tensor(v)))),
    ]
    for model, name, previous, function in cases:
        x = _input(model, seed=8)
        activations = capture_activations(model, x)
        rng = random.Random(2)
        negative_seen = False
        for index in _positions(tuple(activations[name].shape[1:]), rng):
            unit = explain_unit(model, activations, x, name, index)
            assert unit.before == float(activations[previous][0][index])
            assert unit.source == index
            assert unit.result == pytest.approx(function(unit.before), abs=1e-6)
            assert unit.result == unit.captured
            negative_seen |= unit.before < 0
        assert negative_seen
    x = _input(resnet)
    activations = capture_activations(resnet, x, ["layer1.0.bn1", "layer1.0.relu"])
    unit = explain_unit(resnet, activations, x, "layer1.0.bn1", (4, 5, 6))
    assert set(unit.terms) == {"mean", "var", "eps", "gamma", "beta"}
    assert unit.result == pytest.approx(unit.captured, abs=1e-5)
    relu = explain_unit(resnet, activations, x, "layer1.0.relu", (4, 5, 6))
    assert relu.before == unit.captured and relu.result == max(unit.captured, 0.0)


def test_flatten_says_where_each_value_comes_from(tinyvgg):
    x = _input(tinyvgg)
    activations = capture_activations(tinyvgg, x, ["max_pool_2", "flatten"])
    unit = explain_unit(tinyvgg, activations, x, "flatten", (13 * 13 + 2 * 13 + 5,))
    assert unit.source == (1, 2, 5)
    assert unit.result == unit.captured == float(activations["max_pool_2"][0, 1, 2, 5])


def test_unexplained_kind_says_which_are(tinyvgg):
    model = _wrap(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Upsample(scale_factor=2)), (1, 8, 8), 2)
    x = _input(model)
    activations = capture_activations(model, x)
    with pytest.raises(ValueError, match=r"Upsample.*Conv2d"):
        explain_unit(model, activations, x, "1", (0, 0, 0))


# ── effective receptive field ────────────────────────────────────────────────────────────────────────────────────


def test_effective_field_lies_inside_the_theoretical_one(tinyvgg):
    x = _input(tinyvgg)
    layers = list_layers(tinyvgg)
    erf = effective_receptive_field(tinyvgg, x, "conv_2_2", (3, 13, 13))
    assert erf.shape == (64, 64)
    top, left, bottom, right = theoretical_field(layers, "conv_2_2", 13, 13)
    assert (bottom - top, right - left) == (14, 14)
    rows, cols = torch.nonzero(erf, as_tuple=True)
    assert len(rows) > 0
    assert top <= rows.min() and rows.max() < bottom and left <= cols.min() and cols.max() < right
    # The reference: the same gradient computed directly.
    image = x.clone().requires_grad_(True)
    h = image
    for name, layer in tinyvgg.module.named_children():
        h = layer(h)
        if name == "conv_2_2":
            break
    (grad,) = torch.autograd.grad(h[0, 3, 13, 13], image)
    assert torch.allclose(erf, grad[0].abs().sum(0))
    assert all(p.grad is None for p in tinyvgg.module.parameters())
    _assert_no_hooks(tinyvgg.module)


def test_effective_field_on_resnet_restores_inplace_flags(resnet):
    x = _input(resnet)
    inplace = [m for m in resnet.module.modules() if getattr(m, "inplace", False)]
    assert inplace  # torchvision's ReLUs are in-place
    layers = list_layers(resnet)
    block_output = capture_activations(resnet, x, ["layer1.0.relu#2"])["layer1.0.relu#2"][0, 0]
    active = tuple(int(i) for i in torch.nonzero(block_output[4:-4, 4:-4] > 0)[0] + 4)  # a unit the ReLU passes
    for name, index in [("layer1.0.bn1", (2, 8, 8)), ("layer1.0.relu#2", (0, *active))]:
        erf = effective_receptive_field(resnet, x, name, index)
        top, left, bottom, right = theoretical_field(layers, name, *index[1:])
        rows, cols = torch.nonzero(erf, as_tuple=True)
        assert len(rows) > 0
        assert top <= rows.min() and rows.max() < bottom and left <= cols.min() and cols.max() < right
    assert all(m.inplace for m in inplace)
    assert not resnet.module.training and not any(m.training for m in resnet.module.modules())
    assert all(p.grad is None for p in resnet.module.parameters())
    _assert_no_hooks(resnet.module)


# ── statistics ───────────────────────────────────────────────────────────────────────────────────────────────────


def test_activation_stats_by_hand():
    maps = torch.tensor(
        [
            [[-1.0, 0.0], [2.0, 0.0]],
            [[-3.0, -1.0], [0.0, -2.0]],
            [[0.5, 0.5], [0.5, 0.5]],
        ]
    )
    for t in (maps, maps[None]):
        stats = activation_stats(t)
        assert (stats.min, stats.max, stats.mean) == (-3.0, 2.0, -0.25)
        assert stats.zero_share == 0.25
        assert stats.channel_max.tolist() == [2.0, 0.0, 0.5]
        assert stats.dead_channels == (1,)
        assert stats.histogram.shape == (40,) and stats.bin_edges.shape == (41,)
        assert stats.histogram.sum().item() == 12
        assert (stats.bin_edges[0].item(), stats.bin_edges[-1].item()) == (-3.0, 2.0)
        assert stats.histogram[0].item() == 1 and stats.histogram[-1].item() == 1  # −3 and 2
    vector = activation_stats(torch.tensor([[0.0, 1.0, -2.0]]))
    assert vector.dead_channels == (0, 2) and vector.channel_max.tolist() == [0.0, 1.0, -2.0]
    constant = activation_stats(torch.zeros(2, 3, 3), bins=4)
    assert constant.zero_share == 1.0 and constant.histogram.tolist() == [0, 0, 18, 0]
    with pytest.raises(ValueError, match="batch of 2"):
        activation_stats(torch.zeros(2, 3, 4, 4))


# ── concurrency ──────────────────────────────────────────────────────────────────────────────────────────────────


def test_threads_sharing_one_model_get_the_single_threaded_results(tinyvgg):
    inputs = [_input(tinyvgg, seed=s) for s in range(4)]
    spots = [("conv_2_2", (1, 10, 12)), ("relu_1_2", (4, 30, 30)), ("max_pool_2", (0, 6, 6)), ("output", (2,))]
    reference = [
        (capture_activations(tinyvgg, x), effective_receptive_field(tinyvgg, x, *spots[k]))
        for k, x in enumerate(inputs)
    ]
    errors, mismatches = [], []
    stop = threading.Event()

    def worker(k: int) -> None:
        try:
            for i in range(25):
                j = (k + i) % len(inputs)
                captured = capture_activations(tinyvgg, inputs[j])
                erf = effective_receptive_field(tinyvgg, inputs[j], *spots[j])
                expected, expected_erf = reference[j]
                if list(captured) != list(expected) or not all(torch.equal(captured[n], expected[n]) for n in expected):
                    mismatches.append((k, i, "capture"))
                if not torch.equal(erf, expected_erf):
                    mismatches.append((k, i, "erf"))
        except Exception as err:  # reported below, with the thread that raised it
            errors.append((k, err))

    def bystander() -> None:
        # Predictions do not take the lock; the capture hooks must ignore their forward passes.
        while not stop.is_set():
            with torch.no_grad():
                tinyvgg.module(inputs[0])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    side = threading.Thread(target=bystander)
    side.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    side.join()
    assert not errors and not mismatches, (errors, mismatches[:5])
    _assert_no_hooks(tinyvgg.module)
