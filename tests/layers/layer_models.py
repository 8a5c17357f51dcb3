"""Shared by the layers tests: bare modules wrapped as LoadedModels (no weights to load), seeded inputs,
the layers run by hand, and the check that no hook is left behind."""

from collections import OrderedDict

import torch
from torch import nn

from cnn_explorer.preprocess import Preprocess
from cnn_explorer.zoo import LoadedModel, available_models, model_entry

SHIPPED = [n for n in ("tinyvgg-shapes", "lenet5-digits") if n in available_models() and model_entry(n).is_ready()]


RESNET_SIDE = 64  # receptive fields do not depend on the input size; a small input keeps the tests fast


def wrap(module: nn.Module, input_size: tuple[int, int, int], classes: int, name: str = "test") -> LoadedModel:
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


def random_input(model: LoadedModel, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, *model.input_size, generator=torch.Generator().manual_seed(seed))


class Tricky(nn.Sequential):
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


def by_hand(model: LoadedModel, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run a sequential model's layers one after another."""
    outputs, h = {}, x
    with torch.no_grad():
        for name, layer in model.module.named_children():
            h = layer(h)
            outputs[name] = h
    return outputs


def assert_no_hooks(module: nn.Module) -> None:
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
