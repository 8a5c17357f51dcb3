"""data.augment: augmentation changes training images only; flips, quarter turns and batches are exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from data_samples import items as _items
from data_samples import same_items as _same_items

from cnn_explorer.data import (
    prepare,
)
from cnn_explorer.runspec import Augmentation, DataSpec

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
