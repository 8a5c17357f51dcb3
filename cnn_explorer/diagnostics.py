"""What went wrong in a training run, in plain words, each with what to change.

:func:`diagnose` is a pure function of what a run recorded (its per-epoch metrics, the dead ReLU units measured at
its end, its settings); the run's message, the training view and the model card all show its sentences, so they say the
same thing. :func:`run_diagnostics` reads those records from the run store.

Kinds, most severe first: the loss exploded while staying finite, validation accuracy stuck at chance, gradients
exploding or vanishing, ReLU units that never fire, overfitting. (A NaN or infinite loss fails the run with its own
message: see :class:`cnn_explorer.training.TrainingDiverged`.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnn_explorer import runs

__all__ = ["KINDS", "SEVERITIES", "Diagnostic", "diagnose", "run_diagnostics", "summary"]

KINDS = ("loss_exploded", "stuck_at_chance", "exploding_gradients", "vanishing_gradients", "dead_relus", "overfitting")
SEVERITIES = ("error", "warning", "info")

# The loss "exploded" when an epoch's largest batch loss is this many times its start (or ln(classes), a fresh
# network's loss, whichever is larger): a healthy run's loss only falls from there.
_EXPLODED = 100.0
# Accuracy at chance: the best validation accuracy is within this many binomial standard errors of 1/classes …
_CHANCE_SIGMAS = 3.0
# … after at least this many epochs (one epoch at chance can be a slow start).
_CHANCE_EPOCHS = 2
# A layer whose gradient norm (last batch of an epoch) exceeds this is exploding: cross-entropy's gradient with
# respect to the logits is at most √2 per image, so healthy layers stay around 0.001–10.
_EXPLODING_GRADIENT = 1e3
# Vanishing: the first trained layer gets less than this share of the largest layer's gradient norm.
_VANISHING_RATIO = 1e-4
# Dead ReLUs: a layer where at least this share of units never fired on the validation images.
_DEAD_SHARE = 0.5
# A learning rate people start from, per optimizer (the advice never suggests more than this).
_USUAL_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3}
_OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}


@dataclass(frozen=True)
class Diagnostic:
    """One thing that went wrong in a run.

    Attributes:
        kind: One of :data:`KINDS`.
        severity: One of :data:`SEVERITIES` (``"error"``: the model learnt nothing useful).
        sentence: What happened, with the run's numbers.
        advice: What to change.
    """

    kind: str
    severity: str
    sentence: str
    advice: str

    @property
    def text(self) -> str:
        return f"{self.sentence} {self.advice}"


def diagnose(
    metrics: Sequence[Mapping[str, Any]],
    *,
    classes: int,
    lr: float,
    optimizer: str,
    val_images: int | None = None,
    dead_relus: Mapping[str, Sequence[int]] | None = None,
) -> tuple[Diagnostic, ...]:
    """Everything that went wrong, most severe first; empty for a healthy run.

    Args:
        metrics: The run's per-epoch records (:class:`~cnn_explorer.training.EpochResult` as dicts), in order.
        classes: Number of classes (chance is 1/classes).
        lr: The run's peak learning rate.
        optimizer: A key of :data:`cnn_explorer.training.OPTIMIZERS`.
        val_images: Validation images (the noise of an accuracy); None: accuracy at chance is not judged.
        dead_relus: ReLU layer → ``(dead units, units)`` on the validation images, measured at the run's end.
    """
    exploded = _loss_exploded(metrics, classes, lr, optimizer)
    found = [
        exploded,
        _stuck_at_chance(metrics, classes, val_images, exploded is not None),
        *_gradients(metrics),
        _dead(dead_relus or {}),
        _overfitting(metrics),
    ]
    return tuple(d for d in found if d is not None)


def summary(diagnostics: Sequence[Diagnostic]) -> str:
    """The diagnostics as one paragraph (the run's message)."""
    return " ".join(d.text for d in diagnostics)


def run_diagnostics(run_id: str | int) -> tuple[Diagnostic, ...]:
    """:func:`diagnose` on what the run store holds for a run (what it has recorded so far)."""
    run = runs.get_run(run_id)
    metrics = runs.read_metrics(run.id)
    try:
        info = runs.read_model_info(run.id)
    except (FileNotFoundError, runs.RunNotFound):
        info = {}
    results = runs.read_results(run.id) or {}
    classes = len(info.get("class_names") or results.get("class_names") or ())
    if not metrics or classes < 2:
        return ()
    return diagnose(
        metrics,
        classes=classes,
        lr=run.spec.settings.lr,
        optimizer=run.spec.settings.optimizer,
        val_images=(info.get("data") or {}).get("val"),
        dead_relus=results.get("dead_relus"),
    )


# ── one check per kind ──────────────────────────────────────────────────────────────────────────────────────────


def _loss_exploded(metrics: Sequence[Mapping[str, Any]], classes: int, lr: float, optimizer: str) -> Diagnostic | None:
    start = metrics[0].get("first_loss") or metrics[0]["train_loss"]
    limit = _EXPLODED * max(start, math.log(classes))
    for record in metrics:
        peak = max(record.get("peak_loss") or 0.0, record["train_loss"], record.get("val_loss") or 0.0)
        if peak > limit:
            name = _OPTIMIZER_NAMES.get(optimizer, optimizer)
            lower = min(lr / 10, _USUAL_LR.get(optimizer, lr / 10))
            return Diagnostic(
                "loss_exploded",
                "error",
                f"The loss grew from {_number(start)} to {_number(peak)} in epoch {record['epoch']}: the learning "
                f"rate {_number(lr)} is far too high for {name}.",
                f"Try {_number(lower)} or lower.",
            )
    return None


def _stuck_at_chance(
    metrics: Sequence[Mapping[str, Any]], classes: int, val_images: int | None, exploded: bool
) -> Diagnostic | None:
    accuracies = [m["val_accuracy"] for m in metrics if m.get("val_accuracy") is not None]
    if not val_images or len(accuracies) < _CHANCE_EPOCHS:
        return None
    chance = 1 / classes
    noise = _CHANCE_SIGMAS * math.sqrt(chance * (1 - chance) / val_images)
    best = max(accuracies)
    if best > chance + noise:
        return None
    return Diagnostic(
        "stuck_at_chance",
        # After an exploded loss the model is wrecked; otherwise a short or slow run may still learn with more epochs.
        "error" if exploded else "warning",
        f"Validation accuracy stayed at chance: at best {best:.1%} in {len(accuracies)} epochs, where guessing "
        f"among {classes} classes gets {chance:.1%} (± {noise:.1%} on {val_images:,} images). The model learnt "
        "nothing.",
        "Lower the learning rate first (see above)."
        if exploded
        else "If the loss jumped about, lower the learning rate; if it stayed flat, raise it or train longer; and "
        "check that each class's images really differ.",
    )


def _gradients(metrics: Sequence[Mapping[str, Any]]) -> list[Diagnostic]:
    recorded = [m for m in metrics if m.get("grad_norms")]
    if not recorded:
        return []
    found = []
    huge = [(m["epoch"], layer, norm) for m in recorded for layer, norm in m["grad_norms"].items()]
    epoch, layer, norm = max(huge, key=lambda item: item[2] if math.isfinite(item[2]) else math.inf)
    if not math.isfinite(norm) or norm > _EXPLODING_GRADIENT:
        found.append(
            Diagnostic(
                "exploding_gradients",
                "warning",
                f"The gradients exploded: layer {layer}'s gradient norm reached {_number(norm)} in epoch {epoch} "
                f"(healthy layers stay below about 10).",
                "Lower the learning rate; batch norm after each convolution, or a warm-up, also tame them.",
            )
        )
    last = recorded[-1]
    norms = last["grad_norms"]
    first, top = next(iter(norms)), max(norms.values())
    if top > 0 and norms[first] == 0:
        found.append(
            Diagnostic(
                "vanishing_gradients",
                "warning",
                f"No gradient reached layer {first} in epoch {last['epoch']} (the largest layer's gradient norm was "
                f"{_number(top)}): a layer of units that never fire sits between them, so it stopped learning.",
                "Lower the learning rate and start a new run: large steps silence units for good.",
            )
        )
    elif top > 0 and norms[first] < _VANISHING_RATIO * top:
        found.append(
            Diagnostic(
                "vanishing_gradients",
                "warning",
                f"The gradients vanish before they reach the first layer: in epoch {last['epoch']} layer {first}'s "
                f"gradient norm was {_number(norms[first])}, {_number(norms[first] / top)} of the largest layer's "
                f"({_number(top)}), so it barely learns.",
                "Use ReLU rather than sigmoid or tanh, fewer layers, or batch norm after each convolution.",
            )
        )
    elif top == 0:
        found.append(
            Diagnostic(
                "vanishing_gradients",
                "error",
                f"No gradient reached any layer in epoch {last['epoch']}: the network's output no longer depends on "
                "its weights, so nothing learns.",
                "Lower the learning rate (large steps can silence every unit) and start a new run.",
            )
        )
    return found


def _dead(dead_relus: Mapping[str, Sequence[int]]) -> Diagnostic | None:
    worst = [(layer, dead / total, dead, total) for layer, (dead, total) in dead_relus.items() if total]
    worst = [w for w in worst if w[1] >= _DEAD_SHARE]
    if not worst:
        return None
    dead = sum(d for _, (d, _t) in dead_relus.items())
    total = sum(t for _, (_d, t) in dead_relus.items())
    layer, _share, d, t = max(worst, key=lambda w: w[1])
    return Diagnostic(
        "dead_relus",
        "warning",
        f"{dead / total:.0%} of the ReLU units never fire on the validation images ({dead:,} of {total:,}; "
        f"{layer}: {d:,} of {t:,}). A unit that never fires passes no gradient and never learns again.",
        "Lower the learning rate or add a warm-up: large early steps push units so far negative that they die.",
    )


def _overfitting(metrics: Sequence[Mapping[str, Any]]) -> Diagnostic | None:
    """Validation loss has risen for two epochs while training loss kept falling."""
    if len(metrics) < 3 or metrics[-1].get("val_loss") is None:
        return None
    last = metrics[-3:]
    val_rising = last[0]["val_loss"] < last[1]["val_loss"] < last[2]["val_loss"]
    train_falling = last[0]["train_loss"] > last[1]["train_loss"] > last[2]["train_loss"]
    if not (val_rising and train_falling):
        return None
    return Diagnostic(
        "overfitting",
        "info",
        "Validation loss has risen for two epochs while training loss kept falling: the model is starting to "
        "memorize its training images (overfitting).",
        "More data or augmentation, dropout, weight decay or early stopping help.",
    )


def _number(value: float) -> str:
    """``1e4``, ``1.9e17``, ``2.3``, ``0.01``: two significant digits, exponents without ``+`` or leading zeros."""
    text = f"{value:.2g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text
