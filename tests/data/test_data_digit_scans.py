"""data.digit_scans: the digits are scikit-learn's, split stratified and deterministic per seed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import load_digits

from cnn_explorer.data import (
    DIGIT_CLASSES,
    digit_images,
    digits_split,
)

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
