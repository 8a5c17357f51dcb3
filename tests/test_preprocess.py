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
