"""Tests for cnn_explorer.data: synthetic shapes draw what their names say, the digits are sklearn's, a run's data is
split, augmented and preprocessed as documented, torchvision's on-disk layouts read back what was written, and
uploaded archives are refused for every unsafe shape."""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import pickle
import stat
import struct
import subprocess
import sys
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
import torchvision.transforms.functional as TF
from PIL import Image
from sklearn.datasets import load_digits

from cnn_explorer import data
from cnn_explorer.data import (
    _LIGHT_MAX_SLOPE,
    _MIN_LUMA_CONTRAST,
    _OUTLINES,
    _STROKE_RANGE,
    _SUPERSAMPLE,
    DIGIT_CLASSES,
    SHAPE_CLASSES,
    TRAINING_DATASETS,
    DatasetError,
    DatasetUnavailable,
    ImageListDataset,
    SyntheticShapes,
    _draw,
    _Placement,
    _shape_mask,
    digit_images,
    digits_split,
    draw_shape,
    extract_zip,
    imbalance,
    prepare,
    preview,
)
from cnn_explorer.images import load_image
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.runspec import DATASET_KINDS, Augmentation, DataSpec
from cnn_explorer.sources.builtin import ASSETS_MODELS

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


def test_plain_drawings_are_filled_in_even_light() -> None:
    rng = np.random.default_rng(29)
    for i in range(50):
        drawing = _draw(i % 10, rng, 64)
        assert drawing.stroke == 0.0
        assert (drawing.light == 1.0).all()


@pytest.mark.parametrize("size", [32, 64, 96])
def test_varied_shapes_are_sized_wider_and_wholly_inside_the_image(size: int) -> None:
    rng = np.random.default_rng(size)
    radii = []
    for i in range(150):
        drawing = _draw(i % 10, rng, size, varied=True)
        p, alpha = drawing.placement, drawing.alpha
        radii.append(p.radius * 64 / size)
        border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
        assert border.max() == 0.0, "the shape touches the frame"
        ys, xs = np.nonzero(alpha)
        assert np.hypot(xs + 0.5 - p.cx, ys + 0.5 - p.cy).max() <= p.radius + 1.0, "ink outside the circumcircle"
    assert 8 <= min(radii) < 10 and 28 < max(radii) <= 30


def test_a_share_of_varied_shapes_are_outlines_traced_inside_the_boundary_never_circles() -> None:
    rng = np.random.default_rng(19)
    strokes = {label: [] for label in LABELS}
    for i in range(400):
        drawing = _draw(i % 10, rng, 64, varied=True)
        strokes[i % 10].append(drawing.stroke)
        if drawing.stroke:
            name = SHAPE_CLASSES[i % 10]
            filled = _shape_mask(_OUTLINES["circle" if name == "ring" else name], drawing.placement, 64)
            # The stroke lies inside the filled shape (a ring's: inside its circle, the hole may shrink); a thin one
            # leaves much of the inside empty (a thick one on a thin shape, a small cross, may fill it).
            assert (drawing.alpha <= filled + 1e-6).all()
            if drawing.stroke < 0.1 * drawing.placement.radius:
                assert drawing.alpha.sum() < 0.8 * filled.sum()
    assert not any(strokes[SHAPE_CLASSES.index("circle")]), "an outlined circle is a ring"
    outlined = [w for label in LABELS for w in strokes[label] if w]
    assert 0.25 < len(outlined) / 360 < 0.55
    assert _STROKE_RANGE[0] <= min(outlined)
    assert max(outlined) <= _STROKE_RANGE[1]


def test_ring_outline_is_a_circle_traced_with_a_pen() -> None:
    placement = _Placement(32.0, 32.0, 20.0, 0.3)
    ring = _shape_mask(_OUTLINES["ring"], placement, 64, stroke=3.0)
    circle = _shape_mask(_OUTLINES["circle"], placement, 64, stroke=3.0)
    assert np.array_equal(ring, circle)
    assert ring[32, 32] == 0.0 and ring[32, 13:15].min() == 1.0 and ring[32, 16] == 0.0


def test_varied_lighting_is_an_even_ramp_on_about_half_the_images() -> None:
    rng = np.random.default_rng(23)
    lit = 0
    for i in range(200):
        drawing = _draw(i % 10, rng, 64, varied=True)
        light = drawing.light
        if np.ptp(light) > 0:
            lit += 1
            assert light.min() >= 1 - _LIGHT_MAX_SLOPE - 1e-5
            assert light.max() <= 1 + _LIGHT_MAX_SLOPE + 1e-5
            assert light.mean() == pytest.approx(1.0, abs=0.02)  # brighter on one side, darker on the other
            # The image is the lit scene plus noise.
            clean = drawing.background + drawing.alpha[..., None] * (drawing.colour - drawing.background)
            visible = ((clean * light[..., None]) > 30).all(axis=-1) & ((clean * light[..., None]) < 225).all(axis=-1)
            if visible.sum() > 100:  # away from clipping at 0 and 255
                residual = (_pixels(drawing.image) - clean * light[..., None])[visible]
                assert np.abs(residual.mean()) < 2.0
                assert residual.std() < 9.0
        else:
            assert (light == 1.0).all()
    assert 0.35 < lit / 200 < 0.65


def test_varied_drawing_is_an_option_of_the_dataset_and_its_spec() -> None:
    plain = data.SyntheticShapes(3, seed=4)
    varied = data.SyntheticShapes(3, seed=4, varied=True)
    for i in range(3):
        rng = np.random.default_rng([4, i])
        assert np.array_equal(_pixels(varied[i][0]), _pixels(draw_shape(i, rng, 64, varied=True)))
    assert not all(np.array_equal(_pixels(plain[i][0]), _pixels(varied[i][0])) for i in range(3))
    prepared = data.prepare(DataSpec(kind="shapes", count=4, val_split=0.5, varied=True), seed=0)
    first = prepared.train_for_epoch(0).image(1)
    expected = draw_shape(1, np.random.default_rng([1000, 1]), 64, varied=True)
    assert np.array_equal(_pixels(first), _pixels(expected))


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


def _items(dataset: torch.utils.data.Dataset, n: int | None = None) -> list[tuple[torch.Tensor, int]]:
    return [dataset[i] for i in range(len(dataset) if n is None else n)]


