"""The interactive feature grid: a grid image as a Vega-Lite chart that reports the map under the pointer and
the one clicked, with one row of statistics per map (:func:`grid_tiles`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from cnn_explorer.render.colour import _maps_array
from cnn_explorer.render.grids import FeatureGrid, _frame_thickness
from cnn_explorer.render.pictures import to_png_bytes

if TYPE_CHECKING:  # imported where used: together over a second of the app's cold start, and no page needs either
    import altair as alt
    import pandas as pd

__all__ = [
    "GRID_SELECTION",
    "GRID_TILES_VIEW",
    "grid_chart",
    "grid_chart_spec",
    "grid_tiles",
]


#: Name of the click selection of :func:`grid_chart`, for ``st.altair_chart(..., selection_mode=GRID_SELECTION)``.
GRID_SELECTION = "tile"
#: Name of the view of :func:`grid_chart` whose marks take the pointer: its SVG group has class ``tiles_marks``.
GRID_TILES_VIEW = "tiles"
_SCHEMA_URL = "https://vega.github.io/schema/vega-lite/v6.4.1.json"  # altair.SCHEMA_URL (a test compares)
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
    import pandas as pd

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
    """:func:`grid_chart_spec` as an Altair chart (for ``st.altair_chart`` or ``chart.save``); same arguments.

    A page that draws it on every rerun hands the spec itself to ``st.vega_lite_chart``: building and validating an
    Altair chart costs tens of milliseconds a run, the dict well under one.
    """
    import altair as alt

    return alt.LayerChart.from_dict(grid_chart_spec(grid, maps, png))


def grid_chart_spec(grid: FeatureGrid, maps: Tensor | np.ndarray, png: bytes | None = None) -> dict[str, Any]:
    """A feature grid as a Vega-Lite spec that tells which map the pointer is on and which one was clicked.

    Layers on one pixel coordinate system: the grid image itself, drawn at its own size (the chart is exactly
    ``image.width × image.height`` with no axes or padding) and never smoothed, so each value stays a crisp square;
    an outline around the map under the pointer; and over every map an invisible rectangle (:func:`grid_tiles`)
    with a tooltip (channel, min, max, mean) that belongs to the click selection :data:`GRID_SELECTION` over the
    field ``"channel"``. Given to ``st.vega_lite_chart(spec, on_select=…, selection_mode=GRID_SELECTION)``, a click
    returns ``{"selection": {GRID_SELECTION: [{"channel": c}]}}``.

    The dict is written out directly, as Altair would write the same chart (no theme): it is built on every step
    through the layers, and an Altair chart's construction and validation cost tens of milliseconds.

    Args:
        grid: From :func:`feature_grid` of ``maps``.
        maps: The maps the grid shows, for the tooltips.
        png: The grid image already encoded by :func:`to_png_bytes` (a page that offers it for download too);
            None encodes it here.

    Returns:
        A JSON-serialisable Vega-Lite spec; the tiles are its dataset named by their content.
    """
    rows = grid_tiles(grid, maps).to_dict("records")
    tiles = "tiles-" + hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:32]
    width, height = grid.image.size
    url = "data:image/png;base64," + base64.b64encode(png or to_png_bytes(grid.image)).decode("ascii")
    # Pixel coordinates: x from the left edge, y from the top edge (reversed), one unit = one image pixel.
    x_scale = {"domain": [0, width], "nice": False, "zero": False}
    y_scale = {"domain": [0, height], "nice": False, "zero": False, "reverse": True}
    picture = {
        "data": {"values": [{"url": url}]},
        "mark": {"type": "image", "aspect": False, "smooth": False},
        "encoding": {
            "url": {"field": "url", "type": "nominal"},
            "x": {"axis": None, "scale": x_scale, "datum": 0},
            "x2": {"datum": width},
            "y": {"axis": None, "scale": y_scale, "datum": 0},
            "y2": {"datum": height},
        },
    }

    def position() -> dict[str, Any]:
        return {
            "x": {"axis": None, "field": "left", "scale": dict(x_scale), "type": "quantitative"},
            "x2": {"field": "right"},
            "y": {"axis": None, "field": "top", "scale": dict(y_scale), "type": "quantitative"},
            "y2": {"field": "bottom"},
        }

    # The outline of the map under the pointer, drawn inside the highlight ring so that it never hides which map
    # is selected; below the hit areas, which take every pointer event.
    inset = _frame_thickness(grid.cell_size, grid.gap) - grid.gap + 2
    outline = {
        "data": {"name": tiles},
        "mark": {
            "type": "rect",
            "filled": False,
            "stroke": "#0f172a",
            "strokeWidth": 2,
            "x2Offset": -inset,
            "xOffset": inset,
            "y2Offset": -inset,
            "yOffset": inset,
        },
        "encoding": {
            "strokeOpacity": {"condition": [{"param": _GRID_HOVER, "value": 0.9, "empty": False}], "value": 0.0},
            **position(),
        },
    }
    tooltip = [{"field": "channel", "title": "channel", "type": "quantitative"}] + [
        {"field": name, "format": ".4g", "title": name, "type": "quantitative"} for name in ("min", "max", "mean")
    ]
    hit_areas = {  # invisible: the image shows through
        "data": {"name": tiles},
        "mark": {"type": "rect", "cursor": "pointer", "fill": "white", "fillOpacity": 0},
        "encoding": {"tooltip": tooltip, **position()},
        "name": GRID_TILES_VIEW,
    }
    return {
        "$schema": _SCHEMA_URL,
        "config": {"view": {"stroke": None}},
        "layer": [picture, outline, hit_areas],
        "autosize": {"type": "none"},
        "height": height,
        "width": width,
        "padding": {"left": 0, "top": 0, "right": 0, "bottom": 0},  # Streamlit adds 20 px at the bottom otherwise
        "params": [
            {
                "name": GRID_SELECTION,
                "select": {"type": "point", "fields": ["channel"], "on": "click", "toggle": False},
                "views": [GRID_TILES_VIEW],
            },
            {
                "name": _GRID_HOVER,
                "select": {"type": "point", "clear": "pointerout", "fields": ["channel"], "on": "pointerover"},
                "views": [GRID_TILES_VIEW],
            },
        ],
        # SVG, not canvas: a grid of up to a few hundred tiles is light, and every tile takes pointer events.
        "usermeta": {"embedOptions": {"renderer": "svg"}},
        "datasets": {tiles: rows},
    }
