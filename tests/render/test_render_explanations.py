"""render.explanations: heatmap overlays on explicit scales, and the note shown instead of a blank map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib import colormaps
from PIL import Image

from cnn_explorer import render


@pytest.fixture
def grey() -> Image.Image:
    return Image.new("RGB", (4, 4), (100, 100, 100))


def test_overlay_blends_in_proportion_to_the_value(grey):
    heat = torch.zeros(4, 4)
    heat[0, 0], heat[1, 1] = 2.0, 1.0
    shown = render.heat_overlay(grey, heat, sign="positive", cmap="viridis", alpha=0.5, saturate_at=100)
    pixels = np.asarray(shown.image, dtype=np.float64)
    top = np.array(colormaps["viridis"](1.0)[:3]) * 255
    middle = np.array(colormaps["viridis"](0.5)[:3]) * 255
    np.testing.assert_allclose(pixels[0, 0], np.rint(0.5 * 100 + 0.5 * top), atol=1)
    np.testing.assert_allclose(pixels[1, 1], np.rint(0.75 * 100 + 0.25 * middle), atol=1.5)
    assert (pixels[2:, 2:] == 100).all()  # zero: the image shows through untouched
    assert (shown.vmin, shown.vmax, shown.cmap) == (0.0, 1.0, "viridis")


def test_raw_scale_keeps_the_units_and_signs_pick_what_is_shown(grey):
    heat = torch.tensor([[3.0, -6.0, 0.0, 0.0]] * 4)
    raw = render.heat_overlay(grey, heat, sign="positive", normalized=False, saturate_at=100)
    assert (raw.vmin, raw.vmax) == (0.0, 3.0)
    absolute = render.heat_overlay(grey, heat, sign="absolute", normalized=False, saturate_at=100)
    assert (absolute.vmin, absolute.vmax) == (0.0, 6.0)
    both = render.heat_overlay(grey, heat, sign="all", normalized=False, saturate_at=100)
    assert (both.vmin, both.vmax, both.cmap) == (-6.0, 6.0, "RdBu_r")
    pixels = np.asarray(both.image)
    assert pixels[0, 1, 2] > pixels[0, 1, 0] and pixels[0, 0, 0] > pixels[0, 0, 2]  # negative blue, positive red
    normalized = render.heat_overlay(grey, heat, sign="all")
    assert (normalized.vmin, normalized.vmax) == (-1.0, 1.0)


def test_the_scale_saturates_at_a_percentile(grey):
    heat = torch.ones(4, 4)
    heat[0, 0] = 100.0  # one extreme pixel
    shown = render.heat_overlay(grey, heat, normalized=False, saturate_at=50)
    assert shown.vmax == pytest.approx(float(np.percentile(heat.numpy(), 50)))
    assert render.heat_overlay(grey, heat, normalized=False, saturate_at=100).vmax == 100.0


def test_an_all_zero_map_leaves_the_image(grey):
    shown = render.heat_overlay(grey, torch.zeros(2, 2))
    assert np.array_equal(np.asarray(shown.image), np.asarray(grey))


def test_overlay_resizes_to_the_picture_and_rejects_bad_input(grey):
    assert render.heat_overlay(grey.resize((32, 24)), torch.rand(4, 4)).image.size == (32, 24)
    with pytest.raises(ValueError, match="sign must be one of positive, absolute, all"):
        render.heat_overlay(grey, torch.rand(4, 4), sign="negative")
    with pytest.raises(ValueError, match=r"Expected a heatmap \[H, W\]"):
        render.heat_overlay(grey, torch.rand(3, 4, 4))


def test_a_blank_map_is_the_faded_image_with_its_note_written_on_it():
    picture = Image.new("RGB", (64, 64), (0, 0, 0))
    note = "No region raises circle at conv_2_2 (the map is zero everywhere); try relu_2_2 or Grad-CAM."
    shown = render.blank_map(picture, note, min_side=320)
    assert shown.size == (320, 320)
    pixels = np.asarray(shown)
    assert (pixels[2, 2] == round(0.7 * 255)).all()  # black faded 70 % towards white, outside the note's box
    dark = (pixels.sum(axis=2) < 200).sum()
    assert dark > 500  # the words: dark text on the note's white box
    longer = np.asarray(render.blank_map(picture, note + " " + note, min_side=320))
    assert (longer.sum(axis=2) < 200).sum() > 1.5 * dark  # every word is drawn (wrapped, none cut off)
    rows = np.flatnonzero((pixels.sum(axis=2) < 200).any(axis=1))
    assert rows.max() - rows.min() > 3 * 320 / 18  # wrapped onto several lines
