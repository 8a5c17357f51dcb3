"""render.grid_chart: the clickable feature grid, its tiles' places and statistics, and its Vega-Lite layers."""

from __future__ import annotations

import base64
import json
from io import BytesIO

import numpy as np
import pytest
import torch
from PIL import Image
from render_samples import maps as _maps

from cnn_explorer import render
from cnn_explorer.render import HIGHLIGHT_COLOUR, feature_grid
from cnn_explorer.render.grids import _frame_thickness


def test_grid_tiles_place_one_row_per_map_on_its_cell_with_its_real_statistics():
    maps = _maps(11, 5, 5)
    grid = feature_grid(maps, cell=20, gap=3)
    tiles = render.grid_tiles(grid, maps[None])  # a batch of one is fine too

    assert list(tiles["channel"]) == list(range(11))
    for tile in tiles.itertuples():
        assert (tile.top, tile.left, tile.bottom, tile.right) == grid.cell_box(tile.channel)
        assert (tile.grid_row, tile.grid_column) == divmod(tile.channel, grid.columns)
        assert grid.cell_at((tile.left + tile.right) / 2, (tile.top + tile.bottom) / 2) == tile.channel
        values = maps[tile.channel].double()
        assert tile.min == float(values.min()) and tile.max == float(values.max())
        assert tile.mean == pytest.approx(float(values.mean()), rel=1e-12)


def test_grid_tiles_report_the_values_not_the_shrunk_pixels():
    maps = torch.zeros(4, 224, 224)
    maps[2, 100, 101] = 7.5  # one spike: a 2×2 block mean shows a quarter of it
    grid = feature_grid(maps, cmap="viridis", max_width=300)
    assert grid.factor == 0.5
    tiles = render.grid_tiles(grid, maps)
    assert list(tiles["max"]) == [0.0, 0.0, 7.5, 0.0]
    assert tiles["mean"][2] == pytest.approx(7.5 / 224**2)


def test_grid_tiles_refuse_maps_of_another_layer():
    grid = feature_grid(_maps(4, 3, 3))
    with pytest.raises(ValueError, match="4 maps, but 5"):
        render.grid_tiles(grid, _maps(5, 3, 3))


def _layer(spec: dict, mark: str, name: str | None = None) -> dict:
    (layer,) = [
        layer
        for layer in spec["layer"]
        if layer["mark"]["type"] == mark and (name is None or layer.get("name") == name)
    ]
    return layer


def test_grid_chart_draws_the_image_at_its_own_size_without_smoothing():
    maps = _maps(10, 6, 6)
    grid = feature_grid(maps, highlight=3)
    spec = render.grid_chart(grid, maps).to_dict()
    width, height = grid.image.size

    assert (spec["width"], spec["height"]) == (width, height)
    assert spec["padding"] == {"left": 0, "top": 0, "right": 0, "bottom": 0}
    assert spec["autosize"] == {"type": "none"}
    picture = _layer(spec, "image")
    assert picture["mark"]["smooth"] is False and picture["mark"]["aspect"] is False
    (row,) = picture["data"]["values"]
    prefix = "data:image/png;base64,"
    assert row["url"].startswith(prefix)
    decoded = Image.open(BytesIO(base64.b64decode(row["url"][len(prefix) :])))
    assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(grid.image))  # the grid, frame included
    encoding = picture["encoding"]
    assert (encoding["x"]["datum"], encoding["x2"]["datum"]) == (0, width)
    assert (encoding["y"]["datum"], encoding["y2"]["datum"]) == (0, height)
    # One unit = one image pixel, y downwards: a tile's pixel box lands exactly on its cell of the image.
    for layer in spec["layer"]:
        assert layer["encoding"]["x"]["scale"] == {"domain": [0, width], "nice": False, "zero": False}
        assert layer["encoding"]["y"]["scale"] == {"domain": [0, height], "nice": False, "zero": False, "reverse": True}
        assert layer["encoding"]["x"]["axis"] is None and layer["encoding"]["y"]["axis"] is None


def test_grid_chart_tiles_carry_the_tooltip_and_the_click_selection():
    maps = _maps(10, 6, 6)
    grid = feature_grid(maps)
    chart = render.grid_chart(grid, maps)
    spec = chart.to_dict()

    tiles = _layer(spec, "rect", render.GRID_TILES_VIEW)
    rows = spec["datasets"][tiles["data"]["name"]]
    assert rows == render.grid_tiles(grid, maps).to_dict("records")
    assert [row["channel"] for row in rows] == list(range(10))
    assert rows[7]["max"] == float(maps[7].max()) and rows[7]["min"] == float(maps[7].min())
    encoding = tiles["encoding"]
    assert [encoding[channel]["field"] for channel in ("x", "x2", "y", "y2")] == ["left", "right", "top", "bottom"]
    assert [tip["field"] for tip in encoding["tooltip"]] == ["channel", "min", "max", "mean"]
    assert tiles["mark"]["fillOpacity"] == 0  # the image shows through
    assert spec["layer"][-1] is tiles, "on top: the hit areas take every pointer event"
    params = {param["name"]: param for param in spec["params"]}
    assert params[render.GRID_SELECTION]["views"] == [render.GRID_TILES_VIEW]
    selection = params[render.GRID_SELECTION]["select"]
    assert selection == {"type": "point", "fields": ["channel"], "on": "click", "toggle": False}
    assert params["hover"]["select"]["on"] == "pointerover"  # drawn only: a page activates just GRID_SELECTION


