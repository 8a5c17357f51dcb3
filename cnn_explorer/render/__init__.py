"""Tensors → images and figures. The only library package that turns tensors into pixels.

One module per concern; this ``__init__`` only re-exports them, so ``render.feature_grid`` and friends keep working:

- :mod:`~cnn_explorer.render.bars`: honest percentages and the top-k probabilities as HTML bars.
- :mod:`~cnn_explorer.render.colour`: named colours, the colour scopes of :data:`SCALES`, values → colours.
- :mod:`~cnn_explorer.render.grids`: many feature maps or kernels tiled into one image with numpy.
- :mod:`~cnn_explorer.render.grid_chart`: a feature grid as a clickable Vega-Lite chart.
- :mod:`~cnn_explorer.render.pictures`: one tensor or map as an image, overlays, frames, PNG bytes.
- :mod:`~cnn_explorer.render.figures`: matplotlib figures (top-k, colour bars, vectors, histograms, curves), built
  without pyplot (thread-safe, no global state).
- :mod:`~cnn_explorer.render.explanations`: attribution heatmaps over the image.
- :mod:`~cnn_explorer.render.playground`: the playground's pictures and figures.

Colour scales are explicit: every function that colours values takes or reports its ``(vmin, vmax)`` so a page can
show the scale with its range. Many feature maps become one image tiled with numpy (:func:`feature_grid`), never a
subplot per map.
"""

from __future__ import annotations

from cnn_explorer.lazy import lazy_names
from cnn_explorer.render.bars import TOP_K_COLOURS, percent, top_k_bars
from cnn_explorer.render.colour import (
    DIVERGING_CMAPS,
    GAP_COLOUR,
    HIGHLIGHT_COLOUR,
    SCALES,
    ColouredMap,
    ColourScale,
    default_cmap,
    network_range,
    scale_range,
)
from cnn_explorer.render.explanations import HEAT_CMAPS, SIGNS, blank_map, heat_overlay
from cnn_explorer.render.grid_chart import GRID_SELECTION, GRID_TILES_VIEW, grid_chart, grid_chart_spec, grid_tiles
from cnn_explorer.render.grids import FeatureGrid, KernelGrid, KernelMode, TiledImage, feature_grid, kernel_grid
from cnn_explorer.render.pictures import (
    channel_maps,
    for_display,
    framed,
    image_grid,
    map_image,
    overlay,
    pixels_image,
    to_png_bytes,
    uint8_image,
    value_table,
)

# Imported on first use (PEP 562): matplotlib's figure machinery is about half a second, and the first page draws no
# matplotlib figure (its top-k bars are HTML, render.bars).
_LAZY: dict[str, tuple[str, ...]] = {
    "figures": ("colourbar_figure", "curves_figure", "histogram_figure", "top_k_figure", "vector_figure"),
    "playground": (
        "PADDING_EDGE_COLOUR",
        "activation_figure",
        "conv_output_image",
        "gradient_flow_figure",
        "params_figure",
        "perturbation_image",
        "window_zoom",
    ),
}
__all__ = [
    "DIVERGING_CMAPS",
    "GAP_COLOUR",
    "GRID_SELECTION",
    "GRID_TILES_VIEW",
    "HEAT_CMAPS",
    "HIGHLIGHT_COLOUR",
    "PADDING_EDGE_COLOUR",
    "SCALES",
    "SIGNS",
    "TOP_K_COLOURS",
    "ColourScale",
    "ColouredMap",
    "FeatureGrid",
    "KernelGrid",
    "KernelMode",
    "TiledImage",
    "activation_figure",
    "blank_map",
    "channel_maps",
    "colourbar_figure",
    "conv_output_image",
    "curves_figure",
    "default_cmap",
    "feature_grid",
    "for_display",
    "framed",
    "gradient_flow_figure",
    "grid_chart",
    "grid_chart_spec",
    "grid_tiles",
    "heat_overlay",
    "histogram_figure",
    "image_grid",
    "kernel_grid",
    "map_image",
    "network_range",
    "overlay",
    "params_figure",
    "percent",
    "perturbation_image",
    "pixels_image",
    "scale_range",
    "to_png_bytes",
    "top_k_bars",
    "top_k_figure",
    "uint8_image",
    "value_table",
    "vector_figure",
    "window_zoom",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
