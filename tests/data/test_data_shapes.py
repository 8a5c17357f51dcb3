"""data.shapes: the shape classes' outlines, the drawings (sizes, contrast, noise, varied outlines and light)
and the SyntheticShapes dataset."""

from __future__ import annotations

import math

import numpy as np
import pytest
from data_samples import LABELS, LUMA
from data_samples import pixels as _pixels

from cnn_explorer import data
from cnn_explorer.data import (
    SHAPE_CLASSES,
    SyntheticShapes,
    draw_shape,
)
from cnn_explorer.data.shapes import (
    _LIGHT_MAX_SLOPE,
    _MIN_LUMA_CONTRAST,
    _OUTLINES,
    _STROKE_RANGE,
    _SUPERSAMPLE,
    _draw,
    _Placement,
    _shape_mask,
)
from cnn_explorer.runspec import DataSpec

# --- Shapes: classes and outlines -------------------------------------------------------------------------------


def test_shape_classes_are_ten_distinct_names_with_the_required_ones() -> None:
    assert len(SHAPE_CLASSES) == 10
    assert len(set(SHAPE_CLASSES)) == 10
    assert {"circle", "square", "triangle", "star"} <= set(SHAPE_CLASSES)
    assert not {"square", "diamond"} <= set(SHAPE_CLASSES), "a rotated square is a diamond"


@pytest.mark.parametrize("name", SHAPE_CLASSES)
def test_outline_is_inside_and_touches_the_unit_disc(name: str) -> None:
    outline = _OUTLINES[name]
    farthest = max(np.linalg.norm(polygon, axis=1).max() for polygon in outline.fills)
    assert farthest == pytest.approx(1.0, abs=1e-9)
    assert outline.area > 0.2 * math.pi, "too thin to see at the smallest radius"


@pytest.mark.parametrize(
    ("name", "unit_area"),
    [
        ("circle", math.pi),
        ("square", 2.0),  # diagonal 2
        ("triangle", 3 * math.sqrt(3) / 4),  # equilateral, circumradius 1
        ("semicircle", math.pi / 2),
    ],
)
def test_geometric_outlines_have_their_textbook_area(name: str, unit_area: float) -> None:
    assert _OUTLINES[name].area == pytest.approx(unit_area, rel=2e-3)


def test_ring_and_crescent_are_a_disc_with_a_part_missing() -> None:
    disc = _OUTLINES["circle"].area
    assert 0.4 * disc < _OUTLINES["ring"].area < 0.8 * disc
    assert 0.3 * disc < _OUTLINES["crescent"].area < 0.7 * disc


@pytest.mark.parametrize("name", SHAPE_CLASSES)
def test_mask_area_matches_the_outline_at_every_radius_and_rotation(name: str) -> None:
    outline, rng = _OUTLINES[name], np.random.default_rng(7)
    perimeter = sum(np.linalg.norm(np.roll(p, -1, axis=0) - p, axis=1).sum() for p in (*outline.fills, *outline.holes))
    for _ in range(25):
        size = int(rng.choice([32, 64, 96]))
        radius = rng.uniform(12, 26) * size / 64
        placement = _Placement(size / 2 + rng.uniform(-2, 2), size / 2 + rng.uniform(-2, 2), radius, rng.uniform(0, 7))
        alpha = _shape_mask(outline, placement, size)
        # A rasteriser may misplace the boundary by up to one sub-pixel, so the error is bounded by the perimeter.
        tolerance = 0.01 * outline.area * radius**2 + perimeter * radius / _SUPERSAMPLE
        assert abs(alpha.sum() - outline.area * radius**2) <= tolerance


def test_ring_has_a_hole_and_circle_does_not() -> None:
    placement = _Placement(32.0, 32.0, 20.0, 0.3)
    ring = _shape_mask(_OUTLINES["ring"], placement, 64)
    circle = _shape_mask(_OUTLINES["circle"], placement, 64)
    assert ring[31:33, 31:33].max() == 0.0
    assert circle[31:33, 31:33].min() == 1.0


# --- Shapes: drawing --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64, 96])
@pytest.mark.parametrize("label", LABELS)
def test_draw_shape_returns_rgb_of_the_requested_size(label: int, size: int) -> None:
    image = draw_shape(label, np.random.default_rng(label), size)
    assert image.mode == "RGB"
    assert image.size == (size, size)


