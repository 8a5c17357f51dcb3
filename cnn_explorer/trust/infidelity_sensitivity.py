"""Infidelity and max-sensitivity (Yeh et al. 2019, On the (In)fidelity and Sensitivity of Explanations,
https://arxiv.org/abs/1901.09392), computed by captum's ``captum.metrics``.

:func:`infidelity` asks whether the map predicts how the class score changes under small noise on the input;
:func:`sensitivity` how much the map itself changes under it. Both scale their noise to the input's value range.
Two of the checks :func:`~cnn_explorer.trust.report.trust_report` runs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cnn_explorer.attribution import Explanation, explain_batch
from cnn_explorer.model import LoadedModel
from cnn_explorer.progress import StopFn
from cnn_explorer.trust.checks import _check_count, _check_heatmap, _check_input, _check_positive, _span

__all__ = [
    "infidelity",
    "sensitivity",
]


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

    from captum import metrics as captum_metrics  # here, not at the top: importing captum costs seconds at the start

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

    from captum import metrics as captum_metrics

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
