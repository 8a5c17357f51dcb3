"""The hand-drawn training style: what a sketch looks like, that it is reproducible, that ``draw_shape`` and the
training data use it when asked, and that it shares nothing with the independent renderers."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest
from PIL import Image

from cnn_explorer import data, shape_styles
from cnn_explorer.data.shapes import _OUTLINES, SHAPE_CLASSES, draw_shape
from cnn_explorer.runspec import DataSpec, RunSpec, preset
from cnn_explorer.shape_styles import sketch


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float64)


def _sketch(name: str, seed: int, size: int = 64, filled: bool = False) -> Image.Image:
    outline = _OUTLINES[name]
    return sketch(outline.fills, outline.holes, np.random.default_rng(seed), size, filled=filled)


def _ink_share(img: Image.Image) -> float:
    """The share of pixels far (in grey) from the paper, the colour of the image's border."""
    grey = _pixels(img.convert("L"))
    paper = np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]))
    return float((np.abs(grey - paper) > 35).mean())


@pytest.mark.parametrize("size", [32, 64, 100])
@pytest.mark.parametrize("name", SHAPE_CLASSES)
def test_a_sketch_is_rgb_of_the_size_with_ink_far_from_the_paper(name: str, size: int) -> None:
    img = _sketch(name, 3, size)
    assert img.mode == "RGB" and img.size == (size, size)
    grey = _pixels(img.convert("L"))
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    assert np.ptp(border) < 40, "the shape stays inside the image: the border is paper"
    assert np.abs(grey - np.median(border)).max() >= 50, "the ink stands out from the paper"


def test_a_sketch_is_the_same_for_the_same_generator_state_and_differs_for_another() -> None:
    first, again, other = _pixels(_sketch("star", 5)), _pixels(_sketch("star", 5)), _pixels(_sketch("star", 6))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_an_outline_leaves_the_middle_paper_and_a_coloured_in_shape_does_not() -> None:
    # Unless told to colour it in, three sketches in four outline the shape: strokes 1.5–8 px wide around a square of
    # 7–31 px radius cover less than the filled square (a small square under a broad pen is nearly filled).
    outlined = np.median([_ink_share(_sketch("square", seed)) for seed in range(40)])
    filled = np.median([_ink_share(_sketch("square", seed, filled=True)) for seed in range(40)])
    assert 0.0 < outlined < 0.8 * filled


def test_most_sketches_are_dark_ink_on_white_paper() -> None:
    papers = []
    for seed in range(60):
        grey = _pixels(_sketch("triangle", seed).convert("L"))
        papers.append(np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])))
    white = np.mean(np.array(papers) >= 210)
    assert 0.45 <= white <= 0.8  # 60 % in dark ink on white paper; the rest two colours, rarely this light


def test_sketched_shapes_are_half_sketches_and_an_option_of_the_dataset_and_its_spec() -> None:
    # Half the images take the hand-drawn path: it starts with one draw of the generator below 0.5.
    sketched = [np.random.default_rng([9, i]).random() < 0.5 for i in range(200)]
    assert 0.4 < np.mean(sketched) < 0.6
    for i in range(20):
        img = draw_shape(i % 10, np.random.default_rng([9, i]), 64, sketched=True)
        rng = np.random.default_rng([9, i])
        rng.random()  # the draw that chose the path
        varied = draw_shape(i % 10, rng, 64, varied=True)
        assert np.array_equal(_pixels(img), _pixels(varied)) != sketched[i]
    dataset = data.SyntheticShapes(3, seed=4, sketched=True)
    for i in range(3):
        assert np.array_equal(
            _pixels(dataset[i][0]), _pixels(draw_shape(i, np.random.default_rng([4, i]), 64, sketched=True))
        )
    prepared = data.prepare(DataSpec(kind="shapes", count=4, val_split=0.5, sketched=True), seed=0)
    for epoch in range(2):  # fresh shapes every epoch, sketched too
        for i in range(4):
            expected = draw_shape(i % 10, np.random.default_rng([1000 + epoch, i]), 64, sketched=True)
            assert np.array_equal(_pixels(prepared.train_for_epoch(epoch).image(i)), _pixels(expected))
    spec = preset("tinyvgg16-sketched-shapes")
    assert spec.data.sketched and RunSpec.from_dict(spec.to_dict()) == spec  # recorded with a run, read back
    assert not preset("tinyvgg-shapes").data.sketched


