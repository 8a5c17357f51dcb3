"""Training styles for the synthetic shapes beyond :func:`cnn_explorer.data.draw_shape`'s filled polygons: shapes
sketched as people draw them, and shapes photographed.

``data.draw_shape(..., sketched=True)`` hands a share of its images to :func:`sketch`, which draws the same unit
outlines (passed in, so this module imports nothing of the project) as a stroke centred on the boundary with round
joins and caps, the hand's drift, ends that overshoot or stop short and sometimes a second pass — in dark ink on
white paper, as on the Draw canvas, or in one colour on another — or coloured in, as a filled scribble is. A model
trained on filled shapes and outlines traced inside the edge alone takes a pen-drawn arrow for a square.

``data.draw_shape(..., photographed=True)`` passes a share of its images, drawn or sketched, through
:func:`photograph`: a soft shadow beside a cut-out shape, light falling off around a lamp, a camera's blur, sensor
noise and JPEG compression. A model trained without it takes a photographed square for a semicircle: the shadow on
one side reads as a straight edge. The photo renderer of :mod:`cnn_explorer.renderers` shares no code with this; the
chalk renderer's grainy strokes on a smudged board are what no training style imitates.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["photograph", "sketch"]

_SUPER = 4  # drawn at 4× and box-averaged down: soft stroke edges
_REFERENCE_SIZE = 64  # the pixel ranges below are for 64×64 and scale with the size
_RADIUS_RANGE = (7.0, 31.0)  # circumradius, pixels
_STROKE_RANGE = (1.5, 8.0)  # stroke width, pixels
_PEN_PROBABILITY = 0.6  # dark ink on white paper (else one colour on another)
_FILL_PROBABILITY = 0.25  # a non-circle coloured in rather than outlined (a circle is always coloured in)
_SECOND_PASS_PROBABILITY = 0.3
_WOBBLE_MAX = 0.05  # the hand's drift, in circumradii
_STRETCH = 0.1  # each axis scaled by 1 ± up to this: a hand's proportions are never exact
_STEP = 0.05  # points along the stroke at most this far apart, in circumradii, so the drift bends the lines
_MIN_CONTRAST = 70.0  # grey levels between ink and paper in the two-colour style
# photograph(): ranges at 64×64, scaled with the size
_SHADOW_OFFSET = (0.5, 3.0)  # pixels, each axis, either sign
_SHADOW_SOFTNESS = (0.5, 2.0)  # Gaussian blur of the shadow, pixels
_SHADOW_DEPTH = (0.2, 0.55)  # the share of light the shadow takes away
_LAMP_FALLOFF = (0.2, 0.8)  # light lost per image width away from the lamp
_BLUR = (0.0, 1.2)  # the camera's Gaussian blur, pixels
_SENSOR_NOISE = (1.0, 8.0)  # grey levels, standard deviation
_JPEG_QUALITY = (30, 92)


def _along(points: np.ndarray, step: float) -> np.ndarray:
    """The closed polygon ``points`` as a polyline back to its start, with points at most ``step`` apart."""
    closed = np.concatenate([points, points[:1]])
    out = []
    for a, b in itertools.pairwise(closed):
        n = max(1, math.ceil(float(np.hypot(*(b - a))) / step))
        out.append(a + (b - a) * (np.arange(n)[:, None] / n))
    return np.concatenate([*out, closed[-1:]])


def _drift(n: int, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """Smooth offsets along ``n`` points: a few random knots, linearly joined."""
    knots = max(3, n // 10)
    coarse = rng.normal(0.0, amplitude, size=(knots, 2))
    at = np.linspace(0.0, knots - 1, n)
    return np.stack([np.interp(at, np.arange(knots), coarse[:, k]) for k in range(2)], axis=1)


def _colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Ink and paper: dark ink on near-white paper, or two colours far apart in grey."""
    if rng.random() < _PEN_PROBABILITY:
        paper = np.clip(rng.uniform(225, 256) - rng.uniform(0, 12, size=3), 0, 255)
        ink = rng.uniform(0, 110, size=3) * rng.uniform(0.3, 1.0)
        return tuple(int(v) for v in ink), tuple(int(v) for v in paper)
    grey = np.array([0.299, 0.587, 0.114])
    while True:
        ink, paper = rng.uniform(0, 256, size=(2, 3))
        if abs(float((ink - paper) @ grey)) >= _MIN_CONTRAST:
            return tuple(int(v) for v in ink), tuple(int(v) for v in paper)


