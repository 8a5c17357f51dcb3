"""scikit-learn's 1797 handwritten digit scans (8×8) as images, and their seeded train/test split.

They train the ``lenet5-digits`` model. The scans themselves and the split's indices live in :mod:`cnn_explorer.digits`
(beside the digits drawn from other sources); this module turns them into PIL images and a :class:`DigitsSplit`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from cnn_explorer import digits

__all__ = ["DIGIT_CLASSES", "DigitsSplit", "digit_images", "digits_split"]

# --- Handwritten digits -----------------------------------------------------------------------------------------

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
"""The digit class names, in label order."""


def digit_images() -> tuple[list[Image.Image], np.ndarray]:
    """Every handwritten digit from scikit-learn's bundled set (1797 real samples, no download).

    Returns:
        The images, each 8×8 mode ``"L"`` with ink bright on black (pixel = round(value × 255 / 16)), and their
        labels (the digit, 0–9) as an int64 array.
    """
    pixels, labels = digits.scans()
    return [Image.fromarray(p, "L") for p in pixels], labels.copy()


@dataclass(frozen=True, eq=False)
class DigitsSplit:
    """A train/test split of the digits.

    Attributes:
        train_images: the training images, 8×8 mode ``"L"``.
        train_labels: their labels.
        test_images: the held-out images.
        test_labels: their labels.
        train_indices: where each training image sits in ``digit_images()``.
        test_indices: where each held-out image sits in ``digit_images()``.
    """

    train_images: tuple[Image.Image, ...]
    train_labels: np.ndarray
    test_images: tuple[Image.Image, ...]
    test_labels: np.ndarray
    train_indices: np.ndarray
    test_indices: np.ndarray


def digits_split(test_fraction: float = 0.2, seed: int = 0) -> DigitsSplit:
    """Split the digits into train and test sets, stratified by class and deterministic for a seed.

    Args:
        test_fraction: the share of samples held out, strictly between 0 and 1.
        seed: fixes which samples are held out.

    Returns:
        The split.

    Raises:
        ValueError: ``test_fraction`` is not strictly between 0 and 1.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}.")
    images, labels = digit_images()
    train, test = digits.split_indices(test_fraction, seed)
    return DigitsSplit(
        train_images=tuple(images[i] for i in train),
        train_labels=labels[train],
        test_images=tuple(images[i] for i in test),
        test_labels=labels[test],
        train_indices=train,
        test_indices=test,
    )