@pytest.mark.parametrize("label", [-1, 10])
def test_draw_shape_rejects_unknown_labels(label: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        draw_shape(label, np.random.default_rng(0))


def test_draw_shape_rejects_tiny_sizes() -> None:
    with pytest.raises(ValueError, match="too small"):
        draw_shape(0, np.random.default_rng(0), size=8)


def test_draw_shape_is_the_image_of_the_drawing() -> None:
    assert (
        _pixels(draw_shape(3, np.random.default_rng(5))).tolist()
        == _pixels(_draw(3, np.random.default_rng(5), 64).image).tolist()
    )


@pytest.mark.parametrize("size", [32, 64, 96])
def test_shape_is_sized_in_range_and_wholly_inside_the_image(size: int) -> None:
    rng = np.random.default_rng(size)
    radii = []
    for i in range(100):
        drawing = _draw(i % 10, rng, size)
        p, alpha = drawing.placement, drawing.alpha
        radii.append(p.radius * 64 / size)
        border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
        assert border.max() == 0.0, "the shape touches the frame"
        ys, xs = np.nonzero(alpha)
        distance = np.hypot(xs + 0.5 - p.cx, ys + 0.5 - p.cy)
        assert distance.max() <= p.radius + 1.0, "ink outside the circumcircle"
        assert alpha.sum() >= 0.2 * math.pi * p.radius**2
    assert 12 <= min(radii) < 14 and 24 < max(radii) <= 26


def test_shape_contrasts_with_the_background_everywhere() -> None:
    rng = np.random.default_rng(11)
    for i in range(300):
        drawing = _draw(i % 10, rng, 64)
        inside = drawing.alpha == 1.0
        background_luma = drawing.background[inside] @ LUMA
        # Noise-free: the chosen colour clears the margin against every background pixel under the shape.
        assert np.abs(drawing.colour @ LUMA - background_luma).min() >= _MIN_LUMA_CONTRAST - 1e-3
        # In the final, noisy image the shape still stands out on average.
        image_luma = _pixels(drawing.image)[inside] @ LUMA
        assert abs(image_luma.mean() - background_luma.mean()) >= _MIN_LUMA_CONTRAST - 4


def test_noise_is_small_and_gradients_are_common() -> None:
    rng = np.random.default_rng(13)
    residual_stds, gradients = [], 0
    for i in range(200):
        drawing = _draw(i % 10, rng, 64)
        clean = drawing.background + drawing.alpha[..., None] * (drawing.colour - drawing.background)
        visible = (clean > 30).all(axis=-1) & (clean < 225).all(axis=-1)  # away from clipping at 0 and 255
        if visible.sum() > 100:
            residual_stds.append((_pixels(drawing.image) - clean)[visible].std())
        gradients += np.ptp(drawing.background, axis=(0, 1)).max() > 1.0
    assert 0.5 < np.median(residual_stds) < 8.0
    assert max(residual_stds) < 9.0
    assert 0.3 < gradients / 200 < 0.7


def test_plain_drawings_are_filled_in_even_light() -> None:
    rng = np.random.default_rng(29)
    for i in range(50):
        drawing = _draw(i % 10, rng, 64)
        assert drawing.stroke == 0.0
        assert (drawing.light == 1.0).all()


@pytest.mark.parametrize("size", [32, 64, 96])
def test_varied_shapes_are_sized_wider_and_wholly_inside_the_image(size: int) -> None:
    rng = np.random.default_rng(size)
    radii = []
    for i in range(150):
        drawing = _draw(i % 10, rng, size, varied=True)
        p, alpha = drawing.placement, drawing.alpha
        radii.append(p.radius * 64 / size)
        border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
        assert border.max() == 0.0, "the shape touches the frame"
        ys, xs = np.nonzero(alpha)
        assert np.hypot(xs + 0.5 - p.cx, ys + 0.5 - p.cy).max() <= p.radius + 1.0, "ink outside the circumcircle"
    assert 8 <= min(radii) < 10 and 28 < max(radii) <= 30


def test_a_share_of_varied_shapes_are_outlines_traced_inside_the_boundary_never_circles() -> None:
    rng = np.random.default_rng(19)
    strokes = {label: [] for label in LABELS}
    for i in range(400):
        drawing = _draw(i % 10, rng, 64, varied=True)
        strokes[i % 10].append(drawing.stroke)
        if drawing.stroke:
            name = SHAPE_CLASSES[i % 10]
            filled = _shape_mask(_OUTLINES["circle" if name == "ring" else name], drawing.placement, 64)
            # The stroke lies inside the filled shape (a ring's: inside its circle, the hole may shrink); a thin one
            # leaves much of the inside empty (a thick one on a thin shape, a small cross, may fill it).
            assert (drawing.alpha <= filled + 1e-6).all()
            if drawing.stroke < 0.1 * drawing.placement.radius:
                assert drawing.alpha.sum() < 0.8 * filled.sum()
    assert not any(strokes[SHAPE_CLASSES.index("circle")]), "an outlined circle is a ring"
    outlined = [w for label in LABELS for w in strokes[label] if w]
    assert 0.25 < len(outlined) / 360 < 0.55
    assert _STROKE_RANGE[0] <= min(outlined)
    assert max(outlined) <= _STROKE_RANGE[1]


def test_ring_outline_is_a_circle_traced_with_a_pen() -> None:
    placement = _Placement(32.0, 32.0, 20.0, 0.3)
    ring = _shape_mask(_OUTLINES["ring"], placement, 64, stroke=3.0)
    circle = _shape_mask(_OUTLINES["circle"], placement, 64, stroke=3.0)
    assert np.array_equal(ring, circle)
    assert ring[32, 32] == 0.0 and ring[32, 13:15].min() == 1.0 and ring[32, 16] == 0.0


def test_varied_lighting_is_an_even_ramp_on_about_half_the_images() -> None:
    rng = np.random.default_rng(23)
    lit = 0
    for i in range(200):
        drawing = _draw(i % 10, rng, 64, varied=True)
        light = drawing.light
        if np.ptp(light) > 0:
            lit += 1
            assert light.min() >= 1 - _LIGHT_MAX_SLOPE - 1e-5
            assert light.max() <= 1 + _LIGHT_MAX_SLOPE + 1e-5
            assert light.mean() == pytest.approx(1.0, abs=0.02)  # brighter on one side, darker on the other
            # The image is the lit scene plus noise.
            clean = drawing.background + drawing.alpha[..., None] * (drawing.colour - drawing.background)
            visible = ((clean * light[..., None]) > 30).all(axis=-1) & ((clean * light[..., None]) < 225).all(axis=-1)
            if visible.sum() > 100:  # away from clipping at 0 and 255
                residual = (_pixels(drawing.image) - clean * light[..., None])[visible]
                assert np.abs(residual.mean()) < 2.0
                assert residual.std() < 9.0
        else:
            assert (light == 1.0).all()
    assert 0.35 < lit / 200 < 0.65


def test_varied_drawing_is_an_option_of_the_dataset_and_its_spec() -> None:
    plain = data.SyntheticShapes(3, seed=4)
    varied = data.SyntheticShapes(3, seed=4, varied=True)
    for i in range(3):
        rng = np.random.default_rng([4, i])
        assert np.array_equal(_pixels(varied[i][0]), _pixels(draw_shape(i, rng, 64, varied=True)))
    assert not all(np.array_equal(_pixels(plain[i][0]), _pixels(varied[i][0])) for i in range(3))
    prepared = data.prepare(DataSpec(kind="shapes", count=4, val_split=0.5, varied=True), seed=0)
    first = prepared.train_for_epoch(0).image(1)
    expected = draw_shape(1, np.random.default_rng([1000, 1]), 64, varied=True)
    assert np.array_equal(_pixels(first), _pixels(expected))


def test_colours_do_not_predict_the_class() -> None:
    rng = np.random.default_rng(17)
    shape_means, background_means = np.zeros((10, 3)), np.zeros((10, 3))
    draws = 200
    for label in LABELS:
        for _ in range(draws):
            drawing = _draw(label, rng, 64)
            pixels = _pixels(drawing.image)
            shape_means[label] += pixels[drawing.alpha == 1.0].mean(axis=0) / draws
            background_means[label] += pixels[drawing.alpha == 0.0].mean(axis=0) / draws
    # A class mean over 200 draws has a standard error of about 5 per channel; 20 is ~4 of them.
    assert np.abs(shape_means - shape_means.mean(axis=0)).max() < 20
    assert np.abs(background_means - background_means.mean(axis=0)).max() < 20


# --- Shapes: dataset --------------------------------------------------------------------------------------------


def test_synthetic_shapes_is_deterministic_per_seed_and_index() -> None:
    first, again, other = SyntheticShapes(12, seed=3), SyntheticShapes(12, seed=3), SyntheticShapes(12, seed=4)
    forward = [_pixels(first[i][0]) for i in range(12)]
    backward = [_pixels(again[i][0]) for i in reversed(range(12))][::-1]  # order must not matter (workers)
    for a, b in zip(forward, backward, strict=True):
        np.testing.assert_array_equal(a, b)
    for i in range(12):
        assert not np.array_equal(forward[i], _pixels(other[i][0]))
    assert not np.array_equal(forward[0], forward[10]), "same class, different index: a different image"


def test_synthetic_shapes_labels_are_balanced() -> None:
    dataset = SyntheticShapes(50, seed=0, size=32)
    labels = [dataset[i][1] for i in range(len(dataset))]
    assert labels == [i % 10 for i in range(50)]
    assert np.bincount(labels).tolist() == [5] * 10
    assert dataset.classes == list(SHAPE_CLASSES)


def test_synthetic_shapes_applies_the_transform_and_bounds_indices() -> None:
    dataset = SyntheticShapes(3, seed=1, size=32, transform=lambda image: _pixels(image).shape)
    assert dataset[2] == ((32, 32, 3), 2)
    assert len(dataset) == 3
    with pytest.raises(IndexError):
        dataset[3]


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"n": -1}, "items"), ({"seed": -1}, "negative"), ({"size": 4}, "small")]
)
def test_synthetic_shapes_rejects_bad_arguments(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SyntheticShapes(**{"n": 10, "seed": 0, **kwargs})
