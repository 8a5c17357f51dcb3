"""render.grids: feature grids and kernel grids, checked pixel by pixel against matplotlib."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from render_samples import expected as _expected  # tests/render/render_samples.py
from render_samples import maps as _maps
from render_samples import pixel as _pixel

from cnn_explorer import render
from cnn_explorer.render import GAP_COLOUR, HIGHLIGHT_COLOUR, feature_grid, scale_range


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
