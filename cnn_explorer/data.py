"""Training data: the built-in sets, a user's image folders, torchvision's downloads, and the checks on uploads.

* Synthetic shapes (``SyntheticShapes``, ``draw_shape``): ten classes of filled shapes on random backgrounds, drawn
  on the fly and deterministic from ``(seed, index)``. They train the ``tinyvgg-shapes`` model (64×64 RGB).
* Handwritten digits (``digit_images``, ``digits_split``): scikit-learn's bundled 1797 8×8 digits. They train the
  ``lenet5-digits`` model.
* A training run's data (``prepare``): any kind in :data:`DATASETS` (the two above, a folder of class folders,
  MNIST, Fashion-MNIST, CIFAR-10) split, augmented and preprocessed exactly as the trained model will preprocess a
  user's image; ``preview`` and ``imbalance`` describe it for the training page.
* Uploaded archives (``extract_zip``): a zip of class folders, checked before and while it is extracted.

Each shape class is one entry in ``_OUTLINES``: an outline at unit size. ``draw_shape`` places, rotates, colours and
rasterises every outline the same way, so a new class is one entry, and nothing about a drawing except its outline
depends on the class.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import math
import multiprocessing as mp
import os
import pickle
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageDraw
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode

from cnn_explorer import digits, shape_styles
from cnn_explorer.images import MAX_PIXELS, ImageError, load_image
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.runspec import Augmentation, DataSpec

__all__ = [
    "DATASETS",
    "DIGIT_CLASSES",
    "IMAGE_EXTENSIONS",
    "MAX_ZIP_BYTES",
    "MAX_ZIP_FILES",
    "SHAPE_CLASSES",
    "DatasetError",
    "DatasetKind",
    "DatasetUnavailable",
    "DigitsSplit",
    "ImageListDataset",
    "LabelledImages",
    "Prepared",
    "SyntheticShapes",
    "ZipReport",
    "datasets_home",
    "digit_images",
    "digits_split",
    "draw_shape",
    "extract_zip",
    "imbalance",
    "load_all",
    "prepare",
    "preview",
]


# --- Shape outlines ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no single truth value to compare by
class _Outline:
    """A shape at unit size: around the origin, inside the unit disc, touching it.

    Coordinates are x right, y down (image convention).

    Attributes:
        fills: polygons, each an ``(N, 2)`` array, painted as the shape.
        holes: polygons cut out after the fills; each lies inside a fill (a ring's hole).
    """

    fills: tuple[np.ndarray, ...]
    holes: tuple[np.ndarray, ...] = ()

    @property
    def area(self) -> float:
        """The exact area at unit size, by the shoelace formula (what a perfect rasteriser would paint)."""
        return sum(map(_polygon_area, self.fills)) - sum(map(_polygon_area, self.holes))


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _fit_unit_disc(fills: Sequence[np.ndarray], holes: Sequence[np.ndarray] = ()) -> _Outline:
    """Scale an outline so its farthest filled point is at distance 1: ``radius`` then means circumradius."""
    scale = 1.0 / max(float(np.linalg.norm(p, axis=1).max()) for p in fills)
    return _Outline(tuple(p * scale for p in fills), tuple(p * scale for p in holes))


def _regular_polygon(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> np.ndarray:
    """``n`` vertices on a circle, the first straight up (phase -π/2 is up when y points down)."""
    angles = phase + np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


_CIRCLE_VERTICES = 96  # enough that a polygon's area is within 0.1 % of the disc's at every size we draw


def _disc(radius: float = 1.0) -> np.ndarray:
    return _regular_polygon(_CIRCLE_VERTICES, radius)


def _star(points: int = 5, inner: float = 0.42) -> np.ndarray:
    # Alternate outer and inner vertices; an inner radius near the pentagram's 0.38 keeps the points sharp, which is
    # what sets a star apart from a pentagon or a blob when it is small.
    outer = _regular_polygon(points)
    inner_vertices = _regular_polygon(points, inner, phase=-math.pi / 2 + math.pi / points)
    return np.stack([outer, inner_vertices], axis=1).reshape(-1, 2)


def _plus(arm_half_width: float = 0.3) -> np.ndarray:
    a, w = 1.0, arm_half_width
    return np.array(
        [(-w, -a), (w, -a), (w, -w), (a, -w), (a, w), (w, w), (w, a), (-w, a), (-w, w), (-a, w), (-a, -w), (-w, -w)]
    )


def _heart(n: int = 120) -> np.ndarray:
    # The classic parametric heart curve; y is negated so the lobes are at the top in image coordinates.
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    points = np.stack([x, y], axis=1)
    return points - (points.min(axis=0) + points.max(axis=0)) / 2  # centre the bounding box


def _crescent(bite_offset: float = 0.45, bite_radius: float = 0.8, n: int = 64) -> np.ndarray:
    """The unit disc minus a disc of ``bite_radius`` centred at ``(bite_offset, 0)``, as one polygon."""
    d, rho = bite_offset, bite_radius
    x0 = (1 + d * d - rho * rho) / (2 * d)  # where the two circles cross: (x0, ±y0)
    y0 = math.sqrt(1 - x0 * x0)
    outer_from = math.atan2(y0, x0)
    bite_from = math.atan2(y0, x0 - d)
    outer = np.linspace(outer_from, 2 * math.pi - outer_from, n)  # the far side of the unit circle
    bite = np.linspace(2 * math.pi - bite_from, bite_from, n)  # back along the bite's arc inside the disc
    return np.concatenate(
        [
            np.stack([np.cos(outer), np.sin(outer)], axis=1),
            np.stack([d + rho * np.cos(bite), rho * np.sin(bite)], axis=1),
        ]
    )


def _arrow(shaft_half_width: float = 0.2, head_half_width: float = 0.55, head_length: float = 0.8) -> np.ndarray:
    w, h, neck = shaft_half_width, head_half_width, 1.0 - head_length
    return np.array([(-1.0, -w), (neck, -w), (neck, -h), (1.0, 0.0), (neck, h), (neck, w), (-1.0, w)])


def _semicircle(n: int = 64) -> np.ndarray:
    angles = np.linspace(0.0, math.pi, n)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)  # the diameter closes the polygon


_RING_INNER = 0.58  # hole radius / outer radius: a band thick enough to survive a 12 px shape at 64×64

# The class registry, in label order. Every class is distinguishable by outline alone under any rotation: no square
# together with a diamond (a rotated square), no small pentagon or hexagon (they blur into a circle).
_OUTLINES: dict[str, _Outline] = {
    "circle": _Outline((_disc(),)),
    "square": _Outline((_regular_polygon(4, phase=-math.pi / 4),)),
    "triangle": _Outline((_regular_polygon(3),)),
    "star": _Outline((_star(),)),
    "cross": _fit_unit_disc([_plus()]),
    "heart": _fit_unit_disc([_heart()]),
    "crescent": _fit_unit_disc([_crescent()]),
    "ring": _Outline((_disc(),), (_disc(_RING_INNER),)),
    "arrow": _fit_unit_disc([_arrow()]),
    "semicircle": _Outline((_semicircle(),)),
}

SHAPE_CLASSES: tuple[str, ...] = tuple(_OUTLINES)
"""The synthetic shape class names, in label order."""


# --- Drawing ----------------------------------------------------------------------------------------------------

_REFERENCE_SIZE = 64  # the image size the ranges below are stated for; they scale with the requested size
_RADIUS_RANGE = (12.0, 26.0)  # circumradius in pixels at the reference size
_VARIED_RADIUS_RANGE = (8.0, 30.0)  # the same, for varied drawings: smaller and larger shapes too
# Varied drawings (``varied=True``) add three things. A share of the shapes is drawn as an outline traced inside the
# boundary, as a pen or a marker draws it, this wide in pixels at the reference size: a model trained on filled shapes
# alone takes outlines for something else entirely (the shipped model got 24 % of independently drawn outlines right).
_OUTLINE_PROBABILITY = 0.4
_STROKE_RANGE = (1.5, 6.0)
# Light falling unevenly over the whole scene, shape and background alike (a lamp to one side, a photo's vignette):
# with this probability the image is multiplied by a ramp from 1 - s to 1 + s across it, s drawn up to the maximum.
_LIGHT_PROBABILITY = 0.5
_LIGHT_MAX_SLOPE = 0.35
_SKETCH_PROBABILITY = 0.5  # sketched=True: the share drawn by hand (shape_styles), the rest as varied=True
_EDGE_MARGIN = 1.0  # pixels kept clear between the shape's circumcircle and the image border
# Antialiasing: draw the mask at 8× and box-average down, so alpha is the covered fraction. PIL fills polygons with
# their boundary pixels included, which fattens a shape by up to one sub-pixel; at 4× that made a small arrow's thin
# shaft 10 % too heavy, at 8× (0.15 ms more per image) it is under 5 %.
_SUPERSAMPLE = 8
_GRADIENT_PROBABILITY = 0.5
_NOISE_STD_RANGE = (0.0, 8.0)  # Gaussian pixel noise, in 0–255 units, drawn per image
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601: the shape must stand out in greyscale too
_MIN_LUMA_CONTRAST = 64.0  # 0–255 units, between the shape and every point of the background
# Colour triples drawn per try: about 38 % pass the contrast test on a flat background and 16 % on a gradient, so
# one try of 32 suffices 99.6 % of the time even for gradients.
_COLOUR_CANDIDATES = 32
_MIN_SIZE = 16


@dataclass(frozen=True)
class _Placement:
    """Where one shape goes, in output pixels: ``(cx, cy)`` centre, circumradius, rotation in radians."""

    cx: float
    cy: float
    radius: float
    angle: float


@dataclass(frozen=True, eq=False)
class _Drawing:
    """One synthetic sample and how it was made, so tests can check the parts that make up the image.

    Attributes:
        image: the RGB image ``draw_shape`` returns.
        alpha: ``(size, size)`` float32 in [0, 1], the fraction of each pixel the shape covers.
        background: ``(size, size, 3)`` float32, the background before the shape and noise.
        colour: the shape's RGB colour, 0–255.
        placement: where the shape went.
        light: ``(size, size)`` float32, the lighting every pixel was multiplied by (all ones when even).
        stroke: the outline's width in pixels, or 0 for a filled shape.
    """

    image: Image.Image
    alpha: np.ndarray
    background: np.ndarray
    colour: np.ndarray
    placement: _Placement
    light: np.ndarray
    stroke: float


def _sample_placement(
    rng: np.random.Generator, size: int, radius_range: tuple[float, float] = _RADIUS_RANGE
) -> _Placement:
    scale = size / _REFERENCE_SIZE
    radius = rng.uniform(*radius_range) * scale
    low, high = radius + _EDGE_MARGIN, size - radius - _EDGE_MARGIN  # the circumcircle stays inside the image
    cx, cy = rng.uniform(low, high, size=2)
    return _Placement(float(cx), float(cy), float(radius), float(rng.uniform(0.0, 2 * math.pi)))


def _shape_mask(outline: _Outline, placement: _Placement, size: int, stroke: float = 0.0) -> np.ndarray:
    """Rasterise an outline: the fraction of each output pixel it covers, ``(size, size)`` float32 in [0, 1].

    ``stroke`` > 0 paints only a band that wide (in output pixels) inside the boundary of each fill, as a pen tracing
    the shape would, and no holes: the stroked outline of a circle is a ring.
    """
    cos, sin = math.cos(placement.angle), math.sin(placement.angle)
    rotate = np.array([[cos, -sin], [sin, cos]])
    centre = np.array([placement.cx, placement.cy])

    def to_canvas(points: np.ndarray) -> list[float]:
        # Output pixel i spans [i, i + 1) and covers sub-pixels from i × _SUPERSAMPLE: no half-pixel shift needed.
        return ((points @ rotate.T * placement.radius + centre) * _SUPERSAMPLE).ravel().tolist()

    canvas = Image.new("L", (size * _SUPERSAMPLE, size * _SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    if stroke > 0:
        width = max(1, round(stroke * _SUPERSAMPLE))
        for polygon in outline.fills:
            draw.polygon(to_canvas(polygon), outline=255, width=width)
    else:
        for polygon in outline.fills:
            draw.polygon(to_canvas(polygon), fill=255)
        for polygon in outline.holes:
            draw.polygon(to_canvas(polygon), fill=0)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _sample_stroke(label: int, rng: np.random.Generator, size: int) -> float:
    """The outline's width in pixels, or 0 for a filled shape. A circle is always filled: its outline is a ring."""
    if SHAPE_CLASSES[label] == "circle" or rng.random() >= _OUTLINE_PROBABILITY:
        return 0.0
    return float(rng.uniform(*_STROKE_RANGE)) * size / _REFERENCE_SIZE


def _sample_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shape colour and the background's two end colours (equal when the background is flat).

    Luminance is linear in RGB, so along a linear gradient it stays between its two ends: a shape lighter (or
    darker) than both ends by the margin contrasts with every background pixel. Colours never depend on the class.
    """
    gradient = rng.random() < _GRADIENT_PROBABILITY
    while True:
        candidates = rng.uniform(0.0, 255.0, size=(_COLOUR_CANDIDATES, 3, 3))  # [try, (shape, from, to), rgb]
        if not gradient:
            candidates[:, 2] = candidates[:, 1]
        luma = candidates @ _LUMA
        shape, lowest, highest = luma[:, 0], luma[:, 1:].min(axis=1), luma[:, 1:].max(axis=1)
        valid = (shape >= highest + _MIN_LUMA_CONTRAST) | (shape <= lowest - _MIN_LUMA_CONTRAST)
        if valid.any():
            chosen = candidates[int(valid.argmax())]
            return chosen[0], chosen[1], chosen[2]


@functools.cache
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    centres = np.arange(size, dtype=np.float32) + 0.5
    return np.meshgrid(centres, centres)  # (x, y), each (size, size)


def _background(rng: np.random.Generator, size: int, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """A linear gradient from ``start`` to ``end`` across the image in a random direction, ``(size, size, 3)``."""
    angle = rng.uniform(0.0, 2 * math.pi)
    x, y = _pixel_grid(size)
    along = x * math.cos(angle) + y * math.sin(angle)
    t = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    return (start + t[..., None] * (end - start)).astype(np.float32)


def _lighting(rng: np.random.Generator, size: int) -> np.ndarray:
    if rng.random() >= _LIGHT_PROBABILITY:
        return np.ones((size, size), dtype=np.float32)
    slope = rng.uniform(0.0, _LIGHT_MAX_SLOPE)
    ramp = _background(rng, size, np.zeros(3), np.ones(3))[..., 0]  # 0 → 1 across the image, in a random direction
    return (1.0 + slope * (2.0 * ramp - 1.0)).astype(np.float32)


def _draw(label: int, rng: np.random.Generator, size: int, varied: bool = False) -> _Drawing:
    if not 0 <= label < len(SHAPE_CLASSES):
        raise ValueError(f"Shape label {label} is out of range: labels are 0–{len(SHAPE_CLASSES) - 1}.")
    if size < _MIN_SIZE:
        raise ValueError(f"Image size {size} is too small to draw a recognisable shape: use at least {_MIN_SIZE}.")
    placement = _sample_placement(rng, size, _VARIED_RADIUS_RANGE if varied else _RADIUS_RANGE)
    stroke = _sample_stroke(label, rng, size) if varied else 0.0
    alpha = _shape_mask(_OUTLINES[SHAPE_CLASSES[label]], placement, size, stroke)
    colour, start, end = _sample_colours(rng)
    background = _background(rng, size, start, end)
    pixels = background + alpha[..., None] * (colour.astype(np.float32) - background)
    light = _lighting(rng, size) if varied else np.ones((size, size), dtype=np.float32)
    pixels *= light[..., None]
    noise_std = rng.uniform(*_NOISE_STD_RANGE)
    pixels += rng.standard_normal(pixels.shape, dtype=np.float32) * np.float32(noise_std)
    image = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "RGB")
    return _Drawing(image, alpha, background, colour, placement, light, stroke)


def draw_shape(
    label: int, rng: np.random.Generator, size: int = 64, varied: bool = False, sketched: bool = False
) -> Image.Image:
    """Draw one synthetic shape.

    The shape is filled and antialiased, with a random colour, circumradius (12–26 px at 64×64, in proportion at
    other sizes), position (wholly inside the image) and rotation, on a flat or linear-gradient background, with a
    little Gaussian pixel noise. ``varied`` draws it more ways, as people and other programs do: 40 % of the
    non-circles as an outline 1.5–6 px wide traced inside the boundary (an outlined circle is a ring, so a ring's
    outline is a circle's), a circumradius of 8–30 px, and on half the images light falling off across the whole
    image by up to ±35 %.

    The colour always contrasts with the background in luminance and never depends on the class, so only the outline
    tells the classes apart.

    Args:
        label: the class index into ``SHAPE_CLASSES``.
        rng: the source of every random choice; the same generator state gives the same image.
        size: width and height in pixels.
        varied: draw outlines, other sizes and uneven light too (see above).
        sketched: as ``varied``, and half the images drawn by hand instead (:func:`cnn_explorer.shape_styles.sketch`:
            strokes centred on the edge with round joins, wobbly, in dark ink on white paper or one colour on
            another, or coloured in; a circle is always coloured in).

    Returns:
        An RGB image of ``size`` × ``size``.

    Raises:
        ValueError: ``label`` is not a class index, or ``size`` is too small to draw on.
    """
    if sketched and 0 <= label < len(SHAPE_CLASSES) and size >= _MIN_SIZE and rng.random() < _SKETCH_PROBABILITY:
        outline = _OUTLINES[SHAPE_CLASSES[label]]
        return shape_styles.sketch(outline.fills, outline.holes, rng, size, filled=SHAPE_CLASSES[label] == "circle")
    return _draw(label, rng, size, varied or sketched).image


# --- Datasets ---------------------------------------------------------------------------------------------------


class SyntheticShapes(Dataset):
    """``n`` synthetic shape images, balanced over ``SHAPE_CLASSES`` (item ``i`` has label ``i % 10``).

    Item ``i`` is drawn from a generator seeded with ``(seed, i)``: the same seed gives the same images in any order
    and with any number of workers, and another seed (the trainer uses ``seed + epoch``) gives fresh ones.

    Attributes:
        classes: the class names, in label order.
    """

    def __init__(
        self,
        n: int,
        seed: int,
        size: int = 64,
        transform: Callable[[Image.Image], Any] | None = None,
        varied: bool = False,
        sketched: bool = False,
    ) -> None:
        """Describe the dataset; images are drawn when indexed, not here.

        Args:
            n: number of items.
            seed: non-negative seed that, with an item's index, fixes its image.
            size: image width and height in pixels.
            transform: applied to each image (e.g. to make a tensor); None returns the PIL image.
            varied: draw them many ways (see :func:`draw_shape`).
            sketched: and half of them by hand (see :func:`draw_shape`).

        Raises:
            ValueError: ``n`` or ``seed`` is negative, or ``size`` is too small.
        """
        if n < 0:
            raise ValueError(f"A dataset cannot have {n} items: use 0 or more.")
        if seed < 0:
            raise ValueError(f"Seed {seed} is negative: use a seed of 0 or more.")
        if size < _MIN_SIZE:
            raise ValueError(f"Image size {size} is too small to draw a recognisable shape: use at least {_MIN_SIZE}.")
        self.n, self.seed, self.size, self.transform, self.varied = n, seed, size, transform, varied
        self.sketched = sketched
        self.classes = list(SHAPE_CLASSES)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[Any, int]:
        if not 0 <= index < self.n:
            raise IndexError(f"Index {index} is out of range for {self.n} items.")
        label = index % len(SHAPE_CLASSES)
        image = draw_shape(label, np.random.default_rng([self.seed, index]), self.size, self.varied, self.sketched)
        return (self.transform(image) if self.transform else image), label


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


# --- Handwritten digits -----------------------------------------------------------------------------------------

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
"""The digit class names, in label order."""


def digit_images() -> tuple[list[Image.Image], np.ndarray]:
    """Every handwritten digit from scikit-learn's bundled set (1797 real samples, no download).

    Returns:
        The images, each 8×8 mode ``"L"`` with ink bright on black (pixel = round(value × 255 / 16)), and their
        labels (the digit, 0–9) as an int64 array.
    """
    pixels, labels = digits.scans()
    return [Image.fromarray(p, "L") for p in pixels], labels.copy()


@dataclass(frozen=True, eq=False)
class DigitsSplit:
    """A train/test split of the digits.

    Attributes:
        train_images: the training images, 8×8 mode ``"L"``.
        train_labels: their labels.
        test_images: the held-out images.
        test_labels: their labels.
        train_indices: where each training image sits in ``digit_images()``.
        test_indices: where each held-out image sits in ``digit_images()``.
    """

    train_images: tuple[Image.Image, ...]
    train_labels: np.ndarray
    test_images: tuple[Image.Image, ...]
    test_labels: np.ndarray
    train_indices: np.ndarray
    test_indices: np.ndarray


def digits_split(test_fraction: float = 0.2, seed: int = 0) -> DigitsSplit:
    """Split the digits into train and test sets, stratified by class and deterministic for a seed.

    Args:
        test_fraction: the share of samples held out, strictly between 0 and 1.
        seed: fixes which samples are held out.

    Returns:
        The split.

    Raises:
        ValueError: ``test_fraction`` is not strictly between 0 and 1.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}.")
    images, labels = digit_images()
    train, test = digits.split_indices(test_fraction, seed)
    return DigitsSplit(
        train_images=tuple(images[i] for i in train),
        train_labels=labels[train],
        test_images=tuple(images[i] for i in test),
        test_labels=labels[test],
        train_indices=train,
        test_indices=test,
    )


# --- A training run's data --------------------------------------------------------------------------------------

ProgressFn = Callable[[int, int | None], None]  # (bytes done, bytes total or None), as zoo's downloads


class DatasetError(ValueError):
    """Data that cannot be used as given (a bad spec, an unusable folder or archive); the message says what to do."""


class DatasetUnavailable(RuntimeError):
    """A torchvision dataset that is neither on disk nor downloadable here; the message says where to put its files."""


IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
"""File name endings read as images in folders and archives (the formats :func:`load_image` accepts)."""

# A run's shapes: training draws with 1000 + seed + epoch, validation with a million + seed. Seeds below 1000 stay
# free for held-out sets and samples (the shipped tinyvgg-shapes is tested on seed 1), so no run trains on them.
_SHAPES_TRAIN_SEED_OFFSET = 1000
_SHAPES_VAL_SEED_OFFSET = 1_000_000
_STATS_SAMPLE = 2000  # images the normalization statistics are measured on (all of them when fewer)
_CACHE_BYTES = 256 * 2**20  # a fixed image set keeps its decoded, resized pixels in memory up to this size
_SIZE_RANGE = (8, 512)
_DOWNLOAD_TIMEOUT_S = 30


def datasets_home() -> Path:
    """Where torchvision datasets live unless a spec names a folder: ``$CNN_EXPLORER_HOME/datasets``."""
    return Path(os.environ.get("CNN_EXPLORER_HOME") or "~/.cnn_explorer").expanduser() / "datasets"


def _offline() -> bool:
    return bool(os.environ.get("CNN_EXPLORER_OFFLINE"))  # the same test as the zoo's downloads


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
        varied: bool = False,
        sketched: bool = False,
    ) -> None:
        self.n, self.seed, self.size, self.epoch, self.fresh_per_epoch = n, seed, size, epoch, fresh
        self.varied, self.sketched = varied, sketched
        self._shapes = SyntheticShapes(n, seed + epoch, size, varied=varied, sketched=sketched)

    def __len__(self) -> int:
        return self.n

    def __call__(self, index: int) -> Image.Image:
        return self._shapes[index][0]

    def for_epoch(self, epoch: int) -> _Images:
        if not self.fresh_per_epoch:
            return self
        return _Shapes(self.n, self.seed, self.size, epoch, varied=self.varied, sketched=self.sketched)


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

    def load_all(self, processes: int = 1, progress: Callable[[int, int], None] | None = None) -> None:
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
        return TF.to_pil_image(self.pixels(index))

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