def sketch(
    fills: Sequence[np.ndarray],
    holes: Sequence[np.ndarray],
    rng: np.random.Generator,
    size: int,
    filled: bool = False,
) -> Image.Image:
    """One shape drawn by hand, ``size`` × ``size`` RGB.

    Args:
        fills: the shape's polygons, ``(n, 2)`` arrays inside the unit disc (the training generator's outlines).
        holes: polygons cut out of the fills when the shape is coloured in.
        rng: every random choice; the same state gives the same image.
        size: the image side in pixels.
        filled: always colour the shape in (a circle: its outline would be a ring).
    """
    scale = size / _REFERENCE_SIZE
    big = size * _SUPER
    radius = rng.uniform(*_RADIUS_RANGE) * scale
    cx, cy = rng.uniform(radius + 1, size - radius - 1, size=2)
    angle = rng.uniform(0.0, 2 * math.pi)
    rotate = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    stretch = rng.uniform(1 - _STRETCH, 1 + _STRETCH, size=2)
    wobble = rng.uniform(0.0, _WOBBLE_MAX)

    def to_canvas(points: np.ndarray) -> list[tuple[float, float]]:
        placed = (points * stretch) @ rotate.T * radius + (cx, cy)
        return [tuple(p) for p in placed * _SUPER]

    ink, paper = _colours(rng)
    image = Image.new("RGB", (big, big), paper)
    draw = ImageDraw.Draw(image)
    if filled or rng.random() < _FILL_PROBABILITY:
        for polygon in fills:
            draw.polygon(to_canvas(polygon + _drift(len(polygon), rng, wobble / 2)), fill=ink)
        for polygon in holes:
            draw.polygon(to_canvas(polygon + _drift(len(polygon), rng, wobble / 2)), fill=paper)
    else:
        width = max(_SUPER, round(rng.uniform(*_STROKE_RANGE) * scale * _SUPER))
        for polygon in fills:
            for _ in range(1 + int(rng.random() < _SECOND_PASS_PROBABILITY)):
                stroke = _along(np.roll(polygon, -int(rng.integers(len(polygon))), axis=0), _STEP)
                ends = int(rng.integers(-3, 5))  # stop short of the start, or run past it
                stroke = stroke[: len(stroke) + ends] if ends < 0 else np.concatenate([stroke, stroke[1 : 1 + ends]])
                points = to_canvas(stroke + _drift(len(stroke), rng, wobble))
                draw.line(points, fill=ink, width=width, joint="curve")
                for x, y in (points[0], points[-1]):  # round caps
                    draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=ink)
    small = np.asarray(image.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    small = small + rng.standard_normal(small.shape, dtype=np.float32) * np.float32(rng.uniform(0.0, 6.0))
    return Image.fromarray(np.clip(small + 0.5, 0, 255).astype(np.uint8), "RGB")


def photograph(image: Image.Image, rng: np.random.Generator, shape: np.ndarray | None = None) -> Image.Image:
    """``image`` as if photographed: a soft shadow beside the shape, light falling off around a lamp that may be off
    the frame, a camera's blur, sensor noise and JPEG compression. Same size, RGB.

    Args:
        image: an RGB drawing.
        rng: every random choice; the same state gives the same photograph.
        shape: the share of each pixel the shape covers, ``(H, W)`` in [0, 1], to cast its shadow on the background
            (a cut-out lying on a table); None casts none (ink on paper).
    """
    size = image.width
    scale = size / _REFERENCE_SIZE
    pixels = np.asarray(image, dtype=np.float32)
    if shape is not None:
        dx, dy = rng.uniform(*_SHADOW_OFFSET, size=2) * rng.choice([-1.0, 1.0], size=2) * scale
        cast = Image.fromarray(np.clip(shape * 255 + 0.5, 0, 255).astype(np.uint8), "L")
        cast = cast.transform(cast.size, Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy))
        cast = cast.filter(ImageFilter.GaussianBlur(rng.uniform(*_SHADOW_SOFTNESS) * scale))
        shade = np.asarray(cast, dtype=np.float32) / 255 * (1 - shape)  # on the table only, never on the cut-out
        pixels = pixels * (1 - rng.uniform(*_SHADOW_DEPTH) * shade)[..., None]
    lamp = rng.uniform(-0.3, 1.3, size=2) * size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    light = 1.1 - rng.uniform(*_LAMP_FALLOFF) * np.hypot(xx - lamp[0], yy - lamp[1]) / size
    pixels = pixels * np.clip(light, 0.4, 1.2)[..., None]
    photo = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "RGB")
    photo = photo.filter(ImageFilter.GaussianBlur(rng.uniform(*_BLUR) * scale))
    noisy = np.asarray(photo, dtype=np.float32)
    noisy = noisy + rng.standard_normal(noisy.shape, dtype=np.float32) * np.float32(rng.uniform(*_SENSOR_NOISE))
    photo = Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=int(rng.integers(*_JPEG_QUALITY)))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
