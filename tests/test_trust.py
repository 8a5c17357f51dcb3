"""Trust checks: deletion/insertion curves computed by hand on a hand-weighted model, Spearman against scipy,
infidelity and sensitivity against captum.metrics called directly, and the randomization check leaving the shared
model untouched while telling a weight-independent map from a weight-dependent one."""

import copy
import dataclasses
import math

import numpy as np
import pytest
import scipy.stats
import torch
import torchvision.models
from captum.attr import Saliency
from captum.metrics import infidelity as captum_infidelity
from captum.metrics import sensitivity_max as captum_sensitivity_max
from module_state import assert_unchanged, snapshot
from torch import nn

from cnn_explorer import explain, load_model
from cnn_explorer import trust as trust_module
from cnn_explorer.attribution import Cancelled, blurred
from cnn_explorer.images import load_sample, samples_for
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.trust import (
    METRICS,
    SIMILAR_RHO,
    WORSE_THAN_RANDOM,
    deletion_insertion,
    infidelity,
    randomization_check,
    randomization_order,
    sensitivity,
    spearman,
    trust_report,
)
from cnn_explorer.zoo import LoadedModel

TINYVGG_TOP_DOWN = ["output", "conv_2_2", "conv_2_1", "conv_1_2", "conv_1_1"]


def _loaded(module: nn.Module, input_size: tuple[int, int, int], classes: int, name: str = "test") -> LoadedModel:
    return LoadedModel(
        name=name,
        module=module.eval(),
        input_size=input_size,
        class_names=tuple(f"class {i}" for i in range(classes)),
        preprocess=Preprocess(resize=input_size[-1], crop=input_size[-1]),
        summary="",
        card="",
    )


@pytest.fixture(scope="module")
def tinyvgg() -> LoadedModel:
    return load_model("tinyvgg-shapes")


@pytest.fixture(scope="module")
def shape_input(tinyvgg) -> torch.Tensor:
    return tinyvgg.preprocess(load_sample(samples_for("tinyvgg-shapes", made_for_it=True)[0]))


@pytest.fixture(scope="module")
def gradcam(tinyvgg, shape_input):
    return explain(tinyvgg, shape_input, "gradcam")


def _probability(model: LoadedModel, x: torch.Tensor, target: int) -> float:
    with torch.no_grad():
        return float(torch.softmax(model.module(x), dim=1)[0, target])


# ── deletion and insertion: a model whose probabilities are computable by hand ──────────────────────────────────


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


# ── Spearman ────────────────────────────────────────────────────────────────────────────────────────────────────


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


# ── model randomization ─────────────────────────────────────────────────────────────────────────────────────────


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
    real_explain = trust_module.explain

    def spying_explain(model, x, method, **kwargs):
        assert model.module is not tinyvgg.module and model.lock is not tinyvgg.lock
        state = model.module.state_dict()
        seen.append({k.rsplit(".", 1)[0] for k, v in state.items() if not torch.equal(v, original[k])})
        return real_explain(model, x, method, **kwargs)

    monkeypatch.setattr(trust_module, "explain", spying_explain)
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
    real_explain = trust_module.explain

    def keep_first(model, x, method, **kwargs):
        kept.setdefault("output", copy.deepcopy(model.module.get_submodule("output")))
        return real_explain(model, x, method, **kwargs)

    monkeypatch.setattr(trust_module, "explain", keep_first)
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
    real_explain = trust_module.explain

    def input_only(model, x, method, **kwargs):
        return _with_heatmap(real_explain(model, x, method, **kwargs), x[0].abs().sum(dim=0))

    monkeypatch.setattr(trust_module, "explain", input_only)
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
    real_explain = trust_module.explain

    def blank(model, x, method, **kwargs):
        return _with_heatmap(real_explain(model, x, method, **kwargs), torch.zeros(64, 64))

    monkeypatch.setattr(trust_module, "explain", blank)
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


# ── infidelity and sensitivity against captum.metrics ──────────────────────────────────────────────────────────


