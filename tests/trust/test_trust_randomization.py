"""trust.randomization: Spearman against scipy, and the cascade leaving the shared model untouched while telling a
weight-independent map from a weight-dependent one (explain is spied on where the check's module looks it up)."""

import copy
import dataclasses
import math

import pytest
import scipy.stats
import torch
from module_state import assert_unchanged, snapshot
from torch import nn
from trust_models import loaded as _loaded

from cnn_explorer import explain
from cnn_explorer.trust import (
    SIMILAR_RHO,
    randomization_check,
    randomization_order,
    spearman,
)
from cnn_explorer.trust import randomization as randomization_module


@pytest.mark.parametrize("seed", range(4))
def test_spearman_equals_scipy(seed):
    generator = torch.Generator().manual_seed(seed)
    a = torch.rand(30, 20, generator=generator)
    b = a + 0.5 * torch.rand(30, 20, generator=generator) * (seed + 1)
    ties_a, ties_b = torch.randint(0, 5, (200,), generator=generator), torch.randint(0, 7, (200,), generator=generator)
    for x, y in ((a, b), (ties_a.float(), ties_b.float()), (a.flatten()[:200], ties_b.float())):
        expected = scipy.stats.spearmanr(x.flatten().numpy(), y.flatten().numpy()).statistic
        assert spearman(x, y) == pytest.approx(expected, abs=1e-10)


def test_spearman_extremes_and_errors():
    a = torch.arange(10.0)
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert math.isnan(spearman(a, torch.ones(10)))  # undefined, as scipy
    with pytest.raises(ValueError, match="same size"):
        spearman(a, torch.arange(9.0))
    with pytest.raises(ValueError, match="finite"):
        spearman(a, torch.full((10,), math.inf))
    with pytest.raises(ValueError, match="at least two"):
        spearman(torch.ones(1), torch.ones(1))


TINYVGG_TOP_DOWN = ["output", "conv_2_2", "conv_2_1", "conv_1_2", "conv_1_1"]


class _OutOfOrder(nn.Module):
    """Layers declared in another order than they run: the cascade must follow execution, not declaration."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Linear(4 * 4 * 4, 3)
        self.second = nn.Conv2d(4, 4, 3, padding=1)
        self.first = nn.Conv2d(1, 4, 3, padding=1)
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        return self.head(torch.relu(self.second(torch.relu(self.first(x)))).flatten(1))


def test_cascade_runs_top_down_in_execution_order(tinyvgg):
    before = snapshot(tinyvgg.module)
    assert randomization_order(tinyvgg) == TINYVGG_TOP_DOWN
    assert_unchanged(before, snapshot(tinyvgg.module))
    assert randomization_order(_loaded(_OutOfOrder(), (1, 4, 4), 3)) == ["head", "second", "first"]


@pytest.mark.parametrize(
    ("max_steps", "groups"),
    [
        (None, [[name] for name in TINYVGG_TOP_DOWN]),
        (2, [["output", "conv_2_2", "conv_2_1"], ["conv_1_2", "conv_1_1"]]),
        (3, [["output", "conv_2_2"], ["conv_2_1", "conv_1_2"], ["conv_1_1"]]),
        (9, [[name] for name in TINYVGG_TOP_DOWN]),
    ],
)
def test_each_step_randomizes_exactly_the_layers_above_it(
    tinyvgg, shape_input, gradcam, monkeypatch, max_steps, groups
):
    """The copy's weights, seen from inside explain: the layers of earlier steps differ, all others are original."""
    original = {k: v.clone() for k, v in tinyvgg.module.state_dict().items()}
    seen: list[set[str]] = []
    real_explain = randomization_module.explain

    def spying_explain(model, x, method, **kwargs):
        assert model.module is not tinyvgg.module and model.lock is not tinyvgg.lock
        state = model.module.state_dict()
        seen.append({k.rsplit(".", 1)[0] for k, v in state.items() if not torch.equal(v, original[k])})
        return real_explain(model, x, method, **kwargs)

    monkeypatch.setattr(randomization_module, "explain", spying_explain)
    check = randomization_check(tinyvgg, shape_input, gradcam, max_steps=max_steps)
    assert [list(step.layers) for step in check.steps] == groups
    cumulative = [[name for group in groups[: i + 1] for name in group] for i in range(len(groups))]
    assert seen == [set(names) for names in cumulative]
    assert [step.randomized for step in check.steps] == [len(names) for names in cumulative]
    assert check.layers == tuple(TINYVGG_TOP_DOWN)
    assert check.steps[check.decisive].randomized >= 3  # half of 5, rounded up
    assert check.decisive == 0 or check.steps[check.decisive - 1].randomized < 3


