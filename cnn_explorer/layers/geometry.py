"""Theoretical receptive fields: where one unit of a tensor looks in the input, propagated layer by layer.

A :class:`_Geometry` (field size, jump, the first unit's field origin) goes through each layer by that layer's rule
(:data:`_GEOMETRY_RULES`: windows for conv and pooling, the whole input after global layers), and through
operations outside any layer (a residual ``+``) by :class:`_GeometryMode`. The layer table
(:mod:`cnn_explorer.layers.table`) runs them; the window parameters also serve one unit's arithmetic.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from torch import Tensor, nn
from torch.overrides import TorchFunctionMode


@dataclass(frozen=True)
class _Geometry:
    """Where one unit of a tensor looks in the input: field size, jump and the first unit's field origin, per axis.

    Propagation through a window layer (kernel k, stride s, padding p, dilation d):
    ``size_out = size_in + (k − 1)·d·jump_in``, ``jump_out = jump_in·s``, ``origin_out = origin_in − p·jump_in``
    (the same as tracking the first unit's centre, ``start_out = start_in + ((k − 1)·d/2 − p)·jump_in``).

    ``whole`` marks tensors whose every unit depends on the whole input (after global pooling, a dense layer, or a
    squeeze-and-excitation gate multiplied into a map); ``size`` is then the image's, while ``jump`` still says
    how far apart the units of a map lie.
    """

    size: tuple[int, int]
    jump: tuple[int, int]
    origin: tuple[int, int]
    whole: bool = False

    @staticmethod
    def image() -> _Geometry:
        return _Geometry(size=(1, 1), jump=(1, 1), origin=(0, 0))

    @staticmethod
    def everything(image_hw: tuple[int, int]) -> _Geometry:
        return _Geometry(size=image_hw, jump=image_hw, origin=(0, 0), whole=True)

    def window(
        self, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int]
    ) -> _Geometry:
        size = zip(self.size, kernel, dilation, self.jump, strict=True)
        return _Geometry(
            size=self.size if self.whole else tuple(s + (k - 1) * d * j for s, k, d, j in size),
            jump=tuple(j * s for j, s in zip(self.jump, stride, strict=True)),
            origin=tuple(o - p * j for o, p, j in zip(self.origin, padding, self.jump, strict=True)),
            whole=self.whole,
        )

    @staticmethod
    def merge(geometries: Sequence[_Geometry]) -> _Geometry:
        """The geometry of a result computed from several tensors: the union of their fields. Branches of a map
        (a residual sum) give the widest one; a whole-input factor (an SE gate) makes every unit see the whole
        input while the map's jump stays."""
        maps = [g for g in geometries if not g.whole]
        if not maps:
            return geometries[0]
        widest = max(maps, key=lambda g: g.size)
        whole = next((g for g in geometries if g.whole), None)
        return widest if whole is None else replace(widest, size=whole.size, whole=True)


class _GeometryMap:
    """Tensor → geometry, by identity, without keeping tensors alive (a dead or reused id is detected)."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[Tensor], _Geometry]] = {}

    def get(self, t: Tensor) -> _Geometry | None:
        entry = self._entries.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else None

    def set(self, t: Tensor, geometry: _Geometry) -> None:
        self._entries[id(t)] = (weakref.ref(t), geometry)


def _tensors(value: Any) -> Iterator[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


class _GeometryMode(TorchFunctionMode):
    """Carries geometries through operations outside any layer (``out += identity``, ``torch.flatten``,
    ``scale * input``) with :meth:`_Geometry.merge`, so a residual sum follows its longest branch. Operations
    inside a layer get the same treatment first; the layer's forward hook then overwrites it with its own rule."""

    def __init__(self, geometries: _GeometryMap):
        super().__init__()
        self._geometries = geometries

    def __torch_function__(
        self, func: Callable[..., Any], types: tuple[type, ...], args: tuple[Any, ...] = (), kwargs: dict | None = None
    ) -> Any:
        result = func(*args, **(kwargs or {}))
        known = [g for t in _tensors((args, kwargs)) if (g := self._geometries.get(t)) is not None]
        if known:
            merged = _Geometry.merge(known)
            for t in _tensors(result):
                self._geometries.set(t, merged)
        return result


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _conv_padding(module: nn.Conv2d) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` padding of a conv, resolving ``"same"`` / ``"valid"`` as PyTorch does."""
    if module.padding == "valid":
        return 0, 0, 0, 0
    if module.padding == "same":
        (top, bottom), (left, right) = (
            (total // 2, total - total // 2)
            for total in (d * (k - 1) for d, k in zip(module.dilation, module.kernel_size, strict=True))
        )
        return top, bottom, left, right
    ph, pw = _pair(module.padding)
    return ph, ph, pw, pw


def _window_params(module: nn.Module) -> tuple[tuple[int, int], ...]:
    """``(kernel, stride, padding (top, left), dilation)`` of a conv or pooling layer."""
    if isinstance(module, nn.Conv2d):
        top, _, left, _ = _conv_padding(module)
        return _pair(module.kernel_size), _pair(module.stride), (top, left), _pair(module.dilation)
    kernel = _pair(module.kernel_size)
    stride = _pair(module.stride) if module.stride is not None else kernel
    return kernel, stride, _pair(module.padding), _pair(getattr(module, "dilation", 1))


_Shape = tuple[int, ...]

_GeometryRule = Callable[[nn.Module, _Geometry, _Shape, _Shape, tuple[int, int]], _Geometry]


def _window_rule(module: nn.Module, g: _Geometry, inp: _Shape, out: _Shape, image_hw: tuple[int, int]) -> _Geometry:
    return g.window(*_window_params(module))


def _adaptive_rule(module: nn.Module, g: _Geometry, inp: _Shape, out: _Shape, image_hw: tuple[int, int]) -> _Geometry:
    in_hw, out_hw = inp[-2:], out[-2:]
    if out_hw != (1, 1) and all(i % o == 0 for i, o in zip(in_hw, out_hw, strict=True)):
        # Evenly divisible: an ordinary pooling (VGG's 7×7 → 7×7 is the identity).
        kernel = tuple(i // o for i, o in zip(in_hw, out_hw, strict=True))
        return g.window(kernel, kernel, (0, 0), (1, 1))
    return _Geometry.everything(image_hw)


def _global_rule(module: nn.Module, g: _Geometry, inp: _Shape, out: _Shape, image_hw: tuple[int, int]) -> _Geometry:
    return _Geometry.everything(image_hw)


def _default_rule(module: nn.Module, g: _Geometry, inp: _Shape, out: _Shape, image_hw: tuple[int, int]) -> _Geometry:
    """Elementwise and per-channel layers keep the geometry; a layer with no rule that changes the spatial size
    or turns maps into vectors is taken to see the whole input."""
    both_maps = len(inp) >= 3 and len(out) >= 3 and inp[-2:] == out[-2:]
    both_vectors = len(inp) < 3 and len(out) < 3
    return g if both_maps or both_vectors else _Geometry.everything(image_hw)


_GEOMETRY_RULES: dict[type[nn.Module], _GeometryRule] = {
    nn.Conv2d: _window_rule,
    nn.MaxPool2d: _window_rule,
    nn.AvgPool2d: _window_rule,
    nn.AdaptiveAvgPool2d: _adaptive_rule,
    nn.AdaptiveMaxPool2d: _adaptive_rule,
    nn.Linear: _global_rule,
    nn.Flatten: _global_rule,
}
