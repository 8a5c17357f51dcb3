"""The interactive feature grid: a grid image as a Vega-Lite chart that reports the map under the pointer and
the one clicked, with one row of statistics per map (:func:`grid_tiles`).
"""

from __future__ import annotations

import base64

import altair as alt
import numpy as np
import pandas as pd
from torch import Tensor

from cnn_explorer.render.colour import _maps_array
from cnn_explorer.render.grids import FeatureGrid, _frame_thickness
from cnn_explorer.render.pictures import to_png_bytes

__all__ = [
    "GRID_SELECTION",
    "GRID_TILES_VIEW",
    "grid_chart",
    "grid_tiles",
]


#: Name of the click selection of :func:`grid_chart`, for ``st.altair_chart(..., selection_mode=GRID_SELECTION)``.
GRID_SELECTION = "tile"
#: Name of the view of :func:`grid_chart` whose marks take the pointer: its SVG group has class ``tiles_marks``.
GRID_TILES_VIEW = "tiles"
_GRID_HOVER = "hover"  # the tile under the pointer; only drawn, never sent to the server


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
