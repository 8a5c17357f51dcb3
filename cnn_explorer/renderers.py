"""Independent shape renderers: the ten shape classes drawn by code that shares nothing with the training generator.

The built-in shapes model is trained on :func:`cnn_explorer.data.draw_shape`. Accuracy on images from that same
generator says little about a circle drawn by another program, a pen sketch or a photographed paper cutout. This
module draws the same ten concepts its own way — its own geometry (contours written here, PIL's ellipse, pie-slice and
regular-polygon primitives), its own colours, strokes and lighting — and never imports :mod:`cnn_explorer.data`, so
a test can check it stays independent. :data:`RENDERERS` is the registry; :func:`accuracy_by_renderer` measures a
model on each.

Labels of outlines: the outline of a circle *is* a ring, so renderers that draw outlines skip the ``circle`` class
and draw ``ring`` as a circle's outline; every other class keeps its name when outlined.

Class order is the project's (``circle, square, triangle, star, cross, heart, crescent, ring, arrow, semicircle``),
written out here rather than imported.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from torch import Tensor, nn

__all__ = ["CLASSES", "RENDERERS", "Renderer", "accuracy_by_renderer", "render", "renderer_accuracy"]

CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "heart",
    "crescent",
    "ring",
    "arrow",
    "semicircle",
)
"""The shape classes in label order (the same concepts, in the same order, as the built-in shapes model)."""

_CIRCLE, _RING = CLASSES.index("circle"), CLASSES.index("ring")
_MIN_SIZE = 16

# --- Contours at unit size: a shape around the origin reaching distance ~1, x right and y down --------------------


def _ngon(n: int, radius: float, turn: float) -> np.ndarray:
    t = turn + np.arange(n) * 2 * math.pi / n
    return radius * np.stack([np.sin(t), -np.cos(t)], axis=1)  # the first vertex straight up when turn is 0


def _arc(cx: float, cy: float, r: float, start: float, stop: float, steps: int) -> np.ndarray:
    t = np.linspace(start, stop, steps)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def _star_contour() -> np.ndarray:
    tips, dents = _ngon(5, 1.0, 0.0), _ngon(5, 0.4, math.pi / 5)
    return np.concatenate([tips[:, None], dents[:, None]], axis=1).reshape(10, 2)


def _cross_contour() -> np.ndarray:
    a, w = 0.95, 0.3  # arm reach and half width
    quarter = [(w, -a), (w, -w), (a, -w)]
    points = []
    for k in range(4):  # one arm tip and its inner corner per quarter turn
        c, s = math.cos(k * math.pi / 2), math.sin(k * math.pi / 2)
        points += [(x * c - y * s, x * s + y * c) for x, y in quarter]
    return np.array(points)


# The heart: two round lobes on top and a point below, joined by the lines tangent to the lobes.
_LOBE_X, _LOBE_Y, _LOBE_R, _TIP_Y = 0.46, -0.32, 0.5, 0.92


def _heart_contour() -> np.ndarray:
    # The right half: from the dip between the lobes, over the right lobe, down to where the line to the tip touches
    # it (the outer tangent from the tip); the left half is its mirror image.
    dip = -math.pi + math.acos(_LOBE_X / _LOBE_R)
    dx, dy = -_LOBE_X, _TIP_Y - _LOBE_Y
    touch = math.atan2(dy, dx) - math.acos(_LOBE_R / math.hypot(dx, dy))
    right = _arc(_LOBE_X, _LOBE_Y, _LOBE_R, dip, touch, 40)
    left = right[::-1] * np.array([-1.0, 1.0])
    return np.concatenate([right, [[0.0, _TIP_Y]], left[:-1]])


_BITE_OFFSET, _BITE_R = 0.5, 0.78  # the crescent: the unit disc less a disc this far right, this big


def _crescent_contour() -> np.ndarray:
    d, r = _BITE_OFFSET, _BITE_R
    x = (1 + d * d - r * r) / (2 * d)  # the two circles meet at (x, ±y)
    y = math.sqrt(1 - x * x)
    outer_at, bite_at = math.atan2(y, x), math.atan2(y, x - d)
    outer = _arc(0.0, 0.0, 1.0, outer_at, 2 * math.pi - outer_at, 48)
    bite = _arc(d, 0.0, r, 2 * math.pi - bite_at, bite_at, 40)
    return np.concatenate([outer, bite])


def _arrow_contour() -> np.ndarray:
    return np.array([(-1.0, -0.18), (0.15, -0.18), (0.15, -0.55), (1.0, 0.0), (0.15, 0.55), (0.15, 0.18), (-1.0, 0.18)])


def _semicircle_contour() -> np.ndarray:
    return _arc(0.0, 0.0, 1.0, math.pi, 0.0, 40)  # the upper half; the diameter closes it


def _circle_contour() -> np.ndarray:
    return _arc(0.0, 0.0, 1.0, 0.0, 2 * math.pi, 64)[:-1]


_CONTOURS: dict[str, np.ndarray] = {
    "circle": _circle_contour(),
    "square": _ngon(4, 1.0, math.pi / 4),
    "triangle": _ngon(3, 1.0, 0.0),
    "star": _star_contour(),
    "cross": _cross_contour(),
    "heart": _heart_contour(),
    "crescent": _crescent_contour(),
    "ring": _circle_contour(),  # an outlined ring is an outlined circle
    "arrow": _arrow_contour(),
    "semicircle": _semicircle_contour(),
}

_RING_HOLE = 0.62  # the filled ring's hole, as a share of its outer radius


# --- Placement and colour --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pose:
    cx: float
    cy: float
    r: float
    turn: float

    def place(self, points: np.ndarray) -> np.ndarray:
        c, s = math.cos(self.turn), math.sin(self.turn)
        x, y = points[:, 0], points[:, 1]
        return np.stack([self.cx + self.r * (x * c - y * s), self.cy + self.r * (x * s + y * c)], axis=1)

    def point(self, x: float, y: float) -> tuple[float, float]:
        return tuple(self.place(np.array([[x, y]]))[0])


def _pose(rng: np.random.Generator, size: int, radius: tuple[float, float]) -> _Pose:
    """A random pose with a radius in ``radius`` (shares of the image side), wholly inside the image."""
    r = min(rng.uniform(*radius) * size, size / 2 - 1)
    cx, cy = rng.uniform(r + 1, size - r - 1, size=2)
    return _Pose(float(cx), float(cy), float(r), float(rng.uniform(0, 2 * math.pi)))


def _grey(rgb: Sequence[float]) -> float:
    return 0.3 * rgb[0] + 0.59 * rgb[1] + 0.11 * rgb[2]


def _two_colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A shape colour and a background colour at least 70 grey levels apart."""
    while True:
        fg, bg = rng.integers(0, 256, size=(2, 3))
        if abs(_grey(fg) - _grey(bg)) >= 70:
            return tuple(int(v) for v in fg), tuple(int(v) for v in bg)


