"""Preprocessing: each step checked against torch/torchvision or by hand."""

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from cnn_explorer.preprocess import Preprocess


@pytest.fixture
def photo() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8))


def test_resize_shorter_side_then_centre_crop(photo):
    x = Preprocess(resize=60, crop=48).geometry(photo)
    assert x.shape == (3, 48, 48) and x.dtype == torch.uint8
    expected = photo.resize((80, 60), Image.Resampling.BILINEAR).crop((16, 6, 64, 54))
    assert np.abs(np.asarray(expected, dtype=int) - x.permute(1, 2, 0).numpy().astype(int)).max() <= 1


@pytest.mark.parametrize("size", [(48, 48), (47, 48), (48, 50)])
def test_an_image_already_at_the_crop_size_gives_what_resizing_and_cropping_give(size):
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    expected = TF.pil_to_tensor(
        TF.center_crop(TF.resize(image, [48], interpolation=InterpolationMode.BILINEAR, antialias=True), [48, 48])
    )
    assert torch.equal(Preprocess(resize=48, crop=48).geometry(image), expected)
    assert torch.equal(
        Preprocess(resize=48, crop=48, grayscale=True).geometry(image),
        TF.pil_to_tensor(TF.center_crop(TF.resize(image.convert("L"), [48], antialias=True), [48, 48])),
    )


def test_fixed_normalization_matches_the_formula(photo):
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    p = Preprocess(resize=32, crop=32, mean=mean, std=std)
    raw = p.geometry(photo).float() / 255
    expected = (raw - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert torch.allclose(p(photo)[0], expected, atol=1e-6)


def test_per_image_standardization_has_zero_mean_unit_std(photo):
    x = Preprocess(resize=64, crop=64, per_image_standardization=True)(photo)
    assert x.mean().item() == pytest.approx(0, abs=1e-5)
    assert x.std(correction=0).item() == pytest.approx(1, abs=1e-4)


@pytest.mark.parametrize(
    "preprocess",
    [
        Preprocess(resize=16, crop=16),
        Preprocess(resize=16, crop=16, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)),
        Preprocess(resize=16, crop=16, per_image_standardization=True),
    ],
)
def test_scaling_a_batch_scales_each_image(preprocess):
    pixels = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (5, 3, 16, 16), dtype=np.uint8))
    pixels[2] = 77  # a flat image: standardized to zeros, as alone
    expected = torch.stack([preprocess.scale(x) for x in pixels])
    torch.testing.assert_close(preprocess.scale_batch(pixels), expected, rtol=0, atol=1e-6)


def test_per_image_standardization_of_a_flat_image_does_not_divide_by_zero():
    x = Preprocess(resize=8, crop=8, per_image_standardization=True)(Image.new("RGB", (8, 8), (40, 40, 40)))
    assert torch.isfinite(x).all() and x.abs().max().item() == 0


def test_grey_models_read_dark_ink_on_white_like_light_ink_on_black():
    drawing = Image.new("L", (40, 40), 0)
    drawing.paste(255, (15, 5, 25, 35))  # a light "1" on black
    p = Preprocess(resize=32, crop=32, grayscale=True, invert_light_background=True, mean=(0.3,), std=(0.3,))
    assert torch.equal(p(drawing), p(ImageOps.invert(drawing).convert("RGB")))
    assert p(drawing).shape == (1, 1, 32, 32)


