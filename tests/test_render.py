"""render: colour scales, feature grids, kernels, overlays and figures, checked pixel by pixel against matplotlib."""

from __future__ import annotations

import base64
import warnings
from io import BytesIO

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from cnn_explorer import render
from cnn_explorer.render import GAP_COLOUR, HIGHLIGHT_COLOUR, SCALES, feature_grid, scale_range


def _maps(c: int, h: int, w: int, seed: int = 0, signed: bool = True) -> torch.Tensor:
    """Random maps whose channels have different magnitudes, so the three scopes give different colours."""
    x = torch.randn(c, h, w, generator=torch.Generator().manual_seed(seed)) * torch.linspace(0.5, 3, c)[:, None, None]
    return x if signed else x.relu()


def _expected(value: float, vmin: float, vmax: float, cmap: str) -> tuple[int, ...]:
    """The colour matplotlib gives a value on [vmin, vmax]: the reference every cell is checked against."""
    scaled = np.clip((np.float64(value) - vmin) / (vmax - vmin), 0.0, 1.0)
    return tuple(int(v) for v in matplotlib.colormaps[cmap](scaled, bytes=True)[:3])


def _pixel(grid: render.TiledImage, channel: int, row: int, col: int) -> tuple[int, ...]:
    """The pixel showing value ``(row, col)`` of map ``channel`` (the middle of its enlarged square)."""
    top, left, _, _ = grid.cell_box(channel)
    f = int(grid.factor)
    return tuple(int(v) for v in np.asarray(grid.image)[top + row * f + f // 2, left + col * f + f // 2])


# ------------------------------------------------------------------------------------------------- colour scales


def test_scales_registry_holds_the_three_scopes_with_text_for_the_page():
    assert list(SCALES) == ["map", "layer", "global"]
    for name, scale in SCALES.items():
        assert scale.name == name and scale.label and scale.description.endswith(".")


def test_scale_range_follows_each_scope_definition():
    maps = _maps(4, 5, 6)
    array = maps.double().numpy()
    per_map = scale_range(maps, "map")
    assert per_map == [(float(m.min()), float(m.max())) for m in array]
    assert scale_range(maps, "layer") == [(float(array.min()), float(array.max()))] * 4
    assert scale_range(maps, "global", (-10.0, 20.0)) == [(-10.0, 20.0)] * 4
    symmetric = scale_range(maps, "map", symmetric=True)
    assert symmetric == [(-max(abs(lo), abs(hi)), max(abs(lo), abs(hi))) for lo, hi in per_map]


@pytest.mark.parametrize(
    ("scope", "global_range", "match"),
    [("global", None, "global_range"), ("global", (2.0, 1.0), "vmin ≤ vmax"), ("unit", None, "Unknown colour scope")],
)
def test_scale_range_rejects_what_it_cannot_honour(scope, global_range, match):
    with pytest.raises(ValueError, match=match):
        scale_range(_maps(2, 3, 3), scope, global_range)


def test_default_cmap_is_diverging_for_signed_data_and_sequential_otherwise():
    assert render.default_cmap(torch.tensor([-0.1, 2.0])) == "RdBu_r"
    assert render.default_cmap(torch.tensor([0.0, 2.0])) == "viridis"
    assert render.default_cmap(np.zeros((2, 2))) == "viridis"


def test_network_range_spans_every_tensor():
    acts = {"a": torch.tensor([0.5, 3.0]), "b": torch.tensor([[-2.0, 1.0]])}
    assert render.network_range(acts) == (-2.0, 3.0)
    assert render.network_range(acts.values()) == (-2.0, 3.0)


# ------------------------------------------------------------------------------------------------ feature grid


@pytest.mark.parametrize(
    ("shape", "columns", "rows", "cell", "factor"),
    [
        ((10, 62, 62), 5, 2, 124, 2.0),  # TinyVGG
        ((6, 28, 28), 3, 2, 84, 3.0),  # LeNet c1
        ((16, 5, 5), 4, 4, 95, 19.0),  # LeNet s4
        ((120, 1, 1), 12, 10, 96, 96.0),  # LeNet c5: 1×1 maps become 96-pixel squares
        ((64, 56, 56), 8, 8, 112, 2.0),  # ResNet layer1
        ((512, 7, 7), 16, 32, 84, 12.0),  # ResNet layer4: the width cap lowers the factor from 14
        ((64, 224, 224), 8, 8, 112, 0.5),  # VGG conv1: too wide, shrunk by 2×2 block means
    ],
)
def test_grid_geometry(shape, columns, rows, cell, factor):
    grid = feature_grid(torch.rand(shape))
    assert (grid.columns, grid.rows, grid.cell_size, grid.factor, grid.count) == (
        columns,
        rows,
        (cell, cell),
        factor,
        shape[0],
    )
    gap = grid.gap
    assert grid.image.size == (columns * cell + (columns + 1) * gap, rows * cell + (rows + 1) * gap)
    assert grid.image.mode == "RGB"
    assert grid.image.width <= 1400


def test_grid_honours_explicit_columns_cell_and_gap_and_non_square_maps():
    grid = feature_grid(_maps(7, 3, 5), columns=3, cell=30, gap=4)
    assert (grid.columns, grid.rows, grid.cell_size, grid.factor) == (3, 3, (18, 30), 6.0)
    assert grid.image.size == (3 * 30 + 4 * 4, 3 * 18 + 4 * 4)
    pixels = np.asarray(grid.image)
    assert (pixels[:4] == GAP_COLOUR).all() and (pixels[:, -4:] == GAP_COLOUR).all()
    top, _, bottom, right = grid.cell_box(7 - 1)
    assert (pixels[top:bottom, right + 4 :][:, :30] == GAP_COLOUR).all()  # the two empty cells of the last row


@pytest.mark.parametrize(
    ("scope", "global_range", "cmap"),
    [("map", None, None), ("layer", None, None), ("global", (-4.0, 6.0), None), ("layer", None, "magma")],
)
def test_every_cell_is_the_colour_map_applied_to_its_values(scope, global_range, cmap):
    maps = _maps(5, 4, 6)
    grid = feature_grid(maps, scope=scope, global_range=global_range, cmap=cmap, cell=24)
    expected_cmap = cmap or "RdBu_r"
    assert grid.cmap == expected_cmap and grid.scope == scope
    symmetric = expected_cmap in render.DIVERGING_CMAPS
    assert grid.ranges == scale_range(maps, scope, global_range, symmetric=symmetric)
    pixels = np.asarray(grid.image)
    f = int(grid.factor)
    for c in range(5):
        vmin, vmax = grid.ranges[c]
        reference = np.array([[_expected(v, vmin, vmax, expected_cmap) for v in row] for row in maps[c].tolist()])
        top, left, bottom, right = grid.cell_box(c)
        enlarged = reference.repeat(f, axis=0).repeat(f, axis=1)
        np.testing.assert_array_equal(pixels[top:bottom, left:right], enlarged)


def test_diverging_scale_is_centred_on_zero():
    grid = feature_grid(torch.tensor([[[-1.0, 0.0, 3.0]]]), scope="map")
    assert grid.ranges == [(-3.0, 3.0)]
    assert _pixel(grid, 0, 0, 1) == _expected(0.5, 0, 1, "RdBu_r")  # zero is the middle (white) colour
    assert _pixel(grid, 0, 0, 2) == _expected(1.0, 0, 1, "RdBu_r")


def test_global_range_clips_values_outside_it():
    maps = torch.tensor([[[-5.0, 0.5, 9.0]]])
    grid = feature_grid(maps, scope="global", global_range=(0.0, 1.0), cmap="viridis")
    assert grid.ranges == [(0.0, 1.0)]
    assert _pixel(grid, 0, 0, 0) == _expected(0.0, 0, 1, "viridis")
    assert _pixel(grid, 0, 0, 1) == _expected(0.5, 0, 1, "viridis")
    assert _pixel(grid, 0, 0, 2) == _expected(1.0, 0, 1, "viridis")


def test_constant_maps_do_not_divide_by_zero():
    maps = torch.stack([torch.zeros(3, 3), torch.full((3, 3), 2.5)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid = feature_grid(maps, scope="map")
        signed = feature_grid(torch.zeros(1, 2, 2), scope="map", cmap="RdBu_r")
    assert grid.cmap == "viridis" and grid.ranges == [(0.0, 0.0), (2.5, 2.5)]
    assert _pixel(grid, 0, 1, 1) == _pixel(grid, 1, 1, 1) == _expected(0.0, 0, 1, "viridis")
    assert _pixel(signed, 0, 0, 0) == _expected(0.5, 0, 1, "RdBu_r")  # zero stays white on a diverging map


def test_one_by_one_maps_render_as_visible_squares():
    maps = _maps(120, 1, 1, signed=False)  # LeNet-5's c5: 120 maps of 1×1
    grid = feature_grid(maps, scope="layer")
    pixels = np.asarray(grid.image)
    vmin, vmax = grid.ranges[0]
    for c in (0, 57, 119):
        top, left, bottom, right = grid.cell_box(c)
        assert bottom - top >= 48
        cell = pixels[top:bottom, left:right].reshape(-1, 3)
        assert (cell == _expected(float(maps[c, 0, 0]), vmin, vmax, "viridis")).all()


def test_large_maps_are_shrunk_by_block_means():
    maps = _maps(64, 224, 224, signed=False)
    grid = feature_grid(maps, scope="layer")
    assert grid.factor == 0.5
    top, left, _, _ = grid.cell_box(9)
    block_mean = float(maps[9, 4:6, 10:12].double().mean())
    vmin, vmax = grid.ranges[9]
    assert tuple(np.asarray(grid.image)[top + 2, left + 5]) == _expected(block_mean, vmin, vmax, "viridis")


def test_cell_at_inverts_cell_placement():
    grid = feature_grid(_maps(11, 5, 5), cell=20, gap=3)
    for index in range(grid.count):
        top, left, bottom, right = grid.cell_box(index)
        assert grid.cell_at((left + right) / 2, (top + bottom) / 2) == index
        assert grid.cell_at(left, top) == index and grid.cell_at(right - 1, bottom - 1) == index
        assert grid.cell_at(left - 1, top) is None and grid.cell_at(right, top) is None  # the gaps beside it
        assert grid.cell_at(left, bottom) is None
    assert grid.cell_at(0, 0) is None
    last_top, _, _, last_right = grid.cell_box(10)
    assert grid.cell_at(last_right + 5, last_top + 5) is None  # an empty cell of the last row
    assert grid.cell_at(grid.image.width + 10, 10) is None and grid.cell_at(10, grid.image.height + 10) is None
    with pytest.raises(IndexError):
        grid.cell_box(11)


def test_highlight_frames_exactly_the_chosen_cell():
    plain = feature_grid(_maps(9, 6, 6, signed=False), cmap="viridis")
    assert not (np.asarray(plain.image) == HIGHLIGHT_COLOUR).all(axis=2).any()
    grid = feature_grid(_maps(9, 6, 6, signed=False), cmap="viridis", highlight=4)
    magenta = np.argwhere((np.asarray(grid.image) == HIGHLIGHT_COLOUR).all(axis=2))
    top, left, bottom, right = grid.cell_box(4)
    g = grid.gap
    assert magenta[:, 0].min() == top - g and magenta[:, 0].max() == bottom + g - 1
    assert magenta[:, 1].min() == left - g and magenta[:, 1].max() == right + g - 1
    centre = np.asarray(grid.image)[(top + bottom) // 2, (left + right) // 2]
    assert tuple(centre) != HIGHLIGHT_COLOUR  # a frame, not a filled cell


@pytest.mark.parametrize(
    ("maps", "kwargs", "match"),
    [
        (torch.zeros(3, 3), {}, r"\[C, H, W\]"),
        (torch.zeros(2, 3, 3, 3), {}, r"\[C, H, W\]"),
        (torch.zeros(3, 2, 2), {"highlight": 3}, "highlight"),
        (torch.zeros(3, 2, 2), {"columns": 0}, "columns"),
    ],
)
def test_feature_grid_rejects_bad_input(maps, kwargs, match):
    with pytest.raises(ValueError, match=match):
        feature_grid(maps, **kwargs)


def test_feature_grid_accepts_a_batch_of_one():
    maps = _maps(3, 4, 4)
    assert np.array_equal(np.asarray(feature_grid(maps[None]).image), np.asarray(feature_grid(maps).image))


# ------------------------------------------------------------------------------------------------------- kernels


def test_rgb_kernels_are_mid_grey_at_zero_and_full_at_the_peak():
    weight = torch.zeros(4, 3, 3, 3)
    weight[1, 0, 1, 1] = 2.0  # filter 1: red channel peak at the centre
    weight[1, 2, 0, 0] = -2.0  # and a blue trough at the top left
    grid = render.kernel_grid(weight)
    assert (grid.mode, grid.shown, grid.total, grid.value_range, grid.cmap) == ("rgb", (4, 3), (4, 3), None, None)
    assert (np.asarray(grid.image)[slice(*grid.cell_box(0)[::2]), slice(*grid.cell_box(0)[1::2])] == 128).all()
    assert _pixel(grid, 1, 1, 1) == (255, 128, 128)
    assert _pixel(grid, 1, 0, 0) == (128, 128, 0)


def test_per_channel_kernels_cap_rows_and_columns_and_share_one_symmetric_scale():
    weight = _maps(64 * 32, 3, 3).reshape(64, 32, 3, 3)
    grid = render.kernel_grid(weight)
    assert (grid.mode, grid.shown, grid.total, grid.columns, grid.count) == ("per_channel", (16, 16), (64, 32), 16, 256)
    peak = float(weight[:16, :16].abs().max())
    assert grid.value_range == (-peak, peak)
    value = float(weight[2, 5, 1, 2])
    assert _pixel(grid, 2 * 16 + 5, 1, 2) == _expected(value, -peak, peak, "RdBu_r")


def test_single_input_kernels_tile_as_a_square_and_rgb_needs_three_inputs():
    grid = render.kernel_grid(torch.randn(6, 1, 5, 5))  # LeNet-5's first layer
    assert (grid.mode, grid.columns, grid.rows, grid.shown) == ("per_channel", 3, 2, (6, 1))
    with pytest.raises(ValueError, match="3 input channels"):
        render.kernel_grid(torch.randn(6, 1, 5, 5), mode="rgb")


# ---------------------------------------------------------------------------------------------- single images


def test_map_image_is_the_coloured_map_enlarged():
    values = torch.tensor([[0.0, 1.0], [2.0, 4.0]])
    img = render.map_image(values, 0.0, 4.0, "viridis", min_side=10)
    assert img.size == (10, 10)
    assert img.getpixel((7, 7)) == _expected(4.0, 0, 4, "viridis")
    assert img.getpixel((7, 0)) == _expected(1.0, 0, 4, "viridis")


def test_value_table_only_for_small_maps():
    table = render.value_table(torch.tensor([[0.12345, -1.0], [2.0, 3.33333]]))
    np.testing.assert_array_equal(table, [[0.123, -1.0], [2.0, 3.333]])
    assert render.value_table(torch.zeros(17, 3)) is None
    assert render.value_table(torch.zeros(16, 16)).shape == (16, 16)


def _picture(size: int = 40) -> Image.Image:
    return Image.fromarray(np.full((size, size, 3), 100, np.uint8))


def test_overlay_draws_the_box_in_its_colour_and_nothing_else():
    boxed = np.asarray(render.overlay(_picture(), box=(5, 10, 15, 30)))
    assert tuple(boxed[5, 20]) == HIGHLIGHT_COLOUR and tuple(boxed[14, 10]) == HIGHLIGHT_COLOUR
    assert tuple(boxed[10, 29]) == HIGHLIGHT_COLOUR
    assert tuple(boxed[10, 20]) == (100, 100, 100) and tuple(boxed[0, 0]) == (100, 100, 100)
    clipped = np.asarray(render.overlay(_picture(), box=(-5, -5, 10, 10), box_colour=(0, 255, 0)))
    assert tuple(clipped[0, 5]) == (0, 255, 0) and tuple(clipped[20, 20]) == (100, 100, 100)


def test_overlay_blends_the_normalized_upsampled_heatmap():
    heat = torch.tensor([[0.0, 1.0], [1.0, 3.0]])
    assert np.array_equal(np.asarray(render.overlay(_picture(), heat, alpha=0.0)), np.asarray(_picture()))
    full = np.asarray(render.overlay(_picture(), heat, alpha=1.0, cmap="viridis"))
    assert full.shape == (40, 40, 3)
    assert tuple(full[0, 0]) == _expected(0.0, 0, 1, "viridis") and tuple(full[39, 39]) == _expected(1, 0, 1, "viridis")
    half = np.asarray(render.overlay(_picture(), heat, alpha=0.5, cmap="viridis"))
    expected = np.rint(0.5 * 100 + 0.5 * np.array(_expected(1.0, 0, 1, "viridis")))
    np.testing.assert_array_equal(half[39, 39], expected)


def test_png_bytes_decode_to_the_same_image():
    grid = feature_grid(_maps(4, 3, 3))
    decoded = Image.open(BytesIO(render.to_png_bytes(grid.image)))
    assert decoded.format == "PNG"
    assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(grid.image))


# --------------------------------------------------------------------------------------------- interactive grid


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


# ------------------------------------------------------------------------------------------------------ figures


def test_vector_figure_draws_one_bar_per_value_for_short_vectors():
    values = torch.tensor([[0.5, -1.0, 2.0, 0.0]])  # a [1, N] layer output
    fig = render.vector_figure(values, labels=["a", "b", "c", "d"], title="logits", highlight=2)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert len(ax.patches) == 4
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
    assert matplotlib.colors.to_hex(ax.patches[2].get_facecolor()) == "#ff00ff"
    assert [p.get_height() for p in ax.patches] == [0.5, -1.0, 2.0, 0.0]


def test_vector_figure_summarizes_long_vectors_with_top_values():
    values = torch.zeros(1000)
    values[[7, 42, 900]] = torch.tensor([3.0, 2.0, 1.0])
    fig = render.vector_figure(values, labels=[f"class {i}" for i in range(1000)], highlight=500, top_k=3)
    overview, ranked = fig.axes
    assert any(len(line.get_xdata()) == 1000 for line in overview.lines)  # the whole vector, not just its top
    assert len(ranked.patches) == 4  # the top 3 and the highlighted value
    names = [t.get_text() for t in ranked.get_yticklabels()]
    assert names == ["class 500 (#500)", "class 900 (#900)", "class 42 (#42)", "class 7 (#7)"]
    fig.savefig(BytesIO(), format="png")
    with pytest.raises(ValueError, match="labels"):
        render.vector_figure(values, labels=["x"])


def test_histogram_figure_reports_the_share_of_zeros():
    values = torch.tensor([0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 0.0, 4.0])
    fig = render.histogram_figure(values, bins=4, title="relu")
    (ax,) = fig.axes
    assert sum(p.get_height() for p in ax.patches) == 8
    assert any("zeros: 50.0% of 8" in t.get_text() for t in ax.texts)


def test_colourbar_figure_labels_its_range():
    fig = render.colourbar_figure(-2.0, 3.0, "RdBu_r", "activation")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-2", "0", "3"]
    assert ax.get_xlabel() == "activation"
    constant = render.colourbar_figure(1.5, 1.5, "viridis", "")
    constant.savefig(BytesIO(), format="png")
    assert [t.get_text() for t in constant.axes[0].get_xticklabels()] == ["1.5"]
