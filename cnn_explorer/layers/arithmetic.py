"""One unit's arithmetic: the numbers behind one output value of one layer, for a page to lay out.

:func:`explain_unit` finds the layer's explainer by its class (:data:`_EXPLAINERS`: one small ``_explain_*`` per
kind of layer: conv, pooling, linear, batch norm, flatten, softmax, the elementwise activations) and returns a
:class:`UnitArithmetic` whose ``result`` is recomputed from the numbers and ``captured`` is the layer's own value.
It reads the layer's input from :func:`~cnn_explorer.layers.capture.capture_layers` when given, so stepping through
layers costs no forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnn_explorer.layers.capture import _capture
from cnn_explorer.layers.geometry import _conv_padding, _pair, _window_params
from cnn_explorer.layers.names import UnknownLayer, _by_type, _check_index, _layer_key, _leaf_paths, _resolve
from cnn_explorer.model import LoadedModel

__all__ = ["SoftmaxArithmetic", "UnitArithmetic", "explain_unit"]


@dataclass(frozen=True, eq=False)
class SoftmaxArithmetic:
    """Logits → exp → normalized, for the whole vector.

    Attributes:
        logits: The scores, ``[K]``.
        shift: The largest logit, subtracted before exponentiating; it cancels in the division and keeps ``exp``
            finite.
        exps: ``exp(logits − shift)``, ``[K]`` (float64).
        total: Sum of ``exps``.
        probabilities: ``exps / total``, ``[K]`` (float64); equals ``torch.softmax(logits)``.
    """

    logits: Tensor
    shift: float
    exps: Tensor
    total: float
    probabilities: Tensor


@dataclass(frozen=True, eq=False)
class UnitArithmetic:
    """The numbers behind one output value of one layer, for a page to lay out.

    Which fields are set depends on ``operation``; the others are None (or empty).

    Attributes:
        layer: Layer name (as in :func:`list_layers`).
        kind: Class name of the layer.
        index: Position of the value in the layer's output, without the batch dimension.
        operation: ``"weighted sum"`` (conv, linear), ``"max"``, ``"mean"`` (pooling), ``"elementwise"``
            (activations, batch norm, dropout), ``"copy"`` (flatten), ``"softmax"``.
        formula: How ``result`` follows from the numbers, in words and symbols.
        result: The value recomputed from the numbers below.
        captured: The value the layer actually produced (from the captured activations); equals ``result`` up to
            float rounding.
        patch: The input values the unit reads. Conv: ``[C_in/groups, kh, kw]`` (padding included, as zeros for
            zero padding; with dilation, only the sampled positions). Pooling: ``[kh, kw]`` of one channel (max
            pooling pads with −inf, average pooling with zeros). Linear: the input vector ``[in]``.
        weights: Conv: the kernel ``[C_in/groups, kh, kw]``; linear: the weight row ``[in]``.
        products: ``patch × weights`` element by element (float32, as the layer multiplies).
        channel_sums: Conv: the products summed per input channel, ``[C_in/groups]`` (float64).
        input_channels: The layer-input channels the unit reads (a grouped conv reads only its group's).
        total: Sum of all products (weighted sums) or of the window (average pooling).
        bias: The bias added, None when the layer has none.
        divisor: Average pooling: what the window sum is divided by (PyTorch's rule for padding and ceil mode).
        argmax: Max pooling: position ``(row, col)`` of the maximum inside ``patch``.
        before: Elementwise layers: the input value; ``result`` is the value after.
        source: Elementwise and copy layers: the position of ``before`` in the layer's input.
        terms: Named scalars of the formula (batch norm: mean, var, eps, gamma, beta; LeakyReLU: slope).
        window: ``(top, left, height, width)`` of the window in the layer's input; top/left are negative where it
            reaches into the padding. Height and width span the dilated kernel.
        image_window: When the layer's input is the image itself: the same window in input-image pixels, clipped
            to the image (padding lies outside it). None otherwise.
        softmax: For the model's final layer (its logits) and for softmax layers: the softmax of the whole vector.
    """

    layer: str
    kind: str
    index: tuple[int, ...]
    operation: str
    formula: str
    result: float
    captured: float
    patch: Tensor | None = None
    weights: Tensor | None = None
    products: Tensor | None = None
    channel_sums: Tensor | None = None
    input_channels: tuple[int, ...] = ()
    total: float | None = None
    bias: float | None = None
    divisor: float | None = None
    argmax: tuple[int, ...] | None = None
    before: float | None = None
    source: tuple[int, ...] | None = None
    terms: dict[str, float] = field(default_factory=dict)
    window: tuple[int, int, int, int] | None = None
    image_window: tuple[int, int, int, int] | None = None
    softmax: SoftmaxArithmetic | None = None


_Fields = dict[str, Any]  # UnitArithmetic fields an explainer fills in

_Explainer = Callable[[nn.Module, Tensor, tuple[int, ...]], _Fields]


def _read_window(
    inp: Tensor, window: tuple[int, int, int, int], dilation: tuple[int, int], fill: float = 0.0
) -> Tensor:
    """``inp[..., top:top+height:dh, left:left+width:dw]`` where positions outside the input read ``fill``.

    Only the window is copied, never a padded copy of the whole input: a step stays cheap on large maps.
    """
    top, left, height, width = window
    in_h, in_w = inp.shape[-2:]
    dense = inp.new_full((*inp.shape[:-2], height, width), fill)
    r0, r1, c0, c1 = max(top, 0), min(top + height, in_h), max(left, 0), min(left + width, in_w)
    if r0 < r1 and c0 < c1:
        dense[..., r0 - top : r1 - top, c0 - left : c1 - left] = inp[..., r0:r1, c0:c1]
    return dense[..., :: dilation[0], :: dilation[1]].clone()


def _explain_conv(module: nn.Conv2d, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    channel, row, col = index
    kernel, stride, dilation = _pair(module.kernel_size), _pair(module.stride), _pair(module.dilation)
    top, bottom, left, right = _conv_padding(module)
    per_group = module.in_channels // module.groups
    group = channel // (module.out_channels // module.groups)
    channels = range(group * per_group, (group + 1) * per_group)
    height, width = ((k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True))
    window = (row * stride[0] - top, col * stride[1] - left, height, width)
    group_input = inp[channels.start : channels.stop]
    if module.padding_mode == "zeros":
        patch = _read_window(group_input, window, dilation)
    else:  # reflect / replicate / circular padding reads the input itself: pad it as the layer does
        padded = F.pad(group_input, (left, right, top, bottom), mode=module.padding_mode)
        patch = _read_window(padded, (window[0] + top, window[1] + left, height, width), dilation)
    weights = module.weight[channel].detach().clone()
    products = patch * weights
    channel_sums = products.to(torch.float64).sum(dim=(1, 2))
    total = float(channel_sums.sum())
    bias = float(module.bias[channel].detach()) if module.bias is not None else None
    return {
        "operation": "weighted sum",
        "formula": "Σ (patch × kernel) over channels, rows, columns" + (" + bias" if bias is not None else ""),
        "patch": patch,
        "weights": weights,
        "products": products,
        "channel_sums": channel_sums,
        "input_channels": tuple(channels),
        "total": total,
        "bias": bias,
        "result": total + (bias or 0.0),
        "window": window,
    }


def _pool_window(
    module: nn.Module, inp: Tensor, index: tuple[int, ...], fill: float
) -> tuple[Tensor, tuple[int, int, int, int]]:
    """The pooling window of one output unit as ``[kh, kw]``, positions outside the input set to ``fill`` (in
    ceil mode the last window may run past the padding too)."""
    channel, row, col = index
    kernel, stride, padding, dilation = _window_params(module)
    height, width = ((k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True))
    window = (row * stride[0] - padding[0], col * stride[1] - padding[1], height, width)
    return _read_window(inp[channel], window, dilation, fill), window


def _explain_max_pool(module: nn.MaxPool2d, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    patch, window = _pool_window(module, inp, index, fill=-math.inf)
    flat = int(torch.argmax(patch))
    return {
        "operation": "max",
        "formula": "max over the window (padding counts as −∞)",
        "patch": patch,
        "argmax": (flat // patch.shape[1], flat % patch.shape[1]),
        "result": float(patch.max()),
        "window": window,
    }


def _avg_pool_divisor(module: nn.AvgPool2d, inp: Tensor, window: tuple[int, int, int, int]) -> int:
    """What PyTorch divides an average-pooling window's sum by (its CPU kernel's rule)."""
    if module.divisor_override:
        return int(module.divisor_override)
    padding_h, padding_w = _pair(module.padding)
    top, left, kh, kw = window
    in_h, in_w = inp.shape[-2:]
    bottom, right = min(top + kh, in_h + padding_h), min(left + kw, in_w + padding_w)
    if module.count_include_pad:
        return (bottom - top) * (right - left)
    return (min(bottom, in_h) - max(top, 0)) * (min(right, in_w) - max(left, 0))


def _explain_avg_pool(module: nn.AvgPool2d, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    patch, window = _pool_window(module, inp, index, fill=0.0)
    total = float(patch.to(torch.float64).sum())
    divisor = _avg_pool_divisor(module, inp, window)
    return {
        "operation": "mean",
        "formula": "Σ window ÷ divisor (padding counts as 0)",
        "patch": patch,
        "total": total,
        "divisor": float(divisor),
        "result": total / divisor,
        "window": window,
    }


def _adaptive_window(module: nn.Module, inp: Tensor, index: tuple[int, ...]) -> tuple[Tensor, tuple[int, ...]]:
    channel, row, col = index
    in_h, in_w = inp.shape[-2:]
    sizes = zip(_pair_or_none(module.output_size), (in_h, in_w), strict=True)
    out_h, out_w = (size if size is not None else full for size, full in sizes)  # None keeps the input's size
    # PyTorch's adaptive windows: start = ⌊i·in/out⌋, end = ⌈(i+1)·in/out⌉.
    top, bottom = (row * in_h) // out_h, -((-(row + 1) * in_h) // out_h)
    left, right = (col * in_w) // out_w, -((-(col + 1) * in_w) // out_w)
    return inp[channel, top:bottom, left:right].clone(), (top, left, bottom - top, right - left)


def _pair_or_none(value: int | Sequence[int | None] | None) -> tuple[int | None, int | None]:
    return (value, value) if value is None or isinstance(value, int) else (value[0], value[1])


def _explain_adaptive_avg_pool(module: nn.AdaptiveAvgPool2d, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    patch, window = _adaptive_window(module, inp, index)
    total = float(patch.to(torch.float64).sum())
    return {
        "operation": "mean",
        "formula": "Σ region ÷ its size",
        "patch": patch,
        "total": total,
        "divisor": float(patch.numel()),
        "result": total / patch.numel(),
        "window": window,
    }


def _explain_adaptive_max_pool(module: nn.AdaptiveMaxPool2d, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    patch, window = _adaptive_window(module, inp, index)
    flat = int(torch.argmax(patch))
    return {
        "operation": "max",
        "formula": "max over the region",
        "patch": patch,
        "argmax": (flat // patch.shape[1], flat % patch.shape[1]),
        "result": float(patch.max()),
        "window": window,
    }


def _explain_linear(module: nn.Linear, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    *rows, out = index
    patch = inp[tuple(rows)].clone()
    weights = module.weight[out].detach().clone()
    products = patch * weights
    total = float(products.to(torch.float64).sum())
    bias = float(module.bias[out].detach()) if module.bias is not None else None
    return {
        "operation": "weighted sum",
        "formula": "Σ (input × weights)" + (" + bias" if bias is not None else ""),
        "patch": patch,
        "weights": weights,
        "products": products,
        "total": total,
        "bias": bias,
        "result": total + (bias or 0.0),
    }


_ELEMENTWISE_FORMULAS: dict[type[nn.Module], Callable[[nn.Module], str]] = {
    nn.ReLU: lambda m: "max(0, x)",
    nn.ReLU6: lambda m: "min(max(0, x), 6)",
    nn.LeakyReLU: lambda m: f"x if x > 0 else {m.negative_slope:g} · x",
    nn.Tanh: lambda m: "tanh(x) = (eˣ − e⁻ˣ) / (eˣ + e⁻ˣ)",
    nn.Sigmoid: lambda m: "1 / (1 + e⁻ˣ)",
    nn.Hardswish: lambda m: "x · min(max(x + 3, 0), 6) / 6",
    nn.Hardsigmoid: lambda m: "min(max(x + 3, 0), 6) / 6",
    nn.SiLU: lambda m: "x · σ(x)",
    nn.GELU: lambda m: "x · Φ(x)",
    nn.Identity: lambda m: "x",
    nn.Dropout: lambda m: "x (dropout is off at inference)",
}


def _explain_elementwise(module: nn.Module, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    before = inp[index].reshape(1).clone()
    # The layer's own function on the one value (forward, not __call__: no hooks fire, none are needed).
    after = module.forward(before.clone())
    terms = {"slope": float(module.negative_slope)} if isinstance(module, nn.LeakyReLU) else {}
    return {
        "operation": "elementwise",
        "formula": _by_type(_ELEMENTWISE_FORMULAS, module)(module),
        "before": float(before),
        "source": index,
        "terms": terms,
        "result": float(after),
    }


def _explain_batch_norm(module: nn.BatchNorm2d, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    if module.training or module.running_mean is None or module.running_var is None:
        raise ValueError(f"{type(module).__name__} uses batch statistics here; explain it in eval mode.")
    channel = index[0]
    terms = {
        "mean": float(module.running_mean[channel]),
        "var": float(module.running_var[channel]),
        "eps": float(module.eps),
        "gamma": float(module.weight[channel].detach()) if module.weight is not None else 1.0,
        "beta": float(module.bias[channel].detach()) if module.bias is not None else 0.0,
    }
    before = float(inp[index])
    result = (before - terms["mean"]) / math.sqrt(terms["var"] + terms["eps"]) * terms["gamma"] + terms["beta"]
    return {
        "operation": "elementwise",
        "formula": "(x − mean) / √(var + eps) · gamma + beta",
        "before": before,
        "source": index,
        "terms": terms,
        "result": result,
    }


def _explain_flatten(module: nn.Flatten, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    flat = inp.flatten(start_dim=module.start_dim - 1 if module.start_dim > 0 else module.start_dim)
    if flat.dim() != 1:
        raise ValueError("Only flattening each sample to one vector is explained.")
    source = tuple(int(i) for i in torch.unravel_index(torch.tensor(index[0]), inp.shape))
    return {
        "operation": "copy",
        "formula": "the value at its position in the maps, read row by row",
        "before": float(flat[index[0]]),
        "source": source,
        "result": float(flat[index[0]]),
    }


def _softmax_arithmetic(logits: Tensor) -> SoftmaxArithmetic:
    values = logits.detach().to(torch.float64)
    shift = float(values.max())
    exps = torch.exp(values - shift)
    total = float(exps.sum())
    return SoftmaxArithmetic(
        logits=logits.detach().clone(), shift=shift, exps=exps, total=total, probabilities=exps / total
    )


def _explain_softmax(module: nn.Softmax, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    if inp.dim() != 1:
        raise ValueError("Only a softmax over one vector per sample is explained.")
    softmax = _softmax_arithmetic(inp)
    return {
        "operation": "softmax",
        "formula": "exp(x − max) / Σ exp(x − max)",
        "before": float(inp[index]),
        "source": index,
        "softmax": softmax,
        "result": float(softmax.probabilities[index]),
    }


_EXPLAINERS: dict[type[nn.Module], _Explainer] = {
    nn.Conv2d: _explain_conv,
    nn.MaxPool2d: _explain_max_pool,
    nn.AvgPool2d: _explain_avg_pool,
    nn.AdaptiveAvgPool2d: _explain_adaptive_avg_pool,
    nn.AdaptiveMaxPool2d: _explain_adaptive_max_pool,
    nn.Linear: _explain_linear,
    nn.BatchNorm2d: _explain_batch_norm,
    nn.Flatten: _explain_flatten,
    nn.Softmax: _explain_softmax,
    **dict.fromkeys(_ELEMENTWISE_FORMULAS, _explain_elementwise),
}


def explain_unit(
    model: LoadedModel,
    activations: Mapping[str, Tensor],
    x: Tensor,
    layer: str,
    index: Sequence[int],
    *,
    inputs: Mapping[str, Tensor] | None = None,
) -> UnitArithmetic:
    """The arithmetic behind one output value of one layer, for the first sample of ``x``.

    Args:
        model: The model.
        activations: From :func:`capture_activations` for ``x``; supplies the captured value (and the logits for
            the softmax panel).
        x: The input batch the activations were captured for.
        layer: Layer name; conv, linear, max/average/adaptive pooling, batch norm, flatten, softmax and the
            elementwise activations (ReLU, ReLU6, LeakyReLU, Tanh, Sigmoid, Hardswish, Hardsigmoid, SiLU, GELU,
            Identity, Dropout) are explained.
        index: Position in the layer's output without the batch dimension: ``(channel, row, col)`` for maps,
            ``(k,)`` for vectors.
        inputs: From :func:`capture_inputs` (or :func:`capture_layers`) for ``x``. When it holds ``layer`` no
            forward pass runs (stepping through layers stays free); otherwise the network runs up to this layer to
            read its input.

    Returns:
        The numbers; ``result`` is recomputed from them and ``captured`` is the layer's own value. When the layer is
        the model's last (its output a vector of logits), ``softmax`` holds logits → exp → probabilities.

    Raises:
        UnknownLayer: ``layer`` unknown or not in ``activations``.
        ValueError: An index outside the output, or a kind of layer that is not explained.
    """
    path, call, module = _resolve(model.module, layer)
    layer = _layer_key(path, call)  # "relu#1" is "relu"
    if layer not in activations:
        raise UnknownLayer(f"Layer {layer!r} is not among the captured activations; capture it first.")
    explainer = _by_type(_EXPLAINERS, module)
    if explainer is None:
        kinds = ", ".join(sorted(cls.__name__ for cls in _EXPLAINERS))
        raise ValueError(f"The arithmetic of a {type(module).__name__} layer is not shown. Explained: {kinds}.")
    output = activations[layer][0]
    index = _check_index(layer, index, output.shape)
    if inputs is not None and layer in inputs:
        layer_input = inputs[layer]
    else:
        layer_input = _capture(model, x, [layer], outputs=False, inputs=True, stop_early=True)[1][layer]
    fields = explainer(module, layer_input[0], index)
    image_window = None
    if fields.get("window") is not None and layer_input.shape == x.shape and torch.equal(layer_input, x):
        top, left, height, width = fields["window"]
        image_h, image_w = x.shape[-2:]
        top_c, left_c = max(top, 0), max(left, 0)
        image_window = (top_c, left_c, min(top + height, image_h) - top_c, min(left + width, image_w) - left_c)
    if output.dim() == 1 and path == _leaf_paths(model.module)[-1] and "softmax" not in fields:
        fields["softmax"] = _softmax_arithmetic(output)
    return UnitArithmetic(
        layer=layer,
        kind=type(module).__name__,
        index=index,
        captured=float(output[index]),
        image_window=image_window,
        **fields,
    )