def load_all(
    sets: Sequence[LabelledImages], processes: int = 1, progress: Callable[[int, int], None] | None = None
) -> None:
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


@dataclass(frozen=True, eq=False)
class _Split:
    """What a dataset kind's loader returns: training and validation images with labels, before preprocessing."""

    train: _Images
    train_labels: np.ndarray
    val: _Images
    val_labels: np.ndarray
    classes: tuple[str, ...]


@dataclass(frozen=True)
class DatasetKind:
    """One kind of training data (``DataSpec.kind``), as the training page lists it.

    Attributes:
        key: The ``DataSpec.kind``.
        title: Name for pickers.
        description: What the images are, in one sentence.
        channels: Channels of the images as stored (1: grey, so ``DataSpec.grayscale=True`` suits it).
        size: Side of the stored images; None where it varies (folders) or is chosen (shapes).
        source: ``"built-in"``, ``"folder"`` (``DataSpec.path``, e.g. from :func:`extract_zip`) or ``"download"``
            (torchvision; read from ``DataSpec.path`` or :func:`datasets_home` when there).
        invert_light_background: The images are light ink on a dark background; the model's preprocessing inverts
            a user's dark-on-white drawing to match.
        per_image_standardization: Standardize each image by its own mean and spread (as the shipped shapes model);
            otherwise normalize with the mean and std measured on the training images.
        fit_ink: Single glyphs: the preprocessing crops to the ink and centres it (see ``Preprocess.fit_ink``).
        load: ``(spec, seed, progress) → _Split``.
    """

    key: str
    title: str
    description: str
    channels: int
    size: int | None
    source: str
    invert_light_background: bool = False
    per_image_standardization: bool = False
    fit_ink: bool = False
    load: Callable[[DataSpec, int, ProgressFn | None], _Split] = field(default=None, repr=False, compare=False)


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
    progress: ProgressFn | None = None,
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
    if spec.kind not in DATASETS:
        raise DatasetError(f"Unknown dataset kind {spec.kind!r}. Kinds: {', '.join(DATASETS)}.")
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
    return DATASETS[spec.kind]


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