@pytest.mark.parametrize("method", ["saliency", "gradcam"])
def test_infidelity_equals_captum_called_directly(tinyvgg, shape_input, method):
    explanation = explain(tinyvgg, shape_input, method, target=2)
    value = infidelity(tinyvgg, shape_input, explanation, noise=0.1, samples=6, batch=4, seed=11)
    # Pixel methods keep their raw [C, H, W] attribution; a CAM's heatmap is repeated over the channels.
    attribution = explanation.attribution if method == "saliency" else explanation.heatmap.expand(3, 64, 64)
    stdev = 0.1 * float(shape_input.max() - shape_input.min())
    generator = torch.Generator().manual_seed(11)

    def perturb(inputs):
        noise = torch.randn(inputs.shape, generator=generator) * stdev
        return noise, inputs - noise

    expected = captum_infidelity(
        tinyvgg.module,
        perturb,
        shape_input,
        attribution[None],
        target=2,
        n_perturb_samples=6,
        max_examples_per_batch=4,
        normalize=True,
    )
    assert value == pytest.approx(float(expected), rel=1e-5)
    assert value == infidelity(tinyvgg, shape_input, explanation, noise=0.1, samples=6, batch=4, seed=11)
    assert value != infidelity(tinyvgg, shape_input, explanation, noise=0.1, samples=6, batch=4, seed=12)


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients:UserWarning")
def test_sensitivity_equals_captum_called_directly(tinyvgg, shape_input):
    explanation = explain(tinyvgg, shape_input, "saliency", target=4)
    value = sensitivity(tinyvgg, shape_input, explanation, radius=0.05, samples=5, batch=2, seed=9)
    half_width = 0.05 * float(shape_input.max() - shape_input.min())
    generator = torch.Generator().manual_seed(9)

    def perturb(inputs, radius):
        return inputs + torch.empty(inputs.shape).uniform_(-radius, radius, generator=generator)

    def saliency_heatmap(inputs, target):  # captum's Saliency, reduced as the page shows it
        attribution = Saliency(tinyvgg.module).attribute(inputs, target=target, abs=True)
        if isinstance(inputs, tuple):  # captum's first call passes and expects tuples
            return (attribution[0].amax(dim=1),)
        return attribution.amax(dim=1)

    expected = captum_sensitivity_max(
        saliency_heatmap,
        shape_input,
        perturb_func=perturb,
        perturb_radius=half_width,
        n_perturb_samples=5,
        max_examples_per_batch=2,
        target=4,
    )
    assert value == pytest.approx(float(expected), rel=1e-4)
    assert value == sensitivity(tinyvgg, shape_input, explanation, radius=0.05, samples=5, batch=2, seed=9)
    assert value != sensitivity(tinyvgg, shape_input, explanation, radius=0.05, samples=5, batch=2, seed=10)


def test_sensitivity_of_a_cam_is_finite_and_needs_no_grad_outside(tinyvgg, shape_input, gradcam):
    with torch.no_grad():  # captum calls the explanation under no_grad; CAMs need autograd inside
        value = sensitivity(tinyvgg, shape_input, gradcam, samples=2)
    assert math.isfinite(value) and value >= 0


@pytest.mark.parametrize(
    ("function", "kwargs", "message"),
    [
        (infidelity, {"noise": 0.0}, "noise must be"),
        (infidelity, {"noise": math.nan}, "noise must be"),
        (infidelity, {"samples": 0}, "samples must be"),
        (sensitivity, {"radius": -1.0}, "radius must be"),
        (sensitivity, {"batch": True}, "batch must be"),
    ],
)
def test_metric_arguments_are_checked(tinyvgg, shape_input, gradcam, function, kwargs, message):
    with pytest.raises(ValueError, match=message):
        function(tinyvgg, shape_input, gradcam, **kwargs)


# ── the report ──────────────────────────────────────────────────────────────────────────────────────────────────


def test_trust_report_gathers_every_check(tinyvgg, shape_input, gradcam):
    before = snapshot(tinyvgg.module)
    seen: list[float] = []
    report = trust_report(
        tinyvgg, shape_input, "gradcam", steps=4, max_steps=3, sensitivity_samples=2, progress=seen.append
    )
    assert_unchanged(before, snapshot(tinyvgg.module))
    assert torch.equal(report.explanation.heatmap, gradcam.heatmap)
    assert report.faithfulness.target == report.randomization.target == gradcam.target
    expected_curves = deletion_insertion(tinyvgg, shape_input, gradcam.heatmap, steps=4)
    torch.testing.assert_close(report.faithfulness.insertion.probabilities, expected_curves.insertion.probabilities)
    assert len(report.randomization.steps) == 3
    assert report.infidelity == infidelity(tinyvgg, shape_input, gradcam)
    assert report.sensitivity == sensitivity(tinyvgg, shape_input, gradcam, samples=2, batch=2)
    assert report.values.keys() == METRICS.keys()
    assert all(math.isfinite(v) for v in report.values.values())
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert all(m.better in ("lower", "higher") and m.reading.endswith(".") and m.url for m in METRICS.values())


