"""Tests for cnn_explorer.digits: every source is deterministic per seed and labels what it draws, the augmentations
do what hand-worked cases say, the mixed training set holds out what it must, and accuracy per source is counted
exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnn_explorer import digits
from cnn_explorer.data import DIGIT_CLASSES, digits_split, prepare
from cnn_explorer.digits import (
    HELD_OUT_SOURCE,
    SOURCES,
    TRAINING_SOURCES,
    accuracy_per_source,
    elastic,
    mixed_image,
    mixed_label,
    place,
    source_images,
    thickness,
)
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.runspec import DataSpec

AVAILABLE = [key for key, source in SOURCES.items() if source.available()]


@pytest.mark.parametrize("key", AVAILABLE)
def test_each_source_is_deterministic_for_a_seed_and_cycles_the_labels(key: str) -> None:
    images, labels = source_images(key, 12, seed=3)
    again, _ = source_images(key, 12, seed=3)
    other, _ = source_images(key, 12, seed=4)
    assert labels.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1] and labels.dtype == np.int64
    assert all(img.mode == "L" and min(img.size) >= 28 and img.width == img.height for img in images)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, again, strict=True))
    assert not all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, other, strict=True))


@pytest.mark.parametrize("key", AVAILABLE)
def test_each_source_draws_ink_that_contrasts_with_its_paper(key: str) -> None:
    for img in source_images(key, 10, seed=0)[0]:
        pixels = np.asarray(img, dtype=int)
        # pens are 190–255 on papers of 0–39; a scan's blurred ink may not reach the pen's full strength
        assert pixels.max() - pixels.min() >= 100


def test_the_held_out_source_is_never_a_training_source() -> None:
    assert HELD_OUT_SOURCE in SOURCES and HELD_OUT_SOURCE not in TRAINING_SOURCES
    assert "handwritten_heldout" not in TRAINING_SOURCES


def test_the_handwriting_pools_are_digits_split_parts() -> None:
    split = digits_split()
    train = digits._pool_by_label("train", 0.2, 0)
    test = digits._pool_by_label("test", 0.2, 0)
    assert [len(p) for p in train] == np.bincount(split.train_labels).tolist()
    assert [len(p) for p in test] == np.bincount(split.test_labels).tolist()
    first = next(i for i, label in enumerate(split.test_labels) if label == 0)
    assert np.array_equal(test[0][0], np.asarray(split.test_images[first]))


def test_thickness_dilates_and_erodes_by_whole_pixels() -> None:
    dot = np.zeros((7, 7), dtype=np.uint8)
    dot[3, 3] = 200
    thick = thickness(dot, 1)
    expected = np.zeros((7, 7), dtype=np.uint8)
    expected[2:5, 2:5] = 200
    assert np.array_equal(thick, expected)
    assert np.array_equal(thickness(dot, 2)[1:6, 1:6], np.full((5, 5), 200)) and thickness(dot, 2)[0].max() == 0
    assert np.array_equal(thickness(expected, -1), dot)
    assert np.array_equal(thickness(dot, 0), dot) and thickness(dot, 0) is not dot


def test_elastic_with_no_displacement_is_the_identity_and_moves_at_most_alpha() -> None:
    rng = np.random.default_rng(0)
    ink = rng.integers(0, 256, (20, 20)).astype(np.float32)
    assert np.array_equal(elastic(ink, 0.0, 4.0, np.random.default_rng(1)), ink)
    # One bright pixel in the middle, everything else dark: after the distortion its ink is spread over pixels
    # within alpha (plus one for bilinear sampling) of where it was.
    dot = np.zeros((31, 31), dtype=np.float32)
    dot[15, 15] = 255
    moved = elastic(dot, 2.0, 4.0, np.random.default_rng(2))
    rows, cols = np.nonzero(moved > 0)
    assert len(rows) > 0 and np.abs(rows - 15).max() <= 3 and np.abs(cols - 15).max() <= 3
    assert np.array_equal(moved, elastic(dot, 2.0, 4.0, np.random.default_rng(2)))


def test_place_puts_the_glyph_where_asked_in_either_polarity() -> None:
    ink = np.full((2, 2), 255, dtype=np.uint8)
    light = np.asarray(place(ink, 10, 2, (5.0, 5.0), 0.0, light_ink=True, paper=0, pen=255))
    expected = np.zeros((10, 10), dtype=np.uint8)
    expected[4:6, 4:6] = 255
    assert np.array_equal(light, expected)
    dark = np.asarray(place(ink, 10, 2, (5.0, 5.0), 0.0, light_ink=False, paper=20, pen=200))
    assert np.array_equal(dark, np.where(expected > 0, 255 - 200, 255 - 20))
    # Scaled up: a 2×2 glyph 4 pixels high covers a 4×4 block centred where asked.
    big = np.asarray(place(ink, 10, 4, (3.0, 6.0), 0.0, light_ink=True))
    assert np.array_equal(np.argwhere(big == 255).min(axis=0), [4, 1])
    assert np.array_equal(np.argwhere(big == 255).max(axis=0), [7, 4])


def test_mixed_images_take_turns_between_the_training_sources() -> None:
    assert [mixed_label(i) for i in range(7)] == [0, 0, 0, 1, 1, 1, 2]
    for index in range(6):
        key = TRAINING_SOURCES[index % 3]
        rng = np.random.default_rng([digits._STREAMS[key], 5, index])
        if key == "handwritten":
            expected = digits._handwritten(rng, mixed_label(index), "train")
        else:
            expected = SOURCES[key].draw(rng, mixed_label(index))
        assert np.array_equal(np.asarray(mixed_image(index, 5)), np.asarray(expected))


def test_prepared_mixed_digits_train_on_the_scans_and_drawn_digits_and_validate_on_the_held_out_scans() -> None:
    spec = DataSpec("digits_mixed", size=32, grayscale=True, count=30, fresh=False)
    prepared = prepare(spec, seed=0)
    split = digits_split(0.2, 0)
    assert len(prepared.train) == 1437 + 30 and len(prepared.val) == 360
    assert prepared.class_names == DIGIT_CLASSES and prepared.preprocess.fit_ink
    assert prepared.train.labels[:1437].tolist() == split.train_labels.tolist()
    assert prepared.train.labels[1437:].tolist() == [mixed_label(i) for i in range(30)]
    assert prepared.val.labels.tolist() == split.test_labels.tolist()
    drawn = mixed_image(7, 1000)  # training draws with seed 1000 + the run's seed
    assert torch.equal(prepared.train.pixels(1437 + 7), prepared.preprocess.geometry(drawn))
    assert prepared.train_for_epoch(3).pixels(1437 + 7).equal(prepared.train.pixels(1437 + 7))  # drawn once


def test_fresh_mixed_digits_are_drawn_again_every_epoch() -> None:
    spec = DataSpec("digits_mixed", size=16, grayscale=True, count=6, fresh=True, limit=4)
    prepared = prepare(spec, seed=0)
    assert len(prepared.train) == 1437 + 4
    later = prepared.train_for_epoch(1)
    assert torch.equal(later.pixels(0), prepared.train.pixels(0))  # the scans stay
    assert torch.equal(later.pixels(1437), prepared.preprocess.geometry(mixed_image(0, 1001)))


class _Constant(nn.Module):
    """Always says ``label``."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((len(x),), self.label), 10).float()


