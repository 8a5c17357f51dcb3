"""A training run's data: :func:`prepare` loads, splits and preprocesses any kind; :func:`preview` and
:func:`imbalance` describe it for the training page.

The kind comes from the registry (:mod:`~cnn_explorer.data.kinds`); the images become
:class:`~cnn_explorer.data.labelled.LabelledImages`, preprocessed exactly as the trained model will preprocess a
user's image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from cnn_explorer.data.errors import DatasetError
from cnn_explorer.data.kinds import TRAINING_DATASETS, DatasetKind
from cnn_explorer.data.labelled import LabelledImages, _PixelCache
from cnn_explorer.data.shapes import _MIN_SIZE
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.progress import ByteProgress
from cnn_explorer.runspec import Augmentation, DataSpec

__all__ = ["Prepared", "imbalance", "prepare", "preview"]

_STATS_SAMPLE = 2000  # images the normalization statistics are measured on (all of them when fewer)
_SIZE_RANGE = (8, 512)


@dataclass(frozen=True, eq=False)
class Prepared:
    """A run's data, ready to train on.

    Attributes:
        train: The training set of epoch 0 (``train_for_epoch(0)``).
        val: The validation set: never augmented, the same images every epoch.
        class_names: The class names in label order.
        input_size: ``(C, H, W)`` of one input.
        preprocess: What a model trained on this data does to a user's image: exactly what the datasets do to
            theirs, minus augmentation.
        train_for_epoch: epoch → that epoch's training set (shapes: freshly drawn images; others: the same images
            with that epoch's augmentation).
        counts: Training images per class, in label order.
        description: One sentence for the run's model card.
    """

    train: LabelledImages
    val: LabelledImages
    class_names: tuple[str, ...]
    input_size: tuple[int, int, int]
    preprocess: Preprocess
    train_for_epoch: Callable[[int], LabelledImages]
    counts: dict[str, int]
    description: str = ""


def prepare(
    spec: DataSpec,
    seed: int,
    augmentation: Augmentation | None = None,
    progress: ByteProgress | None = None,
    *,
    base_preprocess: Preprocess | None = None,
) -> Prepared:
    """Load, split and preprocess a run's data.

    Args:
        spec: Which data, at which size.
        seed: Fixes the split, the shapes drawn and the augmentation.
        augmentation: Random changes to training images (never validation images); None for none.
        progress: Called with (bytes done, total) while a torchvision dataset downloads.
        base_preprocess: For transfer learning: the preprocessing of the model the run starts from. Its channels
            (grey or RGB) and normalization are kept so the base model's features see inputs like the ones it
            learnt on; the size stays ``spec.size``.

    Raises:
        DatasetError: A spec or folder that cannot be used (the message says why).
        DatasetUnavailable: A torchvision dataset neither on disk nor downloadable here.
    """
    kind = _check_spec(spec, seed)
    split = kind.load(spec, seed, progress)
    if base_preprocess is not None:
        preprocess = replace(base_preprocess, resize=spec.size, crop=spec.size)
    else:
        preprocess = Preprocess(
            resize=spec.size,
            crop=spec.size,
            grayscale=spec.grayscale,
            invert_light_background=kind.invert_light_background,
            per_image_standardization=kind.per_image_standardization,
            fit_ink=kind.fit_ink,
        )
    shape = (preprocess.channels, spec.size, spec.size)
    fixed = not split.train.fresh_per_epoch
    train_cache = _PixelCache(len(split.train), shape) if fixed and _PixelCache.fits(len(split.train), shape) else None
    val_cache = _PixelCache(len(split.val), shape) if _PixelCache.fits(len(split.val), shape) else None
    if base_preprocess is None and not preprocess.per_image_standardization:
        measured = LabelledImages(split.train, split.train_labels, split.classes, preprocess, cache=train_cache)
        preprocess = _with_statistics(preprocess, measured, seed)

    train = LabelledImages(
        split.train, split.train_labels, split.classes, preprocess, augmentation, seed, 0, train_cache
    )
    val = LabelledImages(split.val, split.val_labels, split.classes, preprocess, cache=val_cache)
    counts = np.bincount(split.train_labels, minlength=len(split.classes))
    colour = "grey" if preprocess.grayscale else "RGB"
    description = (
        f"{kind.title}: {len(train):,} training images"
        f"{' drawn fresh every epoch' if not fixed else ''} and {len(val):,} validation images, "
        f"{len(split.classes)} classes, {spec.size}×{spec.size} {colour}."
    )
    return Prepared(
        train=train,
        val=val,
        class_names=split.classes,
        input_size=shape,
        preprocess=preprocess,
        train_for_epoch=train.for_epoch,
        counts={name: int(n) for name, n in zip(split.classes, counts, strict=True)},
        description=description,
    )


def _check_spec(spec: DataSpec, seed: int) -> DatasetKind:
    if spec.kind not in TRAINING_DATASETS:
        raise DatasetError(f"Unknown dataset kind {spec.kind!r}. Kinds: {', '.join(TRAINING_DATASETS)}.")
    low, high = _SIZE_RANGE
    if spec.kind == "shapes":
        low = _MIN_SIZE
    if not low <= spec.size <= high:
        raise DatasetError(f"Image size {spec.size} is out of range: choose a size from {low} to {high} pixels.")
    if not 0.0 < spec.val_split < 1.0:
        raise DatasetError(f"The validation share must be between 0 and 1 (exclusive), got {spec.val_split}.")
    if spec.kind == "shapes" and spec.count < 1:
        raise DatasetError(f"The shapes dataset needs at least one image per epoch, got count={spec.count}.")
    if spec.limit is not None and spec.limit < 1:
        raise DatasetError(f"limit={spec.limit} leaves no training images: use None (all) or at least 1.")
    if seed < 0:
        raise DatasetError(f"Seed {seed} is negative: use a seed of 0 or more.")
    return TRAINING_DATASETS[spec.kind]


def _with_statistics(preprocess: Preprocess, train: LabelledImages, seed: int) -> Preprocess:
    """``preprocess`` normalizing by the per-channel mean and std of (a seeded sample of) the training images, read
    through ``train`` (whose own normalization is not used: only the pixels are)."""
    n = len(train)
    chosen = range(n) if n <= _STATS_SAMPLE else np.sort(np.random.default_rng(seed).choice(n, _STATS_SAMPLE, False))
    stack = torch.stack([train.pixels(int(i)) for i in chosen]).to(torch.float32) / 255
    mean = tuple(round(v, 4) for v in stack.mean(dim=(0, 2, 3)).tolist())
    # a constant image set would divide by zero; 1/255 is one grey level
    std = tuple(max(round(v, 4), round(1 / 255, 4)) for v in stack.std(dim=(0, 2, 3)).tolist())
    return replace(preprocess, mean=mean, std=std)


def preview(prepared: Prepared, per_class: int = 8) -> list[tuple[str, list[Image.Image]]]:
    """The first training images of each class as the model sees them (resized, before augmentation).

    Returns:
        ``(class name, up to per_class images)`` for every class, in label order.
    """
    labels = prepared.train.labels
    return [
        (name, [prepared.train.image(int(i)) for i in np.flatnonzero(labels == label)[:per_class]])
        for label, name in enumerate(prepared.class_names)
    ]


_IMBALANCE_RATIO = 2.0


def imbalance(counts: dict[str, int]) -> str | None:
    """A warning when the largest class has at least twice the images of the smallest, else None."""
    if len(counts) < 2:
        return None
    largest, smallest = max(counts, key=counts.__getitem__), min(counts, key=counts.__getitem__)
    big, small = counts[largest], counts[smallest]
    if small == 0:
        return (
            f"Class {smallest!r} has no training images, so the model cannot learn it: add images of it or remove "
            "the class."
        )
    if big < _IMBALANCE_RATIO * small:
        return None
    return (
        f"The classes are imbalanced: {largest!r} has {big:,} training images, {smallest!r} only {small:,} "
        f"({big / small:.1f}×). The model may favour the larger classes and overall accuracy can hide it: watch "
        "the per-class accuracy, or add images to the smaller classes."
    )