def test_trust_report_passes_target_layer_and_params(tinyvgg, shape_input):
    report = trust_report(
        tinyvgg,
        shape_input,
        "scorecam",
        target="star",
        layer="conv_1_2",
        params={"batch": 5},
        steps=2,
        max_steps=1,
        sensitivity_samples=1,
    )
    assert report.explanation.target == tinyvgg.class_names.index("star") == report.faithfulness.target
    assert report.randomization.layer == "conv_1_2" and report.explanation.params == {"batch": 5}


def test_trust_report_can_be_cancelled_and_checks_its_arguments(tinyvgg, shape_input):
    calls = iter(range(1000))
    with pytest.raises(Cancelled):
        trust_report(tinyvgg, shape_input, "saliency", steps=4, should_stop=lambda: next(calls) > 8)
    with pytest.raises(ValueError, match="Unknown method"):
        trust_report(tinyvgg, shape_input, "lrp")
    with pytest.raises(ValueError, match="has no parameter"):
        trust_report(tinyvgg, shape_input, "saliency", params={"steps": 3})


def test_resnet18_with_inplace_relus_is_left_as_found():
    """A real torchvision network (random weights, nothing downloaded): reused in-place ReLUs, downsample paths.
    At 64×64 (its adaptive pooling takes any size) to keep the test fast; the last conv still has a 2×2 map."""
    torch.manual_seed(0)
    model = _loaded(torchvision.models.resnet18(weights=None), (3, 64, 64), 1000, name="resnet18")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    order = randomization_order(model)
    assert order[:4] == ["fc", "layer4.1.conv2", "layer4.1.conv1", "layer4.0.downsample.0"] and order[-1] == "conv1"
    assert len(order) == 21
    before = snapshot(model.module)
    report = trust_report(model, x, "gradcam", steps=2, max_steps=2, infidelity_samples=2, sensitivity_samples=1)
    assert_unchanged(before, snapshot(model.module))
    assert [len(step.layers) for step in report.randomization.steps] == [11, 10]
    assert report.randomization.decisive == 0  # 11 of 21 is already half
    assert all(math.isfinite(v) for v in report.values.values())


# ── maps that say nothing or worse than nothing (issue 14) ──────────────────────────────────────────────────────


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


def test_nan_is_never_a_pass(tinyvgg, shape_input, gradcam):
    constant = dataclasses.replace(gradcam, attribution=torch.zeros_like(gradcam.attribution))
    check = randomization_check(tinyvgg, shape_input, constant, max_steps=2)
    assert math.isnan(check.correlation)
    assert not check.passed and not check.flagged
    assert check.outcome == "? cannot tell: the map is constant"
    passing = randomization_check(tinyvgg, shape_input, gradcam, max_steps=2)
    assert passing.passed and passing.outcome == "✓ changes"


def test_a_constant_map_is_marked_and_not_scored(tinyvgg, shape_input, monkeypatch):
    real_explain = trust_module.explain

    def blank(model, x, method, **kwargs):
        found = real_explain(model, x, method, **kwargs)
        return dataclasses.replace(found, attribution=torch.zeros_like(found.attribution))

    monkeypatch.setattr(trust_module, "explain", blank)
    monkeypatch.setattr(trust_module, "deletion_insertion", lambda *a, **k: pytest.fail("a constant map was scored"))
    seen: list[float] = []
    report = trust_report(tinyvgg, shape_input, "gradcam++", progress=seen.append)
    assert report.constant and report.faithfulness is None and report.randomization is None
    assert report.values.keys() == METRICS.keys() and all(math.isnan(v) for v in report.values.values())
    assert seen[-1] == 1.0
    assert report.warnings("relu_2_2") == (
        f"Not scored: No region raises {report.explanation.target_name} at relu_2_2 (the map is zero everywhere); "
        "try Grad-CAM or LayerCAM.",
    )


def test_score_cam_on_the_circle_sample_at_conv_2_2_is_constant_and_not_scored(tinyvgg):
    """The issue's case, not a hand-made one: at conv_2_2, before its ReLU, Score-CAM of the circle is zero."""
    x = tinyvgg.preprocess(load_sample("shape-circle"))
    report = trust_report(tinyvgg, x, "scorecam", layer="conv_2_2")
    assert report.constant
    assert report.warnings("relu_2_2") == (
        "Not scored: No region raises circle at conv_2_2 (the map is zero everywhere); try relu_2_2 or Grad-CAM or "
        "LayerCAM.",
    )
