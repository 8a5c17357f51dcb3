"""Synthetic shapes: ten classes of filled shapes on random backgrounds, drawn on the fly from ``(seed, index)``.

They train the ``tinyvgg-shapes`` model (64×64 RGB). Each shape class is one entry in ``_OUTLINES``: an outline at
unit size. ``draw_shape`` places, rotates, colours and rasterises every outline the same way, so a new class is one
entry, and nothing about a drawing except its outline depends on the class. :class:`SyntheticShapes` is the torch
dataset over them; the ``shapes`` training kind (:mod:`cnn_explorer.data.builtin`) draws its images through it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from cnn_explorer import shape_styles

__all__ = ["SHAPE_CLASSES", "SyntheticShapes", "draw_shape"]

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
_PHOTO_PROBABILITY = 0.4  # photographed=True: the share, drawn or sketched, then photographed (shape_styles)
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
    label: int,
    rng: np.random.Generator,
    size: int = 64,
    varied: bool = False,
    sketched: bool = False,
    photographed: bool = False,
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
        photographed: and 40 % of the images, drawn or sketched, then photographed
            (:func:`cnn_explorer.shape_styles.photograph`: a filled shape casts a soft shadow, light falls off around
            a lamp, blur, sensor noise, JPEG).

    Returns:
        An RGB image of ``size`` × ``size``.

    Raises:
        ValueError: ``label`` is not a class index, or ``size`` is too small to draw on.
    """
    if sketched and 0 <= label < len(SHAPE_CLASSES) and size >= _MIN_SIZE and rng.random() < _SKETCH_PROBABILITY:
        outline = _OUTLINES[SHAPE_CLASSES[label]]
        image = shape_styles.sketch(outline.fills, outline.holes, rng, size, filled=SHAPE_CLASSES[label] == "circle")
        shape = None
    else:
        drawing = _draw(label, rng, size, varied or sketched or photographed)
        image, shape = drawing.image, (drawing.alpha if drawing.stroke == 0 else None)
    if photographed and rng.random() < _PHOTO_PROBABILITY:
        return shape_styles.photograph(image, rng, shape)
    return image


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
        photographed: bool = False,
    ) -> None:
        """Describe the dataset; images are drawn when indexed, not here.

        Args:
            n: number of items.
            seed: non-negative seed that, with an item's index, fixes its image.
            size: image width and height in pixels.
            transform: applied to each image (e.g. to make a tensor); None returns the PIL image.
            varied: draw them many ways (see :func:`draw_shape`).
            sketched: and half of them by hand (see :func:`draw_shape`).
            photographed: and some of them photographed (see :func:`draw_shape`).

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
        self.sketched, self.photographed = sketched, photographed
        self.classes = list(SHAPE_CLASSES)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[Any, int]:
        if not 0 <= index < self.n:
            raise IndexError(f"Index {index} is out of range for {self.n} items.")
        label = index % len(SHAPE_CLASSES)
        rng = np.random.default_rng([self.seed, index])
        image = draw_shape(label, rng, self.size, self.varied, self.sketched, self.photographed)
        return (self.transform(image) if self.transform else image), label