def _same_items(a: list, b: list) -> bool:
    return all(torch.equal(x, y) and k == m for (x, k), (y, m) in zip(a, b, strict=True))


def test_every_dataset_kind_is_registered() -> None:
    assert tuple(TRAINING_DATASETS) == DATASET_KINDS
    assert all(kind.key == key and kind.load is not None for key, kind in TRAINING_DATASETS.items())


# --- shapes -----------------------------------------------------------------------------------------------------


def test_prepared_shapes_are_what_the_preprocessing_makes_of_synthetic_shapes() -> None:
    prepared = prepare(DataSpec("shapes", size=32, count=30, val_split=0.2), seed=4)
    assert prepared.input_size == (3, 32, 32) and prepared.class_names == SHAPE_CLASSES
    assert (len(prepared.train), len(prepared.val)) == (30, 6)
    assert prepared.counts == dict.fromkeys(SHAPE_CLASSES, 3)
    assert prepared.preprocess.per_image_standardization  # as the shipped tinyvgg-shapes
    reference = SyntheticShapes(30, seed=1004, size=32)  # a run draws its training shapes from 1000 + its seed
    for i in [0, 7, 29]:
        x, label = prepared.train[i]
        image, expected = reference[i]
        assert label == expected and type(label) is int
        assert torch.equal(x, prepared.preprocess(image)[0])
        assert np.array_equal(np.asarray(prepared.train.image(i)), np.asarray(image))


def test_shapes_are_drawn_fresh_every_epoch_and_never_as_validation_images() -> None:
    prepared = prepare(DataSpec("shapes", size=16, count=20), seed=0)
    epochs = [prepared.train_for_epoch(e) for e in range(3)]
    assert _same_items(_items(epochs[0]), _items(prepared.train))
    pictures = {e: {prepared.train_for_epoch(e).pixels(i).numpy().tobytes() for i in range(20)} for e in range(3)}
    assert not pictures[0] & pictures[1] and not pictures[1] & pictures[2]
    val = {prepared.val.pixels(i).numpy().tobytes() for i in range(len(prepared.val))}
    assert not val & (pictures[0] | pictures[1] | pictures[2])
    assert [prepared.train_for_epoch(2)[i][1] for i in range(20)] == [i % 10 for i in range(20)]


def test_shapes_drawn_once_are_the_same_every_epoch_and_never_validation_images() -> None:
    prepared = prepare(DataSpec("shapes", size=16, count=20, fresh=False), seed=0)
    fresh = prepare(DataSpec("shapes", size=16, count=20), seed=0)
    assert _same_items(_items(prepared.train), _items(fresh.train))  # epoch 0 is the same either way
    assert _same_items(_items(prepared.train_for_epoch(3)), _items(prepared.train))
    val = {prepared.val.pixels(i).numpy().tobytes() for i in range(len(prepared.val))}
    assert not val & {prepared.train.pixels(i).numpy().tobytes() for i in range(20)}
    assert "drawn fresh" not in prepared.description and "drawn fresh" in fresh.description


def test_prepare_is_deterministic_per_seed() -> None:
    spec = DataSpec("shapes", size=16, count=10)
    augmentation = Augmentation(flip=True, rotation=20, crop=0.7, color_jitter=0.3)
    first, again = prepare(spec, 3, augmentation), prepare(spec, 3, augmentation)
    other = prepare(spec, 4, augmentation)
    assert _same_items(_items(first.train), _items(again.train))
    assert _same_items(_items(first.val), _items(again.val))
    assert _same_items(_items(first.train_for_epoch(5)), _items(again.train_for_epoch(5)))
    assert not any(torch.equal(a[0], b[0]) for a, b in zip(_items(first.train), _items(other.train), strict=True))
    # an item does not depend on what was read before it (DataLoader workers read in any order)
    assert torch.equal(first.train[7][0], prepare(spec, 3, augmentation).train[7][0])


def test_shapes_limit_caps_training_images_and_val_is_a_share_of_count() -> None:
    prepared = prepare(DataSpec("shapes", size=16, count=100, val_split=0.1, limit=25), seed=0)
    assert (len(prepared.train), len(prepared.val)) == (25, 10)
    assert sum(prepared.counts.values()) == 25 and max(prepared.counts.values()) == 3


# --- digits -----------------------------------------------------------------------------------------------------


def test_prepared_digits_reproduce_the_shipped_models_split_and_normalization() -> None:
    # The shipped lenet5-digits trains on the mixed digits (the scans, typed and drawn ones): its preprocessing,
    # mean and std measured on the same training images, is what the preset's data gives.
    shipped = json.loads((ASSETS_MODELS / "lenet5-digits.json").read_text())
    mixed = prepare(DataSpec(**shipped["run"]["data"]), seed=shipped["run"]["settings"]["seed"])
    assert mixed.preprocess.to_dict() == shipped["preprocess"]
    prepared = prepare(DataSpec("digits", size=32, grayscale=True, val_split=0.2), seed=0)
    split = digits_split(0.2, seed=0)
    assert (len(prepared.train), len(prepared.val)) == (len(split.train_labels), len(split.test_labels))
    assert sum(prepared.counts.values()) == len(prepared.train) == 1437
    for i in [0, 100, 359]:
        x, label = prepared.val[i]
        assert label == split.test_labels[i]
        assert torch.equal(x, prepared.preprocess(split.test_images[i])[0])
    assert prepared.input_size == (1, 32, 32)


def test_prepared_digits_in_colour_have_three_equal_channels() -> None:
    prepared = prepare(DataSpec("digits", size=16, grayscale=False), seed=0)
    pixels = prepared.val.pixels(0)
    assert prepared.input_size == (3, 16, 16) and pixels.shape == (3, 16, 16)
    assert torch.equal(pixels[0], pixels[1]) and torch.equal(pixels[1], pixels[2])
    assert len(prepared.preprocess.mean) == 3


def test_digits_limit_keeps_the_classes_in_proportion() -> None:
    prepared = prepare(DataSpec("digits", size=8, grayscale=True, limit=100), seed=1)
    assert len(prepared.train) == 100
    assert all(9 <= n <= 11 for n in prepared.counts.values())


