"""The training view computes exactly what the model computes: outputs and gradients compared bit for bit."""

import itertools

import pytest
import torch
from torch import nn

from cnn_explorer import architectures, fusion
from cnn_explorer.runspec import LayerSpec, ModelSpec, preset

L = LayerSpec
STACKS = {
    "tinyvgg": (preset("tinyvgg-shapes").model, 3, 64),
    "small-vgg-bn": (preset("small-vgg-bn").model, 3, 32),
    "padding, stride, overlapping pool, batch norm, dropout": (
        ModelSpec(
            layers=(
                L("conv", channels=8, kernel=3, padding=1),
                L("relu"),
                L("conv", channels=16, kernel=5, stride=2, padding=2),
                L("relu"),
                L("pool", kernel=3, stride=2),
                L("conv", channels=12, kernel=3),
                L("batchnorm"),
                L("relu"),
                L("pool", kernel=2, stride=None, mode="avg"),
                L("flatten"),
                L("dropout", p=0.3),
                L("linear", width=20),
                L("relu"),
            )
        ),
        1,
        33,
    ),
}
MODES = list(itertools.product(("float32", "bfloat16"), (False, True), (True, False)))


def _forward_backward(network: nn.Module, model: nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool):
    model.zero_grad()
    torch.manual_seed(0)  # the same dropout masks
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = network(x)
    nn.functional.cross_entropy(out.float(), y).backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("name", STACKS)
@pytest.mark.parametrize(("precision", "channels_last", "training"), MODES)
def test_the_view_gives_the_models_outputs_and_gradients_bit_for_bit(name, precision, channels_last, training):
    spec, channels, size = STACKS[name]
    torch.manual_seed(1)
    model = architectures.build_model(spec, channels, size, 10, 0.0).train(training)
    view = fusion.training_view(model)
    assert view is not model
    x = torch.randn(12, channels, size, size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (12,))
    bf16 = precision == "bfloat16"
    expected_out, expected_grads = _forward_backward(model, model, x, y, bf16)
    out, grads = _forward_backward(view, model, x, y, bf16)
    assert torch.equal(out, expected_out)
    for grad, expected in zip(grads, expected_grads, strict=True):
        assert torch.equal(grad, expected)


def test_tinyvgg_runs_its_relus_fused_or_after_the_pools_on_the_same_layers():
    model = architectures.build_model(preset("tinyvgg-shapes").model, 3, 64, 10)
    layers = dict(model.named_children())
    view = fusion.training_view(model)
    kinds = [type(layer).__name__ for layer in view]
    assert kinds[:8] == ["ConvReLU", "Conv2d", "MaxPool2d", "ReLU"] * 2  # one block, then the other
    assert kinds[8:] == ["Flatten", "Linear"]
    assert view[0].conv is layers["conv1"] and view[1] is layers["conv2"] and view[2] is layers["pool1"]
    assert {id(p) for p in view.parameters()} == {id(p) for p in model.parameters()}


def test_training_the_view_trains_the_model():
    torch.manual_seed(0)
    model = architectures.build_model(preset("tinyvgg-shapes").model, 3, 32, 4)
    reference = architectures.build_model(preset("tinyvgg-shapes").model, 3, 32, 4)
    reference.load_state_dict(model.state_dict())
    initial = model.conv1.weight.detach().clone()
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 4, (8,))
    for network, parameters in ((fusion.training_view(model), model), (reference, reference)):
        optimizer = torch.optim.SGD(parameters.parameters(), lr=0.1)
        for _ in range(3):
            optimizer.zero_grad()
            nn.functional.cross_entropy(network(x), y).backward()
            optimizer.step()
    for name, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert not torch.equal(model.conv1.weight, initial)  # it did train


def test_a_relu_before_a_max_pool_moves_after_it_and_nothing_else_moves():
    relu, pool, avg = nn.ReLU(), nn.MaxPool2d(2), nn.AvgPool2d(2)
    model = nn.Sequential(nn.Tanh(), relu, pool, nn.ReLU(), avg)
    view = fusion.training_view(model)
    assert [type(layer) for layer in view] == [nn.Tanh, nn.MaxPool2d, nn.ReLU, nn.ReLU, nn.AvgPool2d]
    assert view[1] is pool and view[2] is relu
    x = torch.randn(3, 2, 6, 6)
    assert torch.equal(view(x), model(x))


def test_models_it_cannot_rewrite_train_as_they_are():
    hooked = architectures.TinyVGG()
    hooked.register_forward_hook(lambda *_: None)  # a hook on the whole model must still run
    assert fusion.training_view(hooked) is hooked

    class Branching(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.relu = nn.Conv2d(3, 4, 3), nn.ReLU()

        def forward(self, x):
            return self.relu(self.conv(x)) + self.conv(x)

    branching = Branching()
    assert fusion.training_view(branching) is branching
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.Flatten())
    assert fusion.training_view(plain) is plain


def test_layers_with_hooks_are_left_alone():
    conv, relu, pool = nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2)
    seen = []
    relu.register_forward_hook(lambda _module, _inputs, output: seen.append(output.shape))
    model = nn.Sequential(conv, relu, pool)
    assert fusion.training_view(model) is model
    fusion.training_view(model)(torch.randn(1, 3, 8, 8))
    assert seen == [torch.Size([1, 4, 6, 6])]


def test_without_the_fused_convolution_only_the_reordering_applies(monkeypatch):
    monkeypatch.setattr(fusion, "_fused_conv_available", lambda: False)
    model = architectures.build_model(preset("tinyvgg-shapes").model, 3, 64, 10)
    kinds = [type(layer).__name__ for layer in fusion.training_view(model)]
    assert "ConvReLU" not in kinds
    assert kinds[:4] == ["Conv2d", "ReLU", "Conv2d", "MaxPool2d"]


def test_the_fused_convolution_is_available_on_this_torch():
    # The pinned CPU build has oneDNN: if this fails, training silently lost its fused convolutions.
    assert fusion._fused_conv_available()
