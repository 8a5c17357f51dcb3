"""render.pictures: single maps, overlays with boxes, PNG bytes, pixels as images, frames and rows of images."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
import torch
from PIL import Image
from render_samples import expected as _expected  # tests/render/render_samples.py
from render_samples import maps as _maps

from cnn_explorer import render
from cnn_explorer.render import HIGHLIGHT_COLOUR, feature_grid


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


def test_pixels_image_is_the_rounded_pixels() -> None:
    pixels = torch.tensor([[[0.0, 0.5], [1.0, 1.2]]])
    assert np.asarray(render.pixels_image(pixels)).tolist() == [[0, 128], [255, 255]]  # 1.2 clipped
    rgb = render.pixels_image(torch.zeros(3, 2, 4))
    assert rgb.mode == "RGB" and rgb.size == (4, 2)
    with pytest.raises(ValueError, match="Expected pixels"):
        render.pixels_image(torch.zeros(2, 2, 2))


def test_image_grid_and_frame_sizes() -> None:
    tiles = [Image.new("RGB", (8, 8), (255, 0, 0))] * 5
    grid = render.image_grid(tiles, columns=3, cell=20, gap=2)
    assert grid.size == (3 * 22 + 2, 2 * 22 + 2)
    assert grid.getpixel((12, 12)) == (255, 0, 0) and grid.getpixel((0, 0)) == render.GAP_COLOUR
    framed = render.framed(Image.new("RGB", (4, 3), (255, 255, 255)), width=2)
    assert framed.size == (8, 7) and framed.getpixel((0, 0)) == render.GAP_COLOUR
    with pytest.raises(ValueError, match="No images"):
        render.image_grid([])