# --- stratified splits ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("val_split", [0.1, 0.25, 0.5])
def test_stratified_split_holds_out_the_share_of_every_class(val_split: float) -> None:
    labels = np.repeat(np.arange(4), [40, 20, 10, 7])
    train, val = data._stratified_split(labels, val_split, seed=0)
    assert sorted([*train, *val]) == list(range(len(labels))) and not set(train) & set(val)
    assert len(val) == round(len(labels) * val_split)
    held, sizes = np.bincount(labels[val], minlength=4), np.bincount(labels)
    assert np.abs(held - val_split * sizes).max() <= 1
    again, other = data._stratified_split(labels, val_split, seed=0), data._stratified_split(labels, val_split, 1)
    assert np.array_equal(again[1], val) and not np.array_equal(other[1], val)


def test_stratified_split_keeps_every_class_in_training() -> None:
    labels = np.array([0, 0, 0, 0, 1, 2, 2])
    train, _ = data._stratified_split(labels, 0.5, seed=0)
    assert set(labels[train]) == {0, 1, 2}


def test_take_is_exact_and_proportional() -> None:
    labels = np.repeat(np.arange(3), [60, 30, 10])
    chosen = data._take(labels, 20, seed=0)
    assert len(chosen) == 20 and np.bincount(labels[chosen]).tolist() == [12, 6, 2]
    assert len(data._take(labels, None, 0)) == len(data._take(labels, 1000, 0)) == 100


# --- augmentation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "augmentation",
    [
        Augmentation(flip=True),
        Augmentation(rotation=30),
        Augmentation(crop=0.5),
        Augmentation(color_jitter=0.5),
        Augmentation(flip=True, rotation=15, crop=0.8, color_jitter=0.2),
    ],
)
@pytest.mark.parametrize("grayscale", [False, True])
def test_augmentation_changes_training_images_and_never_validation_images(
    augmentation: Augmentation, grayscale: bool
) -> None:
    spec = DataSpec("digits", size=16, grayscale=grayscale, limit=40)
    plain, augmented = prepare(spec, 0), prepare(spec, 0, augmentation)
    assert augmented.preprocess == plain.preprocess
    assert _same_items(_items(augmented.val), _items(plain.val))
    changed = [not torch.equal(a[0], p[0]) for a, p in zip(_items(augmented.train), _items(plain.train), strict=True)]
    assert sum(changed) >= (15 if augmentation == Augmentation(flip=True) else 35)
    assert [a[1] for a in _items(augmented.train)] == [p[1] for p in _items(plain.train)]
    # the picture shown is the unaugmented one, and another epoch draws other changes
    assert np.array_equal(np.asarray(augmented.train.image(3)), np.asarray(plain.train.image(3)))
    epoch_1 = _items(augmented.train_for_epoch(1))
    assert sum(not torch.equal(a[0], b[0]) for a, b in zip(_items(augmented.train), epoch_1, strict=True)) >= 15


def test_flip_mirrors_about_half_the_images_exactly() -> None:
    spec = DataSpec("digits", size=16, grayscale=True, limit=60)
    plain, flipped = prepare(spec, 0), prepare(spec, 0, Augmentation(flip=True))
    mirrored = 0
    for (x, _), (y, _) in zip(_items(plain.train), _items(flipped.train), strict=True):
        assert torch.equal(y, x) or torch.equal(y, TF.hflip(x))
        mirrored += not torch.equal(y, x)
    assert 15 <= mirrored <= 45


def test_quarter_turns_rotate_by_multiples_of_90_degrees_exactly_and_change_with_the_epoch() -> None:
    spec = DataSpec("shapes", size=16, count=40, fresh=False)
    augmentation = Augmentation(quarter_turns=True)
    plain, turned = prepare(spec, 0), prepare(spec, 0, augmentation)
    turns = []
    for (x, label), (y, turned_label) in zip(_items(plain.train), _items(turned.train), strict=True):
        # the standardization sums in another order after a turn: equal up to float rounding
        (k,) = [k for k in range(4) if torch.allclose(y, torch.rot90(x, k, dims=(1, 2)), atol=1e-5)]
        turns.append(k)
        assert turned_label == label
    assert set(turns) == {0, 1, 2, 3}
    later = _items(turned.train_for_epoch(1))
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(_items(turned.train), later, strict=True))