class _Oracle(nn.Module):
    """Reads the digit from the top-left pixel that the test's preprocessing writes there."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(x[:, 0, 0, 0].round().long(), 10).float()


def test_accuracy_per_source_counts_exactly() -> None:
    preprocess = Preprocess(resize=8, crop=8, grayscale=True)
    results = accuracy_per_source(_Constant(3), preprocess, n=20, keys=["strokes", "fonts"])
    assert [(r.key, r.accuracy, r.images, r.held_out) for r in results] == [
        ("strokes", 0.1, 20, False),
        ("fonts", 0.1, 20, False),
    ]
    # An oracle fed the true label is right on every image, a contrarian on none.
    labels = iter(np.arange(20) % 10)

    def tell(img: Image.Image) -> torch.Tensor:
        return torch.full((1, 1, 2, 2), float(next(labels)))

    assert accuracy_per_source(_Oracle(), tell, n=20, keys=["strokes"])[0].accuracy == 1.0
    labels = iter((np.arange(20) + 1) % 10)
    assert accuracy_per_source(_Oracle(), tell, n=20, keys=["strokes"])[0].accuracy == 0.0


def test_a_source_missing_here_is_reported_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digits, "_fonts", lambda family: ())
    result = accuracy_per_source(_Constant(0), Preprocess(8, 8, grayscale=True), n=10, keys=[HELD_OUT_SOURCE])[0]
    assert (result.accuracy, result.images, result.held_out) == (None, 0, True)
    with pytest.raises(RuntimeError, match="needs fonts this machine does not have"):
        source_images(HELD_OUT_SOURCE, 1)
