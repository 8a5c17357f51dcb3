"""Digits from independent sources: scikit-learn's handwriting made to count, typed fonts, and drawn strokes.

The only real handwritten digits available offline are scikit-learn's 1797 8×8 scans. A model trained on them
alone is at chance on a "7" typed in an ordinary font or drawn with a mouse. Each source here draws labelled digits
in its own way, deterministic from ``(seed, index)``:

* ``handwritten``: scikit-learn's digits, enlarged, then thickened or thinned, elastically distorted, rotated,
  scaled and shifted (:func:`thickness`, :func:`elastic`), on a canvas of random size and polarity.
* ``fonts``: digits typed in the TrueType fonts that ship inside matplotlib (DejaVu, STIX, Computer Modern), so
  every machine with the pinned requirements draws the same images.
* ``system_fonts``: digits typed in the Liberation fonts (Arial-, Times- and Courier-like) installed on the
  machine: the source no training run sees, kept to measure generalization (absent where they are not installed).
* ``strokes``: a pen drawing each digit as jittered strokes of random width, as a mouse or finger on a canvas does.

:func:`source_images` gives ``n`` images of a source (labels cycle through 0–9) and :func:`accuracy_per_source`
measures a model on each. The ``digits_mixed`` dataset kind (``cnn_explorer.data``) trains on the sources in
:data:`TRAINING_SOURCES`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

__all__ = [
    "EVAL_SEED",
    "HELD_OUT_SOURCE",
    "SOURCES",
    "TRAINING_SOURCES",
    "DigitSource",
    "SourceAccuracy",
    "accuracy_per_source",
    "elastic",
    "mixed_image",
    "mixed_label",
    "place",
    "source_images",
    "thickness",
]


# --- Augmentations ----------------------------------------------------------------------------------------------


def thickness(ink: np.ndarray, steps: int) -> np.ndarray:
    """Thicken (``steps`` > 0) or thin (< 0) the strokes of a light-ink image by ``|steps|`` pixels: a grey
    dilation or erosion with a 3×3 square, repeated (uint8 or float, ink bright)."""
    if steps == 0:
        return ink.copy()
    from scipy import ndimage  # here, not at the top: a quarter of a second of the app's cold start, for training

    operation = ndimage.grey_dilation if steps > 0 else ndimage.grey_erosion
    out = ink
    for _ in range(abs(steps)):
        out = operation(out, size=(3, 3), mode="constant", cval=0)
    return out


def elastic(ink: np.ndarray, alpha: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Elastic distortion (Simard et al. 2003, https://doi.org/10.1109/ICDAR.2003.1227801): every pixel moves by a
    random displacement field smoothed with a Gaussian of ``sigma`` pixels and scaled so its largest move is about
    ``alpha`` pixels. Bilinear, zeros outside; float32 out."""
    from scipy import ndimage

    h, w = ink.shape
    fields = []
    for _ in range(2):
        field = ndimage.gaussian_filter(rng.uniform(-1, 1, size=(h, w)), sigma, mode="constant")
        peak = float(np.abs(field).max())
        fields.append(field * (alpha / peak) if peak > 0 else field)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coords = np.stack([rows + fields[0], cols + fields[1]])
    return ndimage.map_coordinates(ink.astype(np.float32), coords, order=1, mode="constant", cval=0.0)


def place(
    ink: np.ndarray,
    canvas: int,
    height: float,
    centre: tuple[float, float],
    angle: float,
    light_ink: bool,
    paper: int = 0,
    pen: int = 255,
) -> Image.Image:
    """Put a light-ink glyph (float or uint8, 0 = no ink, 255 = full ink) on a square canvas.

    Args:
        ink: The glyph, cropped to its ink or not.
        canvas: Side of the canvas in pixels.
        height: Height of the glyph on the canvas, in pixels (its width follows its aspect).
        centre: ``(x, y)`` of the glyph's centre on the canvas, in pixels.
        angle: Rotation in degrees, counter-clockwise.
        light_ink: True: light ink on dark paper (MNIST); False: dark ink on light paper.
        paper: Paper grey on the light-ink scale (0 = none); ``pen`` the ink's.

    Returns:
        A mode ``"L"`` image.
    """
    glyph = Image.fromarray(np.clip(ink, 0, 255).astype(np.uint8), "L")
    scale = height / glyph.height
    size = (max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale)))
    glyph = glyph.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if angle:
        glyph = glyph.rotate(angle, Image.Resampling.BILINEAR, expand=True)
    coverage = Image.new("L", (canvas, canvas), 0)
    coverage.paste(glyph, (round(centre[0] - glyph.width / 2), round(centre[1] - glyph.height / 2)))
    mix = np.asarray(coverage, dtype=np.float32) / 255
    pixels = paper + (pen - paper) * mix
    if not light_ink:
        pixels = 255 - pixels
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L")


