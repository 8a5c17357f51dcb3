"""data.splits: stratified splits hold out every class's share and keep every class; limits are proportional."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_explorer.data.splits import _stratified_split, _take

# --- stratified splits ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("val_split", [0.1, 0.25, 0.5])
def test_stratified_split_holds_out_the_share_of_every_class(val_split: float) -> None:
    labels = np.repeat(np.arange(4), [40, 20, 10, 7])
    train, val = _stratified_split(labels, val_split, seed=0)
    assert sorted([*train, *val]) == list(range(len(labels))) and not set(train) & set(val)
    assert len(val) == round(len(labels) * val_split)
    held, sizes = np.bincount(labels[val], minlength=4), np.bincount(labels)
    assert np.abs(held - val_split * sizes).max() <= 1
    again, other = _stratified_split(labels, val_split, seed=0), _stratified_split(labels, val_split, 1)
    assert np.array_equal(again[1], val) and not np.array_equal(other[1], val)


def test_stratified_split_keeps_every_class_in_training() -> None:
    labels = np.array([0, 0, 0, 0, 1, 2, 2])
    train, _ = _stratified_split(labels, 0.5, seed=0)
    assert set(labels[train]) == {0, 1, 2}


def test_take_is_exact_and_proportional() -> None:
    labels = np.repeat(np.arange(3), [60, 30, 10])
    chosen = _take(labels, 20, seed=0)
    assert len(chosen) == 20 and np.bincount(labels[chosen]).tolist() == [12, 6, 2]
    assert len(_take(labels, None, 0)) == len(_take(labels, 1000, 0)) == 100
