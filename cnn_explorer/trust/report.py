"""Everything for the page: every trust check of one method on one input, and how to read each number.

``METRICS`` says, as data, what each number means and which direction is better (the page's table is built from
it); :func:`trust_report` explains the input and runs the checks of :mod:`~cnn_explorer.trust.faithfulness`,
:mod:`~cnn_explorer.trust.randomization` and :mod:`~cnn_explorer.trust.infidelity_sensitivity` in turn, with one
progress bar and one Cancel; :class:`TrustReport` holds the results and the warnings a reader must see.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from cnn_explorer.attribution import Explanation, explain
from cnn_explorer.model import LoadedModel
from cnn_explorer.progress import Progress, StopFn, stop_if
from cnn_explorer.trust.checks import _CANCELLED
from cnn_explorer.trust.faithfulness import DeletionInsertion, deletion_insertion
from cnn_explorer.trust.infidelity_sensitivity import infidelity, sensitivity
from cnn_explorer.trust.randomization import SIMILAR_RHO, RandomizationCheck, randomization_check

__all__ = [
    "METRICS",
    "Metric",
    "TrustReport",
    "trust_report",
]


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
