"""The images a shipped out-of-distribution detector is measured on, none of them drawn by this project's shape
generator: the sample photos, scikit-image's bundled photos (offline), the other built-in model's data, and shapes
drawn by a small renderer of its own (flat fills and outlines with ``PIL.ImageDraw``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["OTHER_PHOTOS", "SAMPLE_PHOTOS", "Source", "drawn_shapes", "other_photos", "sample_photos"]

SAMPLE_PHOTOS = ("astronaut", "cat", "coffee", "rocket", "hubble_deep_field")
# scikit-image's bundled images that need no download, less those that are our sample photos (astronaut, chelsea
# = the cat, coffee, rocket, hubble_deep_field).
OTHER_PHOTOS = (
    "camera",
    "coins",
    "moon",
    "page",
    "text",
    "horse",
    "clock",
    "brick",
    "grass",
    "gravel",
    "checkerboard",
    "colorwheel",
    "logo",
    "cell",
    "immunohistochemistry",
    "retina",
    "shepp_logan_phantom",
    "binary_blobs",
    "microaneurysms",
    "stereo_motorcycle",
)


@dataclass(frozen=True)
class Source:
    """Images of one kind for measuring a detector.

    Attributes:
        name: For the card's table.
        images: The pictures.
        in_distribution: True where they are like the training data (a flag is then a false alarm).
    """

    name: str
    images: list[Image.Image]
    in_distribution: bool


def sample_photos() -> list[Image.Image]:
    """The app's sample photos (assets/samples)."""
    from cnn_explorer.images import load_sample

    return [load_sample(key) for key in SAMPLE_PHOTOS]


def other_photos() -> list[Image.Image]:
    """scikit-image's bundled photos and scans of other kinds, as RGB."""
    import skimage.data

    images = []
    for name in OTHER_PHOTOS:
        array = getattr(skimage.data, name)()
        if isinstance(array, tuple):  # stereo_motorcycle: (left, right, disparity)
            array = array[0]
        array = np.asarray(array, dtype=np.float64) if np.asarray(array).dtype == bool else np.asarray(array)
        if array.dtype != np.uint8:
            array = (255 * (array.astype(np.float64) - array.min()) / max(float(np.ptp(array)), 1e-12)).astype(np.uint8)
        images.append(Image.fromarray(array).convert("RGB"))
    return images


# ── an independent shape renderer ───────────────────────────────────────────────────────────────────────────────

_CANVAS = 256  # drawn large, then shrunk: smooth edges without the project's supersampling code
_KINDS = ("circle", "square", "triangle", "star", "cross", "heart", "crescent", "ring", "arrow", "semicircle")


def _polygon(points: list[tuple[float, float]], cx: float, cy: float, r: float, angle: float) -> list[tuple]:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in points]


def _outline(kind: str) -> list[tuple[float, float]]:
    if kind == "square":
        return [(-0.7, -0.7), (0.7, -0.7), (0.7, 0.7), (-0.7, 0.7)]
    if kind == "triangle":
        return [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if kind == "star":
        return [
            ((1.0 if i % 2 == 0 else 0.4) * math.cos(-math.pi / 2 + i * math.pi / 5),
             (1.0 if i % 2 == 0 else 0.4) * math.sin(-math.pi / 2 + i * math.pi / 5))
            for i in range(10)
        ]  # fmt: skip
    if kind == "cross":
        w = 0.3
        return [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w),
                (-w, -w)]  # fmt: skip
    if kind == "arrow":
        return [(-1, -0.2), (0.2, -0.2), (0.2, -0.6), (1, 0), (0.2, 0.6), (0.2, 0.2), (-1, 0.2)]
    if kind == "heart":
        t = np.linspace(0, 2 * math.pi, 60)
        x, y = 16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return list(zip((x / 17).tolist(), (y / 17).tolist(), strict=True))
    raise ValueError(kind)


def _draw_one(kind: str, rng: np.random.Generator, size: int) -> Image.Image:
    background = tuple(int(v) for v in rng.integers(0, 256, 3))
    ink = tuple(int(v) for v in (np.array(background) + rng.integers(96, 160, 3)) % 256)
    img = Image.new("RGB", (_CANVAS, _CANVAS), background)
    draw = ImageDraw.Draw(img)
    r = rng.uniform(0.25, 0.4) * _CANVAS
    cx, cy = rng.uniform(r + 4, _CANVAS - r - 4, 2)
    angle = rng.uniform(0, 2 * math.pi)
    outline_only = rng.random() < 0.3
    width = int(rng.integers(6, 14))
    box = (cx - r, cy - r, cx + r, cy + r)
    fill, line = (None, ink) if outline_only else (ink, None)
    if kind == "circle":
        draw.ellipse(box, fill=fill, outline=line, width=width)
    elif kind == "ring":
        draw.ellipse(box, outline=ink, width=int(r * 0.4))
    elif kind == "semicircle":
        start = float(rng.uniform(0, 360))
        draw.pieslice(box, start, start + 180, fill=fill, outline=line, width=width)
    elif kind == "crescent":
        draw.ellipse(box, fill=ink)
        shift = 0.45 * r
        dx, dy = shift * math.cos(angle), shift * math.sin(angle)
        draw.ellipse((cx - 0.8 * r + dx, cy - 0.8 * r + dy, cx + 0.8 * r + dx, cy + 0.8 * r + dy), fill=background)
    else:
        points = _polygon(_outline(kind), cx, cy, r, angle)
        if outline_only:
            draw.line([*points, points[0]], fill=ink, width=width, joint="curve")
        else:
            draw.polygon(points, fill=ink)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def drawn_shapes(n: int = 200, seed: int = 0, size: int = 64) -> list[tuple[Image.Image, str]]:
    """``n`` shapes of the ten kinds, drawn flat (filled, or 30 % as outlines) on a flat background by
    ``PIL.ImageDraw`` alone: the shapes model's classes by another hand."""
    rng = np.random.default_rng(seed)
    return [(_draw_one(_KINDS[i % len(_KINDS)], rng, size), _KINDS[i % len(_KINDS)]) for i in range(n)]
