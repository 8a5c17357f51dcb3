"""data.kinds: every training dataset kind is registered with a loader."""

from __future__ import annotations

from cnn_explorer.data import (
    TRAINING_DATASETS,
)
from cnn_explorer.runspec import DATASET_KINDS


def test_every_dataset_kind_is_registered() -> None:
    assert tuple(TRAINING_DATASETS) == DATASET_KINDS
    assert all(kind.key == key and kind.load is not None for key, kind in TRAINING_DATASETS.items())
