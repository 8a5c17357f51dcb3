"""Tensors → images and figures. The only library module that turns tensors into pixels.

Figures are ``matplotlib.figure.Figure`` objects built without pyplot (thread-safe, no global state).

Colour scales are explicit and come from :data:`SCALES` (CNN Explainer's unit / module / global scopes): every
function that colours values takes or reports its ``(vmin, vmax)`` so a page can show the scale with its range.
Many feature maps become one image tiled with numpy (:func:`feature_grid`), never a subplot per map.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from typing import Literal

import altair as alt
import matplotlib
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from cnn_explorer.zoo import Prediction

__all__ = [
    "DIVERGING_CMAPS",
    "GAP_COLOUR",
    "GRID_SELECTION",
    "GRID_TILES_VIEW",
    "HEAT_CMAPS",
    "HIGHLIGHT_COLOUR",
    "SCALES",
    "SIGNS",
    "ColourScale",
    "ColouredMap",
    "FeatureGrid",
    "KernelGrid",
    "KernelMode",
    "TiledImage",
    "channel_maps",
    "colourbar_figure",
    "curves_figure",
    "default_cmap",
    "feature_grid",
    "for_display",
    "grid_chart",
    "grid_tiles",
    "heat_overlay",
    "histogram_figure",
    "kernel_grid",
    "map_image",
    "network_range",
    "overlay",
    "scale_range",
    "to_png_bytes",
    "top_k_figure",
    "uint8_image",
    "value_table",
    "vector_figure",
]

Range = tuple[float, float]
KernelMode = Literal["rgb", "per_channel"]

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
_MAX_COLUMNS = 16  # wider grids make each map too small on a page
#: Name of the click selection of :func:`grid_chart`, for ``st.altair_chart(..., selection_mode=GRID_SELECTION)``.
GRID_SELECTION = "tile"
#: Name of the view of :func:`grid_chart` whose marks take the pointer: its SVG group has class ``tiles_marks``.
GRID_TILES_VIEW = "tiles"
_GRID_HOVER = "hover"  # the tile under the pointer; only drawn, never sent to the server


# ----------------------------------------------------------------------------------------------- existing helpers


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


def percent(p: float) -> str:
    """A probability or share as a percentage to one decimal, rounded honestly: never signed when zero (a rest
    computed as ``1 - Σ`` may come out at -1e-9), ``"< 0.1%"`` for a share that is not zero but rounds to it, and
    ``"> 99.9%"`` for one that is not 1 but rounds to 100 %."""
    p = min(max(float(p), 0.0), 1.0)
    if 0.0 < p < 0.0005:
        return "< 0.1%"
    if 0.9995 <= p < 1.0:
        return "> 99.9%"
    return f"{p:.1%}"


def for_display(img: Image.Image, min_side: int = 224) -> Image.Image:
    """Upscale a small image with nearest-neighbour so its pixels stay visible as squares."""
    factor = -(-min_side // max(1, min(img.size)))
    if factor <= 1:
        return img
    return img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)


def uint8_image(x: Tensor) -> Image.Image:
    """A uint8 ``[C, H, W]`` tensor (1 or 3 channels) → PIL image."""
    array = x.detach().cpu().numpy()
    return Image.fromarray(array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0)))


def channel_maps(x: Tensor, cmap: str = "RdBu_r", symmetric: bool = True) -> list[ColouredMap]:
    """Each channel of an input or activation ``[1, C, H, W]`` coloured on its own scale.

    Args:
        x: The tensor; the batch dimension must be 1.
        cmap: Matplotlib colour map.
        symmetric: Centre the scale on zero (for normalized inputs, where the sign matters).
    """
    maps = []
    for channel in x[0].detach().cpu().numpy():
        lo, hi = float(channel.min()), float(channel.max())
        if symmetric:
            lo, hi = -max(abs(lo), abs(hi)), max(abs(lo), abs(hi))
        maps.append(ColouredMap(image=_colour(channel, lo, hi, cmap), vmin=lo, vmax=hi, cmap=cmap))
    return maps


def top_k_figure(prediction: Prediction, k: int = 5) -> Figure:
    """Horizontal bars of the top-k class probabilities, best on top."""
    top = prediction.top[:k]
    fig = Figure(figsize=(5, 0.7 * len(top) + 0.9), layout="constrained")
    ax = fig.subplots()
    names = [name for _, name, _ in top][::-1]
    values = [p for _, _, p in top][::-1]
    colours = ["#cbd5e1"] * (len(top) - 1) + ["#2563eb"]
    bars = ax.barh(names, values, color=colours)
    ax.bar_label(bars, labels=[f"{v:.1%}" for v in values], padding=3, fontsize=12)
    ax.set_xlim(0, 1.2)  # room for the labels; the axis itself stops at 100 %
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.spines["bottom"].set_bounds(0, 1)
    ax.set_xlabel("probability (softmax)", fontsize=11)
    ax.tick_params(axis="y", labelsize=12)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def _colour(values: np.ndarray, vmin: float, vmax: float, cmap: str) -> Image.Image:
    span = vmax - vmin
    scaled = np.zeros_like(values) if span == 0 else (values - vmin) / span
    rgba = matplotlib.colormaps[cmap](np.clip(scaled, 0, 1), bytes=True)
    return Image.fromarray(rgba[..., :3])


# ------------------------------------------------------------------------------------------------- colour scales


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


# ----------------------------------------------------------------------------------------------- tiled images


@dataclass(frozen=True)
class TiledImage:
    """Equal cells tiled row-major in one image, with ``gap`` pixels of :data:`GAP_COLOUR` around every cell.

    Attributes:
        image: The tiled image.
        columns: Cells per row.
        count: Number of filled cells; later cells of the last row stay grey.
        cell_size: ``(height, width)`` of one cell in pixels, after rescaling.
        factor: Image pixels per value along each axis: an integer ≥ 1 when small maps are enlarged
            (nearest neighbour), ``1 / k`` when large ones are shrunk by averaging ``k × k`` blocks.
        gap: Pixels between cells and around the border.
    """

    image: Image.Image
    columns: int
    count: int
    cell_size: tuple[int, int]
    factor: float
    gap: int

    @property
    def rows(self) -> int:
        """Number of rows of cells."""
        return -(-self.count // self.columns)

    def cell_box(self, index: int) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` in pixels of cell ``index`` (bottom and right exclusive)."""
        if not 0 <= index < self.count:
            raise IndexError(f"Cell {index} is outside 0…{self.count - 1}.")
        return _cell_box(index, self.columns, self.cell_size, self.gap)

    def cell_at(self, x_px: float, y_px: float) -> int | None:
        """The index of the cell under a point of the image (e.g. a click), or None on a gap or empty cell."""
        height, width = self.cell_size
        column, x_in = divmod(int(x_px) - self.gap, width + self.gap)
        row, y_in = divmod(int(y_px) - self.gap, height + self.gap)
        if x_px < self.gap or y_px < self.gap or x_in >= width or y_in >= height or column >= self.columns:
            return None
        index = row * self.columns + column
        return index if index < self.count else None