def test_round_trips_through_a_model_card():
    p = Preprocess(resize=256, crop=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    assert Preprocess.from_dict(p.to_dict()) == p
    assert any("224×224" in step for step in p.steps())
    assert math.isclose(float(p.steps()[-1].split("(")[1].split(",")[0]), 0.485)


# --- fit_ink ----------------------------------------------------------------------------------------------------


def _page(size: int, box: tuple[int, int, int, int], ink: int, paper: int) -> Image.Image:
    """A ``size``×``size`` grey page with a rectangle of ``ink`` over rows box[0]:box[1], columns box[2]:box[3]."""
    pixels = np.full((size, size), paper, dtype=np.uint8)
    pixels[box[0] : box[1], box[2] : box[3]] = ink
    return Image.fromarray(pixels, "L")


def test_fit_ink_crops_to_the_ink_and_centres_it_with_a_margin():
    # A 8-high, 4-wide bar in the top-left corner of a 100×100 page, light on black. Margin round(8 × 0.2) = 2 each
    # way: a 12×12 square with the bar at rows 2–9 and (centred across) columns 4–7; at crop 12 nothing is resized.
    p = Preprocess(resize=12, crop=12, grayscale=True, invert_light_background=True, fit_ink=True)
    x = p.geometry(_page(100, (3, 11, 5, 9), ink=255, paper=0))
    expected = torch.zeros((1, 12, 12), dtype=torch.uint8)
    expected[0, 2:10, 4:8] = 255
    assert torch.equal(x, expected)


def test_fit_ink_reads_dark_on_light_exactly_as_light_on_dark_wherever_the_digit_is():
    p = Preprocess(resize=32, crop=32, grayscale=True, invert_light_background=True, fit_ink=True)
    light_on_dark = p.geometry(_page(200, (150, 190, 10, 30), ink=255, paper=0))
    dark_on_light = p.geometry(_page(80, (5, 45, 40, 60), ink=0, paper=255))
    assert torch.equal(light_on_dark, dark_on_light)
    assert light_on_dark.shape == (1, 32, 32) and light_on_dark[0, 16, 16] == 255 and light_on_dark[0, 0, 0] == 0


def test_fit_ink_leaves_a_blank_image_as_it_is():
    p = Preprocess(resize=16, crop=16, grayscale=True, invert_light_background=True, fit_ink=True)
    x = p.geometry(_page(40, (0, 1, 0, 1), ink=20, paper=0))  # 20 grey levels: no ink
    assert torch.equal(x, TF.resize(TF.pil_to_tensor(_page(40, (0, 1, 0, 1), 20, 0)), [16, 16], antialias=True))


def test_fit_ink_is_a_described_step_and_round_trips():
    p = Preprocess(resize=32, crop=32, grayscale=True, invert_light_background=True, fit_ink=True)
    assert p.steps()[1:4] == [
        "invert if the border is mostly light (the model reads light ink on dark)",
        "crop to the ink and centre it in a square with a margin of 20% of its size each way",
        "resize to 32×32 (bilinear, antialiased)",
    ]
    assert Preprocess.from_dict(p.to_dict()) == p
    old = p.to_dict()
    del old["fit_ink"]  # model cards written before the step existed
    assert Preprocess.from_dict(old).fit_ink is False


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize(("size", "side", "crop"), [((120, 90), 60, 48), ((31, 77), 32, 32), ((64, 64), 64, 64),
                                                    ((50, 40), 20, 30), ((17, 90), 16, 24)])  # fmt: skip
def test_the_geometric_steps_are_torchvisions_pixel_for_pixel(mode, size, side, crop):
    # Written with PIL so the app starts without torchvision; each must give exactly what torchvision gives, the
    # odd sizes, rounding and the zero padding of a crop larger than the image included.
    from cnn_explorer import preprocess

    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    image = image.convert(mode)
    resized = preprocess._resize_shorter_side(image, side)
    expected = TF.resize(image, [side], interpolation=InterpolationMode.BILINEAR, antialias=True)
    assert resized.size == expected.size and np.array_equal(np.asarray(resized), np.asarray(expected))
    cropped = preprocess._center_crop(resized, crop)
    assert np.array_equal(np.asarray(cropped), np.asarray(TF.center_crop(expected, [crop, crop])))
    tensor = preprocess._pil_to_tensor(cropped)
    assert tensor.dtype == torch.uint8 and torch.equal(tensor, TF.pil_to_tensor(cropped))
    scaled = tensor.float() / 255
    mean, std = (0.485, 0.456, 0.406)[: tensor.shape[0]], (0.229, 0.224, 0.225)[: tensor.shape[0]]
    assert torch.equal(preprocess._normalize(scaled, mean, std), TF.normalize(scaled, list(mean), list(std)))
    with pytest.raises(ValueError, match="std evaluated to zero"):
        preprocess._normalize(scaled, mean, (0.0,) * len(std))