# --- Filled shapes with PIL's primitives, no antialiasing ------------------------------------------------------


def _fill(draw: ImageDraw.ImageDraw, label: int, pose: _Pose, ink: object, paper: object) -> None:
    name = CLASSES[label]
    cx, cy, r = pose.cx, pose.cy, pose.r
    if name in ("circle", "ring"):
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=ink)
        if name == "ring":
            h = r * _RING_HOLE
            draw.ellipse((cx - h, cy - h, cx + h, cy + h), fill=paper)
    elif name == "crescent":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=ink)
        bx, by = pose.point(_BITE_OFFSET, 0.0)
        b = r * _BITE_R
        draw.ellipse((bx - b, by - b, bx + b, by + b), fill=paper)
    elif name == "semicircle":
        start = math.degrees(pose.turn) + 180  # the upper half at turn 0, turned with the pose
        draw.pieslice((cx - r, cy - r, cx + r, cy + r), start, start + 180, fill=ink)
    elif name == "square":
        draw.regular_polygon((cx, cy, r), 4, rotation=math.degrees(pose.turn), fill=ink)
    elif name == "triangle":
        draw.regular_polygon((cx, cy, r), 3, rotation=math.degrees(pose.turn), fill=ink)
    elif name == "heart":
        for side in (-1, 1):
            lx, ly = pose.point(side * _LOBE_X, _LOBE_Y)
            lr = r * _LOBE_R
            draw.ellipse((lx - lr, ly - lr, lx + lr, ly + lr), fill=ink)
        draw.polygon([tuple(p) for p in pose.place(_heart_contour())], fill=ink)
    else:
        draw.polygon([tuple(p) for p in pose.place(_CONTOURS[name])], fill=ink)


