"""Dependence on the model: cascading model randomization (Adebayo et al. 2018, Sanity Checks for Saliency Maps,
https://arxiv.org/abs/1810.03292).

:func:`randomization_check` re-initializes the weights layer by layer from the output down, on a deep copy of the
model (the shared model is never modified), re-explains after each step and measures by :func:`spearman` how
similar the map stays; a map that survives half the layers random (``SIMILAR_RHO``) shows the image, not the model.
One of the checks :func:`~cnn_explorer.trust.report.trust_report` runs.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cnn_explorer.attribution import Explanation, explain
from cnn_explorer.hooks import ForwardHooks
from cnn_explorer.model import LoadedModel
from cnn_explorer.progress import Progress, StopFn
from cnn_explorer.trust.checks import _check_count, _check_heatmap, _check_input

__all__ = [
    "RANDOMIZED_KINDS",
    "SIMILAR_RHO",
    "RandomizationCheck",
    "RandomizationStep",
    "randomization_check",
    "randomization_order",
    "spearman",
]


# Layers whose weights the randomization check re-initializes (Adebayo et al. randomize every layer with learned
# weights; normalization layers only rescale channels and are kept).
RANDOMIZED_KINDS: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)

# A map is "still the same" when its Spearman rank correlation with the original is at least this.
SIMILAR_RHO = 0.5


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
