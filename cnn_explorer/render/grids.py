"""Tiled images: all feature maps of a layer, or a layer's kernels, in one image built with numpy.

Many maps become one image (:func:`feature_grid`, :func:`kernel_grid`), never a subplot per map: the colour lookup
runs once on the whole stack and the tiling is two ``take``s of packed pixels. The result keeps its geometry
(:class:`TiledImage`) so a page can tell which cell a click hit; :mod:`cnn_explorer.render.grid_chart` makes it
clickable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image
from torch import Tensor

from cnn_explorer.render.colour import (
    _DIVERGING,
    DIVERGING_CMAPS,
    GAP_COLOUR,
    HIGHLIGHT_COLOUR,
    Range,
    _lookup,
    _maps_array,
    _normalise,
    _numpy,
    default_cmap,
    scale_range,
)

__all__ = [
    "FeatureGrid",
    "KernelGrid",
    "KernelMode",
    "TiledImage",
    "feature_grid",
    "kernel_grid",
]


KernelMode = Literal["rgb", "per_channel"]
_MAX_COLUMNS = 16  # wider grids make each map too small on a page


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
