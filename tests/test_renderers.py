"""The independent shape renderers: contracts per renderer, independence from the training generator, and the
accuracy-per-renderer measurement on tiny hand-made models."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnn_explorer import data, renderers
from cnn_explorer.renderers import CLASSES, RENDERERS, accuracy_by_renderer, images, render, renderer_accuracy

CASES = [(name, label) for name, r in RENDERERS.items() for label in r.labels]


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float64)


def test_classes_are_the_training_generators_in_the_same_order() -> None:
    assert CLASSES == data.SHAPE_CLASSES


def test_at_least_two_renderers_and_one_held_out() -> None:
    assert len(RENDERERS) >= 2
    assert any(r.held_out for r in RENDERERS.values())
    assert all(r.description and r.labels for r in RENDERERS.values())


@pytest.mark.parametrize("size", [32, 64, 100])
@pytest.mark.parametrize(("name", "label"), CASES)
def test_renderer_draws_rgb_of_the_requested_size(name: str, label: int, size: int) -> None:
    img = render(name, label, np.random.default_rng(label), size)
    assert img.mode == "RGB"
    assert img.size == (size, size)


@pytest.mark.parametrize(("name", "label"), CASES)
def test_renderer_is_deterministic_per_seed_and_varies_with_it(name: str, label: int) -> None:
    first = _pixels(render(name, label, np.random.default_rng([3, label])))
    again = _pixels(render(name, label, np.random.default_rng([3, label])))
    other = _pixels(render(name, label, np.random.default_rng([4, label])))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(("name", "label"), CASES)
def test_the_shape_stands_out_from_the_background(name: str, label: int) -> None:
    # Something is drawn: the image is not one flat colour, and its darkest and lightest pixels are far apart.
    grey = _pixels(render(name, label, np.random.default_rng(label)).convert("L"))
    assert np.ptp(grey) >= 50


def test_pen_sketches_are_dark_strokes_on_white_paper() -> None:
    for label in RENDERERS["pen"].labels:
        grey = _pixels(render("pen", label, np.random.default_rng(label)).convert("L"))
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        assert np.median(border) >= 215, "the paper is white to the edges (a stroke may run off it)"
        assert grey.min() <= 90, "the ink is dark"
        assert (grey < 128).mean() < 0.25, "strokes, not a filled shape"


def test_chalk_is_light_strokes_on_a_dark_board() -> None:
    for label in RENDERERS["chalk"].labels:
        grey = _pixels(render("chalk", label, np.random.default_rng(label), size=128).convert("L"))
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        assert np.median(border) <= 110, "the board is dark"
        chalked = grey > np.median(border) + 60
        assert 0.005 < chalked.mean() < 0.25, "light strokes, not a filled shape"


def test_flat_fills_have_exactly_two_colours() -> None:
    for label in range(len(CLASSES)):
        pixels = np.asarray(render("flat", label, np.random.default_rng(label))).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) == 2, "hard edges: no antialiased in-between colours"


def test_an_outlined_ring_is_a_band_around_paper_coloured_middle() -> None:
    outline_ring = _pixels(render("outline", CLASSES.index("ring"), np.random.default_rng(0), 64))
    corner = outline_ring[0, 0]
    # The band is the stroke: most of the image, the hole included, keeps the paper's colour.
    assert (np.abs(outline_ring - corner).sum(axis=-1) < 30).mean() > 0.6


@pytest.mark.parametrize("name", [n for n, r in RENDERERS.items() if CLASSES.index("circle") not in r.labels])
def test_outline_renderers_refuse_circles_because_an_outlined_circle_is_a_ring(name: str) -> None:
    with pytest.raises(ValueError, match="ring"):
        render(name, CLASSES.index("circle"), np.random.default_rng(0))


@pytest.mark.parametrize(
    ("args", "match"),
    [(("nope", 0), "No renderer"), (("flat", 10), "out of range"), (("flat", -1), "out of range")],
)
def test_render_rejects_unknown_names_and_labels(args: tuple[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        render(*args, np.random.default_rng(0))


def test_render_rejects_tiny_sizes() -> None:
    with pytest.raises(ValueError, match="too small"):
        render("flat", 0, np.random.default_rng(0), 8)


def test_renderers_share_no_code_with_the_training_generator() -> None:
    tree = ast.parse(inspect.getsource(renderers))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
            imported |= {f"{node.module}.{alias.name}" for alias in node.names}
    assert not [name for name in imported if name.startswith("cnn_explorer")], imported
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    generator = {"data", "draw_shape", "_draw", "_OUTLINES", "_shape_mask", "SyntheticShapes"}
    assert not names & generator
    # and no function or class in the renderers module comes from the project (libraries such as PIL are shared)
    shared = {
        name
        for name, value in vars(renderers).items()
        if callable(value)
        and getattr(value, "__module__", "").startswith("cnn_explorer.")
        and value.__module__ != renderers.__name__
    }
    assert not shared, shared


def test_images_cycle_through_the_renderers_classes_with_one_seed_per_index() -> None:
    pictures, labels = images("outline", 12, seed=5)
    expected = RENDERERS["outline"].labels
    assert labels == [expected[i % len(expected)] for i in range(12)]
    assert np.array_equal(_pixels(pictures[3]), _pixels(render("outline", labels[3], np.random.default_rng([5, 3]))))


class _Constant(nn.Module):
    """Always predicts ``label``."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((x.shape[0],), self.label), len(CLASSES)).float()


class _Oracle(nn.Module):
    """Reads the true label smuggled in as the input's only value."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(x[:, 0, 0, 0].long(), len(CLASSES)).float()


def test_renderer_accuracy_counts_right_answers_over_the_renderers_classes() -> None:
    to_input = lambda img: torch.zeros(1, 1, 1, 1)  # noqa: E731
    # 20 images cycle through the 9 outline classes: square (label 1) is image 0, 9 and 18 -> 3 of 20.
    assert renderer_accuracy(_Constant(1), to_input, "outline", n=20) == pytest.approx(3 / 20)
    # It never draws circles, so a model that always says circle is never right.
    assert renderer_accuracy(_Constant(0), to_input, "outline", n=20) == 0.0
    # On a renderer of all ten classes, circle is right once in ten.
    assert renderer_accuracy(_Constant(0), to_input, "flat", n=20) == pytest.approx(2 / 20)


def test_accuracy_by_renderer_is_one_for_a_model_that_knows_every_label(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[int] = []

    def draw(label: int, rng: np.random.Generator, size: int) -> Image.Image:
        drawn.append(label)
        return Image.new("RGB", (size, size), (label, 0, 0))

    fake = {n: renderers.Renderer(n, draw, "", r.held_out, r.labels) for n, r in RENDERERS.items()}
    monkeypatch.setattr(renderers, "RENDERERS", fake)
    to_input = lambda img: torch.tensor(float(img.getpixel((0, 0))[0])).reshape(1, 1, 1, 1)  # noqa: E731
    assert accuracy_by_renderer(_Oracle(), to_input, n=15) == dict.fromkeys(RENDERERS, 1.0)
    assert len(drawn) == 15 * len(RENDERERS)