@pytest.mark.parametrize(
    "augmentation",
    [None, Augmentation(flip=True), Augmentation(quarter_turns=True, flip=True), Augmentation(rotation=20, flip=True)],
)
@pytest.mark.parametrize("fresh", [False, True])
def test_a_batch_is_its_items_stacked(augmentation: Augmentation | None, fresh: bool) -> None:
    prepared = prepare(DataSpec("shapes", size=16, count=30, fresh=fresh), 0, augmentation)
    for epoch in (0, 1):
        dataset = prepared.train_for_epoch(epoch)
        for indices in ([4, 0, 29, 7, 4], [1, 2], list(range(30))):  # second round: from the pixel cache
            x, y = dataset.batch(indices)
            items = [dataset[i] for i in indices]
            assert x.shape == (len(indices), 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
            assert y.tolist() == [label for _, label in items]
            # one standardization over the batch sums in another order than one per image: equal up to rounding
            torch.testing.assert_close(x, torch.stack([item for item, _ in items]), rtol=0, atol=1e-5)
    assert prepared.train.cache is (None if fresh else prepared.train_for_epoch(1).cache)


def test_orientations_are_one_draw_per_epoch_and_the_same_in_any_order() -> None:
    spec = DataSpec("shapes", size=16, count=40, fresh=False)
    augmentation = Augmentation(quarter_turns=True, flip=True)
    first, again = prepare(spec, 0, augmentation).train, prepare(spec, 0, augmentation).train
    forwards = [first[i][0] for i in range(40)]
    backwards = [again[i][0] for i in reversed(range(40))][::-1]
    assert _same_items([(x, 0) for x in forwards], [(x, 0) for x in backwards])
    turns, mirrors = first._orientations
    later_turns, later_mirrors = first.for_epoch(1)._orientations
    assert set(turns) == {0, 1, 2, 3} and 5 <= mirrors.sum() <= 35
    assert not (np.array_equal(turns, later_turns) and np.array_equal(mirrors, later_mirrors))


def test_no_augmentation_is_the_same_as_none() -> None:
    spec = DataSpec("shapes", size=16, count=10)
    assert _same_items(_items(prepare(spec, 0, Augmentation()).train), _items(prepare(spec, 0).train))


def test_a_transfer_base_keeps_its_channels_and_normalization_at_the_runs_size() -> None:
    imagenet = Preprocess(resize=256, crop=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    prepared = prepare(DataSpec("digits", size=32, grayscale=True, limit=20), 0, base_preprocess=imagenet)
    assert prepared.preprocess == Preprocess(resize=32, crop=32, mean=imagenet.mean, std=imagenet.std)
    assert prepared.input_size == (3, 32, 32)
    assert torch.equal(prepared.val[0][0], prepared.preprocess(digits_split(0.2, 0).test_images[0])[0])
    lenet = _shipped_preprocess("lenet5-digits")
    prepared = prepare(DataSpec("shapes", size=32, count=10), 0, base_preprocess=lenet)
    assert prepared.preprocess == lenet and prepared.input_size == (1, 32, 32)


def _shipped_preprocess(name: str) -> Preprocess:
    return Preprocess.from_dict(json.loads((ASSETS_MODELS / f"{name}.json").read_text())["preprocess"])


# --- spec checks ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "seed", "message"),
    [
        (DataSpec("imagenet"), 0, "Unknown dataset kind 'imagenet'"),
        (DataSpec("shapes", size=8), 0, "Image size 8 is out of range: choose a size from 16"),
        (DataSpec("digits", size=2000), 0, "Image size 2000 is out of range"),
        (DataSpec("shapes", val_split=0.0), 0, "validation share"),
        (DataSpec("shapes", val_split=1.0), 0, "validation share"),
        (DataSpec("shapes", count=0), 0, "at least one image"),
        (DataSpec("shapes", limit=0), 0, "limit=0"),
        (DataSpec("shapes"), -1, "Seed -1 is negative"),
        (DataSpec("folder"), 0, "needs a path"),
    ],
)
def test_prepare_refuses_bad_specs(spec: DataSpec, seed: int, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        prepare(spec, seed)


# --- folders ----------------------------------------------------------------------------------------------------


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _folder_dataset(root: Path, sizes: dict[str, int], side: int = 12, seed: int = 0) -> dict[bytes, str]:
    """Class folders of random PNGs; returns each image's pixels (as bytes) → its class."""
    rng, written = np.random.default_rng(seed), {}
    for name, n in sizes.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            (root / name / f"{i:03d}.png").write_bytes(_png(pixels))
            written[pixels.tobytes()] = name
    return written


def test_folder_dataset_reads_every_image_with_its_class(tmp_path: Path) -> None:
    written = _folder_dataset(tmp_path / "set", {"dogs": 6, "cats": 9, "birds": 5})
    (tmp_path / "set" / "cats" / "notes.txt").write_text("not an image")
    (tmp_path / "set" / "cats" / ".hidden.png").write_bytes(b"junk")
    (tmp_path / "set" / ".git").mkdir()
    prepared = prepare(DataSpec("folder", path=str(tmp_path / "set"), size=12, val_split=0.34), seed=0)
    assert prepared.class_names == ("birds", "cats", "dogs")  # sorted folder names
    assert (len(prepared.train), len(prepared.val)) == (13, 7)
    assert prepared.counts == {"birds": 3, "cats": 6, "dogs": 4}
    seen = {}
    for dataset in (prepared.train, prepared.val):
        for i in range(len(dataset)):
            pixels = dataset.pixels(i).permute(1, 2, 0).numpy().tobytes()  # 12×12: no resampling
            seen[pixels] = prepared.class_names[dataset[i][1]]
    assert seen == written
    assert prepared.preprocess.mean is not None and not prepared.preprocess.invert_light_background


def test_folder_images_are_resized_as_the_model_preprocesses_them(tmp_path: Path) -> None:
    _folder_dataset(tmp_path / "set", {"a": 3, "b": 3}, side=40)
    prepared = prepare(DataSpec("folder", path=str(tmp_path / "set"), size=16, grayscale=True), seed=0)
    inputs = [x for dataset in (prepared.train, prepared.val) for x, _ in _items(dataset)]
    for path in sorted((tmp_path / "set").rglob("*.png")):
        x = prepared.preprocess(load_image(path))[0]
        assert x.shape == (1, 16, 16)
        assert sum(torch.equal(x, y) for y in inputs) == 1


def test_folder_with_one_class_or_missing_is_refused(tmp_path: Path) -> None:
    _folder_dataset(tmp_path / "one", {"only": 4})
    with pytest.raises(DatasetError, match=r"1 class folder\(s\) with images \(only\); training needs at least two"):
        prepare(DataSpec("folder", path=str(tmp_path / "one")), 0)
    with pytest.raises(DatasetError, match="is not a folder"):
        prepare(DataSpec("folder", path=str(tmp_path / "nowhere")), 0)


def test_a_damaged_image_in_a_folder_names_the_file(tmp_path: Path) -> None:
    _folder_dataset(tmp_path / "set", {"a": 3, "b": 3})
    (tmp_path / "set" / "b" / "000.png").write_bytes(b"this is not a PNG")
    # read while measuring the normalization (every image of a small set), else when the item is read
    with pytest.raises(DatasetError, match=r"b/000\.png: This file is not an image .* delete the file"):
        prepared = prepare(DataSpec("folder", path=str(tmp_path / "set"), size=12, val_split=0.5), 0)
        for dataset in (prepared.train, prepared.val):
            _items(dataset)


@pytest.mark.parametrize("processes", [1, 2])
def test_loading_all_images_at_once_fills_the_cache_as_reading_them_would(processes: int) -> None:
    spec = DataSpec("shapes", size=16, count=2400, fresh=False)
    loaded, lazy = prepare(spec, 0).train, prepare(spec, 0).train
    lazy.pixels(5)  # one read already: the rest is loaded around it
    loaded.pixels(5)
    reports = []
    loaded.load_all(processes, progress=lambda done, total: reports.append((done, total)))
    assert loaded.cache.filled.all()
    assert reports[-1] == (2399, 2399) and [d for d, _ in reports] == sorted(d for d, _ in reports)
    for i in (0, 5, 1234, 2399):
        assert torch.equal(loaded.cache.pixels[i], lazy.pixels(i))
        assert torch.equal(loaded.cache.statistics[i], lazy.cache.statistics[i])
    again = []
    loaded.load_all(processes, progress=lambda done, total: again.append(done))
    assert again == []  # nothing left to read
    fresh = prepare(DataSpec("shapes", size=16, count=2400), 0).train
    fresh.load_all(processes)  # drawn anew every epoch: no cache, nothing to load
    assert fresh.cache is None


def test_a_runs_training_and_validation_images_are_read_in_one_pool() -> None:
    spec = DataSpec("shapes", size=16, count=2400, val_split=0.25, fresh=False)
    prepared, lazy = prepare(spec, 0), prepare(spec, 0)
    assert len(prepared.val) < data._LOAD_IN_PROCESSES_FROM  # too few to start processes for on its own
    reports = []
    data.load_all([prepared.train, prepared.val], 2, progress=lambda done, total: reports.append((done, total)))
    total = len(prepared.train) + len(prepared.val)
    assert reports[-1] == (total, total) and len({t for _, t in reports}) == 1
    for loaded, reference in ((prepared.train, lazy.train), (prepared.val, lazy.val)):
        assert loaded.cache.filled.all()
        for i in (0, 7, len(loaded) - 1):
            assert torch.equal(loaded.cache.pixels[i], reference.pixels(i))
            assert torch.equal(loaded.cache.statistics[i], reference.cache.statistics[i])


def test_loading_in_processes_reports_a_damaged_file_and_can_be_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "_STATS_SAMPLE", 10)  # prepare reads 10 images to measure the normalization
    _folder_dataset(tmp_path / "set", {"a": 1100, "b": 1100}, side=4)
    prepared = prepare(DataSpec("folder", path=str(tmp_path / "set"), size=8, val_split=0.01), 0)
    (tmp_path / "set" / "b" / "999.png").write_bytes(b"this is not a PNG")  # damaged after the listing

    class Stop(Exception):
        pass

    def stop_after_first_chunk(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        prepared.train.load_all(2, progress=stop_after_first_chunk)
    assert 0 < prepared.train.cache.filled.sum() < len(prepared.train)
    with pytest.raises(DatasetError, match=r"b/999\.png: This file is not an image"):
        prepared.train.load_all(2)


# --- torchvision datasets, from files in torchvision's on-disk layout -------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    """An IDX file (MNIST's format): magic 0x0000 08 (uint8) ndim, big-endian dimensions, then the bytes."""
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _mnist_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)  # a dark border, like MNIST: light ink on black
    images[:, 4:24, 4:24] = rng.integers(0, 256, (n, 20, 20), dtype=np.uint8)
    return images, (np.arange(n) % 10).astype(np.uint8)


def _mnist_files(n: int, seed: int = 0) -> tuple[dict[str, bytes], np.ndarray, np.ndarray]:
    images, labels = _mnist_arrays(n, seed)
    test_images, test_labels = _mnist_arrays(10, seed + 1)
    files = {
        "train-images-idx3-ubyte": _idx(images),
        "train-labels-idx1-ubyte": _idx(labels),
        "t10k-images-idx3-ubyte": _idx(test_images),
        "t10k-labels-idx1-ubyte": _idx(test_labels),
    }
    return files, images, labels


def _write_mnist(raw: Path, files: dict[str, bytes], compressed: bool = False) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if compressed:
            (raw / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (raw / name).write_bytes(content)


def _read_back(prepared: data.Prepared) -> list[tuple[bytes, int]]:
    """Every (pixels, label) of the training and validation sets, in HWC byte order."""
    return sorted(
        (dataset.pixels(i).permute(1, 2, 0).numpy().tobytes(), dataset[i][1])
        for dataset in (prepared.train, prepared.val)
        for i in range(len(dataset))
    )


@pytest.mark.parametrize(("kind", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
@pytest.mark.parametrize("compressed", [False, True])
def test_mnist_layout_files_are_read_with_their_labels_and_pixels(
    tmp_path: Path, kind: str, folder: str, compressed: bool
) -> None:
    files, images, labels = _mnist_files(40)
    _write_mnist(tmp_path / folder / "raw", files, compressed)
    prepared = prepare(DataSpec(kind, path=str(tmp_path), size=28, grayscale=True, val_split=0.25), seed=0)
    assert prepared.class_names == tuple(getattr(torchvision.datasets, folder).classes)
    assert (len(prepared.train), len(prepared.val)) == (30, 10)
    assert prepared.counts == dict.fromkeys(prepared.class_names, 3)
    assert prepared.input_size == (1, 28, 28) and prepared.preprocess.invert_light_background
    assert _read_back(prepared) == sorted(
        (image.tobytes(), int(label)) for image, label in zip(images, labels, strict=True)
    )


def test_mnist_is_resized_and_coloured_per_spec(tmp_path: Path) -> None:
    files, images, _ = _mnist_files(20)
    _write_mnist(tmp_path / "MNIST" / "raw", files)
    prepared = prepare(DataSpec("mnist", path=str(tmp_path), size=32, grayscale=False, val_split=0.5), seed=0)
    assert prepared.input_size == (3, 32, 32)
    inputs = [x for dataset in (prepared.train, prepared.val) for x, _ in _items(dataset)]
    for image in images:
        x = prepared.preprocess(Image.fromarray(image, "L"))[0]
        assert x.shape == (3, 32, 32) and sum(torch.equal(x, y) for y in inputs) == 1


def _cifar_arrays(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8), [int(v) for v in rng.integers(0, 3, n)]


CIFAR_NAMES = ["airplane", "automobile", "bird"]


def _write_cifar(root: Path, per_batch: int = 4, protocol: int = 2) -> list[tuple[bytes, int]]:
    """CIFAR-10's python layout: five pickled training batches, a test batch and batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = []
    for b in range(1, 6):
        pixels, labels = _cifar_arrays(per_batch, b)
        batch = {"batch_label": f"training batch {b} of 5", "labels": labels, "data": pixels}
        (folder / f"data_batch_{b}").write_bytes(pickle.dumps(batch, protocol=protocol))
        hwc = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        written += [(image.tobytes(), label) for image, label in zip(hwc, labels, strict=True)]
    test_pixels, test_labels = _cifar_arrays(4, 0)
    (folder / "test_batch").write_bytes(pickle.dumps({"labels": test_labels, "data": test_pixels}, protocol=protocol))
    meta = {"label_names": CIFAR_NAMES, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return sorted(written)


@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL])
def test_cifar_batches_are_read_with_their_labels_and_pixels(tmp_path: Path, protocol: int) -> None:
    written = _write_cifar(tmp_path, protocol=protocol)
    prepared = prepare(DataSpec("cifar10", path=str(tmp_path), size=32, val_split=0.25), seed=0)
    assert prepared.class_names == tuple(CIFAR_NAMES)
    assert (len(prepared.train), len(prepared.val)) == (15, 5)
    assert prepared.input_size == (3, 32, 32) and len(prepared.preprocess.mean) == 3
    assert _read_back(prepared) == written


def test_cifar_archive_is_extracted_when_only_the_tarball_is_there(tmp_path: Path) -> None:
    written = _write_cifar(tmp_path / "staging")
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "staging" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    root = tmp_path / "root"
    root.mkdir()
    os.replace(tmp_path / "cifar-10-python.tar.gz", root / "cifar-10-python.tar.gz")
    prepared = prepare(DataSpec("cifar10", path=str(root), size=32), seed=0)
    assert _read_back(prepared) == written


class _Exploit:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch EXPLOITED",))


def test_a_cifar_batch_that_would_run_code_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps({"data": _Exploit()}, protocol=2))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=r"CIFAR-10 files in .* are damaged .*posix.system is not allowed"):
        prepare(DataSpec("cifar10", path=str(tmp_path), size=32), seed=0)
    assert not (tmp_path / "EXPLOITED").exists()


def test_damaged_mnist_files_are_reported(tmp_path: Path) -> None:
    files, _, _ = _mnist_files(20)
    files["train-images-idx3-ubyte"] = files["train-images-idx3-ubyte"][:100]
    _write_mnist(tmp_path / "MNIST" / "raw", files)
    with pytest.raises(DatasetError, match=r"MNIST files in .* are damaged"):
        prepare(DataSpec("mnist", path=str(tmp_path), size=28), seed=0)


def test_torchvision_datasets_default_to_the_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNN_EXPLORER_HOME", str(tmp_path / "home"))
    assert data.datasets_home() == tmp_path / "home" / "datasets"
    files, _, _ = _mnist_files(20)
    _write_mnist(tmp_path / "home" / "datasets" / "MNIST" / "raw", files)
    assert len(prepare(DataSpec("mnist", size=28, grayscale=True), seed=0).train) == 16


@pytest.mark.parametrize(
    ("kind", "where"),
    [
        ("mnist", r"Put the files train-images-idx3-ubyte.gz, .* in .*/MNIST/raw"),
        ("fashion_mnist", r"Put the files .* in .*/FashionMNIST/raw"),
        ("cifar10", r"Put cifar-10-python.tar.gz \(from https://www.cs.toronto.edu/.*\) or its extracted folder"),
    ],
)
def test_offline_says_where_to_put_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, where: str
) -> None:
    monkeypatch.setenv("CNN_EXPLORER_OFFLINE", "1")
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    with pytest.raises(
        DatasetUnavailable, match=rf"not downloaded yet and CNN_EXPLORER_OFFLINE is set\. {where}"
    ) as info:
        prepare(DataSpec(kind, path=str(tmp_path)), seed=0)
    assert str(tmp_path) in str(info.value)


def _no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError("tests never download")


class _Response(io.BytesIO):
    def __init__(self, content: bytes, announce: bool = True) -> None:
        super().__init__(content)
        self.headers = {"Content-Length": str(len(content))} if announce else {}


def _serve(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes], fail: set[str] = frozenset()) -> list[str]:
    """Replace urllib's urlopen with one serving ``files`` by URL; returns the URLs asked for."""
    asked = []

    def urlopen(url: str, timeout: float) -> _Response:
        asked.append(url)
        if url in fail or url not in files:
            raise urllib.error.URLError("no route to host")
        return _Response(files[url])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def _fake_mirrors(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> dict[str, bytes]:
    """Point torchvision's MNIST at two test mirrors with these files' md5s; returns URL → gz bytes."""
    import hashlib

    compressed = {f"{name}.gz": gzip.compress(content) for name, content in files.items()}
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://mirror-a/", "http://mirror-b/"])
    resources = [(name, hashlib.md5(content).hexdigest()) for name, content in compressed.items()]
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", resources)
    return {f"http://mirror-b/{name}": content for name, content in compressed.items()}


def test_mnist_downloads_with_progress_when_online(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNN_EXPLORER_OFFLINE", raising=False)
    files, images, labels = _mnist_files(20)
    served = _fake_mirrors(monkeypatch, files)
    asked = _serve(monkeypatch, served)  # mirror-a is down: mirror-b serves every file
    reports: list[tuple[int, int | None]] = []
    prepared = prepare(
        DataSpec("mnist", path=str(tmp_path), size=28, grayscale=True, val_split=0.5),
        seed=0,
        progress=lambda d, t: reports.append((d, t)),
    )
    assert _read_back(prepared) == sorted(
        (image.tobytes(), int(label)) for image, label in zip(images, labels, strict=True)
    )
    assert asked == [url for name in served for url in (name.replace("mirror-b", "mirror-a"), name)]
    dones = [done for done, _ in reports]
    assert dones == sorted(dones) and reports[-1] == (sum(map(len, served.values())),) * 2
    assert sorted(p.name for p in (tmp_path / "MNIST" / "raw").iterdir()) == sorted(
        [*files, *(f"{n}.gz" for n in files)]
    )


def test_a_failed_or_damaged_download_says_where_to_put_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CNN_EXPLORER_OFFLINE", raising=False)
    files, _, _ = _mnist_files(20)
    served = _fake_mirrors(monkeypatch, files)
    _serve(monkeypatch, {})
    with pytest.raises(
        DatasetUnavailable, match=r"MNIST could not be downloaded \(.*no internet connection.*\)\. Put the"
    ) as failed:
        prepare(DataSpec("mnist", path=str(tmp_path)), seed=0)
    assert "urlopen" not in str(failed.value) and "<" not in str(failed.value)  # the reason in words, as the zoo's
    damaged = {url: content[:-5] + b"xxxxx" for url, content in served.items()}
    _serve(monkeypatch, damaged)
    with pytest.raises(DatasetUnavailable, match=r"checksum mismatch"):
        prepare(DataSpec("mnist", path=str(tmp_path)), seed=0)
    assert not list((tmp_path / "MNIST" / "raw").iterdir())  # no partial download left behind


# --- preview and imbalance --------------------------------------------------------------------------------------


def test_preview_shows_training_images_of_each_class_as_the_model_sees_them() -> None:
    prepared = prepare(DataSpec("shapes", size=24, count=50), seed=0, augmentation=Augmentation(rotation=40))
    grid = preview(prepared, per_class=3)
    assert [name for name, _ in grid] == list(SHAPE_CLASSES)
    reference = SyntheticShapes(50, seed=1000, size=24)  # a run draws its training shapes from 1000 + its seed
    for label, (_, images) in enumerate(grid):
        assert len(images) == 3 and all(image.size == (24, 24) for image in images)
        for k, image in enumerate(images):  # item label + 10 k, unaugmented
            assert np.array_equal(np.asarray(image), np.asarray(reference[label + 10 * k][0]))


def test_preview_of_grey_data_is_grey_and_short_classes_give_fewer_images() -> None:
    prepared = prepare(DataSpec("digits", size=8, grayscale=True, limit=20), seed=0)
    grid = preview(prepared, per_class=5)
    assert all(image.mode == "L" for _, images in grid for image in images)
    assert [len(images) for _, images in grid] == [2] * 10


def test_imbalance_warns_from_twice_as_many() -> None:
    assert imbalance({"cats": 100, "dogs": 51}) is None
    warning = imbalance({"cats": 100, "dogs": 50, "birds": 70})
    assert warning is not None and "'cats' has 100" in warning and "'dogs' only 50" in warning and "2.0×" in warning
    assert "no training images" in imbalance({"cats": 10, "dogs": 0})
    assert imbalance({"cats": 10}) is None and imbalance({}) is None


# --- uploaded archives ------------------------------------------------------------------------------------------

PNG = _png(np.full((6, 6, 3), 200, dtype=np.uint8))


def _zip(entries: dict[str, bytes], **infos: zipfile.ZipInfo) -> bytes:
    """A zip of ``name → content`` entries, plus entries with hand-made headers."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
        for content_name, info in infos.items():
            archive.writestr(info, content_name.encode())
    return buffer.getvalue()


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_extract_zip_unwraps_one_top_folder_and_skips_what_is_not_an_image(tmp_path: Path) -> None:
    archive = _zip(
        {
            "pets/": b"",
            "pets/cats/a.png": PNG,
            "pets/cats/b.PNG": PNG,
            "pets/cats/kittens/c.png": PNG,  # nested below a class folder: still that class
            "pets/dogs/d.png": PNG,
            "pets/dogs/notes.txt": b"skipped: not an image name",
            "pets/dogs/fake.jpg": b"skipped: named like an image, is not one",
            "pets/loose.png": PNG,  # skipped: in no class folder
            "pets/.DS_Store": b"skipped: hidden",
            "__MACOSX/pets/cats/._a.png": b"skipped: macOS metadata",
        }
    )
    report = extract_zip(archive, tmp_path / "data" / "pets")
    assert report.folder == tmp_path / "data" / "pets"
    assert report.classes == ("cats", "dogs")
    assert report.counts == {"cats": 3, "dogs": 1}
    assert report.skipped == 5
    assert _listing(report.folder) == ["cats", "cats/a.png", "cats/b.PNG", "cats/kittens", "cats/kittens/c.png",
                                       "dogs", "dogs/d.png"]  # fmt: skip
    assert (report.folder / "cats" / "a.png").read_bytes() == PNG
    assert _listing(tmp_path / "data") == ["pets", *(f"pets/{p}" for p in _listing(report.folder))]  # no leftovers


def test_extracted_folder_is_a_dataset(tmp_path: Path) -> None:
    images = {f"{c}/{i}.png": _png(np.full((8, 8, 3), 40 * i, dtype=np.uint8)) for c in "ab" for i in range(5)}
    report = extract_zip(_zip(images), tmp_path / "set")  # no wrapper folder
    prepared = prepare(DataSpec("folder", path=str(report.folder), size=8), seed=0)
    assert prepared.class_names == report.classes == ("a", "b")
    assert sum(prepared.counts.values()) + len(prepared.val) == 10


def test_extract_zip_reads_paths_and_file_objects(tmp_path: Path) -> None:
    archive = _zip({"a/1.png": PNG, "b/1.png": PNG})
    (tmp_path / "upload.zip").write_bytes(archive)
    assert extract_zip(tmp_path / "upload.zip", tmp_path / "x").counts == {"a": 1, "b": 1}
    assert extract_zip(io.BytesIO(archive), tmp_path / "y").counts == {"a": 1, "b": 1}


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix, where the mode bits below mean something
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


# Where zip headers keep an entry's flags and uncompressed size: (format, offset) in the local header and in the
# central directory record; the name follows at offset 30 and 46, its length at 26 and 28.
_HEADERS = {b"PK\x03\x04": {"flags": ("<H", 6), "size": ("<I", 22), "name": 30, "name_length": 26},
            b"PK\x01\x02": {"flags": ("<H", 8), "size": ("<I", 24), "name": 46, "name_length": 28}}  # fmt: skip


def _forged(archive: bytes, name: str, field: str, value: int) -> bytes:
    """``archive`` with ``field`` of entry ``name`` set to ``value`` in both of its headers."""
    forged = bytearray(archive)
    for signature, layout in _HEADERS.items():
        start = 0
        while (start := forged.find(signature, start)) != -1:
            length = struct.unpack_from("<H", forged, start + layout["name_length"])[0]
            if forged[start + layout["name"] : start + layout["name"] + length] == name.encode():
                fmt, offset = layout[field]
                struct.pack_into(fmt, forged, start + offset, value)
            start += 4
    return bytes(forged)


def _lying_bomb(real_size: int, declared: int) -> bytes:
    """A zip whose b/bomb.png decompresses to ``real_size`` zero bytes while its headers declare ``declared``."""
    honest = _zip({"a/ok.png": PNG, "b/ok.png": PNG, "b/bomb.png": bytes(real_size)})
    return _forged(honest, "b/bomb.png", "size", declared)


def _encrypted() -> bytes:
    return _forged(_zip({"a/1.png": PNG, "b/1.png": PNG}), "b/1.png", "flags", 0x1)


REFUSALS = {
    "parent": (lambda: _zip({"a/1.png": PNG, "b/1.png": PNG, "../evil.png": PNG}), {}, r"leading outside it"),
    "nested parent": (lambda: _zip({"a/1.png": PNG, "b/../../evil.png": PNG}), {}, r"leading outside it"),
    "absolute": (lambda: _zip({"a/1.png": PNG, "b/1.png": PNG, "/abs.png": PNG}), {}, r"an absolute path"),
    "drive": (lambda: _zip({"a/1.png": PNG, "C:/evil.png": PNG}), {}, r"an absolute path"),
    "backslash": (lambda: _zip({"a/1.png": PNG, "b\\..\\..\\evil.png": PNG}), {}, r"leading outside it"),
    "symlink": (lambda: _zip({"a/1.png": PNG, "b/1.png": PNG}, **{"/etc/passwd": _symlink("b/link.png")}), {}, "link"),
    "encrypted": (_encrypted, {}, "password-protected"),
    "one class": (lambda: _zip({"cats/1.png": PNG, "cats/2.png": PNG}), {}, r"one class folder with images \(cats\)"),
    "no class": (lambda: _zip({"1.png": PNG, "notes.txt": b"x"}), {}, "no class folder with images"),
    "only fakes": (lambda: _zip({"a/1.png": PNG, "b/1.png": b"not a png"}), {}, r"one class folder with images \(a\)"),
    "too many files": (
        lambda: _zip({f"{c}/{i}.png": PNG for c in "ab" for i in range(2)}),
        {"max_files": 3},
        r"holds 4 images; at most 3 are accepted",
    ),
    "too big declared": (
        lambda: _zip({"a/1.png": PNG, "b/big.png": bytes(3 * 2**20)}),
        {"max_bytes": 2**20},
        r"take 3 MB once extracted; at most 1 MB",
    ),
    "lying bomb": (lambda: _lying_bomb(20 * 2**20, 1000), {"max_bytes": 2**20}, r"damaged or its sizes are forged"),
    "not a zip": (lambda: b"%PDF-1.4 not a zip at all", {}, "not a zip archive"),
    "empty": (lambda: b"", {}, "not a zip archive"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_unsafe_or_unusable_archives_are_refused_and_leave_nothing_behind(tmp_path: Path, case: str) -> None:
    make, limits, message = REFUSALS[case]
    parent = tmp_path / "datasets"
    parent.mkdir()
    (parent / "earlier").mkdir()  # an existing dataset stays untouched
    with pytest.raises(DatasetError, match=message):
        extract_zip(make(), parent / "new", **limits)
    assert _listing(tmp_path) == ["datasets", "datasets/earlier"]  # no target, no staging folder, nothing outside
    assert not (tmp_path / "evil.png").exists() and not Path("/abs.png").exists()


def test_the_bomb_really_lies_and_an_honest_one_is_refused_before_extraction(tmp_path: Path) -> None:
    bomb = zipfile.ZipFile(io.BytesIO(_lying_bomb(20 * 2**20, 1000)))
    assert bomb.getinfo("b/bomb.png").file_size == 1000 and bomb.getinfo("b/bomb.png").compress_size < 2**20
    honest = _zip({"a/1.png": PNG, "b/big.png": bytes(20 * 2**20)})
    assert len(honest) < 2**20  # small upload, 20 MB inside
    with pytest.raises(DatasetError, match="20 MB once extracted"):
        extract_zip(honest, tmp_path / "x", max_bytes=2**20)


def test_an_existing_target_is_refused_but_an_empty_one_is_used(tmp_path: Path) -> None:
    archive = _zip({"a/1.png": PNG, "b/1.png": PNG})
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="already exists"):
        extract_zip(archive, tmp_path / "full")
    assert _listing(tmp_path / "full") == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    assert extract_zip(archive, tmp_path / "empty").classes == ("a", "b")


def test_a_repeated_name_keeps_the_first_file(tmp_path: Path) -> None:
    other = _png(np.zeros((6, 6, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a/1.png", PNG)
        archive.writestr("a/1.png", other)
        archive.writestr("b/1.png", PNG)
    report = extract_zip(buffer.getvalue(), tmp_path / "x")
    assert report.counts == {"a": 1, "b": 1} and report.skipped == 1
    assert (tmp_path / "x" / "a" / "1.png").read_bytes() == PNG


def test_bytes_are_counted_while_extracting(tmp_path: Path) -> None:
    # CPython's zipfile already stops at the declared size (then fails the CRC); the running count is the guard
    # that does not depend on it, checked here below the declared-size check.
    archive = zipfile.ZipFile(io.BytesIO(_zip({"a/1.png": PNG, "b/big.png": bytes(3 * 2**20)})))
    entries, _ = data._plan_extraction(archive.infolist(), max_files=10, max_bytes=2**30)
    (tmp_path / "staging").mkdir()
    with pytest.raises(DatasetError, match=r"once extracted; at most 1 MB"):
        data._extract(archive, entries, tmp_path / "staging", max_bytes=2**20)


# --- datasets travel to DataLoader workers ----------------------------------------------------------------------


def test_prepared_datasets_pickle_and_batch(tmp_path: Path) -> None:
    _folder_dataset(tmp_path / "set", {"a": 4, "b": 4}, side=20)
    for spec in (DataSpec("shapes", size=16, count=12), DataSpec("folder", path=str(tmp_path / "set"), size=16)):
        prepared = prepare(spec, 0, Augmentation(flip=True, rotation=10))
        for dataset in (prepared.train, prepared.val, prepared.train_for_epoch(3)):
            copy = pickle.loads(pickle.dumps(dataset))  # what a spawned worker receives
            assert _same_items(_items(copy), _items(dataset))
        inputs, labels = next(iter(torch.utils.data.DataLoader(prepared.train, batch_size=4)))
        assert inputs.shape == (4, 3, 16, 16) and inputs.dtype == torch.float32 and labels.dtype == torch.int64
