"""Labelled images as torch datasets: a run's images as a model trains on them, and images already in memory.

:class:`LabelledImages` reads an image source (:mod:`~cnn_explorer.data.sources`), resizes it with the run's
preprocessing, keeps the resized pixels in a :class:`_PixelCache` (the pixel store; :func:`load_all` fills it up
front, in forked processes when there are thousands) and augments them (:mod:`~cnn_explorer.data.augment`).
:class:`ImageListDataset` wraps PIL images and labels with a transform.
"""

from __future__ import annotations

import functools
import math
import multiprocessing as mp
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from cnn_explorer.data.augment import _augment, _orient_batch
from cnn_explorer.data.sources import _Images
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.progress import ItemProgress
from cnn_explorer.runspec import Augmentation

__all__ = ["ImageListDataset", "LabelledImages", "load_all"]


class ImageListDataset(Dataset):
    """A dataset over images already in memory, with their labels.

    Attributes:
        classes: the class names in label order, when given.
    """

    def __init__(
        self,
        images: Sequence[Image.Image],
        labels: Sequence[int],
        transform: Callable[[Image.Image], Any] | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        """Wrap images and labels.

        Args:
            images: the images, in order.
            labels: one class index per image.
            transform: applied to each image; None returns the PIL image.
            classes: the class names in label order, when known.

        Raises:
            ValueError: ``images`` and ``labels`` differ in length.
        """
        if len(images) != len(labels):
            raise ValueError(f"Got {len(images)} images but {len(labels)} labels: give one label per image.")
        self.images, self.labels, self.transform = images, labels, transform
        self.classes = list(classes) if classes is not None else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.images[index]
        return (self.transform(image) if self.transform else image), int(self.labels[index])


_CACHE_BYTES = 256 * 2**20  # a fixed image set keeps its decoded, resized pixels in memory up to this size


class _PixelCache:
    """The resized uint8 pixels of a fixed image set, filled as items are first read (decoding happens once)."""

    def __init__(self, n: int, shape: tuple[int, int, int]) -> None:
        self.pixels = torch.empty((n, *shape), dtype=torch.uint8)  # untouched pages cost no memory
        self.filled = np.zeros(n, dtype=bool)
        # Per-image standardization's mean and divisor of each image, measured once: turns and mirrors keep them.
        self.statistics = torch.empty((n, 2), dtype=torch.float32)

    @staticmethod
    def fits(n: int, shape: tuple[int, int, int]) -> bool:
        return n * math.prod(shape) <= _CACHE_BYTES


class LabelledImages(Dataset):
    """Labelled images as a model trains on them: item ``i`` is ``(input tensor [C, H, W], label)``.

    The input is ``preprocess.scale(augment(preprocess.geometry(image)))``: without augmentation, exactly what
    ``preprocess(image)`` gives the trained model at inference. Augmentation draws from generators seeded with
    ``(seed, epoch, index)`` (quarter turns and mirroring: one draw per epoch from ``(seed, epoch)``), so an item is
    the same in any order, in any worker, and changes from epoch to epoch. :meth:`batch` gives whole batches.

    Attributes:
        labels: One class index per item (int64), readable without loading any image.
        classes: The class names in label order.
        preprocess: The preprocessing (see :class:`Preprocess`).
        augmentation: Random changes applied to every item, or None.
        epoch: The epoch the augmentation (and for shapes the images) are drawn for.
    """

    def __init__(
        self,
        images: _Images,
        labels: np.ndarray,
        classes: Sequence[str],
        preprocess: Preprocess,
        augmentation: Augmentation | None = None,
        seed: int = 0,
        epoch: int = 0,
        cache: _PixelCache | None = None,
    ) -> None:
        self.images, self.labels, self.classes = images, np.asarray(labels, dtype=np.int64), tuple(classes)
        self.preprocess, self.seed, self.epoch, self.cache = preprocess, seed, epoch, cache
        self.augmentation = augmentation if augmentation is not None and augmentation != Augmentation() else None

    def __len__(self) -> int:
        return len(self.labels)

    def pixels(self, index: int) -> Tensor:
        """Item ``index`` resized and converted as the model sees it, before augmentation: uint8 ``[C, H, W]``."""
        if not 0 <= index < len(self):
            raise IndexError(f"Index {index} is out of range for {len(self)} images.")
        if self.cache is not None and self.cache.filled[index]:
            return self.cache.pixels[index]
        x = self.preprocess.geometry(self.images(index))
        if self.cache is not None:
            self._store(np.array([index]), x[None])
        return x

    def load_all(self, processes: int = 1, progress: ItemProgress | None = None) -> None:
        """Read every image into the pixel cache now, instead of as the first epoch reaches it (nothing to do
        without a cache: images drawn fresh every epoch, or too many to keep).

        Args:
            processes: Read in this many forked processes when there are thousands of images (drawing or decoding
                them is Python work: threads would take turns). Never from a process that must not fork, such as
                the app's: the worker and the command line use it.
            progress: Called with (images read, images to read) after each chunk; it may raise to stop.
        """
        load_all([self], processes, progress)

    def _store(self, indices: np.ndarray, pixels: Tensor) -> None:
        assert self.cache is not None
        self.cache.pixels[indices] = pixels
        if self.preprocess.per_image_standardization:
            self.cache.statistics[indices] = Preprocess.statistics(pixels)
        self.cache.filled[indices] = True

    def image(self, index: int) -> Image.Image:
        """Item ``index`` as a picture (grey or RGB), as the model sees it before augmentation and normalization."""
        pixels = np.ascontiguousarray(self.pixels(index).permute(1, 2, 0).numpy())  # uint8 [H, W, C]
        return Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)  # grey or RGB, as TF.to_pil_image

    def for_epoch(self, epoch: int) -> LabelledImages:
        """The same set for another epoch: fresh augmentation, and fresh images where the source draws them."""
        return LabelledImages(
            self.images.for_epoch(epoch),
            self.labels,
            self.classes,
            self.preprocess,
            self.augmentation,
            self.seed,
            epoch,
            self.cache,
        )

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        x = self.pixels(index)
        if self.augmentation is not None:
            x = self._augment(x, index)
        return self.preprocess.scale(x), int(self.labels[index])

    def batch(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Items ``indices`` stacked: ``(inputs [B, C, H, W], labels [B])``, equal to stacking ``self[i]``.

        The training loop's fast path: cached pixels are gathered in one index, quarter turns and mirroring are
        applied to all the images that share them at once, and the scaling runs over the whole batch.
        """
        indices = [int(i) for i in indices]
        augmentation = self.augmentation
        # Quarter turns and mirrors only move pixels: vectorized, and the cached standardization statistics hold.
        orientations_only = augmentation is None or replace(augmentation, flip=False, quarter_turns=False) == _NONE
        statistics = None
        if self.cache is not None and self.cache.filled[indices].all():
            x = self.cache.pixels[indices]
            if self.preprocess.per_image_standardization and orientations_only:
                statistics = self.cache.statistics[indices]
        else:
            x = torch.stack([self.pixels(i) for i in indices])
        if augmentation is not None:
            if orientations_only:
                turns, mirrors = self._orientations
                x = _orient_batch(
                    x,
                    turns[indices] if augmentation.quarter_turns else None,
                    mirrors[indices] if augmentation.flip else None,
                )
            else:
                x = torch.stack([self._augment(image, i) for image, i in zip(x, indices, strict=True)])
        return self.preprocess.scale_batch(x, statistics), torch.as_tensor(self.labels[indices])

    @functools.cached_property
    def _orientations(self) -> tuple[np.ndarray, np.ndarray]:
        """Every item's quarter turns (0–3) and mirroring for this epoch: one draw for the whole set, from
        ``(seed, epoch)``, so an item's orientation is the same in any order and changes with the epoch."""
        rng = np.random.default_rng([self.seed, self.epoch, _ORIENTATION_STREAM])
        return rng.integers(0, 4, size=len(self)), rng.random(len(self)) < 0.5

    def _augment(self, x: Tensor, index: int) -> Tensor:
        assert self.augmentation is not None
        turns, mirrors = self._orientations
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return _augment(x, self.augmentation, rng, int(turns[index]), bool(mirrors[index]))


def load_all(sets: Sequence[LabelledImages], processes: int = 1, progress: ItemProgress | None = None) -> None:
    """:meth:`LabelledImages.load_all` for several sets at once (a run's training and validation images), in one
    pool of processes: 1,000 validation shapes read alone would not be worth starting one, and in the pool they
    take half the time. ``progress`` counts the images of all the sets."""
    global _LOADING
    missing = [(s, np.flatnonzero(~s.cache.filled)) for s in sets if s.cache is not None]
    chunks = [
        (number, indices[start : start + _LOAD_CHUNK])
        for number, (_, indices) in enumerate(missing)
        for start in range(0, len(indices), _LOAD_CHUNK)
    ]
    total, done = sum(len(indices) for _, indices in missing), 0
    if processes > 1 and total >= _LOAD_IN_PROCESSES_FROM and "fork" in mp.get_all_start_methods():
        _LOADING = [s for s, _ in missing]  # the forked processes inherit them: only the indices are pickled
        try:
            with mp.get_context("fork").Pool(processes) as pool:
                for (number, chunk), pixels in zip(chunks, pool.imap(_load_chunk, chunks), strict=True):
                    missing[number][0]._store(chunk, torch.from_numpy(pixels))
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        finally:
            _LOADING = []
        return
    for number, chunk in chunks:
        for index in chunk:
            missing[number][0].pixels(int(index))
        done += len(chunk)
        if progress is not None:
            progress(done, total)


_LOAD_CHUNK = 250
_LOAD_IN_PROCESSES_FROM = 2000  # fewer images are read before the processes would have started
_LOADING: list[LabelledImages] = []  # the sets a forked reading process reads from


def _load_chunk(task: tuple[int, np.ndarray]) -> np.ndarray:
    number, indices = task
    images = _LOADING[number]
    return np.stack([images.preprocess.geometry(images.images(int(i))).numpy() for i in indices])


_NONE = Augmentation()
_ORIENTATION_STREAM = 2**32 - 1  # a third seed word that no item index reaches: the orientations' own stream