def test_the_style_imports_nothing_of_the_project() -> None:
    # The training style must not borrow from the independent renderers (nor they from it): it gets the outlines as
    # arguments.
    tree = ast.parse(inspect.getsource(shape_styles))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert not [name for name in imported if name.startswith("cnn_explorer")], imported


def _square_on_a_table(size: int = 64) -> tuple[Image.Image, np.ndarray]:
    shape = np.zeros((size, size), dtype=np.float32)
    shape[20:44, 20:44] = 1.0
    pixels = np.where(shape[..., None] > 0, 200.0, 100.0) * np.ones(3)
    return Image.fromarray(pixels.astype(np.uint8), "RGB"), shape


def test_a_photograph_is_rgb_of_the_size_and_the_same_for_the_same_generator_state() -> None:
    image, shape = _square_on_a_table(48)
    first = shape_styles.photograph(image, np.random.default_rng(3), shape)
    assert first.mode == "RGB" and first.size == (48, 48)
    assert np.array_equal(_pixels(first), _pixels(shape_styles.photograph(image, np.random.default_rng(3), shape)))
    assert not np.array_equal(_pixels(first), _pixels(shape_styles.photograph(image, np.random.default_rng(4), shape)))


def test_a_cut_out_casts_a_shadow_on_the_table_beside_it_and_ink_casts_none(monkeypatch: pytest.MonkeyPatch) -> None:
    # Even light, no blur, no noise, nearly lossless JPEG: what is left is the shadow.
    for name, value in [("_LAMP_FALLOFF", (0.0, 0.0)), ("_BLUR", (0.0, 0.0)), ("_SENSOR_NOISE", (0.0, 0.0))]:
        monkeypatch.setattr(shape_styles, name, value)
    monkeypatch.setattr(shape_styles, "_JPEG_QUALITY", (98, 99))
    image, shape = _square_on_a_table()
    lit = 1.1  # the lamp's light with no falloff
    for seed in range(5):
        grey = _pixels(shape_styles.photograph(image, np.random.default_rng(seed), shape).convert("L"))
        table = grey[shape == 0]
        shaded = table < 100 * lit * 0.9  # darker by 10 % or more: the shadow (depth 20–55 %)
        assert shaded.sum() >= 24, "a shadow along at least one side"
        near = np.zeros_like(shape, dtype=bool)
        near[13:51, 13:51] = True  # offset ≤ 3 px plus a blur of ≤ 2 px, with room for its tail
        assert not (shaded & ~near[shape == 0]).any(), "no shadow far from the shape"
        assert np.abs(grey[24:40, 24:40] - 200 * lit).max() <= 3, "the cut-out itself is not shaded"
        flat = _pixels(shape_styles.photograph(image, np.random.default_rng(seed), None).convert("L"))
        assert np.abs(flat[shape == 0] - 100 * lit).max() <= 4, "ink on paper casts no shadow"


def test_photographed_shapes_are_a_share_of_the_drawings_and_an_option_of_the_dataset_and_its_spec() -> None:
    # A photograph is the drawing, then its own draws: an image left unphotographed is exactly the drawing.
    changed = []
    for i in range(60):
        plain = draw_shape(i % 10, np.random.default_rng([9, i]), 64, sketched=True)
        photographed = draw_shape(i % 10, np.random.default_rng([9, i]), 64, sketched=True, photographed=True)
        changed.append(not np.array_equal(_pixels(plain), _pixels(photographed)))
    assert 0.25 <= np.mean(changed) <= 0.55  # 40 %
    prepared = data.prepare(DataSpec(kind="shapes", count=4, val_split=0.5, photographed=True), seed=0)
    for i in range(4):
        expected = draw_shape(i % 10, np.random.default_rng([1000, i]), 64, photographed=True)
        assert np.array_equal(_pixels(prepared.train_for_epoch(0).image(i)), _pixels(expected))
    spec = preset("tinyvgg16-photographed-shapes")
    assert spec.data.photographed and spec.data.sketched and RunSpec.from_dict(spec.to_dict()) == spec
    assert not preset("tinyvgg16-sketched-shapes").data.photographed