@dataclass(frozen=True)
class FeatureGrid(TiledImage):
    """All feature maps of a layer in one image; see :func:`feature_grid`.

    Attributes:
        ranges: ``(vmin, vmax)`` of each map's colour scale.
        cmap: Matplotlib colour map name.
        scope: The :data:`SCALES` key the ranges come from.
    """

    ranges: list[Range]
    cmap: str
    scope: str


@dataclass(frozen=True)
class KernelGrid(TiledImage):
    """A layer's kernels in one image; see :func:`kernel_grid`.

    Attributes:
        mode: ``"rgb"`` (one colour patch per filter) or ``"per_channel"`` (a row per filter, a cell per input).
        shown: ``(filters, input channels)`` drawn.
        total: ``(filters, input channels)`` of the layer.
        value_range: The symmetric ``(vmin, vmax)`` of the colour map, or None for ``"rgb"`` (each kernel is
            scaled on its own there, mid-grey = 0).
        cmap: Colour map of ``"per_channel"``, None for ``"rgb"``.
    """

    mode: KernelMode
    shown: tuple[int, int]
    total: tuple[int, int]
    value_range: Range | None
    cmap: str | None


def feature_grid(
    maps: Tensor | np.ndarray,
    scope: str = "layer",
    global_range: Range | None = None,
    cmap: str | None = None,
    columns: int | None = None,
    cell: int | None = None,
    gap: int = 2,
    highlight: int | None = None,
    max_width: int = 1400,
) -> FeatureGrid:
    """All feature maps of a layer tiled into one image, coloured on an explicit scale.

    The colour lookup runs once on the whole stack and the grid is one reshape, so hundreds of maps cost a few
    milliseconds. Small maps (13×13, 5×5, 1×1) are enlarged by an integer factor with nearest neighbour so each
    value stays a visible square; maps too large to fit are shrunk by averaging blocks.

    Args:
        maps: Feature maps ``[C, H, W]`` (a leading batch dimension of 1 is dropped).
        scope: A key of :data:`SCALES`.
        global_range: The range of the ``"global"`` scope (see :func:`network_range`).
        cmap: Matplotlib colour map; None picks :func:`default_cmap`. Ranges of a diverging map
            (:data:`DIVERGING_CMAPS`) are made symmetric about zero.
        columns: Cells per row; None ≈ ``ceil(sqrt(C))``, at most 16, chosen to leave few empty cells.
        cell: Target cell side in pixels (default 96); the grid is kept within ``max_width``.
        gap: Pixels of :data:`GAP_COLOUR` between cells and around the border.
        highlight: Index of a map to frame in :data:`HIGHLIGHT_COLOUR` (the selected channel).
        max_width: Widest the image may become.

    Returns:
        The image with its geometry (for :meth:`TiledImage.cell_at`) and the range of every map.

    Raises:
        ValueError: Wrong shape, unknown scope, or ``highlight`` out of range.
    """
    values = _maps_array(maps)
    count, height, width = values.shape
    if highlight is not None and not 0 <= highlight < count:
        raise ValueError(f"highlight={highlight} is not a channel of this layer (0…{count - 1}).")
    cmap = cmap or default_cmap(values)
    diverging = cmap in DIVERGING_CMAPS
    ranges = scale_range(values, scope, global_range, symmetric=diverging)
    columns = _columns(count, columns)
    up, down = _fit(height, width, columns, cell or 96, gap, max_width)
    shown = _block_mean(values, down)
    rgba = _lookup(_normalise(shown, ranges, fill=0.5 if diverging else 0.0), cmap)
    pixels = _tile(rgba, columns, gap, up)
    cell_size = (rgba.shape[1] * up, rgba.shape[2] * up)
    if highlight is not None:
        _frame(pixels, _cell_box(highlight, columns, cell_size, gap), gap, _frame_thickness(cell_size, gap))
    return FeatureGrid(
        image=_image(pixels),
        columns=columns,
        count=count,
        cell_size=cell_size,
        factor=float(up) if down == 1 else 1 / down,
        gap=gap,
        ranges=ranges,
        cmap=cmap,
        scope=scope,
    )


def kernel_grid(
    weight: Tensor | np.ndarray,
    mode: KernelMode | None = None,
    max_filters: int | None = None,
    max_inputs: int = 16,
    cell: int = 56,
    gap: int = 4,
    cmap: str = _DIVERGING,
) -> KernelGrid:
    """A conv layer's kernels as one image.

    ``"rgb"`` (first layer, 3 input channels): each filter is one colour patch, scaled on its own so that
    mid-grey is zero, full colour its largest weight: ``w / (2 max|w|) + 0.5``. ``"per_channel"`` (deeper
    layers): one row per filter, one cell per input channel, all on one diverging scale symmetric about zero
    so weights compare across the grid; a layer with one input channel (LeNet's first) is tiled as a square
    instead of a single column.

    Args:
        weight: ``[C_out, C_in, kh, kw]``.
        mode: None picks ``"rgb"`` for 3 input channels, else ``"per_channel"``.
        max_filters: Most filters drawn (default 96 for ``"rgb"``, 16 for ``"per_channel"``).
        max_inputs: Most input channels drawn per filter in ``"per_channel"``.
        cell: Target cell side in pixels.
        gap: Pixels between cells (wider than in feature grids: a 3×3 kernel is itself a tiny grid).
        cmap: Diverging colour map of ``"per_channel"``.

    Returns:
        The image, with ``shown`` and ``total`` counts so the page can say what was left out.
    """
    array = _numpy(weight)
    if array.ndim != 4:
        raise ValueError(f"Expected conv weights [C_out, C_in, kh, kw], got shape {tuple(array.shape)}.")
    filters, inputs, kh, kw = array.shape
    mode = mode or ("rgb" if inputs == 3 else "per_channel")
    if mode == "rgb":
        if inputs != 3:
            raise ValueError(f"'rgb' kernels need 3 input channels, this layer has {inputs}; use 'per_channel'.")
        kept = array[: max_filters or 96]
        peak = np.abs(kept).max(axis=(1, 2, 3), keepdims=True)
        scaled = np.divide(kept, 2 * peak, out=np.zeros_like(kept), where=peak > 0) + 0.5
        rgba = np.full((len(kept), kh, kw, 4), 255, np.uint8)
        rgba[..., :3] = np.rint(np.transpose(scaled, (0, 2, 3, 1)) * 255)
        columns, shown, value_range, used_cmap = _columns(len(kept), None), (len(kept), 3), None, None
    elif mode == "per_channel":
        kept = array[: max_filters or 16, :max_inputs]
        peak = float(np.abs(kept).max())
        value_range = (-peak, peak)
        flat = kept.reshape(-1, kh, kw)
        rgba = _lookup(_normalise(flat, [value_range] * len(flat), fill=0.5), cmap)
        columns = kept.shape[1] if kept.shape[1] > 1 else _columns(len(flat), None)
        shown, used_cmap = (kept.shape[0], kept.shape[1]), cmap
    else:
        raise ValueError(f"Unknown kernel mode {mode!r}; choose 'rgb' or 'per_channel'.")
    up, _ = _fit(kh, kw, columns, cell, gap, max_width=10**6)
    return KernelGrid(
        image=_image(_tile(rgba, columns, gap, up)),
        columns=columns,
        count=len(rgba),
        cell_size=(kh * up, kw * up),
        factor=float(up),
        gap=gap,
        mode=mode,
        shown=shown,
        total=(filters, inputs),
        value_range=value_range,
        cmap=used_cmap,
    )


