"""clutter: the share of pixels that two flat-shaded regions cannot explain, on images whose answer is known by
construction."""

import numpy as np
import pytest
import torch

from cnn_explorer.clutter import clutter

SIZE = 64


def _disc(radius: float = 18.0) -> torch.Tensor:
    """A [SIZE, SIZE] mask: 1 inside a centred disc."""
    yy, xx = torch.meshgrid(
        torch.arange(SIZE, dtype=torch.float64), torch.arange(SIZE, dtype=torch.float64), indexing="ij"
    )
    return ((yy - SIZE / 2) ** 2 + (xx - SIZE / 2) ** 2 <= radius**2).to(torch.float64)


def _two_colours(mask: torch.Tensor, ink=(30, 42, 120), paper=(255, 255, 255)) -> torch.Tensor:
    ink_t, paper_t = torch.tensor(ink, dtype=torch.float64), torch.tensor(paper, dtype=torch.float64)
    return mask[None] * ink_t[:, None, None] + (1 - mask[None]) * paper_t[:, None, None]  # [3, H, W]


def test_a_single_colour_and_two_flat_colours_have_no_clutter() -> None:
    assert clutter(torch.full((3, SIZE, SIZE), 0.5)) == 0.0
    assert clutter(_two_colours(_disc())) == 0.0
    assert clutter(_two_colours(_disc())[None]) == 0.0  # a batch of one reads the same


def test_light_falling_off_across_the_frame_is_not_clutter() -> None:
    ramp = torch.linspace(0.6, 1.2, SIZE, dtype=torch.float64)[None, None, :]  # a lamp to the right
    assert clutter(_two_colours(_disc()) * ramp) == 0.0


def test_an_affine_change_of_brightness_changes_nothing() -> None:
    rng = np.random.default_rng(0)
    image = _two_colours(_disc()) + torch.from_numpy(rng.normal(0, 40, (3, SIZE, SIZE)))
    standardized = (image - image.mean()) / image.std()
    assert clutter(standardized) == pytest.approx(clutter(image), abs=1e-12)
    assert clutter(image / 255) == pytest.approx(clutter(image), abs=1e-12)


def test_isolated_specks_are_removed_by_the_median_before_fitting() -> None:
    image = _two_colours(_disc())
    image[:, 5, 5] = 128.0  # one grey speck in the paper: a 3×3 median removes it
    image[:, 50, 9] = 0.0
    assert clutter(image) == 0.0


def test_a_third_colour_that_no_shading_explains_is_counted_pixel_for_pixel() -> None:
    """Black ink on white paper with a light grey (160) 16×16 square in each corner of the frame. The grey is nearer
    the paper, so it joins the paper's region, whose fit is flat by symmetry: (2,624 × 255 + 1,020 × 160) / 3,644
    ≈ 228. White is missed by 27 per channel and grey by 68; a quarter of the contrast is 57. Each square loses its
    one inward corner pixel to the 3×3 median (4 grey pixels of 9), so 4 × 255 pixels are clutter."""
    image = _two_colours(_disc(radius=12.0), ink=(0, 0, 0), paper=(255, 255, 255))
    for rows in (slice(0, 16), slice(SIZE - 16, SIZE)):
        for cols in (slice(0, 16), slice(SIZE - 16, SIZE)):
            image[:, rows, cols] = 160.0
    assert clutter(image) == pytest.approx(4 * 255 / SIZE**2)


def test_noise_everywhere_is_mostly_clutter_and_a_grey_image_is_one_channel() -> None:
    rng = np.random.default_rng(1)
    assert clutter(torch.from_numpy(rng.uniform(0, 255, (3, SIZE, SIZE)))) > 0.5
    assert clutter(torch.from_numpy(rng.uniform(0, 255, (1, SIZE, SIZE)))) > 0.5
    assert clutter(_disc()[None] * 255) == 0.0
