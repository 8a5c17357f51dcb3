"""Augmentation of uint8 ``[C, H, W]`` images: random-resized crop, rotation, quarter turns, mirroring, colour jitter.

:class:`~cnn_explorer.data.labelled.LabelledImages` draws each item's changes from its seeded generator and calls
:func:`_augment` per image, or :func:`_orient_batch` for a whole batch when only quarter turns and mirrors apply.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from cnn_explorer.runspec import Augmentation


def _orient_batch(x: Tensor, turns: np.ndarray | None, mirrors: np.ndarray | None) -> Tensor:
    """Quarter-turn and mirror each image of ``[B, C, H, W]`` (square): ``torch.rot90`` by ``turns``, then a
    left–right flip where ``mirrors``, as one gather over the batch (one rot90 and copy per group of images that
    share an orientation took about twice as long at a batch of 64)."""
    b, c, h, w = x.shape
    turns = np.zeros(b, dtype=np.int64) if turns is None else turns
    mirrors = np.zeros(b, dtype=bool) if mirrors is None else mirrors
    sources = _dihedral_sources(h)[torch.from_numpy(2 * turns.astype(np.int64) + mirrors)]  # [B, H·W]
    return torch.gather(x.reshape(b, c, h * w), 2, sources[:, None, :].expand(b, c, h * w)).view(b, c, h, w)


@functools.cache
def _dihedral_sources(size: int) -> Tensor:
    """Row ``2k + m``: the flat source pixel of each output pixel of a square image turned ``k`` quarter turns and
    then (``m``) mirrored."""
    grid = torch.arange(size * size).view(size, size)
    orientations = []
    for turns in range(4):
        turned = torch.rot90(grid, turns, dims=(0, 1))
        orientations += [turned, turned.flip(1)]
    return torch.stack(orientations).view(8, size * size)


def _augment(x: Tensor, augmentation: Augmentation, rng: np.random.Generator, turns: int, mirror: bool) -> Tensor:
    """Random-resized crop, rotation, quarter turn, mirror and colour jitter of a uint8 ``[C, H, W]`` image (square,
    as every preprocessing crops it); ``turns`` and ``mirror`` are the item's orientation, the rest is drawn from
    ``rng``."""
    import torchvision.transforms.functional as TF  # training only: torchvision costs the app its start time
    from torchvision.transforms import InterpolationMode

    channels, height, width = x.shape
    if augmentation.crop > 0:
        # torchvision's RandomResizedCrop: a share of the area in [crop, 1] at an aspect ratio in [3/4, 4/3]
        area = rng.uniform(augmentation.crop, 1.0) * height * width
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        h = min(height, max(1, round(math.sqrt(area / ratio))))
        w = min(width, max(1, round(math.sqrt(area * ratio))))
        top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        x = TF.resized_crop(x, top, left, h, w, [height, width], InterpolationMode.BILINEAR, antialias=True)
    if augmentation.rotation > 0:
        # Corners uncovered by the rotation take the border's mean colour, not black: black corners would be a
        # feature of augmented images only.
        border = torch.cat([x[:, 0, :], x[:, -1, :], x[:, :, 0], x[:, :, -1]], dim=1).float().mean(dim=1)
        angle = float(rng.uniform(-augmentation.rotation, augmentation.rotation))
        x = TF.rotate(x, angle, InterpolationMode.BILINEAR, fill=border.tolist())
    if augmentation.quarter_turns:
        x = torch.rot90(x, turns, dims=(1, 2))
    if augmentation.flip and mirror:
        x = TF.hflip(x)
    if augmentation.color_jitter > 0:
        low, high = max(0.0, 1 - augmentation.color_jitter), 1 + augmentation.color_jitter
        x = TF.adjust_brightness(x, float(rng.uniform(low, high)))
        x = TF.adjust_contrast(x, float(rng.uniform(low, high)))
        if channels == 3:
            x = TF.adjust_saturation(x, float(rng.uniform(low, high)))
    return x
