"""Splits: stratified, seeded, exact in total (largest-remainder apportionment across classes).

A kind's loader returns a :class:`_Split`; :func:`_split_pool` holds out a validation share of every class of a
pool of images (a folder, a torchvision set) and caps the training images at the spec's limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cnn_explorer.data.errors import DatasetError
from cnn_explorer.data.sources import _Images, _Subset
from cnn_explorer.runspec import DataSpec


@dataclass(frozen=True, eq=False)
class _Split:
    """What a dataset kind's loader returns: training and validation images with labels, before preprocessing."""

    train: _Images
    train_labels: np.ndarray
    val: _Images
    val_labels: np.ndarray
    classes: tuple[str, ...]


def _apportion(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` across classes in proportion to ``sizes``, each share an integer, the shares summing up."""
    quotas = sizes * (total / max(int(sizes.sum()), 1))
    shares = np.floor(quotas).astype(np.int64)
    remainder = total - int(shares.sum())
    shares[np.argsort(-(quotas - shares), kind="stable")[:remainder]] += 1
    return np.minimum(shares, sizes)


def _stratified_split(labels: np.ndarray, val_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices (sorted): ``val_split`` of every class held out, every class kept in training."""
    rng = np.random.default_rng(seed)
    sizes = np.bincount(labels)
    held = np.minimum(_apportion(sizes, round(len(labels) * val_split)), np.maximum(sizes - 1, 0))
    train, val = [], []
    for label, n_val in enumerate(held):
        members = rng.permutation(np.flatnonzero(labels == label))
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _take(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Positions of at most ``limit`` items, classes in proportion (all positions when no limit applies)."""
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng([seed, 1])
    shares = _apportion(np.bincount(labels), limit)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:n] for c, n in enumerate(shares)]))


def _split_pool(images: _Images, labels: np.ndarray, classes: Sequence[str], spec: DataSpec, seed: int) -> _Split:
    train, val = _stratified_split(labels, spec.val_split, seed)
    if len(val) == 0 or len(train) == 0:
        raise DatasetError(
            f"{len(labels)} images are too few to hold out {spec.val_split:.0%} for validation: add images to "
            "every class (a few per class at least)."
        )
    train = train[_take(labels[train], spec.limit, seed)]
    return _Split(_Subset(images, train), labels[train], _Subset(images, val), labels[val], tuple(classes))
