"""Fooling the model: adversarial examples with FGSM and PGD (captum.robust) and the smallest ε that flips a
prediction.

Attacks change pixels in ``[0, 1]`` (see :mod:`cnn_explorer.pixels`), so ε is in grey levels: ε = 4/255 moves every
pixel by at most four of its 256 levels. Both attacks are untargeted: they push the loss of the model's own
prediction up, until another class wins.

captum's FGSM leaves a pixel unchanged when its gradient is below ``zero_thresh`` (1e-6). A confident small model
has most of its pixel gradients that small, so the attack would move only a few pixels; the threshold is set to 0
here (only pixels with an exactly zero gradient stay), and the tests call captum with the same setting.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from cnn_explorer.model import LoadedModel, Prediction, predict
from cnn_explorer.pixels import normalize, pixel_logits
from cnn_explorer.progress import Progress, StopFn, ticker

__all__ = [
    "ATTACKS",
    "DEFAULT_MAX_EPSILON",
    "DEFAULT_TOLERANCE",
    "AttackResult",
    "AttackSpec",
    "FlipSearch",
    "attack",
    "pgd_step_size",
    "smallest_flip",
]

_CANCELLED = "The attack was cancelled."

DEFAULT_MAX_EPSILON = 32 / 255
DEFAULT_TOLERANCE = 0.25 / 255  # a quarter of a grey level: finer than any 8-bit image can store
_TOP_K = 5


@dataclass(frozen=True)
class AttackSpec:
    """One attack.

    Attributes:
        key: Registry key.
        name: Display name.
        paper: The paper that defines it.
        url: Link to the paper.
        summary: One or two sentences for students.
        iterative: True when it takes several gradient steps (``steps`` applies).
    """

    key: str
    name: str
    paper: str
    url: str
    summary: str
    iterative: bool


ATTACKS: dict[str, AttackSpec] = {
    spec.key: spec
    for spec in (
        AttackSpec(
            "fgsm",
            "FGSM",
            "Goodfellow, Shlens & Szegedy 2015, Explaining and Harnessing Adversarial Examples",
            "https://arxiv.org/abs/1412.6572",
            "One step: move every pixel by ε in the direction that raises the loss of the predicted class (the sign "
            "of its gradient).",
            iterative=False,
        ),
        AttackSpec(
            "pgd",
            "PGD",
            "Madry et al. 2018, Towards Deep Learning Models Resistant to Adversarial Attacks",
            "https://arxiv.org/abs/1706.06083",
            "Many small FGSM steps, each followed by pulling the image back to within ε of the original: a stronger "
            "attack for the same ε.",
            iterative=True,
        ),
    )
}


def pgd_step_size(epsilon: float, steps: int) -> float:
    """Madry et al.'s rule of thumb, 2.5 ε / steps: enough to cross the ε-ball and come back."""
    return 2.5 * epsilon / steps


@dataclass(frozen=True)
class AttackResult:
    """An adversarial image and what the model says about it.

    Attributes:
        method: Key of :data:`ATTACKS`.
        epsilon: The largest change allowed per pixel, in ``[0, 1]`` pixel units.
        label: The class attacked (the model's prediction on the original).
        pixels: The original ``[C, H, W]`` in ``[0, 1]``.
        adversarial: The attacked image ``[C, H, W]`` in ``[0, 1]``.
        before: The prediction on the original.
        after: The prediction on the adversarial image.
        steps: Gradient steps taken (1 for FGSM).
        step_size: Size of each step.
        seconds: Wall time.
    """

    method: str
    epsilon: float
    label: int
    pixels: Tensor
    adversarial: Tensor
    before: Prediction
    after: Prediction
    steps: int
    step_size: float
    seconds: float = field(default=0.0, compare=False)

    @property
    def perturbation(self) -> Tensor:
        """``adversarial − pixels``; every value within ±ε."""
        return self.adversarial - self.pixels

    @property
    def flipped(self) -> bool:
        """True when the model's top class changed."""
        return self.after.top[0][0] != self.label