# Splits: stratified, seeded, exact in total (largest-remainder apportionment across classes).


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


# Loaders, one per kind.


def _load_shapes(spec: DataSpec, seed: int, progress: ProgressFn | None) -> _Split:
    n = spec.count if spec.limit is None else min(spec.count, spec.limit)
    n_val = max(1, round(spec.count * spec.val_split))
    classes = len(SHAPE_CLASSES)
    return _Split(
        train=_Shapes(
            n, _SHAPES_TRAIN_SEED_OFFSET + seed, spec.size, fresh=spec.fresh, varied=spec.varied, sketched=spec.sketched
        ),
        train_labels=np.arange(n) % classes,
        val=_Shapes(n_val, seed + _SHAPES_VAL_SEED_OFFSET, spec.size, varied=spec.varied, sketched=spec.sketched),
        val_labels=np.arange(n_val) % classes,
        classes=SHAPE_CLASSES,
    )


def _load_digits(spec: DataSpec, seed: int, progress: ProgressFn | None) -> _Split:
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


def _load_digits_mixed(spec: DataSpec, seed: int, progress: ProgressFn | None) -> _Split:
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


def _load_folder(spec: DataSpec, seed: int, progress: ProgressFn | None) -> _Split:
    if not spec.path:
        raise DatasetError("A folder dataset needs a path: the folder that holds one subfolder per class.")
    root = Path(spec.path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder. Give the folder that holds one subfolder per class.")
    paths, labels, classes = [], [], []
    for folder in sorted(d for d in root.iterdir() if d.is_dir() and not _hidden(d.name)):
        files = sorted(
            (p for p in folder.rglob("*") if _is_image_name(p.relative_to(folder).parts) and p.is_file()),
            key=lambda p: p.relative_to(folder).as_posix(),
        )
        if files:
            labels += [len(classes)] * len(files)
            paths += files
            classes.append(folder.name)
    if len(classes) < 2:
        raise DatasetError(
            f"{root} has {len(classes)} class folder(s) with images ({', '.join(classes) or 'none'}); training "
            "needs at least two. Put each class's images in its own subfolder."
        )
    return _split_pool(_Files(paths), np.asarray(labels, dtype=np.int64), classes, spec, seed)


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _is_image_name(parts: Sequence[str]) -> bool:
    return bool(parts) and not any(_hidden(p) for p in parts) and Path(parts[-1]).suffix.lower() in IMAGE_EXTENSIONS


def _dataset_root(spec: DataSpec) -> Path:
    return Path(spec.path).expanduser() if spec.path else datasets_home()


def _load_mnist_like(class_name: str, title: str) -> Callable[[DataSpec, int, ProgressFn | None], _Split]:
    """A loader for torchvision's ``MNIST`` or ``FashionMNIST``: its training split, read from ``ROOT/NAME/raw``."""

    def load(spec: DataSpec, seed: int, progress: ProgressFn | None) -> _Split:
        import torchvision.datasets

        cls = getattr(torchvision.datasets, class_name)
        root = _dataset_root(spec)
        raw = root / class_name / "raw"  # torchvision's layout: the class name, then raw/
        archives = [name for name, _ in cls.resources]
        missing = [name for name in archives if not (raw / name.removesuffix(".gz")).exists()]
        for name in [m for m in missing if (raw / m).exists()]:  # compressed files put there by hand
            _gunzip(raw / name)
        missing = [name for name in missing if not (raw / name.removesuffix(".gz")).exists()]
        if missing:
            where = (
                f"Put the files {', '.join(archives)} (from {cls.mirrors[0]}), compressed or not, in {raw}, "
                "or run again with internet access."
            )
            md5s = dict(cls.resources)
            files = [([mirror + name for mirror in cls.mirrors], raw / name, md5s[name]) for name in missing]
            _download_all(title, files, progress, where)
            for name in missing:
                _gunzip(raw / name)
        try:
            dataset = cls(str(root), train=True, download=False)
            pixels, labels = dataset.data.numpy(), dataset.targets.numpy().astype(np.int64)
        except Exception as err:  # torchvision asserts on a malformed file; anything here means a damaged one
            raise DatasetError(f"The {title} files in {raw} are damaged ({err!r}). Delete them and try again.") from err
        if pixels.ndim != 3 or len(pixels) != len(labels) or labels.min() < 0 or labels.max() >= len(cls.classes):
            raise DatasetError(
                f"The {title} files in {raw} do not match (images {pixels.shape}, labels {labels.shape}). "
                "Delete them and try again."
            )
        return _split_pool(_Arrays(pixels), labels, cls.classes, spec, seed)

    return load


def _load_cifar10(spec: DataSpec, seed: int, progress: ProgressFn | None) -> _Split:
    from torchvision.datasets import CIFAR10

    root = _dataset_root(spec)
    folder = root / CIFAR10.base_folder
    needed = [name for name, _ in CIFAR10.train_list] + [CIFAR10.meta["filename"]]
    if not all((folder / name).exists() for name in needed):
        archive = root / CIFAR10.filename
        if not archive.exists():
            where = (
                f"Put {CIFAR10.filename} (from {CIFAR10.url}) or its extracted folder {CIFAR10.base_folder} in "
                f"{root}, or run again with internet access."
            )
            _download_all("CIFAR-10", [([CIFAR10.url], archive, CIFAR10.tgz_md5)], progress, where)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")
    # torchvision's CIFAR10 class insists on the md5 of every original file and unpickles without restriction; the
    # batches are read here instead, allowing only numpy arrays, lists and strings.
    try:
        batches = [_unpickle_arrays(folder / name) for name, _ in CIFAR10.train_list]
        pixels = np.concatenate([np.asarray(b["data"], dtype=np.uint8).reshape(-1, 3, 32, 32) for b in batches])
        labels = np.concatenate([np.asarray(b["labels"], dtype=np.int64) for b in batches])
        classes = [
            n.decode() if isinstance(n, bytes) else str(n)
            for n in _unpickle_arrays(folder / CIFAR10.meta["filename"])[CIFAR10.meta["key"]]
        ]
    except Exception as err:  # a truncated, foreign or hostile pickle raises anything from KeyError to EOFError
        raise DatasetError(f"The CIFAR-10 files in {folder} are damaged ({err!r}). Delete them and try again.") from err
    if len(pixels) != len(labels) or labels.min() < 0 or labels.max() >= len(classes):
        raise DatasetError(f"The CIFAR-10 files in {folder} do not match ({len(pixels)} images, {len(labels)} labels).")
    return _split_pool(_Arrays(pixels.transpose(0, 2, 3, 1).copy()), labels, classes, spec, seed)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays, lists and strings; anything else (code) is refused."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a dataset file")
        return super().find_class(module, name)


