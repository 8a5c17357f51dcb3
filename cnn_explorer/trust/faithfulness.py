"""Faithfulness: deletion and insertion curves (Petsiuk, Das & Saenko 2018, RISE, https://arxiv.org/abs/1806.07421).

:func:`deletion_insertion` removes the pixels a map calls most important first and watches the class probability
fall (deletion), or reveals them first on a blurred image and watches it rise (insertion); the same curves for a
random pixel order are the yardstick, and :class:`DeletionInsertion` says when the map does worse than it
(``WORSE_THAN_RANDOM``). One of the checks :func:`~cnn_explorer.trust.report.trust_report` runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from cnn_explorer.attribution import blurred
from cnn_explorer.model import LoadedModel
from cnn_explorer.progress import Progress, StopFn, ticker
from cnn_explorer.trust.checks import _CANCELLED, _check_count, _check_heatmap, _check_input, _target

__all__ = [
    "WORSE_THAN_RANDOM",
    "Curve",
    "DeletionInsertion",
    "deletion_insertion",
]


# A map is worse than the random order when its deletion or insertion area is worse by more than this (a hundredth of
# the probability axis): a smaller gap, such as two curves that both collapse at once, is a tie, not a verdict.
WORSE_THAN_RANDOM = 0.01


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