def _check(model: LoadedModel, pixels: Tensor, method: str, epsilon: float, steps: int) -> None:
    if method not in ATTACKS:
        raise ValueError(f"Unknown attack {method!r}. Attacks: {', '.join(ATTACKS)}.")
    expected = (1, *model.input_size)
    if tuple(pixels.shape) != expected:
        raise ValueError(f"{model.name} is attacked on pixels {list(expected)}; got shape {list(pixels.shape)}.")
    if float(pixels.min()) < 0 or float(pixels.max()) > 1:
        raise ValueError("Pixels must lie in [0, 1] (see cnn_explorer.pixels.image_pixels).")
    if not (math.isfinite(epsilon) and 0 <= epsilon <= 1):
        raise ValueError(f"ε must be between 0 and 1 (in pixel units, 1 = 255 grey levels); got {epsilon!r}.")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"Steps must be a whole number ≥ 1; got {steps!r}.")


def _loss(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits, labels, reduction="none")


def _perturb(
    model: LoadedModel, pixels: Tensor, method: str, epsilon: float, label: int, steps: int, step_size: float, tick
) -> Tensor:
    """The adversarial pixels ``[1, C, H, W]`` from captum.robust; ``tick`` runs before every forward pass."""
    from captum.robust import FGSM, PGD  # here, not at the top: importing captum costs seconds at the app's start

    def forward(p: Tensor) -> Tensor:
        tick()
        return pixel_logits(model, p)

    target = torch.tensor([label])
    with warnings.catch_warnings():
        # captum warns that it switched on requires_grad for the input: that is what an attack needs.
        warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")
        if method == "fgsm":
            fgsm = FGSM(forward, _loss, lower_bound=0.0, upper_bound=1.0)
            fgsm.zero_thresh = 0.0
            return fgsm.perturb(pixels, epsilon, target)
        pgd = PGD(forward, _loss, lower_bound=0.0, upper_bound=1.0)
        pgd.fgsm.zero_thresh = 0.0
        return pgd.perturb(pixels, radius=epsilon, step_size=step_size, step_num=steps, target=target)