def _unpickle_arrays(path: Path) -> dict:
    with open(path, "rb") as f:
        value = _ArrayUnpickler(f, encoding="latin1").load()  # the batches were pickled by Python 2
    if not isinstance(value, dict):
        raise DatasetError(f"{path} does not hold a CIFAR batch.")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in value.items()}


def _gunzip(path: Path) -> None:
    """Decompress ``NAME.gz`` next to itself as ``NAME``, atomically."""
    target = path.with_suffix("")
    with gzip.open(path, "rb") as src, tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
        try:
            shutil.copyfileobj(src, tmp)
        except BaseException:
            tmp.close()
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, target)


def _download_all(
    title: str, files: Sequence[tuple[Sequence[str], Path, str]], progress: ProgressFn | None, where: str
) -> None:
    """Download each ``(mirror urls, destination, md5)``, reporting bytes across all files; explain failures."""
    if _offline():
        raise DatasetUnavailable(f"{title} is not downloaded yet and CNN_EXPLORER_OFFLINE is set. {where}")
    tally = _Tally(progress)
    for urls, destination, md5 in files:
        errors = []
        for url in urls:
            try:
                _download(url, destination, md5, tally)
                break
            except (urllib.error.URLError, OSError, ValueError) as err:
                errors.append(f"{url}: {err}")
        else:
            raise DatasetUnavailable(f"{title} could not be downloaded ({'; '.join(errors)}). {where}")