def _random_placement(rng: np.random.Generator, ink: np.ndarray, light_ink: bool | None = None) -> Image.Image:
    """``ink`` on a canvas of random size, at a random height (a fifth to four fifths of the canvas) and position
    (anywhere it fits), slightly rotated, either polarity, with paper and pen greys that are not pure."""
    canvas = int(rng.integers(28, 200))
    height = canvas * rng.uniform(0.2, 0.8)
    aspect = ink.shape[1] / ink.shape[0]
    half_w, half_h = height * max(aspect, 0.3) / 2 + 1, height / 2 + 1
    centre = (rng.uniform(half_w, max(half_w, canvas - half_w)), rng.uniform(half_h, max(half_h, canvas - half_h)))
    light = bool(rng.random() < 0.5) if light_ink is None else light_ink
    return place(
        ink,
        canvas,
        height,
        centre,
        float(rng.uniform(-10, 10)),
        light,
        paper=int(rng.integers(0, 40)),
        pen=int(rng.integers(190, 256)),
    )


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0), np.flatnonzero(ink.max(axis=0) > 0)
    if len(rows) == 0:
        return ink
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


# --- Sources ----------------------------------------------------------------------------------------------------

_SCAN_SIDE = 28  # an 8×8 scan is enlarged to this before its strokes are thickened and distorted


def _handwritten(
    rng: np.random.Generator, label: int, part: str, test_fraction: float = 0.2, seed: int = 0
) -> Image.Image:
    choices = _pool_by_label(part, test_fraction, seed)[label]
    scan = choices[int(rng.integers(len(choices)))]
    big = np.asarray(Image.fromarray(scan, "L").resize((_SCAN_SIDE, _SCAN_SIDE), Image.Resampling.BICUBIC))
    big = np.pad(big, 6)  # room for thickening and distortion
    big = thickness(big, int(rng.integers(-1, 3)))
    big = elastic(big, float(rng.uniform(0.0, 2.0)), float(rng.uniform(3.0, 5.0)), rng)
    big = _crop_to_ink(np.where(big > 20, big, 0))
    stretch = rng.uniform(0.8, 1.2)  # scans were normalized to fill their box: vary the aspect back
    if big.size:
        width = max(1, round(big.shape[1] * stretch))
        big = np.asarray(Image.fromarray(np.clip(big, 0, 255).astype(np.uint8), "L").resize((width, big.shape[0])))
    return _random_placement(rng, big)


# --- scikit-learn's 1,797 scans ----------------------------------------------------------------------------------

_DIGIT_INK_MAX = 16  # load_digits counts ink in a 4×4 block of the original 32×32 bitmap: 0–16


@functools.cache
def scans() -> tuple[np.ndarray, np.ndarray]:
    """The digits as ``(N, 8, 8)`` uint8 (ink bright, 0–255) and ``(N,)`` int64 labels, read-only, loaded once."""
    from sklearn.datasets import load_digits  # here, not at the top: importing sklearn costs a second or so

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255 / _DIGIT_INK_MAX)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    pixels.setflags(write=False)  # cached and shared between callers
    labels.setflags(write=False)
    return pixels, labels


