"""Colour scales: the named colours, the scopes a colour map's range is chosen by, and values → colours.

Every function of :mod:`cnn_explorer.render` that colours values takes or reports its ``(vmin, vmax)`` so a page can
show the scale with its range; the scopes come from :data:`SCALES` (CNN Explainer's unit / module / global). The
lookups here colour a whole stack of maps in one vectorised call; the other render modules build on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib
import numpy as np
from PIL import Image
from torch import Tensor

__all__ = [
    "DIVERGING_CMAPS",
    "GAP_COLOUR",
    "HIGHLIGHT_COLOUR",
    "SCALES",
    "ColourScale",
    "ColouredMap",
    "default_cmap",
    "network_range",
    "scale_range",
]


Range = tuple[float, float]
#: Colour maps whose middle means zero: their ranges are made symmetric about zero.
DIVERGING_CMAPS = frozenset(
    {"RdBu_r", "RdBu", "coolwarm", "bwr", "seismic", "PiYG", "PRGn", "BrBG", "PuOr", "RdGy", "RdYlBu", "Spectral"}
)
#: Gaps between tiles: a neutral light grey, dark enough to part the near-white middle of RdBu_r.
GAP_COLOUR = (192, 192, 192)
#: Borders and boxes that must stand out (selected map, receptive field, patch): magenta is in none of
#: viridis, RdBu_r or jet.
HIGHLIGHT_COLOUR = (255, 0, 255)
_HIGHLIGHT_HEX = "#ff00ff"
_POSITIVE_HEX, _NEGATIVE_HEX = "#b2182b", "#2166ac"  # the ends of RdBu_r: red above zero, blue below, as in grids
_DIVERGING, _SEQUENTIAL = "RdBu_r", "viridis"


@dataclass(frozen=True)
class ColouredMap:
    """One 2-D map coloured with an explicit scale.

    Attributes:
        image: The coloured map.
        vmin: Value shown at the bottom of the colour scale.
        vmax: Value shown at the top.
        cmap: Matplotlib colour map name.
    """

    image: Image.Image
    vmin: float
    vmax: float
    cmap: str


def _map_ranges(maps: np.ndarray, global_range: Range | None) -> list[Range]:
    return [(float(lo), float(hi)) for lo, hi in zip(maps.min(axis=(1, 2)), maps.max(axis=(1, 2)), strict=True)]


def _layer_ranges(maps: np.ndarray, global_range: Range | None) -> list[Range]:
    return [(float(maps.min()), float(maps.max()))] * maps.shape[0]


def _global_ranges(maps: np.ndarray, global_range: Range | None) -> list[Range]:
    if global_range is None:
        raise ValueError("The 'global' colour scale needs global_range, e.g. network_range(activations.values()).")
    lo, hi = float(global_range[0]), float(global_range[1])
    if not lo <= hi:
        raise ValueError(f"global_range must be (vmin, vmax) with vmin ≤ vmax, got {global_range}.")
    return [(lo, hi)] * maps.shape[0]


@dataclass(frozen=True)
class ColourScale:
    """One way to choose the value range that a colour map spans (CNN Explainer's unit / module / global).

    Attributes:
        name: Registry key.
        label: Short label for a widget.
        description: One sentence for the page: what the scale shows and what it hides.
        ranges: ``(maps [C, H, W], global_range) -> [(vmin, vmax)] * C``.
    """

    name: str
    label: str
    description: str
    ranges: Callable[[np.ndarray, Range | None], list[Range]] = field(repr=False)


#: The colour scopes, keyed by name; a page builds its selector from this table.
SCALES: dict[str, ColourScale] = {
    scale.name: scale
    for scale in (
        ColourScale(
            "map",
            "per map",
            "Each feature map on its own min–max: every map's pattern is visible, but colours can't be compared "
            "between maps.",
            _map_ranges,
        ),
        ColourScale(
            "layer",
            "per layer",
            "One range over all maps of this layer: strong and weak channels of the layer can be compared.",
            _layer_ranges,
        ),
        ColourScale(
            "global",
            "whole network",
            "One range over every layer's activations: shows how strong this layer is compared with the others.",
            _global_ranges,
        ),
    )
}


def scale_range(
    maps: Tensor | np.ndarray, scope: str, global_range: Range | None = None, symmetric: bool = False
) -> list[Range]:
    """The ``(vmin, vmax)`` of each map under a colour scope.

    Args:
        maps: Feature maps ``[C, H, W]`` (a leading batch dimension of 1 is dropped).
        scope: A key of :data:`SCALES`: ``"map"``, ``"layer"`` or ``"global"``.
        global_range: The range for ``"global"``, e.g. from :func:`network_range`; ignored by the others.
        symmetric: Centre each range on zero, ``(-m, m)`` with ``m = max(|vmin|, |vmax|)``, for diverging maps.

    Returns:
        One ``(vmin, vmax)`` per map.

    Raises:
        ValueError: Unknown scope, wrong shape, or ``"global"`` without a valid ``global_range``.
    """
    if scope not in SCALES:
        raise ValueError(f"Unknown colour scope {scope!r}; choose one of {', '.join(SCALES)}.")
    ranges = SCALES[scope].ranges(_maps_array(maps), global_range)
    if symmetric:
        ranges = [(-m, m) for m in (max(abs(lo), abs(hi)) for lo, hi in ranges)]
    return ranges


def network_range(activations: Mapping[str, Tensor] | Iterable[Tensor]) -> Range:
    """The ``(min, max)`` over many tensors, e.g. every captured activation: the range of the global scope."""
    tensors = list(activations.values() if isinstance(activations, Mapping) else activations)
    if not tensors:
        raise ValueError("network_range needs at least one tensor.")
    return (
        min(float(t.detach().min()) for t in tensors),
        max(float(t.detach().max()) for t in tensors),
    )


def default_cmap(values: Tensor | np.ndarray) -> str:
    """The colour map that suits the sign of the data.

    Any negative value → ``"RdBu_r"`` (diverging, used with a range symmetric about zero, so white means zero,
    red above and blue below: the sign of an activation is part of its meaning). All values ≥ 0 (e.g. after a
    ReLU) → ``"viridis"`` (sequential and perceptually uniform: dark means zero, bright means strong).
    """
    array = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
    return _DIVERGING if array.size and float(np.nanmin(array)) < 0 else _SEQUENTIAL


def _colour(values: np.ndarray, vmin: float, vmax: float, cmap: str) -> Image.Image:
    span = vmax - vmin
    scaled = np.zeros_like(values) if span == 0 else (values - vmin) / span
    rgba = matplotlib.colormaps[cmap](np.clip(scaled, 0, 1), bytes=True)
    return Image.fromarray(rgba[..., :3])


def _numpy(x: Tensor | np.ndarray) -> np.ndarray:
    """float64 numpy copy of a tensor or array (float64 so the colour of a value is exactly reproducible)."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float64)


def _maps_array(maps: Tensor | np.ndarray) -> np.ndarray:
    values = _numpy(maps)
    if values.ndim == 4 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 3 or 0 in values.shape:
        raise ValueError(f"Expected feature maps [C, H, W] (or [1, C, H, W]), got shape {tuple(values.shape)}.")
    return values


def _normalise(values: np.ndarray, ranges: Sequence[Range], fill: float) -> np.ndarray:
    """Values of ``[N, H, W]`` → [0, 1] on each map's range; a map with an empty range gets ``fill``."""
    lo = np.array([r[0] for r in ranges], dtype=np.float64)[:, None, None]
    span = np.array([r[1] - r[0] for r in ranges], dtype=np.float64)[:, None, None]
    scaled = (values - lo) / np.where(span > 0, span, 1.0)
    return np.clip(np.where(span > 0, scaled, fill), 0.0, 1.0)


def _lookup(scaled: np.ndarray, cmap: str) -> np.ndarray:
    """[0, 1] values → uint8 RGBA in one vectorised call on the whole stack."""
    return matplotlib.colormaps[cmap](scaled, bytes=True)
