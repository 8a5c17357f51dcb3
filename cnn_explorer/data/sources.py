"""Image sources: a run's images before preprocessing, as picklable callables (index → PIL image).

One class per origin (shapes drawn per epoch, mixed digits, arrays, pictures in memory, files on disk) and two that
combine them (one set after another, a subset). :class:`~cnn_explorer.data.labelled.LabelledImages` reads through
them; the loaders of :mod:`~cnn_explorer.data.builtin`, :mod:`~cnn_explorer.data.folders` and
:mod:`~cnn_explorer.data.torchvision_sets` build them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from cnn_explorer import digits
from cnn_explorer.data.errors import DatasetError
from cnn_explorer.data.shapes import SyntheticShapes
from cnn_explorer.images import ImageError, load_image

# Image sources: picklable callables (index → PIL image), so DataLoader workers can receive them under any start
# method. ``for_epoch`` gives the images of a later epoch: the same ones, except for shapes drawn fresh each epoch.


class _Images:
    fresh_per_epoch = False

    def __len__(self) -> int:
        raise NotImplementedError

    def __call__(self, index: int) -> Image.Image:
        raise NotImplementedError

    def for_epoch(self, epoch: int) -> _Images:
        return self


class _Shapes(_Images):
    """Shapes drawn with ``seed + epoch``: fresh ones every epoch, or (``fresh=False``) the same ones."""

    def __init__(
        self,
        n: int,
        seed: int,
        size: int,
        epoch: int = 0,
        fresh: bool = True,
        **styles: bool,
    ) -> None:
        """``styles``: :class:`SyntheticShapes`'s ``varied``, ``sketched`` and ``photographed``."""
        self.n, self.seed, self.size, self.epoch, self.fresh_per_epoch = n, seed, size, epoch, fresh
        self.styles = styles
        self._shapes = SyntheticShapes(n, seed + epoch, size, **styles)

    def __len__(self) -> int:
        return self.n

    def __call__(self, index: int) -> Image.Image:
        return self._shapes[index][0]

    def for_epoch(self, epoch: int) -> _Images:
        if not self.fresh_per_epoch:
            return self
        return _Shapes(self.n, self.seed, self.size, epoch, **self.styles)


class _MixedDigits(_Images):
    """Digits drawn by :func:`digits.mixed_image` with ``seed + epoch``: fresh every epoch, or the same ones."""

    def __init__(
        self, n: int, seed: int, test_fraction: float, split_seed: int, epoch: int = 0, fresh: bool = True
    ) -> None:
        self.n, self.seed, self.test_fraction, self.split_seed = n, seed, test_fraction, split_seed
        self.epoch, self.fresh_per_epoch = epoch, fresh

    def __len__(self) -> int:
        return self.n

    def __call__(self, index: int) -> Image.Image:
        return digits.mixed_image(index, self.seed + self.epoch, self.test_fraction, self.split_seed)

    def for_epoch(self, epoch: int) -> _Images:
        if not self.fresh_per_epoch:
            return self
        return _MixedDigits(self.n, self.seed, self.test_fraction, self.split_seed, epoch)


class _Concat(_Images):
    """One set of images, then another."""

    def __init__(self, first: _Images, second: _Images) -> None:
        self.first, self.second = first, second
        self.fresh_per_epoch = first.fresh_per_epoch or second.fresh_per_epoch

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def __call__(self, index: int) -> Image.Image:
        n = len(self.first)
        return self.first(index) if index < n else self.second(index - n)

    def for_epoch(self, epoch: int) -> _Images:
        return _Concat(self.first.for_epoch(epoch), self.second.for_epoch(epoch))


class _Arrays(_Images):
    """uint8 ``(N, H, W)`` grey or ``(N, H, W, 3)`` RGB pixels."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.pixels)

    def __call__(self, index: int) -> Image.Image:
        return Image.fromarray(self.pixels[index], "L" if self.pixels.ndim == 3 else "RGB")


class _Pictures(_Images):
    def __init__(self, images: Sequence[Image.Image]) -> None:
        self.images = list(images)

    def __len__(self) -> int:
        return len(self.images)

    def __call__(self, index: int) -> Image.Image:
        return self.images[index]


class _Files(_Images):
    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __call__(self, index: int) -> Image.Image:
        try:
            return load_image(self.paths[index])
        except ImageError as err:
            raise DatasetError(f"{self.paths[index]}: {err} Or delete the file from the dataset.") from err


class _Subset(_Images):
    def __init__(self, images: _Images, indices: np.ndarray) -> None:
        self.images, self.indices = images, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __call__(self, index: int) -> Image.Image:
        return self.images(int(self.indices[index]))
