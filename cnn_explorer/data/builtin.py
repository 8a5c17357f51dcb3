"""The built-in kinds' loaders: shapes drawn from the run's seed, the digit scans, and the mixed digits.

Each loader turns a :class:`~cnn_explorer.runspec.DataSpec` into a :class:`~cnn_explorer.data.splits._Split`; the
registry (:mod:`~cnn_explorer.data.kinds`) names them.
"""

from __future__ import annotations

import numpy as np

from cnn_explorer import digits
from cnn_explorer.data.digit_scans import DIGIT_CLASSES, digits_split
from cnn_explorer.data.shapes import SHAPE_CLASSES
from cnn_explorer.data.sources import _Concat, _MixedDigits, _Pictures, _Shapes
from cnn_explorer.data.splits import _Split, _take
from cnn_explorer.progress import ByteProgress
from cnn_explorer.runspec import DataSpec

# A run's shapes: training draws with 1000 + seed + epoch, validation with a million + seed. Seeds below 1000 stay
# free for held-out sets and samples (the shipped tinyvgg-shapes is tested on seed 1), so no run trains on them.
_SHAPES_TRAIN_SEED_OFFSET = 1000
_SHAPES_VAL_SEED_OFFSET = 1_000_000


def _load_shapes(spec: DataSpec, seed: int, progress: ByteProgress | None) -> _Split:
    n = spec.count if spec.limit is None else min(spec.count, spec.limit)
    n_val = max(1, round(spec.count * spec.val_split))
    classes = len(SHAPE_CLASSES)
    styles = {"varied": spec.varied, "sketched": spec.sketched, "photographed": spec.photographed}
    return _Split(
        train=_Shapes(n, _SHAPES_TRAIN_SEED_OFFSET + seed, spec.size, fresh=spec.fresh, **styles),
        train_labels=np.arange(n) % classes,
        val=_Shapes(n_val, seed + _SHAPES_VAL_SEED_OFFSET, spec.size, **styles),
        val_labels=np.arange(n_val) % classes,
        classes=SHAPE_CLASSES,
    )


def _load_digits(spec: DataSpec, seed: int, progress: ByteProgress | None) -> _Split:
    # digits_split, as the shipped lenet5-digits: seed 0 and a 0.2 share hold out exactly its held-out test set
    split = digits_split(spec.val_split, seed)
    keep = _take(split.train_labels, spec.limit, seed)
    return _Split(
        train=_Pictures([split.train_images[i] for i in keep]),
        train_labels=split.train_labels[keep],
        val=_Pictures(split.test_images),
        val_labels=split.test_labels,
        classes=DIGIT_CLASSES,
    )


def _load_digits_mixed(spec: DataSpec, seed: int, progress: ByteProgress | None) -> _Split:
    # The scans of digits_split as they are, then spec.count digits drawn from the training sources; validation is
    # the held-out scans, as for "digits" (so the shipped model's held-out set is never trained on).
    split = digits_split(spec.val_split, seed)
    n = spec.count if spec.limit is None else min(spec.count, spec.limit)
    drawn = _MixedDigits(n, _SHAPES_TRAIN_SEED_OFFSET + seed, spec.val_split, seed, fresh=spec.fresh)
    return _Split(
        train=_Concat(_Pictures(split.train_images), drawn),
        train_labels=np.concatenate([split.train_labels, [digits.mixed_label(i) for i in range(n)]]).astype(np.int64),
        val=_Pictures(split.test_images),
        val_labels=split.test_labels,
        classes=DIGIT_CLASSES,
    )
