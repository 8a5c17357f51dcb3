"""Training passes over fewer bytes that compute exactly what the model computes.

On a small network the elementwise layers cost as much as the convolutions: TinyVGG's ReLUs and max pools are
half of a bfloat16 training step on a CPU, and each is a pass over a whole activation map in memory.
:func:`training_view` gives a module that shares the model's layers (training it trains the model) and computes
the same outputs and gradients bit for bit, in fewer passes:

* **A convolution followed by a ReLU** runs as one oneDNN convolution that applies the ReLU as it writes its
  output (``torch.ops.mkldnn._convolution_pointwise``, what ``torch.compile`` uses for the same pattern), so the
  map is written once instead of written, read and written again. Its backward is the ReLU's and the
  convolution's own kernels.
* **A ReLU followed by a max pool** runs after the pool instead. The two commute exactly: ReLU never lowers an
  order, so the window's largest value is the same element either way, and where that value is not positive both
  give zero with a zero gradient. The ReLU and its gradient then touch a quarter of the values.

Only the top-level layers of an ``nn.Sequential`` (every stack a run builds) are rewritten, and only layers
without hooks; any other model trains as it is. Where this build of torch lacks the fused convolution, only the
reordering applies.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ConvReLU", "training_view"]


def training_view(module: nn.Module) -> nn.Module:
    """``module`` itself, or an ``nn.Sequential`` of its own layers with the rewrites above.

    The view holds the same layer objects (parameters, buffers, training mode), so an optimizer over
    ``module.parameters()`` trains it, and ``module.state_dict()`` is its state.
    """
    if not _is_plain_sequential(module) or _hooked(module):
        return module
    layers = list(module.children())
    rewritten = list(layers)
    for i in range(len(rewritten) - 1):  # ReLU → max pool becomes max pool → ReLU
        if _is_relu(rewritten[i]) and _is_max_pool(rewritten[i + 1]):
            rewritten[i], rewritten[i + 1] = rewritten[i + 1], rewritten[i]
    if _fused_conv_available():  # a convolution → ReLU left by the reordering becomes one fused layer
        fused: list[nn.Module] = []
        for layer in rewritten:
            if fused and _is_relu(layer) and _fusable(fused[-1]):
                fused[-1] = ConvReLU(fused[-1])
            else:
                fused.append(layer)
        rewritten = fused
    if len(rewritten) == len(layers) and all(a is b for a, b in zip(rewritten, layers, strict=True)):
        return module
    return nn.Sequential(*rewritten)


class ConvReLU(nn.Module):
    """``relu(conv(x))`` for a ``conv`` this module shares, in one fused pass; bit for bit the two modules' result
    and gradients, under bfloat16 autocast too (the convolution's inputs are cast as autocast casts them)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        conv = self.conv
        weight, bias = conv.weight, conv.bias
        if torch.is_autocast_enabled("cpu") and x.device.type == "cpu":
            dtype = torch.get_autocast_dtype("cpu")
            x, weight = x.to(dtype), weight.to(dtype)
            bias = bias.to(dtype) if bias is not None else None
        return _ConvReLUFunction.apply(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


class _ConvReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        stride: tuple[int, ...],
        padding: tuple[int, ...],
        dilation: tuple[int, ...],
        groups: int,
    ) -> Tensor:
        out = torch.ops.mkldnn._convolution_pointwise(
            x, weight, bias, list(padding), list(stride), list(dilation), groups, "relu", [], ""
        )
        ctx.save_for_backward(x, weight, out)
        ctx.geometry = (stride, padding, dilation, groups, None if bias is None else list(bias.shape))
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, out = ctx.saved_tensors
        stride, padding, dilation, groups, bias_sizes = ctx.geometry
        # What nn.ReLU's backward computes: the gradient where the output is positive.
        grad = torch.ops.aten.threshold_backward(grad, out, 0)
        needs = ctx.needs_input_grad
        grad_x, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad,
            x,
            weight,
            bias_sizes,
            list(stride),
            list(padding),
            list(dilation),
            False,
            [0] * len(stride),
            groups,
            [needs[0], needs[1], bias_sizes is not None and needs[2]],
        )
        return grad_x, grad_weight, grad_bias, None, None, None, None


def _is_plain_sequential(module: nn.Module) -> bool:
    """A subclass of nn.Sequential that keeps Sequential's forward (TinyVGG, LeNet-5): its layers run in order."""
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _hooked(layer: nn.Module) -> bool:
    return bool(layer._forward_hooks or layer._forward_pre_hooks or layer._backward_hooks)


def _is_relu(layer: nn.Module | None) -> bool:
    return type(layer) is nn.ReLU and not _hooked(layer)


def _is_max_pool(layer: nn.Module | None) -> bool:
    return type(layer) is nn.MaxPool2d and not layer.return_indices and not _hooked(layer)


def _fusable(conv: nn.Module) -> bool:
    return (
        type(conv) is nn.Conv2d
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and not _hooked(conv)
        and conv.weight.device.type == "cpu"
    )


@functools.cache
def _fused_conv_available() -> bool:
    """This torch has oneDNN's fused convolution, and it gives what a convolution and a ReLU give, bit for bit."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")):
        return False
    generator = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 9, 9, generator=generator)
    try:
        with torch.no_grad():
            fused = ConvReLU(conv)(x)
            return torch.equal(fused, torch.relu(conv(x)))
    except (RuntimeError, NotImplementedError):  # an op that exists but this build cannot run
        return False