def split_indices(test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Which scans (indices into :func:`scans`) train and which are held out: stratified by digit, fixed by ``seed``
    (``data.digits_split`` gives their images)."""
    from sklearn.model_selection import train_test_split  # see scans for why the import is here

    labels = scans()[1]
    return tuple(train_test_split(np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=seed))


@functools.cache
def _pool_by_label(part: str, test_fraction: float, seed: int) -> tuple[tuple[np.ndarray, ...], ...]:
    """The 8×8 scans (ink bright, uint8) of ``digits_split(test_fraction, seed)``'s training (``"train"``) or
    held-out (``"test"``) part, grouped by label: a run trains on the first and is measured on the second."""
    pixels, labels = scans()
    train, test = split_indices(test_fraction, seed)
    indices = train if part == "train" else test
    return tuple(tuple(pixels[i] for i in indices if labels[i] == label) for label in range(10))


_MATPLOTLIB_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
    "cmti10.ttf",
)
_SYSTEM_FONT_DIRS = (Path("/usr/share/fonts/truetype/liberation"), Path("/usr/share/fonts/truetype/liberation2"))


@functools.cache
def _fonts(family: str) -> tuple[Path, ...]:
    if family == "matplotlib":
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        return tuple(folder / name for name in _MATPLOTLIB_FONTS if (folder / name).exists())
    return tuple(sorted(p for d in _SYSTEM_FONT_DIRS if d.is_dir() for p in d.glob("Liberation*.ttf")))


_GLYPH_PX = 64  # glyphs are typed at this size, then placed (scaled) on the canvas


@functools.cache
def _font(path: Path) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), _GLYPH_PX)


def _typed(rng: np.random.Generator, label: int, family: str) -> Image.Image:
    fonts = _fonts(family)
    font = _font(fonts[int(rng.integers(len(fonts)))])
    bold = int(rng.choice([0, 0, 0, 1, 2]))  # sometimes a heavier pen than the font's own
    sheet = Image.new("L", (_GLYPH_PX * 2, _GLYPH_PX * 2), 0)
    ImageDraw.Draw(sheet).text(
        (_GLYPH_PX // 2, _GLYPH_PX // 4), str(label), fill=255, font=font, stroke_width=bold, stroke_fill=255
    )
    ink = _crop_to_ink(np.asarray(sheet))
    return _random_placement(rng, ink.astype(np.float32))


# Strokes of each digit in a box x ∈ [0, 0.6], y ∈ [0, 1] (y down), each stroke a polyline through its points.
# A digit has one or more ways of being written; arcs are listed as (cx, cy, rx, ry, start°, end°).
_Arc = tuple[float, float, float, float, float, float]


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 16) -> list[tuple]:
    t = np.radians(np.linspace(start, end, n))
    return list(zip((cx + rx * np.cos(t)).tolist(), (cy + ry * np.sin(t)).tolist(), strict=True))


_STROKES: dict[int, tuple[tuple[list[tuple], ...], ...]] = {
    0: ((_arc(0.3, 0.5, 0.3, 0.5, -90, 275, 28),), (_arc(0.3, 0.5, 0.27, 0.5, -100, 265, 28),)),
    1: (
        ([(0.3, 0.0), (0.3, 1.0)],),
        ([(0.12, 0.2), (0.32, 0.0), (0.32, 1.0)],),
        ([(0.12, 0.2), (0.32, 0.0), (0.32, 1.0)], [(0.12, 1.0), (0.5, 1.0)]),
    ),
    2: (
        ([*_arc(0.3, 0.28, 0.28, 0.28, 190, 370), (0.0, 1.0), (0.6, 1.0)],),
        ([*_arc(0.3, 0.3, 0.28, 0.3, 200, 390), (0.05, 0.95), (0.0, 1.0), (0.6, 0.98)],),
    ),
    3: (
        (_arc(0.28, 0.25, 0.27, 0.25, 200, 450) + _arc(0.28, 0.74, 0.3, 0.26, -90, 160),),
        ([(0.0, 0.0), (0.55, 0.0), (0.25, 0.4), *_arc(0.28, 0.7, 0.3, 0.3, -90, 160)],),
    ),
    4: (
        ([(0.42, 0.0), (0.0, 0.68), (0.6, 0.68)], [(0.45, 0.3), (0.45, 1.0)]),
        ([(0.05, 0.0), (0.0, 0.6), (0.6, 0.6)], [(0.45, 0.0), (0.45, 1.0)]),
    ),
    5: (
        ([(0.55, 0.0), (0.05, 0.0), (0.02, 0.42), *_arc(0.28, 0.68, 0.3, 0.3, -120, 155)],),
        ([(0.05, 0.0), (0.02, 0.45), *_arc(0.28, 0.7, 0.3, 0.28, -120, 160)], [(0.05, 0.0), (0.58, 0.0)]),
    ),
    6: (
        ([(0.5, 0.0), (0.15, 0.35), *_arc(0.3, 0.7, 0.29, 0.3, 200, 560, 28)],),
        (_arc(0.55, 0.55, 0.55, 0.55, 250, 180, 10) + _arc(0.3, 0.72, 0.29, 0.28, 180, 540, 26),),
    ),
    7: (
        ([(0.0, 0.0), (0.6, 0.0), (0.2, 1.0)],),
        ([(0.0, 0.05), (0.6, 0.0), (0.25, 1.0)], [(0.15, 0.5), (0.55, 0.5)]),
    ),
    8: (
        (_arc(0.3, 0.25, 0.24, 0.25, 90, 450, 24) + _arc(0.3, 0.74, 0.3, 0.26, -90, 270, 24),),
        (_arc(0.3, 0.24, 0.22, 0.24, 0, 360, 24), _arc(0.3, 0.74, 0.29, 0.26, 0, 360, 24)),
    ),
    9: (
        ([*_arc(0.3, 0.28, 0.29, 0.28, 0, 360, 24), (0.59, 0.28), (0.55, 1.0)],),
        (_arc(0.3, 0.28, 0.29, 0.28, 20, 380, 24) + _arc(0.05, 0.28, 0.55, 0.72, 0, 80, 10),),
    ),
}

_STROKE_CANVAS = 256


def _drawn(rng: np.random.Generator, label: int) -> Image.Image:
    """A digit as a person draws it with a mouse, a pen or a finger: one of the ways of writing it, every point
    jittered, slanted, stretched, in a pen of random width, on a canvas (both polarities)."""
    variants = _STROKES[label]
    strokes = variants[int(rng.integers(len(variants)))]
    shear, stretch = rng.uniform(-0.3, 0.3), rng.uniform(0.7, 1.4)
    wobble = rng.normal(0, 0.025, size=2)  # one slow drift per drawing
    height = _STROKE_CANVAS * 0.6
    pen = max(2, round(height * rng.uniform(0.04, 0.16)))
    sheet = Image.new("L", (_STROKE_CANVAS, _STROKE_CANVAS), 0)
    draw = ImageDraw.Draw(sheet)
    for stroke in strokes:
        points = np.asarray(stroke, dtype=np.float64)
        points = points + rng.normal(0, 0.02, size=points.shape) + wobble * points[:, 1:2]
        x = (points[:, 0] - 0.3) * stretch - shear * (points[:, 1] - 0.5)
        y = points[:, 1] - 0.5
        xy = np.stack([x * height + _STROKE_CANVAS / 2, y * height + _STROKE_CANVAS / 2], axis=1)
        draw.line([tuple(p) for p in xy.tolist()], fill=255, width=pen, joint="curve")
        for end in (xy[0], xy[-1]):  # round pen ends
            r = pen / 2
            draw.ellipse([end[0] - r, end[1] - r, end[0] + r, end[1] + r], fill=255)
    ink = _crop_to_ink(np.asarray(sheet)).astype(np.float32)
    return _random_placement(rng, ink)


@dataclass(frozen=True)
class DigitSource:
    """One way of making labelled digits.

    Attributes:
        key: Name in :data:`SOURCES`.
        title: For tables and model cards.
        draw: ``(rng, label) → image`` (mode ``"L"``, any size).
        available: False where the source needs files this machine lacks (the system fonts).
    """

    key: str
    title: str
    draw: Callable[[np.random.Generator, int], Image.Image]
    available: Callable[[], bool] = lambda: True


SOURCES: dict[str, DigitSource] = {
    source.key: source
    for source in (
        DigitSource(
            "handwritten",
            "scikit-learn's handwriting, augmented",
            lambda rng, label: _handwritten(rng, label, "train"),
        ),
        DigitSource(
            "handwritten_heldout",
            "scikit-learn's held-out handwriting, augmented",
            lambda rng, label: _handwritten(rng, label, "test"),
        ),
        DigitSource(
            "fonts",
            "typed in matplotlib's fonts (DejaVu, STIX, Computer Modern)",
            lambda rng, label: _typed(rng, label, "matplotlib"),
        ),
        DigitSource(
            "system_fonts",
            "typed in the Liberation fonts (Arial-, Times-, Courier-like)",
            lambda rng, label: _typed(rng, label, "system"),
            available=lambda: bool(_fonts("system")),
        ),
        DigitSource("strokes", "drawn with a pen, as on a canvas", _drawn),
    )
}
"""Every digit source. ``handwritten_heldout`` augments the 360 scans ``digits_split()`` holds out."""

TRAINING_SOURCES: tuple[str, ...] = ("handwritten", "fonts", "strokes")
"""The sources the ``digits_mixed`` dataset kind trains on, in equal shares."""

HELD_OUT_SOURCE = "system_fonts"
"""The source no training run sees: its accuracy is the figure that says how well the model generalizes."""

# Each source draws from its own stream, so the same (seed, index) in two sources are independent draws.
_STREAMS = {key: number for number, key in enumerate(SOURCES, start=1)}


def source_images(key: str, n: int, seed: int = 0) -> tuple[list[Image.Image], np.ndarray]:
    """``n`` digits of one source: image ``i`` shows digit ``i % 10``, drawn from ``(source, seed, i)``.

    Raises:
        KeyError: ``key`` is not a source.
        RuntimeError: the source is not available on this machine.
    """
    source = SOURCES[key]
    if not source.available():
        raise RuntimeError(f"The {source.title} source needs fonts this machine does not have.")
    labels = np.arange(n, dtype=np.int64) % 10
    images = [source.draw(np.random.default_rng([_STREAMS[key], seed, i]), int(labels[i])) for i in range(n)]
    return images, labels


def mixed_label(index: int) -> int:
    """The digit of :func:`mixed_image` ``index``: the training sources take turns, each going through 0–9."""
    return (index // len(TRAINING_SOURCES)) % 10


def mixed_image(index: int, seed: int, test_fraction: float = 0.2, split_seed: int = 0) -> Image.Image:
    """Image ``index`` of a training set mixing :data:`TRAINING_SOURCES` in equal shares, drawn from
    ``(source, seed, index)``; the handwriting comes from the training part of
    ``digits_split(test_fraction, split_seed)`` only."""
    key = TRAINING_SOURCES[index % len(TRAINING_SOURCES)]
    rng = np.random.default_rng([_STREAMS[key], seed, index])
    label = mixed_label(index)
    if key == "handwritten":
        return _handwritten(rng, label, "train", test_fraction, split_seed)
    return SOURCES[key].draw(rng, label)


@dataclass(frozen=True)
class SourceAccuracy:
    """A model's accuracy on one source.

    Attributes:
        key: The source.
        title: Its title.
        accuracy: Share of its images classified right; None where the source is not available here.
        images: How many images were classified.
        held_out: The source no training run sees.
    """

    key: str
    title: str
    accuracy: float | None
    images: int
    held_out: bool


EVAL_SEED = 7
"""The draw :func:`accuracy_per_source` measures on; training draws with 1000 + the run's seed, never this one."""


def accuracy_per_source(
    module: nn.Module,
    preprocess: Callable[[Image.Image], torch.Tensor],
    n: int = 500,
    seed: int = EVAL_SEED,
    keys: Sequence[str] | None = None,
) -> list[SourceAccuracy]:
    """The model's accuracy on ``n`` images of each source (every source when ``keys`` is None).

    Args:
        module: A classifier whose output ``i`` is digit ``i``, in eval mode.
        preprocess: image → ``[1, C, H, W]``, as the model's own preprocessing.
        n: Images per source.
        seed: The draw (the default is one no training run uses).
        keys: Which sources.
    """
    results = []
    for key in keys or SOURCES:
        source = SOURCES[key]
        if not source.available():
            results.append(SourceAccuracy(key, source.title, None, 0, key == HELD_OUT_SOURCE))
            continue
        images, labels = source_images(key, n, seed)
        with torch.no_grad():
            x = torch.cat([preprocess(img) for img in images])
            predicted = module(x).argmax(dim=1).numpy()
        accuracy = float((predicted == labels).mean())
        results.append(SourceAccuracy(key, source.title, accuracy, n, key == HELD_OUT_SOURCE))
    return results