def _flat(label: int, rng: np.random.Generator, size: int, radius: tuple[float, float]) -> Image.Image:
    ink, paper = _two_colours(rng)
    image = Image.new("RGB", (size, size), paper)
    _fill(ImageDraw.Draw(image), label, _pose(rng, size, radius), ink, paper)
    return image


def flat(label: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A flat colour shape on a flat background, hard-edged (no antialiasing), 18–42 % of the side across."""
    return _flat(label, rng, size, (0.18, 0.42))


def sizes(label: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A flat shape far smaller (8 px radius at 64×64) or larger (nearly filling the image) than usual, anywhere."""
    small = rng.random() < 0.5
    return _flat(label, rng, size, (0.12, 0.18) if small else (0.42, 0.48))


# --- Outlines and pen sketches ---------------------------------------------------------------------------------

_SUPER = 4  # strokes are drawn at 4× and reduced: a pen stroke has soft edges


def _closed(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points, points[:1]])


def _densify(points: np.ndarray, step: float) -> np.ndarray:
    """Points along a closed polyline at most ``step`` apart (vertices kept, so corners stay sharp)."""
    out = []
    for a, b in itertools.pairwise(points):
        n = max(1, math.ceil(float(np.linalg.norm(b - a)) / step))
        out.append(a + (b - a) * np.arange(n)[:, None] / n)
    out.append(points[-1:])
    return np.concatenate(out)


def _outline_labels() -> tuple[int, ...]:
    return tuple(i for i in range(len(CLASSES)) if i != _CIRCLE)


