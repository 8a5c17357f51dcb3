"""Pooling and what it buys: max or average pooling as sliding windows, and how much a layer's maps and their
pooled version change when the image moves by a few pixels (:func:`translation_effect`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from cnn_explorer.layers import capture_activations, list_layers
from cnn_explorer.model import LoadedModel
from cnn_explorer.playground.convolution import _maps

__all__ = [
    "POOLS",
    "TranslationEffect",
    "default_translation_layer",
    "pool",
    "relative_change",
    "spatial_layers",
    "translation_effect",
]


#: Pooling kinds: name → how a window becomes one value.
POOLS: dict[str, Callable[[Tensor], Tensor]] = {
    "max": lambda windows: windows.amax(dim=(-2, -1)),
    "average": lambda windows: windows.mean(dim=(-2, -1)),
}


def pool(maps: Tensor, kind: str = "max", window: int = 2, stride: int | None = None) -> Tensor:
    """Max or average pooling of ``[C, H, W]`` (or ``[N, C, H, W]``) maps: each ``window × window`` block, moved by
    ``stride`` (default: the window, so blocks do not overlap), becomes its largest value or its mean.

    Raises:
        ValueError: Unknown kind, a window or stride below 1, or a window bigger than the maps.
    """
    if kind not in POOLS:
        raise ValueError(f"Pooling must be one of {', '.join(POOLS)}; got {kind!r}.")
    stride = window if stride is None else stride
    if window < 1 or stride < 1:
        raise ValueError(f"Window and stride must be at least 1; got window {window}, stride {stride}.")
    batched = maps if maps.dim() == 4 else _maps(maps)[None]
    if window > min(batched.shape[-2:]):
        raise ValueError(
            f"A {window}×{window} window does not fit in {batched.shape[-2]}×{batched.shape[-1]} maps: use a "
            "smaller window."
        )
    windows = batched.unfold(-2, window, stride).unfold(-2, window, stride)
    pooled = POOLS[kind](windows)
    return pooled if maps.dim() == 4 else pooled[0]


def spatial_layers(model: LoadedModel) -> list[str]:
    """The layers whose output is a stack of maps ``[C, h, w]`` with h, w > 1, in execution order."""
    return [info.name for info in list_layers(model) if len(info.output_shape) == 3 and min(info.output_shape[1:]) > 1]


def default_translation_layer(model: LoadedModel) -> str:
    """The layer that feeds the first pooling layer (what that pooling makes shift-tolerant), else the first layer
    with maps."""
    layers = list_layers(model)
    spatial = set(spatial_layers(model))
    for before, info in itertools.pairwise(layers):
        if "Pool" in info.kind and before.name in spatial:
            return before.name
    if not spatial:
        raise ValueError(f"{model.name} has no layer with spatial maps.")
    return next(info.name for info in layers if info.name in spatial)


def _shift(x: Tensor, pixels: int) -> Tensor:
    """``x`` moved ``pixels`` to the right; the columns that come in repeat the left edge."""
    if pixels == 0:
        return x
    return F.pad(x, (pixels, 0, 0, 0), mode="replicate")[..., : x.shape[-1]]


@dataclass(frozen=True)
class TranslationEffect:
    """How much a layer's maps change when the image moves, before and after pooling.

    Attributes:
        layer: The layer.
        shifts: Pixels the image moved to the right, ``0, 1, …``.
        maps_change: :func:`relative_change` of the layer's maps, unshifted → shifted, one per shift (in 0 … 1).
        pooled_change: The same for the pooled maps.
        kind: The pooling used.
        window: Its window.
        stride: Its stride.
    """

    layer: str
    shifts: tuple[int, ...]
    maps_change: tuple[float, ...]
    pooled_change: tuple[float, ...]
    kind: str
    window: int
    stride: int


def translation_effect(
    model: LoadedModel,
    x: Tensor,
    layer: str,
    *,
    kind: str = "max",
    window: int = 2,
    stride: int | None = None,
    max_shift: int = 8,
) -> TranslationEffect:
    """Shift the input 0…``max_shift`` pixels to the right and compare each shifted image's maps at ``layer`` with
    the unshifted ones, as they are and after pooling (:func:`relative_change`, over all channels).

    A convolution moves its maps along with the image (equivariance), so they differ position by position; pooling
    keeps only the strongest (or mean) value per block, which barely changes while the pattern stays inside its
    block: that is the translation tolerance pooling buys.

    Args:
        model: The model (its lock is held during the forward pass).
        x: One preprocessed input ``[1, C, H, W]``.
        layer: A layer with maps (see :func:`spatial_layers`).
        kind: A key of :data:`POOLS`.
        window: Pooling window.
        stride: Pooling stride (default: the window).
        max_shift: Largest shift, in input pixels.
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"translation_effect takes one input [1, C, H, W]; got shape {tuple(x.shape)}.")
    if not 1 <= max_shift < x.shape[-1]:
        raise ValueError(f"The largest shift must be between 1 and {x.shape[-1] - 1} pixels; got {max_shift}.")
    stride = window if stride is None else stride
    shifts = tuple(range(max_shift + 1))
    batch = torch.cat([_shift(x, k) for k in shifts])
    maps = capture_activations(model, batch, [layer])[layer]
    if maps.dim() != 4:
        raise ValueError(f"{layer} outputs shape {tuple(maps.shape[1:])}, not maps [C, h, w]: pick a conv layer.")
    pooled = pool(maps, kind, window, stride)
    return TranslationEffect(
        layer=layer,
        shifts=shifts,
        maps_change=_relative_change(maps),
        pooled_change=_relative_change(pooled),
        kind=kind,
        window=window,
        stride=stride,
    )


def relative_change(before: Tensor, after: Tensor) -> float:
    """How much ``after`` differs from ``before``, from 0 (identical) to 1: ``‖after − before‖ / (‖before‖ +
    ‖after‖)``, norms over all values.

    Divided by the sum of both sizes, not by ``‖before‖`` alone, so it never exceeds 1 (triangle inequality) and
    reads as a share: 1 only when one is a negative multiple of the other (or exactly one is all zeros), and
    1/√2 ≈ 71 % for two equally strong patterns in entirely different places. Two all-zero maps have changed by 0.
    """
    if before.shape != after.shape:
        raise ValueError(f"Compare maps of the same shape; got {tuple(before.shape)} and {tuple(after.shape)}.")
    before, after = before.double(), after.double()
    scale = float(before.norm() + after.norm())
    return float((after - before).norm()) / scale if scale > 0 else 0.0


def _relative_change(batch: Tensor) -> tuple[float, ...]:
    return tuple(relative_change(batch[0], item) for item in batch)