def test_grid_chart_outlines_the_hovered_map_inside_the_selection_frame():
    maps = _maps(4, 60, 60)
    grid = feature_grid(maps, highlight=1)  # 120-pixel cells: a 6-pixel ring, 4 of them inside the cell
    spec = render.grid_chart(grid, maps).to_dict()
    outline = spec["layer"][1]
    assert outline["mark"]["type"] == "rect" and outline["mark"]["filled"] is False
    assert outline["data"] == _layer(spec, "rect", render.GRID_TILES_VIEW)["data"]  # the same tiles
    assert outline["encoding"]["strokeOpacity"]["condition"] == [{"param": "hover", "value": 0.9, "empty": False}]
    assert outline["encoding"]["strokeOpacity"]["value"] == 0.0  # no outline without a pointer on a map
    top, left, bottom, right = grid.cell_box(1)
    magenta = (np.asarray(grid.image)[(top + bottom) // 2, left:right] == HIGHLIGHT_COLOUR).all(axis=1)
    ring_inside = int(np.argmin(magenta))  # magenta pixels from the cell's left edge inwards
    assert ring_inside == 4
    inset = outline["mark"]["xOffset"]
    assert inset - outline["mark"]["strokeWidth"] / 2 >= ring_inside, "the outline starts inside the ring"
    assert (outline["mark"]["x2Offset"], outline["mark"]["yOffset"], outline["mark"]["y2Offset"]) == (
        -inset,
        inset,
        -inset,
    )


def test_grid_chart_reuses_an_encoded_image():
    maps = _maps(4, 3, 3)
    grid = feature_grid(maps)
    png = render.to_png_bytes(grid.image, compress_level=9)
    (row,) = _layer(render.grid_chart(grid, maps, png=png).to_dict(), "image")["data"]["values"]
    assert row["url"] == "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _altair_grid_chart(grid, maps) -> dict:
    """The grid chart as it was built with Altair before its spec was written out, as Streamlit converts it (no
    theme): the reference that :func:`render.grid_chart_spec` must equal."""
    import altair as alt

    tiles = render.grid_tiles(grid, maps)
    width, height = grid.image.size
    url = "data:image/png;base64," + base64.b64encode(render.to_png_bytes(grid.image)).decode("ascii")
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
    clicked = alt.selection_point(name=render.GRID_SELECTION, fields=["channel"], on="click", toggle=False)
    hovered = alt.selection_point(name="hover", fields=["channel"], on="pointerover", clear="pointerout", empty=False)
    position = {
        "x": alt.X("left:Q", scale=x_scale, axis=None),
        "x2": "right:Q",
        "y": alt.Y("top:Q", scale=y_scale, axis=None),
        "y2": "bottom:Q",
    }
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
        .mark_rect(fill="white", fillOpacity=0, cursor="pointer")
        .encode(**position, tooltip=tooltip)
        .add_params(clicked, hovered)
        .properties(name=render.GRID_TILES_VIEW)
    )
    chart = (
        alt.layer(picture, outline, hit_areas)
        .properties(
            width=width,
            height=height,
            padding={"left": 0, "top": 0, "right": 0, "bottom": 0},
            autosize=alt.AutoSizeParams(type="none"),
            usermeta={"embedOptions": {"renderer": "svg"}},
        )
        .configure_view(stroke=None)
    )
    with alt.theme.enable("none"):
        return chart.to_dict()


@pytest.mark.parametrize(("channels", "side", "highlight"), [(10, 6, 3), (4, 60, 1), (300, 3, 0)])
def test_grid_chart_spec_is_the_chart_altair_builds(channels, side, highlight):
    maps = _maps(channels, side, side)
    grid = feature_grid(maps, highlight=highlight, max_width=900)
    spec = render.grid_chart_spec(grid, maps)
    reference = _altair_grid_chart(grid, maps)

    (name,) = spec["datasets"]
    (reference_name,) = reference["datasets"]
    assert spec["datasets"][name] == reference["datasets"][reference_name]
    renamed = json.loads(json.dumps(spec).replace(name, reference_name))
    assert renamed == reference
    chart = json.loads(json.dumps(render.grid_chart(grid, maps).to_dict()).replace(name, reference_name))
    assert chart["layer"] == reference["layer"] and chart["datasets"] == reference["datasets"]  # as an Altair chart


def test_grid_chart_spec_names_its_tiles_by_their_content():
    maps = _maps(6, 4, 4)
    grid = feature_grid(maps)
    other = maps.clone()
    other[2, 1, 1] += 1.0
    first, again, changed = (render.grid_chart_spec(grid, m)["datasets"] for m in (maps, maps.clone(), other))
    assert first.keys() == again.keys()
    assert first.keys() != changed.keys(), "other statistics, another name: the browser must not keep the old tiles"
