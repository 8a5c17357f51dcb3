"""trust.faithfulness: deletion and insertion curves computed by hand on a model whose probabilities are known,
the random order, the real model's curves, progress, cancelling, argument checks, and worse-than-random warnings."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn
from trust_models import loaded as _loaded

from cnn_explorer.attribution import Cancelled, blurred
from cnn_explorer.trust import (
    WORSE_THAN_RANDOM,
    deletion_insertion,
)
from cnn_explorer.zoo import LoadedModel


def _probability(model: LoadedModel, x: torch.Tensor, target: int) -> float:
    with torch.no_grad():
        return float(torch.softmax(model.module(x), dim=1)[0, target])


def _sum_model() -> LoadedModel:
    """Logits ``[Σ x, 0]`` over a 3×4×4 input: p(class 0) = sigmoid(sum of every value still in the image)."""
    linear = nn.Linear(48, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.stack([torch.ones(48), torch.zeros(48)]))
        linear.bias.zero_()
    return _loaded(nn.Sequential(nn.Flatten(), linear), (3, 4, 4), 2)


# Pixel (row, column) → heatmap value; 0.5 and 0.2 are ties, which keep row-major order.
_HEATMAP = torch.tensor(
    [
        [0.1, 0.9, 0.5, 0.0],
        [0.3, 0.5, 0.8, 0.2],
        [0.6, 0.2, 0.7, 0.4],
        [0.05, 0.95, 0.15, 0.2],
    ]
)

# The ranking written out by hand, as flat indices r * 4 + c: 0.95, 0.9, 0.8, 0.7, 0.6, 0.5 (1), 0.5 (5), 0.4, 0.3,
# 0.2 (7), 0.2 (9), 0.2 (15), 0.15, 0.1, 0.05, 0.0.
_RANKING = [13, 1, 6, 10, 8, 2, 5, 11, 4, 7, 9, 15, 14, 0, 12, 3]


def _sum_input() -> torch.Tensor:
    return torch.linspace(-1.0, 0.9, 48).roll(7).view(1, 3, 4, 4)


@pytest.mark.parametrize(("steps", "counts"), [(4, [0, 4, 8, 12, 16]), (3, [0, 5, 11, 16])])
def test_deletion_and_insertion_curves_by_hand(steps, counts):
    model, x = _sum_model(), _sum_input()
    start = blurred(x)
    result = deletion_insertion(model, x, _HEATMAP, target=0, steps=steps)
    per_pixel, per_pixel_blurred = x[0].sum(dim=0).flatten(), start[0].sum(dim=0).flatten()  # over the 3 channels
    deleted = [1 / (1 + math.exp(-float(per_pixel[_RANKING[k:]].sum()))) for k in counts]
    inserted = [
        1 / (1 + math.exp(-float(per_pixel[_RANKING[:k]].sum() + per_pixel_blurred[_RANKING[k:]].sum())))
        for k in counts
    ]
    fractions = [k / 16 for k in counts]
    torch.testing.assert_close(result.deletion.fractions, torch.tensor(fractions))
    torch.testing.assert_close(result.deletion.probabilities, torch.tensor(deleted), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(result.insertion.probabilities, torch.tensor(inserted), rtol=1e-5, atol=1e-6)
    assert result.deletion.auc == pytest.approx(np.trapezoid(deleted, fractions), rel=1e-5)
    assert result.insertion.auc == pytest.approx(np.trapezoid(inserted, fractions), rel=1e-5)
    assert result.target == 0


def test_the_other_class_traces_one_minus_the_probability():
    model, x = _sum_model(), _sum_input()
    first = deletion_insertion(model, x, _HEATMAP, target=0, steps=4)
    other = deletion_insertion(model, x, _HEATMAP, target=1, steps=4)
    torch.testing.assert_close(other.deletion.probabilities, 1 - first.deletion.probabilities)
    torch.testing.assert_close(other.random_insertion.probabilities, 1 - first.random_insertion.probabilities)


def test_random_order_is_a_seeded_permutation():
    model, x = _sum_model(), _sum_input()
    result = deletion_insertion(model, x, _HEATMAP, target=0, steps=16, seed=3)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(3)).tolist()
    per_pixel = x[0].sum(dim=0).flatten()
    expected = [1 / (1 + math.exp(-float(per_pixel[order[k:]].sum()))) for k in range(17)]
    torch.testing.assert_close(result.random_deletion.probabilities, torch.tensor(expected), rtol=1e-5, atol=1e-6)
    assert result.deletion_gain == pytest.approx(result.random_deletion.auc - result.deletion.auc)
    assert result.insertion_gain == pytest.approx(result.insertion.auc - result.random_insertion.auc)
    again = deletion_insertion(model, x, _HEATMAP, target=0, steps=16, seed=3)
    assert again.random_deletion.auc == result.random_deletion.auc
    other = deletion_insertion(model, x, _HEATMAP, target=0, steps=16, seed=4)
    assert not torch.equal(other.random_deletion.probabilities, result.random_deletion.probabilities)
    torch.testing.assert_close(other.deletion.probabilities, result.deletion.probabilities)  # the map's own order


def test_curves_run_from_the_input_to_the_baselines(tinyvgg, shape_input, gradcam):
    result = deletion_insertion(tinyvgg, shape_input, gradcam.heatmap, steps=5, seed=1)
    t = gradcam.target
    assert result.target == t  # None means the predicted class, which Grad-CAM explained
    p_input = _probability(tinyvgg, shape_input, t)
    p_zero = _probability(tinyvgg, torch.zeros_like(shape_input), t)
    p_blurred = _probability(tinyvgg, blurred(shape_input), t)
    for curve in (result.deletion, result.random_deletion):
        assert float(curve.probabilities[0]) == pytest.approx(p_input, abs=1e-5)
        assert float(curve.probabilities[-1]) == pytest.approx(p_zero, abs=1e-5)
    for curve in (result.insertion, result.random_insertion):
        assert float(curve.probabilities[0]) == pytest.approx(p_blurred, abs=1e-5)
        assert float(curve.probabilities[-1]) == pytest.approx(p_input, abs=1e-5)
    for curve in (result.deletion, result.insertion, result.random_deletion, result.random_insertion):
        assert curve.probabilities.shape == (6,)
        assert curve.auc == pytest.approx(np.trapezoid(curve.probabilities.numpy(), curve.fractions.numpy()))


def test_curves_do_not_depend_on_the_batch(tinyvgg, shape_input, gradcam):
    one = deletion_insertion(tinyvgg, shape_input, gradcam.heatmap, steps=6, batch=1)
    many = deletion_insertion(tinyvgg, shape_input, gradcam.heatmap, steps=6, batch=64)
    for curve in ("deletion", "insertion", "random_deletion", "random_insertion"):
        a, b = getattr(one, curve).probabilities, getattr(many, curve).probabilities
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_curves_report_progress_and_can_be_cancelled(tinyvgg, shape_input, gradcam):
    seen: list[float] = []
    deletion_insertion(tinyvgg, shape_input, gradcam.heatmap, steps=4, batch=2, progress=seen.append)
    assert seen == sorted(seen) and seen[0] == 0.0 and seen[-1] == 1.0 and len(seen) > 4
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        deletion_insertion(tinyvgg, shape_input, gradcam.heatmap, steps=4, batch=2, should_stop=lambda: next(calls) > 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"heatmap": torch.zeros(63, 64)}, "heatmap must be"),
        ({"heatmap": torch.full((64, 64), math.nan)}, "NaN"),
        ({"x": torch.zeros(2, 3, 64, 64)}, "takes one input"),
        ({"x": torch.zeros(1, 1, 64, 64)}, "takes one input"),
        ({"steps": 0}, "steps must be"),
        ({"steps": 2.5}, "steps must be"),
        ({"steps": 64 * 64 + 1}, "steps must be"),
        ({"batch": 0}, "batch must be"),
        ({"target": 99}, "not a class"),
        ({"target": "dragon"}, "no class"),
    ],
)
def test_curve_arguments_are_checked(tinyvgg, shape_input, kwargs, message):
    arguments = {"x": shape_input, "heatmap": torch.rand(64, 64)} | kwargs
    with pytest.raises(ValueError, match=message):
        deletion_insertion(tinyvgg, arguments.pop("x"), arguments.pop("heatmap"), **arguments)


def test_a_map_ranking_pixels_against_their_true_importance_is_worse_than_random_and_says_so():
    """On the sum model each pixel's true importance is its value summed over channels: the map that ranks the
    pixels the other way round removes the least important ones first."""
    model, x = _sum_model(), _sum_input()
    importance = x[0].sum(dim=0)
    good = deletion_insertion(model, x, importance, target=0, steps=8)
    assert good.deletion_gain > 0 and good.insertion_gain > 0
    assert good.warnings == ()
    tie = dataclasses.replace(good, deletion=dataclasses.replace(good.deletion, auc=good.random_deletion.auc + 0.005))
    assert not tie.worse_on_deletion and tie.warnings == ()  # within a hundredth: a tie, not worse
    bad = deletion_insertion(model, x, -importance, target=0, steps=8)
    assert bad.deletion_gain < -WORSE_THAN_RANDOM and bad.insertion_gain < -WORSE_THAN_RANDOM
    assert bad.worse_on_deletion and bad.worse_on_insertion
    assert bad.warnings == (
        f"Worse than random on deletion (area {bad.deletion.auc:.3f} vs {bad.random_deletion.auc:.3f}): removing the "
        "pixels this map ranks first hurts the prediction less than removing pixels at random.",
        f"Worse than random on insertion (area {bad.insertion.auc:.3f} vs {bad.random_insertion.auc:.3f}): revealing "
        "the pixels this map ranks first brings the class back less than revealing them at random.",
    )