# --------------------------------------------------------------------------------------------- interactive grid


def grid_tiles(grid: FeatureGrid, maps: Tensor | np.ndarray) -> pd.DataFrame:
    """One row per map of a grid: where its tile lies in the image and the statistics of its values.

    Args:
        grid: From :func:`feature_grid` of ``maps``.
        maps: The maps ``[C, H, W]`` the grid shows (a leading batch dimension of 1 is dropped). The statistics come
            from these values, not from the pixels: a shrunk grid shows block means.

    Returns:
        Columns ``channel``, ``grid_row``, ``grid_column`` (the tile's place), ``top``, ``left``, ``bottom``,
        ``right`` (its pixels in the image, bottom and right exclusive, as :meth:`TiledImage.cell_box`), and
        ``min``, ``max``, ``mean`` of the map.

    Raises:
        ValueError: ``maps`` is not the grid's: another number of channels.
    """
    values = _maps_array(maps)
    if values.shape[0] != grid.count:
        raise ValueError(f"The grid shows {grid.count} maps, but {values.shape[0]} were given.")
    boxes = np.array([grid.cell_box(index) for index in range(grid.count)], dtype=np.int64).reshape(-1, 4)
    channels = np.arange(grid.count)
    return pd.DataFrame(
        {
            "channel": channels,
            "grid_row": channels // grid.columns,
            "grid_column": channels % grid.columns,
            "top": boxes[:, 0],
            "left": boxes[:, 1],
            "bottom": boxes[:, 2],
            "right": boxes[:, 3],
            "min": values.min(axis=(1, 2)),
            "max": values.max(axis=(1, 2)),
            "mean": values.mean(axis=(1, 2)),
        }
    )


def grid_chart(grid: FeatureGrid, maps: Tensor | np.ndarray, png: bytes | None = None) -> alt.LayerChart:
    """A feature grid as a Vega-Lite chart that tells which map the pointer is on and which one was clicked.

    Layers on one pixel coordinate system: the grid image itself, drawn at its own size (the chart is exactly
    ``image.width × image.height`` with no axes or padding) and never smoothed, so each value stays a crisp square;
    an outline around the map under the pointer; and over every map an invisible rectangle (:func:`grid_tiles`)
    with a tooltip (channel, min, max, mean) that belongs to the click selection :data:`GRID_SELECTION` over the
    field ``"channel"``. Given to ``st.altair_chart(..., on_select=…, selection_mode=GRID_SELECTION)``, a click returns
    ``{"selection": {GRID_SELECTION: [{"channel": c}]}}``.

    Args:
        grid: From :func:`feature_grid` of ``maps``.
        maps: The maps the grid shows, for the tooltips.
        png: The grid image already encoded by :func:`to_png_bytes` (a page that offers it for download too);
            None encodes it here.
    """
    tiles = grid_tiles(grid, maps)
    width, height = grid.image.size
    url = "data:image/png;base64," + base64.b64encode(png or to_png_bytes(grid.image)).decode("ascii")
    # Pixel coordinates: x from the left edge, y from the top edge (reversed), one unit = one image pixel.
    x_scale = alt.Scale(domain=[0, width], nice=False, zero=False)
    y_scale = alt.Scale(domain=[0, height], nice=False, zero=False, reverse=True)
    picture = (
        alt.Chart(alt.Data(values=[{"url": url}]))
        .mark_image(aspect=False, smooth=False)
        .encode(
            url="url:N",
            x=alt.X(datum=0, scale=x_scale, axis=None),
            x2=alt.X2(datum=width),
            y=alt.Y(datum=0, scale=y_scale, axis=None),
            y2=alt.Y2(datum=height),
        )
    )
    clicked = alt.selection_point(name=GRID_SELECTION, fields=["channel"], on="click", toggle=False)
    hovered = alt.selection_point(
        name=_GRID_HOVER, fields=["channel"], on="pointerover", clear="pointerout", empty=False
    )
    position = {
        "x": alt.X("left:Q", scale=x_scale, axis=None),
        "x2": "right:Q",
        "y": alt.Y("top:Q", scale=y_scale, axis=None),
        "y2": "bottom:Q",
    }
    # The outline of the map under the pointer, drawn inside the highlight ring so that it never hides which map
    # is selected; below the hit areas, which take every pointer event.
    inset = _frame_thickness(grid.cell_size, grid.gap) - grid.gap + 2
    outline = (
        alt.Chart(tiles)
        .mark_rect(
            filled=False,
            stroke="#0f172a",
            strokeWidth=2,
            xOffset=inset,
            x2Offset=-inset,
            yOffset=inset,
            y2Offset=-inset,
        )
        .encode(**position, strokeOpacity=alt.when(hovered).then(alt.value(0.9)).otherwise(alt.value(0.0)))
    )
    tooltip = [alt.Tooltip("channel:Q", title="channel")] + [
        alt.Tooltip(f"{name}:Q", title=name, format=".4g") for name in ("min", "max", "mean")
    ]
    hit_areas = (
        alt.Chart(tiles)
        .mark_rect(fill="white", fillOpacity=0, cursor="pointer")  # invisible: the image shows through
        .encode(**position, tooltip=tooltip)
        .add_params(clicked, hovered)
        .properties(name=GRID_TILES_VIEW)
    )
    return (
        alt.layer(picture, outline, hit_areas)
        .properties(
            width=width,
            height=height,
            padding={"left": 0, "top": 0, "right": 0, "bottom": 0},  # Streamlit adds 20 px at the bottom otherwise
            autosize=alt.AutoSizeParams(type="none"),
            # SVG, not canvas: a grid of up to a few hundred tiles is light, and every tile takes pointer events.
            usermeta={"embedOptions": {"renderer": "svg"}},
        )
        .configure_view(stroke=None)
    )


