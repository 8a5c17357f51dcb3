"""data.prepared: a run's shapes and digits prepared as documented, a transfer base's preprocessing, the spec
checks, preview and imbalance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from data_samples import items as _items
from data_samples import same_items as _same_items
from data_samples import shipped_preprocess as _shipped_preprocess

from cnn_explorer.data import (
    SHAPE_CLASSES,
    DatasetError,
    SyntheticShapes,
    digits_split,
    imbalance,
    prepare,
    preview,
)
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.runspec import Augmentation, DataSpec
from cnn_explorer.sources.builtin import ASSETS_MODELS

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


def test_a_transfer_base_keeps_its_channels_and_normalization_at_the_runs_size() -> None:
    imagenet = Preprocess(resize=256, crop=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    prepared = prepare(DataSpec("digits", size=32, grayscale=True, limit=20), 0, base_preprocess=imagenet)
    assert prepared.preprocess == Preprocess(resize=32, crop=32, mean=imagenet.mean, std=imagenet.std)
    assert prepared.input_size == (3, 32, 32)
    assert torch.equal(prepared.val[0][0], prepared.preprocess(digits_split(0.2, 0).test_images[0])[0])
    lenet = _shipped_preprocess("lenet5-digits")
    prepared = prepare(DataSpec("shapes", size=32, count=10), 0, base_preprocess=lenet)
    assert prepared.preprocess == lenet and prepared.input_size == (1, 32, 32)


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
