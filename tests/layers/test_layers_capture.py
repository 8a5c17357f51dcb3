"""Capture against the layers run by hand and plain forward hooks: snapshots before in-place ops, logits
unchanged, no hook or flag left when the pass raises, and threads sharing one model get the single-threaded
results."""

import threading
from collections import OrderedDict

import pytest
import torch
from layer_models import SHIPPED, assert_no_hooks, by_hand, random_input, wrap  # tests/layers/layer_models.py
from torch import nn

from cnn_explorer.layers import (
    capture_activations,
    capture_inputs,
    capture_layers,
    effective_receptive_field,
    list_layers,
)
from cnn_explorer.zoo import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("fixture", ["tinyvgg", "lenet", "tricky"])
def test_capture_equals_running_the_layers_by_hand(fixture, request):
    model = request.getfixturevalue(fixture)
    x = random_input(model)
    captured = capture_activations(model, x)
    expected = by_hand(model, x)
    assert list(captured) == list(expected) == [info.name for info in list_layers(model)]
    for name, value in expected.items():
        assert torch.equal(captured[name], value), name
        assert not captured[name].requires_grad
    assert_no_hooks(model.module)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_capture_equals_running_the_layers_by_hand(name):
    model = load_model(name)
    x = random_input(model, seed=5)
    captured = capture_activations(model, x)
    expected = by_hand(model, x)
    assert list(captured) == list(expected)
    for layer, value in expected.items():
        assert torch.equal(captured[layer], value), layer
    layers = list_layers(model)
    assert sum(info.params for info in layers) == sum(p.numel() for p in model.module.parameters())
    assert [info.name for info in layers] == list(captured)


def test_capture_a_subset_in_execution_order_and_inputs(tinyvgg):
    x = random_input(tinyvgg)
    captured = capture_activations(tinyvgg, x, ["output", "conv_1_1", "max_pool_1"])
    assert list(captured) == ["conv_1_1", "max_pool_1", "output"]
    inputs = capture_inputs(tinyvgg, x, ["conv_2_1", "conv_1_1"])
    assert torch.equal(inputs["conv_1_1"], x)
    assert torch.equal(inputs["conv_2_1"], captured["max_pool_1"])


def test_capture_layers_gives_outputs_and_inputs_in_one_pass(resnet):
    x = random_input(resnet, seed=4)
    outputs, inputs = capture_layers(resnet, x)
    separate_outputs, separate_inputs = capture_activations(resnet, x), capture_inputs(resnet, x)
    assert list(outputs) == list(separate_outputs) == list(inputs) == list(separate_inputs)
    for name in outputs:
        assert torch.equal(outputs[name], separate_outputs[name]) and torch.equal(inputs[name], separate_inputs[name])
    assert torch.equal(inputs["conv1"], x)
    assert torch.equal(inputs["layer1.0.relu"], outputs["layer1.0.bn1"])  # read before the in-place ReLU ran
    assert torch.equal(inputs["layer2.0.downsample.0"], outputs["layer1.1.relu#2"])  # the shortcut: block input
    assert torch.equal(inputs["fc"], outputs["avgpool"].flatten(1))  # torch.flatten ran outside any layer
    assert_no_hooks(resnet.module)


def test_resnet_capture_equals_plain_hooks_with_clones(resnet):
    x = random_input(resnet)
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
    assert_no_hooks(resnet.module)


def test_resnet_values_are_snapshots_before_later_inplace_ops(resnet):
    x = random_input(resnet, seed=1)
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
        x = random_input(model, seed=2)
        with torch.no_grad():
            before = model.module(x)
        captured = capture_activations(model, x)
        capture_inputs(model, x)
        with torch.no_grad():
            after = model.module(x)
        assert torch.equal(before, after)
        assert torch.equal(captured[list(captured)[-1]], before)


class _Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def test_no_hooks_and_flags_left_when_the_forward_pass_raises():
    torch.manual_seed(6)
    module = nn.Sequential(
        OrderedDict([("conv", nn.Conv2d(3, 4, 3)), ("relu", nn.ReLU(inplace=True)), ("boom", _Boom())])
    )
    model = wrap(module, (3, 16, 16), 4, "boom")
    x = random_input(model)
    with pytest.raises(RuntimeError, match="boom"):
        capture_activations(model, x)
    with pytest.raises(RuntimeError, match="boom"):
        capture_inputs(model, x, ["boom"])
    with pytest.raises(RuntimeError, match="boom"):
        list_layers(model)
    with pytest.raises(RuntimeError, match="boom"):
        effective_receptive_field(model, x, "boom", (0, 0, 0))
    assert_no_hooks(module)
    assert module.relu.inplace is True
    assert all(p.grad is None for p in module.parameters())
    # Layers before the failing one are still reachable: the pass stops early.
    assert effective_receptive_field(model, x, "relu", (0, 3, 3)).shape == (16, 16)
    assert not model.lock._is_owned()


def test_threads_sharing_one_model_get_the_single_threaded_results(tinyvgg):
    inputs = [random_input(tinyvgg, seed=s) for s in range(4)]
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
    assert_no_hooks(tinyvgg.module)