def test_new_weights_are_pytorchs_default_initialization(tinyvgg, shape_input, gradcam, monkeypatch):
    """The output layer, randomized first, gets what ``reset_parameters`` draws from the same seed."""
    kept = {}
    real_explain = randomization_module.explain

    def keep_first(model, x, method, **kwargs):
        kept.setdefault("output", copy.deepcopy(model.module.get_submodule("output")))
        return real_explain(model, x, method, **kwargs)

    monkeypatch.setattr(randomization_module, "explain", keep_first)
    randomization_check(tinyvgg, shape_input, gradcam, seed=4, max_steps=1)
    reference = copy.deepcopy(tinyvgg.module.get_submodule("output"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        reference.reset_parameters()
    torch.testing.assert_close(kept["output"].weight, reference.weight, rtol=0, atol=0)
    torch.testing.assert_close(kept["output"].bias, reference.bias, rtol=0, atol=0)


def test_randomization_leaves_the_shared_model_bit_for_bit(tinyvgg, shape_input, gradcam):
    before = snapshot(tinyvgg.module)
    randomization_check(tinyvgg, shape_input, gradcam, max_steps=2)
    assert_unchanged(before, snapshot(tinyvgg.module))
    assert torch.equal(explain(tinyvgg, shape_input, "gradcam").heatmap, gradcam.heatmap)


def test_correlations_are_scipys_spearman_of_absolute_maps(tinyvgg, shape_input):
    saliency = explain(tinyvgg, shape_input, "saliency", target=1)
    check = randomization_check(tinyvgg, shape_input, saliency, seed=5)
    assert check.method == "saliency" and check.target == 1 and check.layer is None
    assert torch.equal(check.original, saliency.heatmap)
    for step in check.steps:
        expected = scipy.stats.spearmanr(saliency.heatmap.abs().flatten(), step.heatmap.abs().flatten()).statistic
        assert step.correlation == pytest.approx(expected, abs=1e-9)
    assert check.correlation == check.steps[check.decisive].correlation
    assert check.flagged == (check.correlation >= 0.5)


def test_randomization_is_deterministic_for_a_seed(tinyvgg, shape_input, gradcam):
    first = randomization_check(tinyvgg, shape_input, gradcam, seed=2, max_steps=2)
    second = randomization_check(tinyvgg, shape_input, gradcam, seed=2, max_steps=2)
    other = randomization_check(tinyvgg, shape_input, gradcam, seed=3, max_steps=2)
    assert [s.correlation for s in first.steps] == [s.correlation for s in second.steps]
    assert all(torch.equal(a.heatmap, b.heatmap) for a, b in zip(first.steps, second.steps, strict=True))
    assert not torch.equal(first.steps[0].heatmap, other.steps[0].heatmap)


def _with_heatmap(explanation, heatmap: torch.Tensor):
    """A copy of ``explanation`` whose ``heatmap`` is ``heatmap`` (as if Explanation.heatmap had computed it)."""
    copied = dataclasses.replace(explanation)
    copied.__dict__["heatmap"] = heatmap
    return copied


def test_a_map_that_ignores_the_weights_is_flagged(tinyvgg, shape_input, gradcam, monkeypatch):
    """An "explanation" computed from the input alone (like an edge detector) survives any randomization."""
    real_explain = randomization_module.explain

    def input_only(model, x, method, **kwargs):
        return _with_heatmap(real_explain(model, x, method, **kwargs), x[0].abs().sum(dim=0))

    monkeypatch.setattr(randomization_module, "explain", input_only)
    edges = input_only(tinyvgg, shape_input, "gradcam")
    check = randomization_check(tinyvgg, shape_input, edges)
    assert all(step.correlation == pytest.approx(1.0) for step in check.steps)
    assert check.flagged
    assert check.verdict.startswith("Not explaining the model")


def test_a_map_that_depends_on_the_weights_passes(tinyvgg, shape_input, gradcam):
    """Grad-CAM at the last conv loses its ranking once the classifier and the top convs are random."""
    check = randomization_check(tinyvgg, shape_input, gradcam)
    assert check.correlation < SIMILAR_RHO
    assert not check.flagged
    assert check.verdict.startswith("Passes")


def test_constant_maps(tinyvgg, shape_input, gradcam, monkeypatch):
    real_explain = randomization_module.explain

    def blank(model, x, method, **kwargs):
        return _with_heatmap(real_explain(model, x, method, **kwargs), torch.zeros(64, 64))

    monkeypatch.setattr(randomization_module, "explain", blank)
    # The randomized map is constant: no ranking left, correlation 0.
    assert [s.correlation for s in randomization_check(tinyvgg, shape_input, gradcam).steps] == [0.0] * 5
    # The original map is constant: nothing to measure, and no flag.
    check = randomization_check(tinyvgg, shape_input, blank(tinyvgg, shape_input, "gradcam"))
    assert math.isnan(check.correlation) and not check.flagged
    assert "constant" in check.verdict


def test_randomization_arguments_are_checked(tinyvgg, shape_input, gradcam):
    with pytest.raises(ValueError, match="made for this input"):
        randomization_check(tinyvgg, shape_input, _with_heatmap(gradcam, torch.ones(8, 8)))
    with pytest.raises(ValueError, match="max_steps must be"):
        randomization_check(tinyvgg, shape_input, gradcam, max_steps=0)
    with pytest.raises(ValueError, match="takes one input"):
        randomization_check(tinyvgg, shape_input[0], gradcam)
    no_weights = _loaded(nn.Sequential(nn.Flatten(), nn.Softmax(dim=1)), (1, 2, 2), 4)
    x = torch.rand(1, 1, 2, 2)
    with pytest.raises(ValueError, match="no convolutional or linear layers"):
        randomization_check(no_weights, x, explain(no_weights, x, "saliency"))


def test_nan_is_never_a_pass(tinyvgg, shape_input, gradcam):
    constant = dataclasses.replace(gradcam, attribution=torch.zeros_like(gradcam.attribution))
    check = randomization_check(tinyvgg, shape_input, constant, max_steps=2)
    assert math.isnan(check.correlation)
    assert not check.passed and not check.flagged
    assert check.outcome == "? cannot tell: the map is constant"
    passing = randomization_check(tinyvgg, shape_input, gradcam, max_steps=2)
    assert passing.passed and passing.outcome == "✓ changes"