def outline(label: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A shape's thick outline (3–12 % of the side) in one colour on another; a ring is a circle's outline."""
    _check_outline_label(label)
    ink, paper = _two_colours(rng)
    big = size * _SUPER
    pose = _pose(rng, big, (0.2, 0.44))
    width = max(_SUPER, round(rng.uniform(0.03, 0.12) * big))
    image = Image.new("RGB", (big, big), paper)
    points = [tuple(p) for p in pose.place(_closed(_CONTOURS[CLASSES[label]]))]
    ImageDraw.Draw(image).line(points, fill=ink, width=width, joint="curve")
    return image.resize((size, size), Image.Resampling.LANCZOS)


def _wobble(n: int, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """Smooth random offsets along a stroke of ``n`` points: a hand's drift, not pixel noise."""
    knots = max(4, n // 12)
    coarse = rng.normal(0.0, amplitude, size=(knots, 2))
    at = np.linspace(0, knots - 1, n)
    return np.stack([np.interp(at, np.arange(knots), coarse[:, k]) for k in range(2)], axis=1)


def pen(label: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A pen sketch: dark, wobbly strokes (2–5 % of the side) on white paper, sometimes gone over twice, the ends
    overshooting or falling short; a ring is a sketched circle."""
    _check_outline_label(label)
    big = size * _SUPER
    pose = _pose(rng, big, (0.22, 0.44))
    paper = tuple(int(v) for v in rng.integers(232, 256) - rng.integers(0, 10, size=3))
    ink = tuple(int(v) for v in rng.integers(0, 70, size=3))
    image = Image.new("RGB", (big, big), paper)
    draw = ImageDraw.Draw(image)
    width = max(_SUPER, round(rng.uniform(0.02, 0.05) * big))
    contour = _CONTOURS[CLASSES[label]]
    for _ in range(1 + int(rng.random() < 0.3)):
        start = int(rng.integers(len(contour)))
        rolled = np.roll(contour, -start, axis=0)
        stroke = _densify(_closed(rolled), 0.06)
        overshoot = int(rng.integers(-3, 6))  # a few points short of closing, or past the start
        if overshoot < 0:
            stroke = stroke[: len(stroke) + overshoot]
        else:
            stroke = np.concatenate([stroke, stroke[1 : 1 + overshoot]])
        stroke = stroke * rng.uniform(0.92, 1.08, size=2) + _wobble(len(stroke), rng, 0.035)
        draw.line([tuple(p) for p in pose.place(stroke)], fill=ink, width=width, joint="curve")
    return image.resize((size, size), Image.Resampling.LANCZOS)


def _check_outline_label(label: int) -> None:
    _check_label(label)
    if label == _CIRCLE:
        raise ValueError("An outlined circle is a ring: outline renderers draw the ring class instead of circle.")


# --- A photographed paper cutout -------------------------------------------------------------------------------


def photo(label: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A paper cutout photographed on a table: a soft shadow, light falling off across the frame, a slightly tilted
    camera's blur, sensor noise and JPEG compression."""
    big = size * _SUPER
    table = rng.uniform(60, 200) * rng.uniform(0.75, 1.0, size=3)
    card = rng.uniform(0, 255, size=3)
    while abs(_grey(card) - _grey(table)) < 60:
        card = rng.uniform(0, 255, size=3)
    pose = _pose(rng, big, (0.22, 0.42))
    mask = Image.new("L", (big, big), 0)
    _fill(ImageDraw.Draw(mask), label, pose, 255, 0)
    shift = rng.uniform(0.01, 0.04, size=2) * big
    shadow = mask.transform(mask.size, Image.Transform.AFFINE, (1, 0, -shift[0], 0, 1, -shift[1]))
    shadow = np.asarray(shadow.filter(ImageFilter.GaussianBlur(big * 0.02)), dtype=np.float32)[..., None] / 255
    cut = np.asarray(mask.filter(ImageFilter.GaussianBlur(0.7 * _SUPER)), dtype=np.float32)[..., None] / 255
    pixels = table * (1 - 0.45 * shadow)
    pixels = pixels * (1 - cut) + card * cut
    yy, xx = np.mgrid[0:big, 0:big] / big
    lx, ly = rng.uniform(-0.3, 1.3, size=2)  # where the light is brightest, possibly off the frame
    light = 1.15 - rng.uniform(0.3, 0.7) * np.hypot(xx - lx, yy - ly)
    pixels = pixels * np.clip(light, 0.35, 1.25)[..., None]
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").resize((size, size), Image.Resampling.BOX)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0) * size / 64))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(2, 7), size=(size, size, 3))
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    return _jpeg(image, int(rng.integers(40, 85)))


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


# --- Chalk on a blackboard --------------------------------------------------------------------------------------


def chalk(label: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A chalk drawing on a blackboard: grainy strokes that skip where the board's texture dips, on a green or slate
    board smudged with the dust of earlier lessons; a ring is a chalked circle."""
    _check_outline_label(label)
    big = size * _SUPER
    board = np.array([rng.uniform(20, 50), rng.uniform(45, 85), rng.uniform(35, 60)])
    if rng.random() < 0.4:
        board = np.full(3, rng.uniform(25, 60))  # slate
    colour = np.array([255.0, 255.0, 255.0]) if rng.random() < 0.6 else rng.uniform(170, 255, size=3)
    dust = rng.random((6, 6)).astype(np.float32)  # smudges: chalk dust, wiped across the board
    dust = np.asarray(Image.fromarray(dust, "F").resize((big, big), Image.Resampling.BICUBIC), dtype=np.float32)
    pixels = board + rng.uniform(10, 40) * np.clip(dust, 0, 1)[..., None]
    pose = _pose(rng, big, (0.22, 0.44))
    stroke = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(stroke)
    width = max(_SUPER, round(rng.uniform(0.035, 0.07) * big))
    contour = _CONTOURS[CLASSES[label]]
    start = int(rng.integers(len(contour)))
    line = _densify(_closed(np.roll(contour, -start, axis=0)), 0.06)
    line = line * rng.uniform(0.94, 1.06, size=2) + _wobble(len(line), rng, 0.02)
    draw.line([tuple(p) for p in pose.place(line)], fill=255, width=width, joint="curve")
    grain = rng.random((big, big)) > rng.uniform(0.25, 0.55)  # where the chalk touches the board
    cover = np.asarray(stroke, dtype=np.float32)[..., None] / 255 * grain[..., None] * rng.uniform(0.7, 0.95)
    pixels = pixels * (1 - cover) + colour * cover
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").resize((size, size), Image.Resampling.BOX)


# --- Registry --------------------------------------------------------------------------------------------------


def _check_label(label: int) -> None:
    if not 0 <= label < len(CLASSES):
        raise ValueError(f"Shape label {label} is out of range: labels are 0–{len(CLASSES) - 1}.")


@dataclass(frozen=True)
class Renderer:
    """One independent way of drawing the shape classes.

    Attributes:
        name: Registry key.
        draw: ``(label, rng, size) -> RGB image`` of ``size × size``; the same generator state gives the same image.
        description: One line for the model card.
        held_out: Never used in training in any form: its accuracy measures generalization.
        labels: The class indices it draws (outline renderers skip ``circle``: an outlined circle is a ring).
    """

    name: str
    draw: Callable[[int, np.random.Generator, int], Image.Image]
    description: str
    held_out: bool
    labels: tuple[int, ...] = tuple(range(len(CLASSES)))


RENDERERS: dict[str, Renderer] = {
    r.name: r
    for r in (
        Renderer("flat", flat, "flat colour on flat colour, hard edges (no antialiasing)", held_out=False),
        Renderer("sizes", sizes, "flat fills far smaller or larger than the training shapes", held_out=False),
        Renderer("outline", outline, "thick outlines, one colour on another", False, _outline_labels()),
        Renderer("pen", pen, "pen sketches: wobbly dark strokes on white paper", True, _outline_labels()),
        Renderer("photo", photo, "photographed paper cutouts: shadow, uneven light, blur, JPEG", held_out=False),
        Renderer("chalk", chalk, "chalk on a smudged blackboard: grainy strokes", True, _outline_labels()),
    )
}
"""The independent renderers, by name."""


def render(name: str, label: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """Draw class ``label`` with renderer ``name``.

    Raises:
        ValueError: Unknown renderer, a label it does not draw, or a size under 16 px.
    """
    if name not in RENDERERS:
        raise ValueError(f"No renderer {name!r}; renderers: {', '.join(RENDERERS)}.")
    _check_label(label)
    if size < _MIN_SIZE:
        raise ValueError(f"Image size {size} is too small to draw a recognisable shape: use at least {_MIN_SIZE}.")
    renderer = RENDERERS[name]
    if label not in renderer.labels:
        raise ValueError(f"The {name} renderer does not draw {CLASSES[label]}s (an outlined circle is a ring).")
    return renderer.draw(label, rng, size)


def images(name: str, n: int, seed: int, size: int = 64) -> tuple[list[Image.Image], list[int]]:
    """``n`` images of renderer ``name``, cycling through its classes; image ``i`` is drawn with ``(seed, i)``."""
    labels = RENDERERS[name].labels
    chosen = [labels[i % len(labels)] for i in range(n)]
    return [render(name, label, np.random.default_rng([seed, i]), size) for i, label in enumerate(chosen)], chosen


@torch.no_grad()
def renderer_accuracy(
    module: nn.Module, preprocess: Callable[[Image.Image], Tensor], name: str, n: int = 500, seed: int = 0
) -> float:
    """The share of ``n`` images from renderer ``name`` that ``module`` classifies right.

    Args:
        module: A classifier over :data:`CLASSES` in their order, in eval mode.
        preprocess: PIL image → ``[1, C, H, W]`` input (a model's ``Preprocess``).
        name: Renderer name.
        n: Images, cycling through the renderer's classes.
        seed: With the image index, fixes each image.
    """
    pictures, labels = images(name, n, seed)
    x = torch.cat([preprocess(p) for p in pictures])
    logits = torch.cat([module(chunk).float() for chunk in x.split(256)])
    return float((logits.argmax(1) == torch.tensor(labels)).float().mean())


def accuracy_by_renderer(
    module: nn.Module, preprocess: Callable[[Image.Image], Tensor], n: int = 500, seed: int = 0
) -> dict[str, float]:
    """:func:`renderer_accuracy` for every renderer in :data:`RENDERERS`, by name."""
    return {name: renderer_accuracy(module, preprocess, name, n, seed) for name in RENDERERS}
