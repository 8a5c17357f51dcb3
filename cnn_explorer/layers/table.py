"""The layer table: every leaf layer in execution order with shapes, parameters, MACs and receptive field.

:func:`list_layers` runs one zero input with hooks and the rules of :mod:`cnn_explorer.layers.geometry`;
:func:`theoretical_field` reads a unit's field in input pixels from the table. Each row is a :class:`LayerInfo`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cnn_explorer.layers.capture import _hooked
from cnn_explorer.layers.descriptions import describe
from cnn_explorer.layers.geometry import (
    _GEOMETRY_RULES,
    _default_rule,
    _Geometry,
    _GeometryMap,
    _GeometryMode,
    _pair,
    _Shape,
)
from cnn_explorer.layers.names import _NAMES_IN_MESSAGES, UnknownLayer, _by_type, _leaf_paths, _split_key
from cnn_explorer.model import LoadedModel

__all__ = ["LayerInfo", "list_layers", "theoretical_field"]


@dataclass(frozen=True)
class LayerInfo:
    """One call of a leaf module, as :func:`list_layers` reports it.

    Attributes:
        name: The layer's name: its dotted path for the first call, ``path#k`` for the k-th call of a reused module.
        path: Dotted path of the module, usable with ``module.get_submodule``.
        call: 1 for the first call of the module in a forward pass, k for the k-th.
        kind: Class name of the module (``"Conv2d"``).
        block: Class name of the closest enclosing block that is not a plain container (``"BasicBlock"``,
            ``"SqueezeExcitation"``), ``""`` at the top level.
        input_shape: Shape of the layer's input without the batch dimension (the image for the first layer).
        output_shape: Shape of the layer's output without the batch dimension.
        params: The module's own parameters; 0 on repeated calls, so the column sums to the model's total.
        macs: Multiply-accumulates for one input: conv ``out_elems × in_ch/groups × kh × kw``, linear
            ``in × out``, batch norm one per output element (its eval-time scale-and-shift), 0 for everything else
            (comparisons and nonlinearities are not multiply-accumulates). Counted on every call.
        receptive_field: Side in input pixels of the theoretical receptive field of one output unit (the larger of
            the two axes). It may exceed the image (ResNet-18's last conv: 435 px on a 224 px input); it is the
            image side when ``whole_input``.
        jump: Stride in input pixels between adjacent output units (the larger axis); the image side for vectors
            and 1×1 outputs of global layers (linear, flatten, adaptive pooling to 1×1).
        field_size: Receptive field ``(height, width)`` in input pixels.
        field_jump: Jump ``(rows, columns)`` in input pixels.
        field_origin: ``(top, left)`` in input pixels of output unit (0, 0)'s field, negative where padding extends
            it past the image; unit (r, c)'s field starts at ``origin + (r, c) × jump``.
        whole_input: Every output unit depends on the whole input: after global pooling, flatten or a dense layer,
            and after a squeeze-and-excitation gate (its global pooling reaches every later unit).
        description: One sentence on what this kind of layer does.
    """

    name: str
    path: str
    call: int
    kind: str
    block: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    macs: int
    receptive_field: int
    jump: int
    field_size: tuple[int, int]
    field_jump: tuple[int, int]
    field_origin: tuple[int, int]
    whole_input: bool
    description: str


_MacsRule = Callable[[nn.Module, _Shape, _Shape], int]


_MACS_RULES: dict[type[nn.Module], _MacsRule] = {
    nn.Conv2d: lambda m, inp, out: math.prod(out) * (m.in_channels // m.groups) * math.prod(_pair(m.kernel_size)),
    nn.Linear: lambda m, inp, out: math.prod(out) * m.in_features,
    # Eval-time batch norm is one multiply-add per element (a·x + b); it folds into the conv before it.
    nn.BatchNorm2d: lambda m, inp, out: math.prod(out),
}


_PLAIN_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _blocks(root: nn.Module) -> dict[str, str]:
    """Leaf path → class name of its closest enclosing block that is not a plain container."""
    blocks: dict[str, str] = {}

    def walk(module: nn.Module, prefix: str, block: str) -> None:
        for name, child in module.named_children():
            path = f"{prefix}{name}"
            inner = block if type(child) in _PLAIN_CONTAINERS else type(child).__name__
            if next(child.children(), None) is None:
                blocks[path] = block
            else:
                walk(child, f"{path}.", inner)

    walk(root, "", "")
    return blocks


def list_layers(model: LoadedModel) -> list[LayerInfo]:
    """Every leaf layer in execution order, with shapes, parameters, MACs and receptive field.

    Found by running one zero input of ``model.input_size`` with hooks (under ``model.lock``). A module called
    several times appears once per call (see the module docstring for names). Receptive fields are propagated
    along the data flow: each layer applies its kernel/stride/padding/dilation to the geometry of the tensor it
    actually reads, and an operation outside the layers that merges tensors (a residual ``+``) takes the widest
    field among them; for a ResNet that is the main path's conv chain, never the shortcut's. Linear, flatten and
    adaptive pooling to 1×1 see the whole input, and so does every unit after a squeeze-and-excitation gate.
    """
    root = model.module
    image_hw = (model.input_size[-2], model.input_size[-1])
    blocks = _blocks(root)
    geometries = _GeometryMap()
    pending: dict[str, tuple[_Shape, _Geometry]] = {}
    layers: list[LayerInfo] = []

    def before(key: str, module: nn.Module, value: Tensor | None) -> None:
        geometry = (geometries.get(value) if value is not None else None) or _Geometry.image()
        pending[key] = (tuple(value.shape[1:]) if value is not None else (), geometry)

    def after(key: str, module: nn.Module, value: Tensor | None) -> None:
        in_shape, in_geometry = pending.pop(key)
        out_shape = tuple(value.shape[1:]) if value is not None else ()
        rule = _by_type(_GEOMETRY_RULES, module) or _default_rule
        geometry = rule(module, in_geometry, in_shape, out_shape, image_hw)
        if value is not None:
            geometries.set(value, geometry)
        path, call = _split_key(key)
        macs_rule = _by_type(_MACS_RULES, module)
        kind = type(module).__name__
        layers.append(
            LayerInfo(
                name=key,
                path=path,
                call=call,
                kind=kind,
                block=blocks.get(path, ""),
                input_shape=in_shape,
                output_shape=out_shape,
                params=sum(p.numel() for p in module.parameters(recurse=False)) if call == 1 else 0,
                macs=macs_rule(module, in_shape, out_shape) if macs_rule is not None else 0,
                receptive_field=max(geometry.size),
                jump=max(geometry.jump),
                field_size=geometry.size,
                field_jump=geometry.jump,
                field_origin=geometry.origin,
                whole_input=geometry.whole,
                description=describe(kind),
            )
        )

    x = torch.zeros(1, *model.input_size)
    geometries.set(x, _Geometry.image())
    hooks = _hooked(root, _leaf_paths(root), before=before, after=after)
    with model.lock, torch.no_grad(), hooks, _GeometryMode(geometries):
        root(x)
    return layers


def theoretical_field(
    layers: LoadedModel | Sequence[LayerInfo], layer: str, row: int = 0, col: int = 0
) -> tuple[int, int, int, int]:
    """The input pixels that output unit ``(row, col)`` of ``layer`` can see.

    Args:
        layers: The model, or its :func:`list_layers` (pass it when calling repeatedly: it avoids a forward pass).
        layer: Layer name.
        row: Output row of the unit (ignored for vector outputs, which see the whole input).
        col: Output column.

    Returns:
        ``(top, left, bottom, right)`` in input-image pixels, clipped to the image, bottom and right exclusive
        (``image[top:bottom, left:right]``).
    """
    infos = list_layers(layers) if isinstance(layers, LoadedModel) else list(layers)
    by_name = {info.name: info for info in infos}
    if layer not in by_name:
        raise UnknownLayer(f"Unknown layer {layer!r}. Layers: {', '.join(list(by_name)[:_NAMES_IN_MESSAGES])} …")
    info = by_name[layer]
    height, width = infos[0].input_shape[-2:]  # the first layer reads the image
    if info.whole_input or len(info.output_shape) < 3:
        return 0, 0, height, width
    out_h, out_w = info.output_shape[-2:]
    if not (0 <= row < out_h and 0 <= col < out_w):
        raise ValueError(f"Unit ({row}, {col}) is outside {layer!r}'s {out_h}×{out_w} output.")
    top = info.field_origin[0] + row * info.field_jump[0]
    left = info.field_origin[1] + col * info.field_jump[1]
    return (
        max(top, 0),
        max(left, 0),
        min(top + info.field_size[0], height),
        min(left + info.field_size[1], width),
    )
