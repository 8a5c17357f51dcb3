"""Can I trust this map? Checks of an explanation against the model it claims to explain.

Three independent questions, each answered by a published test:

- **Faithfulness** — :func:`deletion_insertion` (Petsiuk, Das & Saenko 2018, RISE,
  https://arxiv.org/abs/1806.07421): remove the pixels the map calls most important first and watch the class
  probability fall (deletion), or reveal them first on a blurred image and watch it rise (insertion). The same
  curves for a random pixel order give the yardstick.
- **Dependence on the model** — :func:`randomization_check` (Adebayo et al. 2018, Sanity Checks for Saliency Maps,
  https://arxiv.org/abs/1810.03292): randomize the weights layer by layer from the output down, on a copy of the
  model, and measure how similar the map stays. A map that survives randomization shows the image, not the model.
- **Infidelity and sensitivity** — :func:`infidelity` and :func:`sensitivity` (Yeh et al. 2019, On the
  (In)fidelity and Sensitivity of Explanations, https://arxiv.org/abs/1901.09392), computed by captum's
  ``captum.metrics``.

:func:`trust_report` runs all of them for one method; ``METRICS`` says, as data, how to read each number. Every
forward pass on the shared model runs under ``model.lock``; the randomization check works on a deep copy, so the
shared model is never modified.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from captum import metrics as captum_metrics
from torch import Tensor, nn

from cnn_explorer.attribution import Explanation, blurred, explain, explain_batch, resolve_target
from cnn_explorer.hooks import ForwardHooks
from cnn_explorer.model import LoadedModel
from cnn_explorer.progress import Progress, StopFn, stop_if, ticker

__all__ = [
    "METRICS",
    "RANDOMIZED_KINDS",
    "SIMILAR_RHO",
    "WORSE_THAN_RANDOM",
    "Curve",
    "DeletionInsertion",
    "Metric",
    "RandomizationCheck",
    "RandomizationStep",
    "TrustReport",
    "deletion_insertion",
    "infidelity",
    "randomization_check",
    "randomization_order",
    "sensitivity",
    "spearman",
    "trust_report",
]

_CANCELLED = "The trust checks were cancelled."

# Layers whose weights the randomization check re-initializes (Adebayo et al. randomize every layer with learned
# weights; normalization layers only rescale channels and are kept).
RANDOMIZED_KINDS: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
# A map is "still the same" when its Spearman rank correlation with the original is at least this.
SIMILAR_RHO = 0.5
# A map is worse than the random order when its deletion or insertion area is worse by more than this (a hundredth of
# the probability axis): a smaller gap, such as two curves that both collapse at once, is a tie, not a verdict.
WORSE_THAN_RANDOM = 0.01


@dataclass(frozen=True)
class Metric:
    """How to read one trust number, as data for the page's table.

    Attributes:
        key: Key in ``METRICS`` and in :attr:`TrustReport.values`.
        name: Column title.
        paper: Paper that defines the test.
        url: Link to the paper.
        better: ``"lower"`` or ``"higher"``: which direction means a more trustworthy map.
        reading: One sentence on how to read the number.
    """

    key: str
    name: str
    paper: str
    url: str
    better: str
    reading: str


_RISE = ("Petsiuk, Das & Saenko 2018, RISE", "https://arxiv.org/abs/1806.07421")
_SANITY = ("Adebayo et al. 2018, Sanity Checks for Saliency Maps", "https://arxiv.org/abs/1810.03292")
_YEH = ("Yeh et al. 2019, On the (In)fidelity and Sensitivity of Explanations", "https://arxiv.org/abs/1901.09392")

METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric(
            "deletion",
            "Deletion AUC",
            *_RISE,
            better="lower",
            reading="Area under the class probability as the pixels the map ranks highest are removed first: a low "
            "area means the probability collapses early, so the map found the pixels the model relies on; compare "
            "it with the random order's area.",
        ),
        Metric(
            "insertion",
            "Insertion AUC",
            *_RISE,
            better="higher",
            reading="Area under the class probability as the pixels the map ranks highest are revealed first on a "
            "blurred image: a high area means those pixels alone bring the class back; compare it with the random "
            "order's area.",
        ),
        Metric(
            "randomization",
            "Rank correlation after randomization",
            *_SANITY,
            better="lower",
            reading="How similar the map stays (Spearman ρ of |map|, 1 = same ranking) once the top half of the "
            "model's weighted layers are random: a map that depends on what the model learned must change, so "
            f"ρ ≥ {SIMILAR_RHO} flags the method as not explaining the model.",
        ),
        Metric(
            "infidelity",
            "Infidelity",
            *_YEH,
            better="lower",
            reading="Mean squared gap between the change the map predicts for small random noise on the input and "
            "the change in the class score that really happens (map rescaled to fit best): lower means the map "
            "describes the model's local behaviour better; compare methods on the same image.",
        ),
        Metric(
            "sensitivity",
            "Max sensitivity",
            *_YEH,
            better="lower",
            reading="The largest relative change of the map when the input moves by a barely visible amount: high "
            "values mean the map is unstable, and small input noise would show a different explanation.",
        ),
    )
}


# ── deletion and insertion ──────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Curve:
    """Class probability as a growing fraction of the pixels is removed or revealed.

    Attributes:
        fractions: ``[steps + 1]`` fraction of the pixels changed at each point, 0 … 1.
        probabilities: ``[steps + 1]`` softmax probability of the target class at each point.
        auc: Area under the curve over the fraction axis (trapezoid rule), 0 … 1.
    """

    fractions: Tensor
    probabilities: Tensor
    auc: float


@dataclass(frozen=True)
class DeletionInsertion:
    """Deletion and insertion curves of one map, and the same curves for a random pixel order.

    Attributes:
        target: The class whose probability is traced.
        deletion: Most salient pixels set to the baseline (the all-zero input) first; lower area is better.
        insertion: Most salient pixels revealed first, starting from the blurred input; higher area is better.
        random_deletion: Deletion in a random (seeded) pixel order.
        random_insertion: Insertion in the same random order.
    """

    target: int
    deletion: Curve
    insertion: Curve
    random_deletion: Curve
    random_insertion: Curve

    @property
    def deletion_gain(self) -> float:
        """How much lower the deletion area is than random's (positive: the map beats random)."""
        return self.random_deletion.auc - self.deletion.auc

    @property
    def insertion_gain(self) -> float:
        """How much higher the insertion area is than random's (positive: the map beats random)."""
        return self.insertion.auc - self.random_insertion.auc

    @property
    def worse_on_deletion(self) -> bool:
        """True when the map's deletion area is higher than random's by more than ``WORSE_THAN_RANDOM``."""
        return self.deletion_gain < -WORSE_THAN_RANDOM

    @property
    def worse_on_insertion(self) -> bool:
        """True when the map's insertion area is lower than random's by more than ``WORSE_THAN_RANDOM``."""
        return self.insertion_gain < -WORSE_THAN_RANDOM

    @property
    def warnings(self) -> tuple[str, ...]:
        """One sentence for each curve on which the map does worse than the random pixel order (none when it beats
        or ties random on both)."""
        found = []
        if self.worse_on_deletion:
            found.append(
                f"Worse than random on deletion (area {self.deletion.auc:.3f} vs {self.random_deletion.auc:.3f}): "
                "removing the pixels this map ranks first hurts the prediction less than removing pixels at random."
            )
        if self.worse_on_insertion:
            found.append(
                f"Worse than random on insertion (area {self.insertion.auc:.3f} vs {self.random_insertion.auc:.3f}): "
                "revealing the pixels this map ranks first brings the class back less than revealing them at random."
            )
        return tuple(found)


