"""The effective receptive field: how much each input pixel moves one output unit, by its gradient.

Luo et al. 2016 (https://arxiv.org/abs/1701.04128). The forward pass stops right after the layer (hooks of
:mod:`cnn_explorer.layers.capture`); :func:`inplace_disabled`, which keeps an in-place op from rewriting the graph
a gradient runs through, also serves attribution and feature visualization.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from cnn_explorer.hooks import StopForward
from cnn_explorer.layers.capture import _hooked, _run
from cnn_explorer.layers.names import UnknownLayer, _check_index, _layer_key, _resolve
from cnn_explorer.model import LoadedModel

__all__ = ["effective_receptive_field", "inplace_disabled"]


@contextmanager
def inplace_disabled(root: nn.Module, modules: Iterable[nn.Module] | None = None) -> Iterator[None]:
    """Turn every ``inplace=True`` flag off for the duration: an in-place op on a captured output would rewrite
    the graph the gradient runs through. The flags are restored even when the body raises.

    Args:
        root: The model.
        modules: The modules of ``root`` that may have the flag, when the caller knows them (default: all of them;
            looking for a missing attribute on a module costs a microsecond or two).
    """
    switched = [m for m in (root.modules() if modules is None else modules) if getattr(m, "inplace", None) is True]
    try:
        for module in switched:
            module.inplace = False
        yield
    finally:
        for module in switched:
            module.inplace = True


def effective_receptive_field(model: LoadedModel, x: Tensor, layer: str, index: Sequence[int]) -> Tensor:
    """How much each input pixel moves one output unit: ``|∂ unit / ∂ input|`` summed over input channels.

    Luo et al. 2016, "Understanding the Effective Receptive Field in Deep CNNs", https://arxiv.org/abs/1701.04128.
    The forward pass stops right after ``layer``; gradients come from ``torch.autograd.grad``, so no ``.grad`` is
    left on the parameters. Runs under ``model.lock``; in-place flags are switched off meanwhile and restored.

    Args:
        model: The model.
        x: Input batch; its first sample is used.
        layer: Layer name.
        index: The unit's position in the layer's output, without the batch dimension.

    Returns:
        ``[H, W]`` at the input's resolution; zero outside the theoretical receptive field.
    """
    root = model.module
    path, call, _ = _resolve(root, layer)
    layer = _layer_key(path, call)
    found: dict[str, Tensor] = {}

    def after(key: str, module: nn.Module, value: Tensor | None) -> None:
        if key == layer and value is not None:
            found["output"] = value
            raise StopForward

    with model.lock, inplace_disabled(root), torch.enable_grad():
        image = x[:1].detach().clone().requires_grad_(True)
        with _hooked(root, [path], after=after):
            _run(root, image)
        if "output" not in found:
            raise UnknownLayer(f"Layer {layer!r} did not run for this input.")
        output = found["output"][0]
        unit = output[_check_index(layer, index, output.shape)]
        if not unit.requires_grad:
            return torch.zeros(x.shape[-2:])
        (grad,) = torch.autograd.grad(unit, image, allow_unused=True)
    if grad is None:
        return torch.zeros(x.shape[-2:])
    return grad[0].abs().sum(dim=0)