# ------------------------------------------------------------------------------------------------ single maps


def map_image(map2d: Tensor | np.ndarray, vmin: float, vmax: float, cmap: str, min_side: int = 320) -> Image.Image:
    """One map coloured on ``[vmin, vmax]`` and enlarged with nearest neighbour to at least ``min_side`` pixels."""
    values = _numpy(map2d)
    if values.ndim != 2:
        raise ValueError(f"Expected one map [H, W], got shape {tuple(values.shape)}.")
    fill = 0.5 if cmap in DIVERGING_CMAPS else 0.0
    rgba = _lookup(_normalise(values[None], [(vmin, vmax)], fill), cmap)
    return for_display(Image.fromarray(rgba[0, ..., :3]), min_side)


def value_table(map2d: Tensor | np.ndarray, max_side: int = 16, decimals: int = 3) -> np.ndarray | None:
    """The values of a small map, rounded, for a table on the page; None when a side exceeds ``max_side``."""
    values = _numpy(map2d)
    if values.ndim != 2:
        raise ValueError(f"Expected one map [H, W], got shape {tuple(values.shape)}.")
    return np.round(values, decimals) if max(values.shape) <= max_side else None


def overlay(
    image: Image.Image,
    heat: Tensor | np.ndarray | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    box: tuple[int, int, int, int] | None = None,
    box_colour: tuple[int, int, int] = HIGHLIGHT_COLOUR,
) -> Image.Image:
    """A heatmap blended over an image, and optionally a rectangle drawn on it.

    Args:
        image: The picture (converted to RGB).
        heat: ``[h, w]`` values, upsampled bilinearly to the image size and min–max normalized; None draws
            only the box.
        alpha: Weight of the heatmap colours (0 = image only, 1 = heatmap only).
        cmap: Colour map of the heatmap.
        box: ``(top, left, bottom, right)`` in image pixels, bottom and right exclusive (a receptive field or
            a patch); clipped to the image, since receptive fields reach into the padding.
        box_colour: Outline colour.
    """
    base = image.convert("RGB")
    if heat is not None:
        upsampled = _resize_bilinear(heat, base.height, base.width)
        rgba = _lookup(_normalise(upsampled[None], [(float(upsampled.min()), float(upsampled.max()))], 0.0), cmap)
        blended = (1 - alpha) * np.asarray(base, dtype=np.float64) + alpha * rgba[0, ..., :3]
        base = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
    if box is not None:
        top, left, bottom, right = box
        top, left = max(top, 0), max(left, 0)
        bottom, right = min(bottom, base.height), min(right, base.width)
        if bottom > top and right > left:
            base = base.copy() if heat is None else base
            line = max(1, round(min(base.size) / 112))
            ImageDraw.Draw(base).rectangle((left, top, right - 1, bottom - 1), outline=box_colour, width=line)
    return base


def to_png_bytes(img: Image.Image, compress_level: int = 1) -> bytes:
    """The image encoded as PNG (lossless, so every value keeps its exact colour), for a download button.

    Args:
        img: The image.
        compress_level: zlib level 0–9. The default 1 is about 2–3× faster than PIL's 6 for files only ~10–30 %
            larger; it matters because a download button encodes its data on every rerun of the page.
    """
    buffer = BytesIO()
    img.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------------ figures


def colourbar_figure(vmin: float, vmax: float, cmap: str, label: str = "") -> Figure:
    """A slim horizontal colour bar with its range written at both ends (and zero for a range across it)."""
    lo, hi = (vmin, vmax) if vmax > vmin else (vmin - 0.5, vmin + 0.5)  # a constant range still draws
    fig = Figure(figsize=(4.5, 0.75), layout="constrained")
    ax = fig.subplots()
    bar = fig.colorbar(ScalarMappable(norm=Normalize(lo, hi), cmap=cmap), cax=ax, orientation="horizontal")
    ticks = [vmin, vmax] if vmax > vmin else [vmin]
    if vmin < 0 < vmax:
        ticks.insert(1, 0.0)
    bar.set_ticks(ticks, labels=[f"{t:.3g}" for t in ticks])
    bar.ax.tick_params(labelsize=8, length=2)
    if label:
        bar.set_label(label, fontsize=8)
    return fig


def vector_figure(
    values: Tensor | np.ndarray,
    labels: Sequence[str] | None = None,
    title: str = "",
    highlight: int | None = None,
    max_bars: int = 64,
    top_k: int = 10,
) -> Figure:
    """A 1-D layer output (flatten, linear, softmax) as a chart, never as a squashed image.

    Up to ``max_bars`` values: one vertical bar each, red above zero and blue below (as in the grids), labelled
    when ``labels`` are given. Longer vectors (1690 flatten values, 1000 ImageNet logits): two panels, the whole
    vector as an area plot over its index (its shape: sparse, peaked, signed), and below it the ``top_k``
    largest values as labelled horizontal bars (what the numbers are). The highlighted value is magenta in both
    and added to the top bars when it is not among them.

    Args:
        values: The vector; any shape is flattened (a ``[1, N]`` output is fine).
        labels: One name per value (class names), or None for indices.
        title: Figure title.
        highlight: Index to mark (the selected unit or class).
        max_bars: Longest vector drawn as one bar per value.
        top_k: Bars in the lower panel of a long vector.
    """
    vector = _numpy(values).ravel()
    if labels is not None and len(labels) != vector.size:
        raise ValueError(f"Got {len(labels)} labels for {vector.size} values.")
    if highlight is not None and not 0 <= highlight < vector.size:
        raise ValueError(f"highlight={highlight} is outside 0…{vector.size - 1}.")
    if vector.size <= max_bars:
        return _bars_figure(vector, labels, title, highlight)
    return _long_vector_figure(vector, labels, title, highlight, top_k)