class _Tally:
    """Bytes done across several downloads; the total is the sum of the sizes announced so far (None if one was not)."""

    def __init__(self, progress: ProgressFn | None) -> None:
        self.progress, self.done, self.total = progress, 0, 0

    def expect(self, length: int | None) -> None:
        self.total = None if length is None or self.total is None else self.total + length

    def add(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)


def _download(url: str, destination: Path, md5: str, tally: _Tally) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5(usedforsecurity=False)  # torchvision publishes md5s; this only detects damage
    with tempfile.NamedTemporaryFile(dir=destination.parent, prefix=f".{destination.name}.", delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
                length = response.headers.get("Content-Length")
                tally.expect(int(length) if length else None)
                while chunk := response.read(1 << 20):
                    tmp.write(chunk)
                    digest.update(chunk)
                    tally.add(len(chunk))
            if digest.hexdigest() != md5:
                raise OSError(f"the download of {destination.name} is damaged (checksum mismatch)")
        except BaseException:
            tmp.close()
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, destination)


DATASETS: dict[str, DatasetKind] = {
    kind.key: kind
    for kind in (
        DatasetKind(
            "shapes",
            "Synthetic shapes",
            f"{len(SHAPE_CLASSES)} kinds of filled shapes on random backgrounds, drawn from the run's seed (built in).",
            channels=3,
            size=None,
            source="built-in",
            per_image_standardization=True,
            load=_load_shapes,
        ),
        DatasetKind(
            "digits",
            "Handwritten digits (scikit-learn)",
            "1797 scans of handwritten digits, 8×8 grey, light ink on black (built in).",
            channels=1,
            size=8,
            source="built-in",
            invert_light_background=True,
            load=_load_digits,
        ),
        DatasetKind(
            "digits_mixed",
            "Digits: handwritten, typed and drawn",
            "scikit-learn's 1797 handwritten digits, augmented, with digits typed in fonts and drawn with a pen, "
            "every digit cropped to its ink and centred (built in).",
            channels=1,
            size=None,
            source="built-in",
            invert_light_background=True,
            fit_ink=True,
            load=_load_digits_mixed,
        ),
        DatasetKind(
            "folder",
            "Your images",
            "A folder (or uploaded zip) with one subfolder of images per class.",
            channels=3,
            size=None,
            source="folder",
            load=_load_folder,
        ),
        DatasetKind(
            "mnist",
            "MNIST",
            "60,000 handwritten digits, 28×28 grey, light ink on black (torchvision download, 12 MB).",
            channels=1,
            size=28,
            source="download",
            invert_light_background=True,
            load=_load_mnist_like("MNIST", "MNIST"),
        ),
        DatasetKind(
            "fashion_mnist",
            "Fashion-MNIST",
            "60,000 photos of clothing in 10 classes, 28×28 grey, light on black (torchvision download, 30 MB).",
            channels=1,
            size=28,
            source="download",
            invert_light_background=True,
            load=_load_mnist_like("FashionMNIST", "Fashion-MNIST"),
        ),
        DatasetKind(
            "cifar10",
            "CIFAR-10",
            "50,000 small photos of 10 kinds of animals and vehicles, 32×32 RGB (torchvision download, 163 MB).",
            channels=3,
            size=32,
            source="download",
            load=_load_cifar10,
        ),
    )
}
"""Every dataset kind, in the order the training page lists them."""


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