def deletion_insertion(
    model: LoadedModel,
    x: Tensor,
    heatmap: Tensor,
    *,
    target: int | str | None = None,
    steps: int = 20,
    batch: int = 32,
    seed: int = 0,
    progress: Progress | None = None,
    should_stop: StopFn | None = None,
) -> DeletionInsertion:
    """Deletion and insertion curves (Petsiuk et al. 2018, RISE, https://arxiv.org/abs/1806.07421).

    Pixels are ranked by the heatmap's value, highest first (for signed maps: the strongest evidence *for* the
    class first); equal values keep row-major order, so the ranking is deterministic. At each of ``steps + 1``
    evenly spaced fractions ``k / steps`` the first ``round(k · H · W / steps)`` pixels of the ranking are changed
    in every channel: set to the all-zero input tensor (the dataset's mean colour after normalization) for deletion,
    or copied from the input into its blurred version (:func:`cnn_explorer.attribution.blurred`) for insertion. So
    deletion runs from the input's probability to the zero input's, and insertion from the blurred input's to the
    input's.

    Args:
        model: The model (forward passes only, under ``model.lock``).
        x: One preprocessed input ``[1, C, H, W]``.
        heatmap: ``[H, W]``, e.g. :attr:`Explanation.heatmap`.
        target: Class index or name; None means the predicted class.
        steps: Number of intervals on the fraction axis (the curves have ``steps + 1`` points).
        batch: Images per forward pass.
        seed: Seeds the random pixel order of the baseline curves.
        progress: Called with the fraction done after each forward pass.
        should_stop: Polled before each forward pass; True raises :class:`~cnn_explorer.progress.Cancelled`.

    Raises:
        ValueError: Bad shapes, a non-finite heatmap, or ``steps``/``batch``/``target`` out of range.
        Cancelled: ``should_stop`` returned True.
    """
    _check_input(model, x)
    _check_heatmap(x, heatmap)
    height, width = x.shape[-2:]
    pixels = height * width
    _check_count("steps", steps, 1, pixels)
    _check_count("batch", batch, 1, 4096)
    x = x.detach().to(torch.float32)
    target = _target(model, x, target)

    # round(k · n / steps) in integers: exact, and the same on every platform.
    counts = (torch.arange(steps + 1) * pixels + steps // 2) // steps
    fractions = counts.to(torch.float32) / pixels
    salient = torch.sort(heatmap.detach().flatten(), descending=True, stable=True).indices
    shuffled = torch.randperm(pixels, generator=torch.Generator().manual_seed(seed))
    zero, blur = torch.zeros_like(x), blurred(x)
    runs = [(salient, x, zero), (salient, blur, x), (shuffled, x, zero), (shuffled, blur, x)]
    passes = len(runs) * math.ceil((steps + 1) / batch)
    tick = ticker(passes, progress, should_stop, _CANCELLED)

    curves = []
    for order, start, end in runs:
        probabilities = _perturbation_curve(model, start, end, order, counts, target, batch, tick)
        curves.append(Curve(fractions=fractions, probabilities=probabilities, auc=_trapezoid(probabilities, fractions)))
    if progress is not None:
        progress(1.0)
    return DeletionInsertion(target, *curves)


def _perturbation_curve(
    model: LoadedModel,
    start: Tensor,
    end: Tensor,
    order: Tensor,
    counts: Tensor,
    target: int,
    batch: int,
    tick: Callable[[], None],
) -> Tensor:
    """Target probability of ``start`` with its first ``counts[k]`` pixels of ``order`` taken from ``end``."""
    height, width = start.shape[-2:]
    position = torch.empty_like(order)
    position[order] = torch.arange(order.numel())  # where each pixel comes in the order
    probabilities = []
    for chunk in counts.split(batch):
        changed = (position[None, :] < chunk[:, None]).view(-1, 1, height, width)
        images = torch.where(changed, end, start)
        tick()
        with model.lock, torch.no_grad():
            probabilities.append(torch.softmax(model.module(images), dim=1)[:, target])
    return torch.cat(probabilities)


def _trapezoid(y: Tensor, x: Tensor) -> float:
    return float(torch.trapezoid(y.to(torch.float64), x.to(torch.float64)))


# ── model randomization ─────────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class RandomizationStep:
    """The map after one more group of layers was randomized.

    Attributes:
        layers: The layers randomized at this step, top-down.
        randomized: How many weighted layers are random now, counting from the output.
        correlation: Spearman rank correlation of |map| with the original's |map| (see :func:`randomization_check`
            for constant maps).
        heatmap: The recomputed map ``[H, W]``.
    """

    layers: tuple[str, ...]
    randomized: int
    correlation: float
    heatmap: Tensor


@dataclass(frozen=True)
class RandomizationCheck:
    """The cascading model-randomization test of one explanation.

    Attributes:
        method: Key in ``METHODS``.
        target: The explained class.
        layer: The CAM layer (None for pixel methods).
        layers: Every randomized layer, top-down (the cascade's order).
        original: The map with the trained weights ``[H, W]``.
        steps: One entry per cascade step.
        decisive: Index in ``steps`` of the step the verdict reads: the first with at least half the layers random.
        correlation: That step's correlation (NaN when the original map is constant).
        flagged: True when the map stays similar (``correlation ≥ SIMILAR_RHO``): not explaining the model.
        verdict: One sentence for the page.
    """

    method: str
    target: int
    layer: str | None
    layers: tuple[str, ...]
    original: Tensor
    steps: tuple[RandomizationStep, ...]
    decisive: int
    correlation: float
    flagged: bool
    verdict: str

    @property
    def passed(self) -> bool:
        """True only when the map measurably changed (``correlation < SIMILAR_RHO``); a NaN (a constant original
        map, whose ranking cannot be compared) is not a pass."""
        return self.correlation < SIMILAR_RHO

    @property
    def outcome(self) -> str:
        """The check's result in a few words, for a table cell: passed, flagged, or cannot tell."""
        if self.passed:
            return "✓ changes"
        if self.flagged:
            return "⚠ barely changes"
        return "? cannot tell: the map is constant"


def randomization_order(model: LoadedModel) -> list[str]:
    """The layers the randomization check re-initializes (``RANDOMIZED_KINDS``), top-down: reverse execution order.

    Runs one forward pass of a zero input with recording hooks, under ``model.lock``; the hooks are removed after.
    """
    with model.lock:
        return _execution_order(model.module, model.input_size)[::-1]


def _execution_order(module: nn.Module, input_size: tuple[int, int, int]) -> list[str]:
    names = {m: name for name, m in module.named_modules() if isinstance(m, RANDOMIZED_KINDS)}
    seen: list[str] = []

    def record(m: nn.Module, _inputs: Any) -> None:
        if names[m] not in seen:
            seen.append(names[m])

    with ForwardHooks() as hooks, torch.no_grad():
        for m in names:
            hooks.before(m, record)
        module(torch.zeros(1, *input_size))
    return seen


def randomization_check(
    model: LoadedModel,
    x: Tensor,
    explanation: Explanation,
    *,
    seed: int = 0,
    max_steps: int | None = None,
    progress: Progress | None = None,
    should_stop: StopFn | None = None,
) -> RandomizationCheck:
    """Cascading model-parameter randomization (Adebayo et al. 2018, https://arxiv.org/abs/1810.03292).

    On a deep copy of the module (the shared model is never modified), the weights and biases of every
    ``Conv2d`` and ``Linear`` layer are re-initialized, one group at a time from the output layer down, with
    PyTorch's default initialization (the untrained model's distribution) drawn from a generator seeded with
    ``seed``. After each step the map is recomputed with :func:`explain` (same method, target, layer and
    parameters as ``explanation``) and compared with the original by the Spearman rank correlation of the absolute
    maps, as in the paper. A randomized map that is constant (e.g. Grad-CAM cut to zero by its ReLU) has kept none
    of the original ranking and scores 0.

    The verdict reads one point of the cascade: the first step at which at least half of the weighted layers,
    counted from the output, are random. By then the class score no longer computes what the model learned — the
    paper's faithful methods (gradient, Grad-CAM) have lost their structure, while guided backpropagation still
    ranks pixels much as before. A map whose rank correlation there is still ``≥ SIMILAR_RHO`` (0.5, "more alike
    than not") is flagged as not explaining the model. One point rather than an average over steps keeps the rule
    independent of ``max_steps``: the grouping changes how many points there are, not where half the layers are.

    Args:
        model: The model; only copied.
        x: The input ``explanation`` was computed for ``[1, C, H, W]``.
        explanation: The explanation to test (from :func:`explain` on ``model`` and ``x``).
        seed: Seeds the new weights; also passed to :func:`explain` (use the seed the explanation was made with).
        max_steps: Group the layers into at most this many steps (deep models); None: one layer per step.
        progress: Called with the fraction done after each step.
        should_stop: Polled before each forward pass; True raises :class:`~cnn_explorer.progress.Cancelled`.

    Raises:
        ValueError: Bad shapes or ``max_steps``, or a model without conv or linear layers.
        Cancelled: ``should_stop`` returned True.
    """
    _check_input(model, x)
    _check_heatmap(x, explanation.heatmap)
    if max_steps is not None:
        _check_count("max_steps", max_steps, 1, 10_000)
    with model.lock:  # nobody else's hooks are on the module while it is copied
        module = copy.deepcopy(model.module)
    module.eval()
    layers = _execution_order(module, model.input_size)[::-1]
    if not layers:
        raise ValueError(f"{model.name} has no convolutional or linear layers to randomize.")
    groups = _groups(layers, max_steps)
    # A fresh lock: the copy is private, so explaining it never waits for (or blocks) the shared model.
    randomized_model = dataclasses.replace(model, module=module, lock=threading.RLock())
    generator = torch.Generator().manual_seed(seed)
    original = explanation.heatmap.abs()

    steps = []
    for i, group in enumerate(groups):
        for name in group:
            _reinitialize(module.get_submodule(name), generator)
        heatmap = explain(
            randomized_model,
            x,
            explanation.method,
            target=explanation.target,
            layer=explanation.layer,
            seed=seed,
            should_stop=should_stop,
            **explanation.params,
        ).heatmap
        steps.append(
            RandomizationStep(
                layers=tuple(group),
                randomized=sum(map(len, groups[: i + 1])),
                correlation=_map_similarity(original, heatmap.abs()),
                heatmap=heatmap,
            )
        )
        if progress is not None:
            progress((i + 1) / len(groups))

    decisive = next(i for i, step in enumerate(steps) if 2 * step.randomized >= len(layers))
    correlation = steps[decisive].correlation
    flagged = correlation >= SIMILAR_RHO  # False for NaN
    return RandomizationCheck(
        method=explanation.method,
        target=explanation.target,
        layer=explanation.layer,
        layers=tuple(layers),
        original=explanation.heatmap,
        steps=tuple(steps),
        decisive=decisive,
        correlation=correlation,
        flagged=flagged,
        verdict=_verdict(correlation, steps[decisive].randomized, len(layers)),
    )


def _groups(layers: list[str], max_steps: int | None) -> list[list[str]]:
    """``layers`` in order, cut into at most ``max_steps`` contiguous groups whose sizes differ by at most one."""
    count = len(layers) if max_steps is None else min(max_steps, len(layers))
    size, extra = divmod(len(layers), count)
    groups, start = [], 0
    for i in range(count):
        end = start + size + (i < extra)
        groups.append(layers[start:end])
        start = end
    return groups


@torch.no_grad()
def _reinitialize(layer: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialization of a conv or linear layer (``reset_parameters``), from ``generator``."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    if getattr(layer, "bias", None) is not None:
        fan_in = layer.weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def _map_similarity(original: Tensor, randomized: Tensor) -> float:
    rho = spearman(original, randomized)
    if math.isnan(rho) and original.unique().numel() > 1:
        return 0.0  # the randomized map is constant: none of the original ranking is left
    return rho


def _verdict(correlation: float, randomized: int, total: int) -> str:
    where = f"with the top {randomized} of {total} weighted layers randomized"
    if math.isnan(correlation):
        return "The original map is constant, so there is no ranking whose survival could be measured."
    if correlation >= SIMILAR_RHO:
        return (
            f"Not explaining the model: {where}, the map still ranks pixels like the original "
            f"(Spearman ρ = {correlation:.2f} ≥ {SIMILAR_RHO}); it shows the image more than what the model learned."
        )
    return (
        f"Passes: {where}, the map no longer ranks pixels like the original (Spearman ρ = {correlation:.2f} < "
        f"{SIMILAR_RHO}); it depends on the model's learned weights."
    )


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation of two equally sized tensors (flattened), ties given their average rank.

    The same value as ``scipy.stats.spearmanr``; NaN when either tensor is constant (the correlation is undefined).

    Raises:
        ValueError: Different sizes, fewer than two values, or non-finite values.
    """
    if a.numel() != b.numel():
        raise ValueError(f"spearman needs tensors of the same size; got {a.numel()} and {b.numel()} values.")
    if a.numel() < 2:
        raise ValueError("spearman needs at least two values.")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("spearman needs finite values; got NaN or infinity.")
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = torch.sqrt((ra * ra).sum() * (rb * rb).sum())
    if denominator == 0:
        return math.nan
    return float((ra * rb).sum() / denominator)


def _ranks(v: Tensor) -> Tensor:
    """1-based ranks of ``v``'s values, tied values sharing the mean of their ranks (scipy's ``"average"``)."""
    v = v.detach().flatten().to(torch.float64)
    ordered, order = torch.sort(v, stable=True)
    _, group, sizes = torch.unique_consecutive(ordered, return_inverse=True, return_counts=True)
    last = sizes.cumsum(0).to(torch.float64)  # rank of each group's last member
    ranks = torch.empty_like(v)
    ranks[order] = (last - (sizes - 1) / 2)[group]
    return ranks


# ── infidelity and sensitivity (captum.metrics) ─────────────────────────────────────────────────────────────────


def infidelity(
    model: LoadedModel,
    x: Tensor,
    explanation: Explanation,
    *,
    noise: float = 0.05,
    samples: int = 16,
    batch: int = 16,
    seed: int = 0,
) -> float:
    """Explanation infidelity (Yeh et al. 2019, https://arxiv.org/abs/1901.09392) by ``captum.metrics.infidelity``.

    The perturbations ``I`` are Gaussian noise with standard deviation ``noise`` × the input's value range
    (``x.max() − x.min()``), so the level means the same on [0, 1] pixels and on ImageNet-normalized tensors; the
    model is evaluated at ``x − I``, and the score is that of the target logit (the quantity every method explains).
    The attribution is the raw one where it has the input's shape (pixel methods) and otherwise the heatmap
    repeated over the channels (CAMs). The score is captum's ``normalize=True`` variant, ``E[(β·Iᵀφ − Δf)²]`` with
    the best-fitting scale β, because heatmaps are not on the score's scale (CAMs are arbitrary up to a factor).
    The same Gaussian perturbation is used for every method, so values compare across methods on one image; note
    that it treats global attributions (integrated gradients, occlusion) as if they were local gradients.

    Args:
        model: The model (forward passes under ``model.lock``).
        x: The input ``[1, C, H, W]`` the explanation was made for.
        explanation: From :func:`explain`.
        noise: Standard deviation of the noise as a fraction of the input's range.
        samples: Number of perturbations (captum's ``n_perturb_samples``).
        batch: Perturbed inputs per forward pass.
        seed: Seeds the noise (a private generator; the global random state is untouched).

    Raises:
        ValueError: Bad shapes or arguments.
    """
    _check_input(model, x)
    _check_positive("noise", noise)
    _check_count("samples", samples, 1, 100_000)
    _check_count("batch", batch, 1, 4096)
    x = x.detach().to(torch.float32)
    attribution = _pixel_attribution(x, explanation)
    stdev = noise * _span(x)
    generator = torch.Generator().manual_seed(seed)

    def perturb(inputs: Tensor) -> tuple[Tensor, Tensor]:
        perturbation = torch.randn(inputs.shape, generator=generator, dtype=inputs.dtype) * stdev
        return perturbation, inputs - perturbation

    with model.lock:
        value = captum_metrics.infidelity(
            model.module,
            perturb,
            x,
            attribution,
            target=explanation.target,
            n_perturb_samples=samples,
            max_examples_per_batch=min(batch, samples),
            normalize=True,
        )
    return float(value)


def _pixel_attribution(x: Tensor, explanation: Explanation) -> Tensor:
    """The attribution as a ``[1, C, H, W]`` tensor: raw for pixel methods, the heatmap over every channel for CAMs."""
    if tuple(explanation.attribution.shape) == tuple(x.shape[1:]):
        return explanation.attribution[None].to(x.dtype)
    _check_heatmap(x, explanation.heatmap)
    return explanation.heatmap.to(x.dtype).expand_as(x[0])[None]


def sensitivity(
    model: LoadedModel,
    x: Tensor,
    explanation: Explanation,
    *,
    radius: float = 0.02,
    samples: int = 4,
    batch: int = 4,
    seed: int = 0,
    should_stop: StopFn | None = None,
) -> float:
    """Max-sensitivity (Yeh et al. 2019, https://arxiv.org/abs/1901.09392) by ``captum.metrics.sensitivity_max``.

    The input is perturbed ``samples`` times by uniform noise in the L∞ ball of radius ``radius`` × the input's
    value range (captum's default perturbation, its radius scaled to the input); each perturbed input is explained
    by :func:`explain_batch` with the explanation's method, target, layer and parameters, and the score is the
    largest ``‖map(x + δ) − map(x)‖ / ‖map(x)‖`` (Frobenius norms of the ``[H, W]`` heatmaps the page shows). Each
    sample costs one explanation, so the default count is small.

    Args:
        model: The model (each explanation holds ``model.lock``).
        x: The input ``[1, C, H, W]`` the explanation was made for.
        explanation: From :func:`explain`.
        radius: Half-width of the noise as a fraction of the input's range.
        samples: Number of perturbations (captum's ``n_perturb_samples``).
        batch: Perturbed inputs explained per call.
        seed: Seeds the noise (a private generator) and is passed to :func:`explain_batch`.
        should_stop: Polled before each forward pass; True raises :class:`~cnn_explorer.progress.Cancelled`.

    Raises:
        ValueError: Bad shapes or arguments.
        Cancelled: ``should_stop`` returned True.
    """
    _check_input(model, x)
    _check_positive("radius", radius)
    _check_count("samples", samples, 1, 10_000)
    _check_count("batch", batch, 1, 4096)
    x = x.detach().to(torch.float32)
    half_width = radius * _span(x)
    generator = torch.Generator().manual_seed(seed)

    def perturb(inputs: Tensor, perturb_radius: float) -> Tensor:
        noise = torch.empty(inputs.shape, dtype=inputs.dtype).uniform_(
            -perturb_radius, perturb_radius, generator=generator
        )
        return inputs + noise

    def heatmaps(inputs: Tensor | tuple[Tensor, ...], target: int) -> Tensor | tuple[Tensor]:
        # captum passes (and expects back) a tuple on its first call, plain tensors afterwards.
        as_tuple = isinstance(inputs, tuple)
        inputs = inputs[0] if as_tuple else inputs
        # captum runs this under no_grad; the gradient methods and CAMs need autograd (TorchCAM's backward fails
        # on scores selected without it).
        with torch.enable_grad():
            found = explain_batch(
                model,
                inputs,
                explanation.method,
                targets=[target] * inputs.shape[0],
                layer=explanation.layer,
                seed=seed,
                should_stop=should_stop,
                **explanation.params,
            )
        maps = torch.stack([e.heatmap for e in found])
        return (maps,) if as_tuple else maps

    value = captum_metrics.sensitivity_max(
        heatmaps,
        x,
        perturb_func=perturb,
        perturb_radius=half_width,
        n_perturb_samples=samples,
        max_examples_per_batch=min(batch, samples),
        target=explanation.target,
    )
    return float(value)


# ── everything for the page ─────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class TrustReport:
    """Every trust check of one method on one input.

    Attributes:
        explanation: The explanation checked.
        faithfulness: Deletion and insertion curves, with the random-order baselines.
        randomization: The model-randomization sanity check.
        infidelity: See :func:`infidelity`.
        sensitivity: See :func:`sensitivity`.
        seconds: Wall time of the whole report.
    """

    explanation: Explanation
    faithfulness: DeletionInsertion | None
    randomization: RandomizationCheck | None
    infidelity: float
    sensitivity: float
    seconds: float = field(default=0.0, compare=False)

    @property
    def constant(self) -> bool:
        """True when the map is constant (:attr:`Explanation.is_constant`): it ranks nothing, so it is not scored —
        ``faithfulness`` and ``randomization`` are None and every value is NaN."""
        return self.faithfulness is None

    @property
    def values(self) -> dict[str, float]:
        """One number per key of ``METRICS``, for the page's table (NaN for a constant map)."""
        if self.faithfulness is None or self.randomization is None:
            return dict.fromkeys(METRICS, math.nan)
        return {
            "deletion": self.faithfulness.deletion.auc,
            "insertion": self.faithfulness.insertion.auc,
            "randomization": self.randomization.correlation,
            "infidelity": self.infidelity,
            "sensitivity": self.sensitivity,
        }

    def warnings(self, default_layer: str | None = None) -> tuple[str, ...]:
        """Every sentence a reader must see next to the numbers: the map is constant (and not scored), it does
        worse than random on deletion or insertion, or the randomization check flags it.

        Args:
            default_layer: The model's default CAM layer, suggested for a constant CAM computed at another one.
        """
        if self.faithfulness is None or self.randomization is None:
            return (f"Not scored: {self.explanation.blank_note(default_layer)}",)
        found = list(self.faithfulness.warnings)
        if not self.randomization.passed:
            found.append(self.randomization.verdict)
        return tuple(found)


def trust_report(
    model: LoadedModel,
    x: Tensor,
    method: str,
    *,
    target: int | str | None = None,
    layer: str | None = None,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    steps: int = 20,
    batch: int = 32,
    max_steps: int | None = 8,
    infidelity_samples: int = 16,
    sensitivity_samples: int = 4,
    progress: Progress | None = None,
    should_stop: StopFn | None = None,
) -> TrustReport:
    """Explain ``x`` with ``method`` and run every trust check on the result (see ``METRICS`` for how to read them).

    Args:
        model: The model; left exactly as found.
        x: One preprocessed input ``[1, C, H, W]``.
        method: A key of ``METHODS``.
        target: Class index or name; None means the predicted class.
        layer: CAM layer; None means the method's default.
        params: The method's parameters (defaults for the missing ones).
        seed: Seeds everything random (SmoothGrad's noise, the random order, new weights, perturbations).
        steps: Intervals of the deletion and insertion curves.
        batch: Images per forward pass for the curves and infidelity; perturbed inputs per explanation call for
            sensitivity (at most ``sensitivity_samples``).
        max_steps: At most this many randomization steps (None: one per layer).
        infidelity_samples: Perturbations for infidelity (forward passes only: cheap).
        sensitivity_samples: Perturbations for sensitivity (one explanation each: as costly as the method).
        progress: Called with the fraction done (0 … 1).
        should_stop: Polled before every forward pass; True raises :class:`~cnn_explorer.progress.Cancelled`.

    Raises:
        ValueError: Unknown method, target, layer or parameter, bad shapes or counts.
        Cancelled: ``should_stop`` returned True.
    """
    started = time.perf_counter()
    # Rough relative costs of the phases, for one progress bar: explanations count as one unit each.
    phases = {"explain": 1.0, "curves": 1.0, "randomization": 4.0, "infidelity": 0.5, "sensitivity": 2.0}
    done = 0.0

    def phase(name: str) -> Progress | None:
        if progress is None:
            return None
        offset, share, total = done, phases[name], sum(phases.values())
        return lambda fraction: progress(min((offset + share * fraction) / total, 1.0))

    def finish(name: str) -> None:
        nonlocal done
        done += phases[name]
        if progress is not None:
            progress(min(done / sum(phases.values()), 1.0))

    explanation = explain(
        model,
        x,
        method,
        target=target,
        layer=layer,
        seed=seed,
        progress=phase("explain"),
        should_stop=should_stop,
        **(params or {}),
    )
    finish("explain")
    if explanation.is_constant:  # it ranks no pixel above another: there is nothing to score
        if progress is not None:
            progress(1.0)
        return TrustReport(
            explanation=explanation,
            faithfulness=None,
            randomization=None,
            infidelity=math.nan,
            sensitivity=math.nan,
            seconds=time.perf_counter() - started,
        )
    faithfulness = deletion_insertion(
        model,
        x,
        explanation.heatmap,
        target=explanation.target,
        steps=steps,
        batch=batch,
        seed=seed,
        progress=phase("curves"),
        should_stop=should_stop,
    )
    finish("curves")
    randomization = randomization_check(
        model,
        x,
        explanation,
        seed=seed,
        max_steps=max_steps,
        progress=phase("randomization"),
        should_stop=should_stop,
    )
    finish("randomization")
    stop_if(should_stop, _CANCELLED)
    infid = infidelity(model, x, explanation, samples=infidelity_samples, batch=batch, seed=seed)
    finish("infidelity")
    sens = sensitivity(
        model,
        x,
        explanation,
        samples=sensitivity_samples,
        batch=min(batch, sensitivity_samples),
        seed=seed,
        should_stop=should_stop,
    )
    finish("sensitivity")
    return TrustReport(
        explanation=explanation,
        faithfulness=faithfulness,
        randomization=randomization,
        infidelity=infid,
        sensitivity=sens,
        seconds=time.perf_counter() - started,
    )


# ── checks and helpers ──────────────────────────────────────────────────────────────────────────────────────────


def _check_input(model: LoadedModel, x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[0] != 1 or tuple(x.shape[1:]) != tuple(model.input_size):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{model.name} takes one input [1, {', '.join(map(str, model.input_size))}]; got {shape}.")


def _check_heatmap(x: Tensor, heatmap: Tensor) -> None:
    height, width = x.shape[-2:]
    if tuple(heatmap.shape) != (height, width):
        raise ValueError(
            f"The heatmap must be [{height}, {width}] like the input; got shape {tuple(heatmap.shape)}. "
            "Was it made for this input?"
        )
    if not torch.isfinite(heatmap).all():
        raise ValueError("The heatmap has NaN or infinite values; its pixels cannot be ranked.")


def _check_count(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}; got {value!r}.")


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}.")


def _span(x: Tensor) -> float:
    """The input's value range, floored so a constant input still gets noise."""
    return max(float(x.max() - x.min()), 1e-6)


def _target(model: LoadedModel, x: Tensor, target: int | str | None) -> int:
    if target is not None:
        return resolve_target(model, target)
    with model.lock, torch.no_grad():
        return int(model.module(x).argmax(dim=1))