def histogram_figure(values: Tensor | np.ndarray, bins: int = 40, title: str = "", log: bool = False) -> Figure:
    """Histogram of all values of a tensor, annotated with the share of exact zeros (dead units after a ReLU).

    Args:
        values: Any tensor; flattened.
        bins: Number of bins.
        title: Axes title.
        log: Logarithmic counts, for when the zeros dwarf everything else.
    """
    flat = _numpy(values).ravel()
    if flat.size == 0:
        raise ValueError("Cannot draw a histogram of an empty tensor.")
    zeros = float(np.mean(flat == 0))
    fig = Figure(figsize=(5, 2.6), layout="constrained")
    ax = fig.subplots()
    ax.hist(flat, bins=bins, color="#64748b", log=log)
    ax.text(
        0.98,
        0.95,
        f"zeros: {zeros:.1%} of {flat.size:,}\nrange {flat.min():.3g} … {flat.max():.3g}",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=8,
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "#cbd5e1"},
    )
    ax.set_xlabel("activation")
    ax.set_ylabel("count")
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


# ---------------------------------------------------------------------------------------------------- internals


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


def _columns(count: int, columns: int | None) -> int:
    """About square and at most 16 wide: of ``ceil(sqrt(count))`` and the two widths above, the one leaving the
    fewest empty cells (10 maps → 5 × 2, 120 → 12 × 10, 64 → 8 × 8, 512 → 16 × 32)."""
    if columns is not None:
        if columns < 1:
            raise ValueError(f"columns must be ≥ 1, got {columns}.")
        return min(columns, count)
    square = math.ceil(math.sqrt(count))
    candidates = range(min(square, _MAX_COLUMNS), min(square + 2, _MAX_COLUMNS) + 1)
    return min(candidates, key=lambda width: -(-count // width) * width - count)


def _fit(height: int, width: int, columns: int, cell: int, gap: int, max_width: int) -> tuple[int, int]:
    """``(enlarge, shrink)`` integer factors: cells about ``cell`` px, the grid at most ``max_width`` wide."""
    room = max(1, (max_width - (columns + 1) * gap) // columns)
    up = min(max(1, round(cell / max(height, width))), max(1, room // width))
    return (up, 1) if width * up <= room else (1, -(-width // room))


def _block_mean(values: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return values
    count, height, width = values.shape
    h, w = max(1, height // k), max(1, width // k)
    k_h, k_w = min(k, height), min(k, width)
    return values[:, : h * k_h, : w * k_w].reshape(count, h, k_h, w, k_w).mean(axis=(2, 4))


def _normalise(values: np.ndarray, ranges: Sequence[Range], fill: float) -> np.ndarray:
    """Values of ``[N, H, W]`` → [0, 1] on each map's range; a map with an empty range gets ``fill``."""
    lo = np.array([r[0] for r in ranges], dtype=np.float64)[:, None, None]
    span = np.array([r[1] - r[0] for r in ranges], dtype=np.float64)[:, None, None]
    scaled = (values - lo) / np.where(span > 0, span, 1.0)
    return np.clip(np.where(span > 0, scaled, fill), 0.0, 1.0)


def _lookup(scaled: np.ndarray, cmap: str) -> np.ndarray:
    """[0, 1] values → uint8 RGBA in one vectorised call on the whole stack."""
    return matplotlib.colormaps[cmap](scaled, bytes=True)


def _packed(colour: tuple[int, int, int]) -> np.uint32:
    """An RGB colour as one RGBX pixel: the layout PIL keeps RGB images in."""
    return np.array([*colour, 255], np.uint8).view(np.uint32)[0]


def _source_index(cells: int, size: int, factor: int, gap: int, sentinel: int) -> np.ndarray:
    """For each output pixel along one axis, the source pixel it shows: ``sentinel`` (the gap colour) in a gap,
    else the pixel of the mosaic of cells that nearest-neighbour enlargement by ``factor`` puts there."""
    period = size * factor + gap
    position = np.arange(cells * period + gap) - gap
    cell, within = np.divmod(position, period)
    return np.where((position >= 0) & (within < size * factor), cell * size + within // factor, sentinel)


def _tile(cells: np.ndarray, columns: int, gap: int, factor: int = 1) -> np.ndarray:
    """``[N, h, w, 4]`` RGBA cells → one image of packed RGBX pixels ``[H, W]`` (uint32), row-major, each cell
    enlarged ``factor`` times, with ``gap`` grey pixels around every cell.

    The cells are first laid out at their own size in a small mosaic with one extra row and column of the gap
    colour; the image is then two ``take``s of whole 4-byte pixels, one per axis: no loop over cells or pixels.
    """
    count, height, width, _ = cells.shape
    rows = -(-count // columns)
    mosaic = np.empty((rows * height + 1, columns * width + 1), np.uint32)
    mosaic[...] = _packed(GAP_COLOUR)
    padded = np.empty((rows * columns, height, width), np.uint32)
    padded[...] = _packed(GAP_COLOUR)
    padded[:count] = np.ascontiguousarray(cells, dtype=np.uint8).view(np.uint32)[..., 0]
    mosaic[:-1, :-1] = padded.reshape(rows, columns, height, width).transpose(0, 2, 1, 3).reshape(rows * height, -1)
    ys = _source_index(rows, height, factor, gap, rows * height)
    xs = _source_index(columns, width, factor, gap, columns * width)
    return np.take(np.take(mosaic, ys, axis=0), xs, axis=1)


def _image(pixels: np.ndarray) -> Image.Image:
    """Packed RGBX pixels ``[H, W]`` → PIL RGB image, decoded in one pass of C."""
    return Image.frombytes("RGB", (pixels.shape[1], pixels.shape[0]), pixels, "raw", "RGBX")


def _frame_thickness(cell_size: tuple[int, int], gap: int) -> int:
    """Width of the highlight ring: the whole gap, and into larger cells about a twentieth of their side."""
    return max(gap, 2, round(min(cell_size) / 20))


def _frame(pixels: np.ndarray, box: tuple[int, int, int, int], gap: int, thickness: int) -> None:
    """Paint a ring of ``thickness`` px around ``box`` in place: the gap around the cell, then into the cell."""
    top, left, bottom, right = box
    top, left, bottom, right = top - gap, left - gap, bottom + gap, right + gap
    for rows, cols in (
        (slice(top, top + thickness), slice(left, right)),
        (slice(bottom - thickness, bottom), slice(left, right)),
        (slice(top, bottom), slice(left, left + thickness)),
        (slice(top, bottom), slice(right - thickness, right)),
    ):
        pixels[rows, cols] = _packed(HIGHLIGHT_COLOUR)


def _cell_box(index: int, columns: int, cell_size: tuple[int, int], gap: int) -> tuple[int, int, int, int]:
    row, column = divmod(index, columns)
    height, width = cell_size
    top, left = gap + row * (height + gap), gap + column * (width + gap)
    return top, left, top + height, left + width


def _resize_bilinear(heat: Tensor | np.ndarray, height: int, width: int) -> np.ndarray:
    tensor = heat.detach().float().cpu() if isinstance(heat, Tensor) else torch.as_tensor(np.asarray(heat)).float()
    if tensor.ndim != 2:
        raise ValueError(f"Expected a heatmap [h, w], got shape {tuple(tensor.shape)}.")
    if tuple(tensor.shape) != (height, width):
        tensor = F.interpolate(tensor[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    return tensor.numpy().astype(np.float64)


def _sign_colours(vector: np.ndarray, highlight: int | None) -> list[str]:
    colours = [_POSITIVE_HEX if v >= 0 else _NEGATIVE_HEX for v in vector]
    if highlight is not None:
        colours[highlight] = _HIGHLIGHT_HEX
    return colours


def _bars_figure(vector: np.ndarray, labels: Sequence[str] | None, title: str, highlight: int | None) -> Figure:
    fig = Figure(figsize=(min(10.0, max(4.0, 0.2 * vector.size + 1.5)), 3.0), layout="constrained")
    ax = fig.subplots()
    index = np.arange(vector.size)
    ax.bar(index, vector, width=0.8, color=_sign_colours(vector, highlight))
    ax.axhline(0, color="#94a3b8", linewidth=0.8)
    if labels is not None:
        vertical = vector.size > 8 or max(len(str(name)) for name in labels) > 8
        ax.set_xticks(index, [str(name) for name in labels], rotation=90 if vertical else 0, fontsize=8)
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("index")
    ax.set_xlim(-0.6, vector.size - 0.4)
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def _long_vector_figure(
    vector: np.ndarray, labels: Sequence[str] | None, title: str, highlight: int | None, top_k: int
) -> Figure:
    top = list(np.argsort(-vector, kind="stable")[:top_k])
    if highlight is not None and highlight not in top:
        top.append(highlight)
    fig = Figure(figsize=(7.5, 2.2 + 0.24 * len(top)), layout="constrained")
    overview, ranked = fig.subplots(2, 1, height_ratios=[1.6, 0.2 + 0.16 * len(top)])
    index = np.arange(vector.size)
    overview.fill_between(index, 0, vector, color="#94a3b8", alpha=0.45, linewidth=0)
    overview.plot(index, vector, color="#475569", linewidth=0.6)
    overview.plot(top[:top_k], vector[top[:top_k]], "o", color=_POSITIVE_HEX, markersize=3)
    if highlight is not None:
        overview.axvline(highlight, color=_HIGHLIGHT_HEX, linewidth=1.2)
    overview.axhline(0, color="#94a3b8", linewidth=0.8)
    overview.set_xlim(0, vector.size - 1)
    overview.set_xlabel("index")
    overview.set_title(f"{title} — all {vector.size:,} values" if title else f"all {vector.size:,} values", fontsize=10)
    names = [f"{labels[i]} (#{i})" if labels is not None else f"#{i}" for i in top]
    bars = ranked.barh(names[::-1], vector[top][::-1], color=_sign_colours(vector[top], None)[::-1])
    if highlight is not None:
        bars[len(top) - 1 - top.index(highlight)].set_color(_HIGHLIGHT_HEX)
    ranked.bar_label(bars, labels=[f"{v:.3g}" for v in vector[top][::-1]], padding=3, fontsize=8)
    ranked.tick_params(axis="y", labelsize=8)
    ranked.set_title(f"top {min(top_k, vector.size)} values", fontsize=9)
    for ax in (overview, ranked):
        ax.spines[["top", "right"]].set_visible(False)
    return fig


# ---------------------------------------------------------------------------------------------------- explanations

#: How a signed heatmap is shown: only what speaks for the class, its size whatever the sign, or both signs.
SIGNS = {
    "positive": "Positive: only evidence for the class",
    "absolute": "Absolute: size, whatever the sign",
    "all": "All: red for, blue against",
}
HEAT_CMAPS = ("jet", "inferno", "viridis", "turbo")


def heat_overlay(
    picture: Image.Image,
    heatmap: Tensor | np.ndarray,
    sign: str = "positive",
    normalized: bool = True,
    cmap: str = "jet",
    alpha: float = 0.6,
    saturate_at: float = 99.0,
) -> ColouredMap:
    """An explanation heatmap over the image the network saw, on an explicit colour scale.

    Each pixel's colour is blended in proportion to its value's size (``alpha`` at the top of the scale, nothing at
    zero), so the image shows through where the map is empty — a uniform blend would tint the whole image. The
    scale tops out at a percentile of the absolute values (as captum's ``visualize_image_attr`` does), so a few
    extreme gradient pixels do not wash out the rest; smooth CAMs are hardly affected.

    Args:
        picture: The image at the input's geometry (any size; the map is resized bilinearly to it).
        heatmap: ``[H, W]`` values (an :class:`~cnn_explorer.attribution.Explanation` heatmap).
        sign: A key of :data:`SIGNS`. ``"all"`` keeps the sign and uses a diverging map (RdBu_r) centred on zero.
        normalized: Scale so the largest absolute value is 1; otherwise the scale is in the map's own units.
        cmap: Colour map for ``"positive"`` and ``"absolute"``.
        alpha: Opacity of the colours at the top of the scale.
        saturate_at: Percentile of the absolute values where the colour scale tops out (100: the largest value).

    Returns:
        The blended image with the value range its colours span (``vmin``, ``vmax``) and the colour map.
    """
    if sign not in SIGNS:
        raise ValueError(f"sign must be one of {', '.join(SIGNS)}; got {sign!r}.")
    values = _numpy(heatmap).astype(np.float64)
    if values.ndim != 2:
        raise ValueError(f"Expected a heatmap [H, W], got shape {tuple(values.shape)}.")
    if sign == "positive":
        values = np.clip(values, 0, None)
    elif sign == "absolute":
        values = np.abs(values)
    magnitudes = np.abs(values)
    peak = float(np.percentile(magnitudes, saturate_at)) or float(magnitudes.max())  # sparse maps: p99 may be 0
    scale = peak if peak > 0 else 1.0
    if normalized:
        values, peak = values / scale, (1.0 if peak > 0 else 0.0)
    base = picture.convert("RGB")
    resized = _resize_bilinear(values, base.height, base.width)
    top = peak if peak > 0 else 1.0
    if sign == "all":
        cmap, vmin, vmax = _DIVERGING, -top, top
        colours = _lookup(_normalise(resized[None], [(vmin, vmax)], 0.5), cmap)[0, ..., :3]
    else:
        vmin, vmax = 0.0, top
        colours = _lookup(_normalise(resized[None], [(vmin, vmax)], 0.0), cmap)[0, ..., :3]
    weight = alpha * np.clip(np.abs(resized) / top, 0, 1)[..., None]
    blended = (1 - weight) * np.asarray(base, dtype=np.float64) + weight * colours
    image = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
    return ColouredMap(image=image, vmin=vmin, vmax=vmax, cmap=cmap)


def blank_map(picture: Image.Image, note: str, min_side: int = 320) -> Image.Image:
    """The image faded, with ``note`` written across it: what the page shows instead of an overlay when a map is
    constant (an overlay of nothing would be the bare image, and read as "the method found nothing here" no
    better than as "the method saw everything alike").

    Args:
        picture: The image at the input's geometry.
        note: The sentence to write (wrapped to the image's width).
        min_side: The picture is upscaled (nearest neighbour) to at least this side first, so the text is legible.
    """
    shown = for_display(picture.convert("RGB"), min_side)
    faded = Image.blend(shown, Image.new("RGB", shown.size, (255, 255, 255)), 0.7)
    draw = ImageDraw.Draw(faded)
    size = max(10, round(min(shown.size) / 18))
    font = ImageFont.load_default(size=size)
    margin = size
    lines = _wrapped(note, draw, font, shown.width - 2 * margin)
    spacing = size // 3
    height = len(lines) * size + (len(lines) - 1) * spacing
    top = max(margin, (shown.height - height) // 2)
    box = (margin // 2, top - margin // 2, shown.width - margin // 2, top + height + margin // 2)
    draw.rectangle(box, fill=(255, 255, 255), outline=(180, 83, 9), width=2)
    for i, line in enumerate(lines):
        draw.text((margin, top + i * (size + spacing)), line, fill=(31, 41, 55), font=font)
    return faded


def _wrapped(text: str, draw: ImageDraw.ImageDraw, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """``text`` split at spaces into lines no wider than ``width`` pixels (a longer single word gets its own line)."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(candidate, font=font) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def curves_figure(
    fractions: Tensor | np.ndarray,
    curves: Mapping[str, Tensor | np.ndarray],
    title: str,
    xlabel: str,
    ylabel: str,
    dashed: Iterable[str] = (),
) -> Figure:
    """Several curves over one x axis (deletion/insertion curves, correlations over a randomization cascade).

    Args:
        fractions: The shared x values.
        curves: Label → y values, one line each.
        title: Figure title.
        xlabel: X axis label.
        ylabel: Y axis label.
        dashed: Labels drawn dashed and grey (reference curves such as a random order).
    """
    x = _numpy(fractions).ravel()
    dashed = set(dashed)
    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.subplots()
    for label, values in curves.items():
        y = _numpy(values).ravel()
        if y.size != x.size:
            raise ValueError(f"Curve {label!r} has {y.size} values for {x.size} x values.")
        style = {"linestyle": "--", "color": "grey"} if label in dashed else {}
        ax.plot(x, y, label=label, linewidth=1.8, **style)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    if x.size and np.all(x == np.round(x)):  # epochs, layer counts: no ticks between whole numbers
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return fig


# ------------------------------------------------------------------------------------------------------ playground

__all__ += [
    "PADDING_EDGE_COLOUR",
    "activation_figure",
    "conv_output_image",
    "framed",
    "gradient_flow_figure",
    "image_grid",
    "params_figure",
    "perturbation_image",
    "pixels_image",
    "window_zoom",
]

#: The image's edge in a zoomed window (outside it lies padding): amber, apart from magenta taps and grey pixels.
PADDING_EDGE_COLOUR = (245, 158, 11)
_SUM_TO_ONE = 1e-4  # a kernel whose weights sum to 1 within this keeps brightness: its output is drawn as a picture


def pixels_image(pixels: Tensor | np.ndarray) -> Image.Image:
    """Pixels ``[C, H, W]`` (one or three channels) in ``[0, 1]`` → an image; values outside are clipped."""
    values = _numpy(pixels)
    if values.ndim != 3 or values.shape[0] not in (1, 3):
        raise ValueError(f"Expected pixels [1 or 3, H, W]; got shape {tuple(values.shape)}.")
    array = np.clip(np.rint(values * 255), 0, 255).astype(np.uint8)
    return Image.fromarray(array[0] if array.shape[0] == 1 else np.ascontiguousarray(array.transpose(1, 2, 0)))


def conv_output_image(output: Tensor | np.ndarray, kernel: Tensor | np.ndarray) -> ColouredMap:
    """A convolution's output ``[C, H, W]``, drawn so that what it means shows.

    When the kernel's weights sum to 1 (identity, blurs, sharpen, emboss) a flat area keeps its brightness, so the
    output is drawn as a picture on ``[0, 1]`` (values beyond are clipped). Otherwise (edge detectors sum to 0) the
    values are spread around zero on ``±`` their largest size: one channel on RdBu_r (blue below zero, red above),
    three channels as ``0.5 + value / (2·max)`` per colour, so mid-grey is zero.

    Returns:
        The image with its ``(vmin, vmax)`` and colour map (``"gray"`` or ``"rgb"`` for pictures, ``"RdBu_r"`` or
        ``"rgb"`` around zero).
    """
    values = _numpy(output)
    if values.ndim != 3 or values.shape[0] not in (1, 3):
        raise ValueError(f"Expected an output [1 or 3, H, W]; got shape {tuple(values.shape)}.")
    colour = "gray" if values.shape[0] == 1 else "rgb"
    if abs(float(_numpy(kernel).sum()) - 1) <= _SUM_TO_ONE:
        return ColouredMap(pixels_image(values), 0.0, 1.0, colour)
    peak = float(np.abs(values).max()) or 1.0
    if values.shape[0] == 1:
        return ColouredMap(map_image(values[0], -peak, peak, _DIVERGING, min_side=1), -peak, peak, _DIVERGING)
    return ColouredMap(pixels_image(0.5 + values / (2 * peak)), -peak, peak, "rgb")


def window_zoom(
    region: Tensor | np.ndarray,
    taps: Sequence[tuple[int, int]],
    image_box: tuple[int, int, int, int] | None = None,
    cell: int = 24,
) -> Image.Image:
    """A few pixels around a sliding window, each enlarged to a ``cell``-pixel square, its taps framed in magenta.

    Args:
        region: Pixels ``[C, h, w]`` in ``[0, 1]`` (one or three channels), padding included.
        taps: ``(row, column)`` in ``region`` of each pixel the kernel reads.
        image_box: ``(top, left, bottom, right)`` of the real image inside ``region`` (exclusive ends), framed in
            :data:`PADDING_EDGE_COLOUR` when padding shows; None when none does.
        cell: Side of one enlarged pixel.
    """
    picture = pixels_image(region).convert("RGB")
    picture = picture.resize((picture.width * cell, picture.height * cell), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(picture)
    if image_box is not None:
        top, left, bottom, right = image_box
        draw.rectangle(
            (left * cell, top * cell, right * cell - 1, bottom * cell - 1), outline=PADDING_EDGE_COLOUR, width=3
        )
    for row, col in taps:
        box = (col * cell + 1, row * cell + 1, (col + 1) * cell - 2, (row + 1) * cell - 2)
        draw.rectangle(box, outline=HIGHLIGHT_COLOUR, width=2)
    return picture


_CURVE_WIDEST, _CURVE_NARROWING, _CURVE_NARROWEST = 4.2, 0.7, 1.6  # line widths (points) of overlaid curves
_CURVE_DASHES = ("-", (0, (4, 1.5)), "-", (0, (6, 1.5, 1, 1.5)), (0, (1.5, 1)))


def activation_figure(x: Tensor | np.ndarray, curves: Mapping[str, tuple[Tensor, Tensor]]) -> Figure:
    """Activation functions (left) and their derivatives (right) over the same inputs ``x``.

    Args:
        x: The inputs.
        curves: Name → ``(f(x), f'(x))``.
    """
    xs = _numpy(x).ravel()
    fig = Figure(figsize=(8, 3), layout="constrained")
    values, slopes = fig.subplots(1, 2, sharex=True)
    for order, (name, (y, dy)) in enumerate(curves.items()):
        # Curves coincide (ReLU, LeakyReLU and GELU for x > 0): each later one is drawn narrower and in its own dash
        # pattern on top of the earlier ones, so every curve shows beside and through those drawn over it.
        style = {
            "label": name,
            "linewidth": max(_CURVE_WIDEST - _CURVE_NARROWING * order, _CURVE_NARROWEST),
            "linestyle": _CURVE_DASHES[order % len(_CURVE_DASHES)],
            "zorder": 2 + order,
        }
        values.plot(xs, _numpy(y).ravel(), **style)
        slopes.plot(xs, _numpy(dy).ravel(), **style)
    for ax, title in ((values, "f(x)"), (slopes, "f′(x), by autograd")):
        ax.axhline(0, color="#94a3b8", linewidth=0.8)
        ax.axvline(0, color="#94a3b8", linewidth=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("x", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    values.legend(fontsize=8, frameon=False)
    return fig


def gradient_flow_figure(norms: Mapping[str, Sequence[float]]) -> Figure:
    """The gradient norm reaching each layer of a deep stack, one line per activation, on a log scale."""
    fig = Figure(figsize=(6, 3.2), layout="constrained")
    ax = fig.subplots()
    for name, values in norms.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=name, linewidth=1.8)
    ax.set_yscale("log")
    ax.set_xlabel("layer (1 = nearest the input)", fontsize=9)
    ax.set_ylabel("‖∂loss / ∂weights‖", fontsize=9)
    ax.set_title("Gradient reaching each layer", fontsize=10)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def params_figure(layers: Sequence[str], conv: Sequence[int], dense: Sequence[int]) -> Figure:
    """Parameters of each conv layer beside those of an equivalent dense layer, as bars on a log scale."""
    fig = Figure(figsize=(6, 1.2 + 0.45 * len(layers)), layout="constrained")
    ax = fig.subplots()
    rows = np.arange(len(layers))[::-1]
    ax.barh(rows + 0.2, conv, height=0.4, color="#2563eb", label="convolution (shared kernel)")
    ax.barh(rows - 0.2, dense, height=0.4, color="#f59e0b", label="dense layer, same input and output")
    ax.set_yticks(rows, labels=list(layers), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log scale)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def perturbation_image(delta: Tensor | np.ndarray, epsilon: float) -> ColouredMap:
    """An adversarial perturbation ``[C, H, W]`` made visible: ``0.5 + δ / (2ε)``, so mid-grey is no change and
    black or white a change of ``∓ε``."""
    scale = epsilon if epsilon > 0 else 1.0
    return ColouredMap(pixels_image(0.5 + _numpy(delta) / (2 * scale)), -epsilon, epsilon, "rgb")


def framed(img: Image.Image, width: int = 2, colour: tuple[int, int, int] = GAP_COLOUR) -> Image.Image:
    """The image inside a thin frame, so that one mostly white or mostly page-coloured still shows its edges."""
    canvas = Image.new("RGB", (img.width + 2 * width, img.height + 2 * width), colour)
    canvas.paste(img.convert("RGB"), (width, width))
    return canvas


def image_grid(images: Sequence[Image.Image], columns: int = 3, cell: int = 96, gap: int = 4) -> Image.Image:
    """Images side by side in rows of ``columns``, each fitted into a ``cell``-pixel square (nearest neighbour, so
    small images stay sharp), on the grid's grey."""
    if not images:
        raise ValueError("No images to lay out.")
    rows = -(-len(images) // columns)
    canvas = Image.new("RGB", (columns * (cell + gap) + gap, rows * (cell + gap) + gap), GAP_COLOUR)
    for index, image in enumerate(images):
        picture = image.convert("RGB")
        scale = cell / max(picture.size)
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BILINEAR)
        row, col = divmod(index, columns)
        left = gap + col * (cell + gap) + (cell - picture.width) // 2
        top = gap + row * (cell + gap) + (cell - picture.height) // 2
        canvas.paste(picture, (left, top))
    return canvas
