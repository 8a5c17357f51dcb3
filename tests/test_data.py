"""Tests for cnn_explorer.data: synthetic shapes draw what their names say, and the digits are sklearn's."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from cnn_explorer.data import (
    _MIN_LUMA_CONTRAST,
    _OUTLINES,
    _SUPERSAMPLE,
    DIGIT_CLASSES,
    SHAPE_CLASSES,
    ImageListDataset,
    SyntheticShapes,
    _draw,
    _Placement,
    _shape_mask,
    digit_images,
    digits_split,
    draw_shape,
)

LUMA = np.array([0.299, 0.587, 0.114])
LABELS = range(len(SHAPE_CLASSES))


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


# --- Shapes: classes and outlines -------------------------------------------------------------------------------


def test_shape_classes_are_ten_distinct_names_with_the_required_ones() -> None:
    assert len(SHAPE_CLASSES) == 10
    assert len(set(SHAPE_CLASSES)) == 10
    assert {"circle", "square", "triangle", "star"} <= set(SHAPE_CLASSES)
    assert not {"square", "diamond"} <= set(SHAPE_CLASSES), "a rotated square is a diamond"


@pytest.mark.parametrize("name", SHAPE_CLASSES)
def test_outline_is_inside_and_touches_the_unit_disc(name: str) -> None:
    outline = _OUTLINES[name]
    farthest = max(np.linalg.norm(polygon, axis=1).max() for polygon in outline.fills)
    assert farthest == pytest.approx(1.0, abs=1e-9)
    assert outline.area > 0.2 * math.pi, "too thin to see at the smallest radius"


@pytest.mark.parametrize(
    ("name", "unit_area"),
    [
        ("circle", math.pi),
        ("square", 2.0),  # diagonal 2
        ("triangle", 3 * math.sqrt(3) / 4),  # equilateral, circumradius 1
        ("semicircle", math.pi / 2),
    ],
)
def test_geometric_outlines_have_their_textbook_area(name: str, unit_area: float) -> None:
    assert _OUTLINES[name].area == pytest.approx(unit_area, rel=2e-3)


def test_ring_and_crescent_are_a_disc_with_a_part_missing() -> None:
    disc = _OUTLINES["circle"].area
    assert 0.4 * disc < _OUTLINES["ring"].area < 0.8 * disc
    assert 0.3 * disc < _OUTLINES["crescent"].area < 0.7 * disc


@pytest.mark.parametrize("name", SHAPE_CLASSES)
def test_mask_area_matches_the_outline_at_every_radius_and_rotation(name: str) -> None:
    outline, rng = _OUTLINES[name], np.random.default_rng(7)
    perimeter = sum(np.linalg.norm(np.roll(p, -1, axis=0) - p, axis=1).sum() for p in (*outline.fills, *outline.holes))
    for _ in range(25):
        size = int(rng.choice([32, 64, 96]))
        radius = rng.uniform(12, 26) * size / 64
        placement = _Placement(size / 2 + rng.uniform(-2, 2), size / 2 + rng.uniform(-2, 2), radius, rng.uniform(0, 7))
        alpha = _shape_mask(outline, placement, size)
        # A rasteriser may misplace the boundary by up to one sub-pixel, so the error is bounded by the perimeter.
        tolerance = 0.01 * outline.area * radius**2 + perimeter * radius / _SUPERSAMPLE
        assert abs(alpha.sum() - outline.area * radius**2) <= tolerance


def test_ring_has_a_hole_and_circle_does_not() -> None:
    placement = _Placement(32.0, 32.0, 20.0, 0.3)
    ring = _shape_mask(_OUTLINES["ring"], placement, 64)
    circle = _shape_mask(_OUTLINES["circle"], placement, 64)
    assert ring[31:33, 31:33].max() == 0.0
    assert circle[31:33, 31:33].min() == 1.0


# --- Shapes: drawing --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64, 96])
@pytest.mark.parametrize("label", LABELS)
def test_draw_shape_returns_rgb_of_the_requested_size(label: int, size: int) -> None:
    image = draw_shape(label, np.random.default_rng(label), size)
    assert image.mode == "RGB"
    assert image.size == (size, size)


@pytest.mark.parametrize("label", [-1, 10])
def test_draw_shape_rejects_unknown_labels(label: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        draw_shape(label, np.random.default_rng(0))


def test_draw_shape_rejects_tiny_sizes() -> None:
    with pytest.raises(ValueError, match="too small"):
        draw_shape(0, np.random.default_rng(0), size=8)


def test_draw_shape_is_the_image_of_the_drawing() -> None:
    assert (
        _pixels(draw_shape(3, np.random.default_rng(5))).tolist()
        == _pixels(_draw(3, np.random.default_rng(5), 64).image).tolist()
    )


@pytest.mark.parametrize("size", [32, 64, 96])
def test_shape_is_sized_in_range_and_wholly_inside_the_image(size: int) -> None:
    rng = np.random.default_rng(size)
    radii = []
    for i in range(100):
        drawing = _draw(i % 10, rng, size)
        p, alpha = drawing.placement, drawing.alpha
        radii.append(p.radius * 64 / size)
        border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
        assert border.max() == 0.0, "the shape touches the frame"
        ys, xs = np.nonzero(alpha)
        distance = np.hypot(xs + 0.5 - p.cx, ys + 0.5 - p.cy)
        assert distance.max() <= p.radius + 1.0, "ink outside the circumcircle"
        assert alpha.sum() >= 0.2 * math.pi * p.radius**2
    assert 12 <= min(radii) < 14 and 24 < max(radii) <= 26


def test_shape_contrasts_with_the_background_everywhere() -> None:
    rng = np.random.default_rng(11)
    for i in range(300):
        drawing = _draw(i % 10, rng, 64)
        inside = drawing.alpha == 1.0
        background_luma = drawing.background[inside] @ LUMA
        # Noise-free: the chosen colour clears the margin against every background pixel under the shape.
        assert np.abs(drawing.colour @ LUMA - background_luma).min() >= _MIN_LUMA_CONTRAST - 1e-3
        # In the final, noisy image the shape still stands out on average.
        image_luma = _pixels(drawing.image)[inside] @ LUMA
        assert abs(image_luma.mean() - background_luma.mean()) >= _MIN_LUMA_CONTRAST - 4


def test_noise_is_small_and_gradients_are_common() -> None:
    rng = np.random.default_rng(13)
    residual_stds, gradients = [], 0
    for i in range(200):
        drawing = _draw(i % 10, rng, 64)
        clean = drawing.background + drawing.alpha[..., None] * (drawing.colour - drawing.background)
        visible = (clean > 30).all(axis=-1) & (clean < 225).all(axis=-1)  # away from clipping at 0 and 255
        if visible.sum() > 100:
            residual_stds.append((_pixels(drawing.image) - clean)[visible].std())
        gradients += np.ptp(drawing.background, axis=(0, 1)).max() > 1.0
    assert 0.5 < np.median(residual_stds) < 8.0
    assert max(residual_stds) < 9.0
    assert 0.3 < gradients / 200 < 0.7


def test_colours_do_not_predict_the_class() -> None:
    rng = np.random.default_rng(17)
    shape_means, background_means = np.zeros((10, 3)), np.zeros((10, 3))
    draws = 200
    for label in LABELS:
        for _ in range(draws):
            drawing = _draw(label, rng, 64)
            pixels = _pixels(drawing.image)
            shape_means[label] += pixels[drawing.alpha == 1.0].mean(axis=0) / draws
            background_means[label] += pixels[drawing.alpha == 0.0].mean(axis=0) / draws
    # A class mean over 200 draws has a standard error of about 5 per channel; 20 is ~4 of them.
    assert np.abs(shape_means - shape_means.mean(axis=0)).max() < 20
    assert np.abs(background_means - background_means.mean(axis=0)).max() < 20


# --- Shapes: dataset --------------------------------------------------------------------------------------------


def test_synthetic_shapes_is_deterministic_per_seed_and_index() -> None:
    first, again, other = SyntheticShapes(12, seed=3), SyntheticShapes(12, seed=3), SyntheticShapes(12, seed=4)
    forward = [_pixels(first[i][0]) for i in range(12)]
    backward = [_pixels(again[i][0]) for i in reversed(range(12))][::-1]  # order must not matter (workers)
    for a, b in zip(forward, backward, strict=True):
        np.testing.assert_array_equal(a, b)
    for i in range(12):
        assert not np.array_equal(forward[i], _pixels(other[i][0]))
    assert not np.array_equal(forward[0], forward[10]), "same class, different index: a different image"


def test_synthetic_shapes_labels_are_balanced() -> None:
    dataset = SyntheticShapes(50, seed=0, size=32)
    labels = [dataset[i][1] for i in range(len(dataset))]
    assert labels == [i % 10 for i in range(50)]
    assert np.bincount(labels).tolist() == [5] * 10
    assert dataset.classes == list(SHAPE_CLASSES)


def test_synthetic_shapes_applies_the_transform_and_bounds_indices() -> None:
    dataset = SyntheticShapes(3, seed=1, size=32, transform=lambda image: _pixels(image).shape)
    assert dataset[2] == ((32, 32, 3), 2)
    assert len(dataset) == 3
    with pytest.raises(IndexError):
        dataset[3]


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"n": -1}, "items"), ({"seed": -1}, "negative"), ({"size": 4}, "small")]
)
def test_synthetic_shapes_rejects_bad_arguments(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SyntheticShapes(**{"n": 10, "seed": 0, **kwargs})


# --- Digits -----------------------------------------------------------------------------------------------------


def test_digit_images_are_sklearns_digits_ink_bright() -> None:
    images, labels = digit_images()
    reference = load_digits()
    assert tuple("0123456789") == DIGIT_CLASSES
    assert len(images) == len(labels) == 1797
    assert all(image.mode == "L" and image.size == (8, 8) for image in images)
    np.testing.assert_array_equal(labels, reference.target)
    for i in [0, 1, 500, 1796]:
        expected = [[round(v * 255 / 16) for v in row] for row in reference.images[i]]
        assert np.asarray(images[i]).tolist() == expected


def test_digits_split_is_stratified_disjoint_and_complete() -> None:
    split = digits_split()
    _, labels = digit_images()
    assert len(split.test_images) == len(split.test_labels) == 360
    assert len(split.train_images) == len(split.train_labels) == 1797 - 360
    assert set(split.train_indices).isdisjoint(split.test_indices)
    assert sorted([*split.train_indices, *split.test_indices]) == list(range(1797))
    np.testing.assert_array_equal(split.test_labels, labels[split.test_indices])
    per_class, held_out = np.bincount(labels), np.bincount(split.test_labels, minlength=10)
    assert np.abs(held_out - 0.2 * per_class).max() <= 1
    images, _ = digit_images()
    assert np.array_equal(np.asarray(split.test_images[0]), np.asarray(images[split.test_indices[0]]))


def test_digits_split_is_deterministic_per_seed() -> None:
    np.testing.assert_array_equal(digits_split(seed=0).test_indices, digits_split(seed=0).test_indices)
    assert not np.array_equal(digits_split(seed=0).test_indices, digits_split(seed=1).test_indices)
    assert len(digits_split(test_fraction=0.5).test_labels) == math.ceil(1797 * 0.5)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_digits_split_rejects_impossible_fractions(fraction: float) -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        digits_split(test_fraction=fraction)


def test_image_list_dataset_returns_transformed_images_and_int_labels() -> None:
    images, labels = digit_images()
    dataset = ImageListDataset(images[:5], labels[:5], transform=lambda image: image.size, classes=DIGIT_CLASSES)
    assert len(dataset) == 5
    size, label = dataset[4]
    assert size == (8, 8)
    assert type(label) is int and label == labels[4]
    assert dataset.classes == list(DIGIT_CLASSES)
    plain = ImageListDataset(images[:2], [0, 1])
    assert plain[0][0] is images[0] and plain.classes is None
    with pytest.raises(ValueError, match="one label per image"):
        ImageListDataset(images[:3], labels[:2])


def test_data_module_never_imports_streamlit() -> None:
    code = "import sys, cnn_explorer.data; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