# --- Uploaded archives ------------------------------------------------------------------------------------------

MAX_ZIP_FILES = 20_000
"""Most images one uploaded archive may hold."""
MAX_ZIP_BYTES = 500 * 2**20
"""Most bytes an uploaded archive may hold once extracted (500 MB)."""


@dataclass(frozen=True)
class ZipReport:
    """What :func:`extract_zip` extracted.

    Attributes:
        folder: The dataset folder (one subfolder per class): a ``DataSpec.path`` for ``kind="folder"``.
        classes: The class names (folder names), sorted.
        counts: Images per class.
        skipped: Entries not extracted: files that are not images (by name or content), hidden files and
            ``__MACOSX`` metadata, images outside a class folder, repeated names.
    """

    folder: Path
    classes: tuple[str, ...]
    counts: dict[str, int]
    skipped: int


def extract_zip(
    data: bytes | str | os.PathLike | BinaryIO,
    target: str | os.PathLike,
    max_files: int = MAX_ZIP_FILES,
    max_bytes: int = MAX_ZIP_BYTES,
) -> ZipReport:
    """Check an uploaded zip of class folders and extract its images into ``target``.

    The archive holds one folder per class, optionally wrapped in one top-level folder. Before anything is written,
    every name is checked (no absolute path, no ``..``, no link, no encrypted entry) and the image count and
    declared total size are capped; while extracting, the bytes actually decompressed are counted against the same
    cap (an archive can lie about its sizes). Everything is extracted into a temporary folder beside ``target`` and
    renamed into place only when it all succeeded: a refused archive leaves nothing behind.

    Args:
        data: The archive: its bytes, a path, or a binary file object.
        target: The folder to create; it must not exist yet (or be empty).
        max_files: Most images extracted.
        max_bytes: Most bytes extracted.

    Returns:
        What was extracted (see :class:`ZipReport`).

    Raises:
        DatasetError: The archive is refused; the message says why and what to do.
    """
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DatasetError(f"{target} already exists. Choose another name for the dataset, or delete the old one.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes | bytearray) else data)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as err:
        raise DatasetError(
            "This file is not a zip archive (or is damaged). Put one folder of images per class into a zip file "
            "and upload that."
        ) from err
    except OSError as err:
        raise DatasetError(f"The archive cannot be read ({err}).") from err
    with archive:
        entries, skipped = _plan_extraction(archive.infolist(), max_files, max_bytes)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            counts, rejected = _extract(archive, entries, staging, max_bytes)
            classes = tuple(sorted(c for c, n in counts.items() if n > 0))
            if len(classes) < 2:
                raise DatasetError(_too_few_classes(classes))
            if target.exists():
                target.rmdir()
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return ZipReport(target, classes, {c: counts[c] for c in classes}, skipped + rejected)


def _too_few_classes(classes: Sequence[str]) -> str:
    found = f"one class folder with images ({classes[0]})" if classes else "no class folder with images"
    return (
        f"The archive has {found}; training needs at least two. Put each class's images in its own folder "
        "(cats/…, dogs/…) and zip those folders together."
    )


@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    label: str  # class folder
    parts: tuple[str, ...]  # path under the dataset folder, starting with the class folder


def _plan_extraction(infos: Sequence[zipfile.ZipInfo], max_files: int, max_bytes: int) -> tuple[list[_Entry], int]:
    """The image entries to extract and the count of skipped ones; refuses unsafe or oversized archives."""
    candidates, skipped = [], 0
    for info in infos:
        name = info.filename.replace("\\", "/")
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            raise DatasetError(f"The archive holds an absolute path ({info.filename!r}); it is refused. {_REZIP}")
        parts = tuple(p for p in name.split("/") if p not in ("", "."))
        if ".." in parts:
            raise DatasetError(
                f"The archive holds a path leading outside it ({info.filename!r}); it is refused. {_REZIP}"
            )
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise DatasetError(f"The archive holds a link ({info.filename!r}); links are refused. {_REZIP}")
        if info.is_dir() or not parts:
            continue
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no type recorded (zipfile.writestr, Windows tools)
            raise DatasetError(f"The archive holds a special file ({info.filename!r}); it is refused. {_REZIP}")
        if info.flag_bits & 0x1:
            raise DatasetError(
                f"The archive is password-protected ({info.filename!r}). Zip the folders without a password."
            )
        if _is_image_name(parts):
            candidates.append((info, parts))
        else:
            skipped += 1
    # One top-level folder around the class folders is unwrapped (images lying in it directly then sit in no class).
    tops = {parts[0] for _, parts in candidates}
    if len(tops) == 1 and any(len(parts) >= 3 for _, parts in candidates):
        candidates = [(info, parts[1:]) for info, parts in candidates]
    entries = [_Entry(info, parts[0], parts) for info, parts in candidates if len(parts) >= 2]
    skipped += len(candidates) - len(entries)  # images lying outside any class folder
    if len(entries) > max_files:
        raise DatasetError(
            f"The archive holds {len(entries):,} images; at most {max_files:,} are accepted. Use fewer images "
            "per class."
        )
    declared = sum(entry.info.file_size for entry in entries)
    if declared > max_bytes:
        raise DatasetError(_too_big(declared, max_bytes))
    classes = sorted({entry.label for entry in entries})
    if len(classes) < 2:
        raise DatasetError(_too_few_classes(classes))
    return entries, skipped


_REZIP = "Zip the class folders themselves (no links, no paths outside the folder) and upload again."


def _too_big(size: int, max_bytes: int) -> str:
    return (
        f"The archive's images take {size / 2**20:,.0f} MB once extracted; at most {max_bytes / 2**20:,.0f} MB "
        "are accepted. Use fewer or smaller images (resizing photos to about 256 pixels loses nothing a small "
        "network can use)."
    )


def _extract(
    archive: zipfile.ZipFile, entries: Sequence[_Entry], staging: Path, max_bytes: int
) -> tuple[Counter[str], int]:
    """Extract ``entries`` under ``staging``, counting bytes as they decompress; drop files that are no images."""
    counts: Counter[str] = Counter()
    rejected, written, root = 0, 0, staging.resolve()
    for entry in entries:
        destination = staging.joinpath(*entry.parts)
        if not destination.resolve().is_relative_to(root):
            raise DatasetError(f"The archive holds a path leading outside it ({entry.info.filename!r}). {_REZIP}")
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(entry.info) as source, open(destination, "xb") as out:
                while chunk := source.read(1 << 20):
                    written += len(chunk)
                    if written > max_bytes:
                        raise DatasetError(_too_big(written, max_bytes))
                    out.write(chunk)
        except FileExistsError:
            rejected += 1  # the same name twice: the first one stands
            continue
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise DatasetError(
                f"The archive is damaged or its sizes are forged ({entry.info.filename!r}: {err}). Create the zip "
                "again and upload it."
            ) from err
        except NotImplementedError as err:
            raise DatasetError(
                f"The archive uses a compression method that cannot be read ({err}). Create it again with the "
                "standard (deflate) compression."
            ) from err
        except OSError as err:
            raise DatasetError(f"{entry.info.filename!r} could not be extracted ({err}).") from err
        if _looks_like_image(destination):
            counts[entry.label] += 1
        else:
            destination.unlink()
            rejected += 1
    return counts, rejected


def _looks_like_image(path: Path) -> bool:
    """The header names an image format and a size :func:`load_image` accepts (the pixels are not decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.width * image.height <= MAX_PIXELS
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return False