def attack(
    model: LoadedModel,
    pixels: Tensor,
    method: str = "fgsm",
    epsilon: float = 4 / 255,
    *,
    steps: int = 10,
    step_size: float | None = None,
    progress: Progress | None = None,
    should_stop: StopFn | None = None,
) -> AttackResult:
    """Attack the model's prediction on one image.

    Args:
        model: The model; runs under ``model.lock`` (gradients through the shared module), left unchanged.
        pixels: ``[1, C, H, W]`` in ``[0, 1]`` (:func:`~cnn_explorer.pixels.image_pixels`).
        method: A key of :data:`ATTACKS`.
        epsilon: Largest change per pixel (L∞ radius), in pixel units.
        steps: PGD's steps (FGSM takes one).
        step_size: PGD's step; default :func:`pgd_step_size`.
        progress: Called with the fraction done before every forward pass.
        should_stop: Polled before every forward pass; True raises :class:`~cnn_explorer.progress.Cancelled`.

    Raises:
        ValueError: Unknown method, pixels of the wrong shape or outside ``[0, 1]``, ε outside ``[0, 1]``.
        Cancelled: ``should_stop`` returned True.
    """
    _check(model, pixels, method, epsilon, steps)
    iterative = ATTACKS[method].iterative
    steps = steps if iterative else 1
    step_size = (step_size if step_size is not None else pgd_step_size(epsilon, steps)) if iterative else epsilon
    pixels = pixels.detach().to(torch.float32)
    started = time.perf_counter()
    tick = ticker(steps, progress, should_stop, _CANCELLED)
    with model.lock:
        before = predict(model, normalize(model, pixels), k=min(_TOP_K, len(model.class_names)))
        label = before.top[0][0]
        adversarial = _perturb(model, pixels, method, epsilon, label, steps, step_size, tick).detach()
        after = predict(model, normalize(model, adversarial), k=min(_TOP_K, len(model.class_names)))
    if progress is not None:
        progress(1.0)
    return AttackResult(
        method=method,
        epsilon=epsilon,
        label=label,
        pixels=pixels[0],
        adversarial=adversarial[0],
        before=before,
        after=after,
        steps=steps,
        step_size=step_size,
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class FlipSearch:
    """The smallest ε that changes the model's prediction, found by bisection.

    Attributes:
        method: The attack.
        label: The original prediction.
        epsilon: The smallest ε found that flips it (None when even ``max_epsilon`` does not).
        below: The largest ε tried that does not flip it; the answer lies in ``(below, epsilon]``.
        new_class: The class the image flips to at ``epsilon``.
        tolerance: ``epsilon − below`` is at most this.
        max_epsilon: The largest ε tried.
        probes: ``(ε, predicted class)`` of every attack run, in order.
        seconds: Wall time.
    """

    method: str
    label: int
    epsilon: float | None
    below: float
    new_class: int | None
    tolerance: float
    max_epsilon: float
    probes: tuple[tuple[float, int], ...]
    seconds: float = field(default=0.0, compare=False)


def smallest_flip(
    model: LoadedModel,
    pixels: Tensor,
    method: str = "fgsm",
    *,
    max_epsilon: float = DEFAULT_MAX_EPSILON,
    tolerance: float = DEFAULT_TOLERANCE,
    steps: int = 10,
    progress: Progress | None = None,
    should_stop: StopFn | None = None,
) -> FlipSearch:
    """Bisect ε in ``[0, max_epsilon]`` for the smallest attack that changes the prediction.

    First ``max_epsilon`` is tried; when it flips, the interval ``(no flip, flip]`` is halved until it is at most
    ``tolerance`` wide. Bisection assumes that a larger ε keeps the prediction flipped, which is usual but not
    guaranteed (a larger FGSM step can overshoot back into the original class): the ε reported is always one that
    was tried and flipped.

    Args:
        model: The model (see :func:`attack`).
        pixels: ``[1, C, H, W]`` in ``[0, 1]``.
        method: A key of :data:`ATTACKS`.
        max_epsilon: The largest ε tried.
        tolerance: Width of the final interval.
        steps: PGD's steps per attack.
        progress: Called with the fraction done before every forward pass.
        should_stop: Polled before every forward pass; True raises :class:`~cnn_explorer.progress.Cancelled`.

    Raises:
        ValueError: As :func:`attack`, or a tolerance not between 0 and ``max_epsilon``.
    """
    _check(model, pixels, method, max_epsilon, steps)
    if not (0 < tolerance <= max_epsilon):
        raise ValueError(
            f"The tolerance must be above 0 and at most the largest ε ({max_epsilon:.4g}); got {tolerance}."
        )
    steps = steps if ATTACKS[method].iterative else 1
    rounds = 1 + max(0, math.ceil(math.log2(max_epsilon / tolerance)))
    tick = ticker(rounds * steps, progress, should_stop, _CANCELLED)
    pixels = pixels.detach().to(torch.float32)
    probes: list[tuple[float, int]] = []
    started = time.perf_counter()

    def predicted_at(epsilon: float) -> int:
        adversarial = _perturb(model, pixels, method, epsilon, label, steps, pgd_step_size(epsilon, steps), tick)
        with torch.no_grad():
            chosen = int(pixel_logits(model, adversarial.detach()).argmax(dim=1))
        probes.append((epsilon, chosen))
        return chosen

    with model.lock:
        with torch.no_grad():
            label = int(pixel_logits(model, pixels).argmax(dim=1))
        flipped_to = predicted_at(max_epsilon)
        low, high, new_class = 0.0, max_epsilon, flipped_to
        if flipped_to == label:
            high, new_class, low = None, None, max_epsilon
        else:
            while high - low > tolerance:
                middle = (low + high) / 2
                chosen = predicted_at(middle)
                if chosen != label:
                    high, new_class = middle, chosen
                else:
                    low = middle
    if progress is not None:
        progress(1.0)
    return FlipSearch(
        method=method,
        label=label,
        epsilon=high,
        below=low,
        new_class=new_class,
        tolerance=tolerance,
        max_epsilon=max_epsilon,
        probes=tuple(probes),
        seconds=time.perf_counter() - started,
    )
