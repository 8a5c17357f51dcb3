"""One unit's arithmetic against ``F.unfold`` / ``F.conv2d`` / ``torch.softmax`` and the captured values, at many
positions of every window layer (padding, stride, dilation, groups, ceil mode)."""

import random

import pytest
import torch
import torch.nn.functional as F
from layer_models import SHIPPED, assert_no_hooks, random_input, wrap  # tests/layers/layer_models.py
from torch import nn

from cnn_explorer.layers import capture_activations, capture_inputs, explain_unit, list_layers
from cnn_explorer.zoo import LoadedModel, load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


WINDOW_KINDS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.Linear)


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
    x = random_input(model, seed=3)
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
    x = random_input(model, seed=4)
    activations, inputs = capture_activations(model, x), capture_inputs(model, x)
    rng, unfolded = random.Random(1), {}
    for info in list_layers(model):
        if isinstance(model.module.get_submodule(info.path), WINDOW_KINDS):
            for index in _positions(info.output_shape, rng):
                _check_unit(model, activations, inputs, x, info.name, index, unfolded)


def test_tricky_layers_at_every_position(tricky):
    x = random_input(tricky, seed=7)
    activations, inputs = capture_activations(tricky, x), capture_inputs(tricky, x)
    unfolded = {}
    for name in ("conv_a", "pool_a", "conv_b", "avg_a", "conv_c", "pool_b", "avg_b"):
        channels, height, width = activations[name].shape[1:]
        for index in [(c, i, j) for c in (0, channels - 1) for i in range(height) for j in range(width)]:
            _check_unit(tricky, activations, inputs, x, name, index, unfolded)


def test_grouped_strided_dilated_conv_window(tricky):
    x = random_input(tricky)
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
    x = random_input(resnet, seed=3)
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
    assert_no_hooks(resnet.module)


def test_final_linear_layer_shows_the_softmax(tinyvgg, tricky):
    x = random_input(tinyvgg)
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
    y = random_input(tricky)
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
        x = random_input(model, seed=8)
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
    x = random_input(resnet)
    activations = capture_activations(resnet, x, ["layer1.0.bn1", "layer1.0.relu"])
    unit = explain_unit(resnet, activations, x, "layer1.0.bn1", (4, 5, 6))
    assert set(unit.terms) == {"mean", "var", "eps", "gamma", "beta"}
    assert unit.result == pytest.approx(unit.captured, abs=1e-5)
    relu = explain_unit(resnet, activations, x, "layer1.0.relu", (4, 5, 6))
    assert relu.before == unit.captured and relu.result == max(unit.captured, 0.0)


def test_flatten_says_where_each_value_comes_from(tinyvgg):
    x = random_input(tinyvgg)
    activations = capture_activations(tinyvgg, x, ["max_pool_2", "flatten"])
    unit = explain_unit(tinyvgg, activations, x, "flatten", (13 * 13 + 2 * 13 + 5,))
    assert unit.source == (1, 2, 5)
    assert unit.result == unit.captured == float(activations["max_pool_2"][0, 1, 2, 5])


def test_unexplained_kind_says_which_are(tinyvgg):
    model = wrap(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Upsample(scale_factor=2)), (1, 8, 8), 2)
    x = random_input(model)
    activations = capture_activations(model, x)
    with pytest.raises(ValueError, match=r"Upsample.*Conv2d"):
        explain_unit(model, activations, x, "1", (0, 0, 0))
