"""Grad-CAM step by step, for the page's walkthrough: every intermediate computed by hand with autograd.

:func:`gradcam_steps` hooks the layer, takes the gradient of the class score and spells out
``ReLU(Σ_k mean(∂y/∂A_k) · A_k)`` and the upsampling, independently of TorchCAM, so the page can show each step
and the tests can check that the last one equals what ``explain(..., "gradcam")`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnn_explorer.attribution.running import _prepared
from cnn_explorer.attribution.targets import _check_layer, default_cam_layer, resolve_target
from cnn_explorer.hooks import ForwardHooks
from cnn_explorer.model import LoadedModel

__all__ = [
    "GradCamSteps",
    "gradcam_steps",
]


@dataclass(frozen=True)
class GradCamSteps:
    """Every intermediate of Grad-CAM, computed by hand with autograd (independently of TorchCAM).

    Attributes:
        layer: The layer.
        target: The class index.
        score: The target's logit ``y``.
        activations: ``A`` ``[K, h, w]``, the layer's output.
        gradients: ``∂y/∂A`` ``[K, h, w]``.
        weights: ``α_k`` = mean over positions of ``∂y/∂A_k`` ``[K]``.
        weighted_sum: ``Σ_k α_k A_k`` ``[h, w]``.
        cam: ``ReLU`` of the weighted sum ``[h, w]``.
        upsampled: ``cam`` resized bilinearly to the input ``[H, W]``.
    """

    layer: str
    target: int
    score: float
    activations: Tensor
    gradients: Tensor
    weights: Tensor
    weighted_sum: Tensor
    cam: Tensor
    upsampled: Tensor


def gradcam_steps(
    model: LoadedModel, x: Tensor, *, target: int | str | None = None, layer: str | None = None
) -> GradCamSteps:
    """Grad-CAM spelled out: ``ReLU(Σ_k mean(∂y/∂A_k) · A_k)``, then upsampled (for the page's walkthrough).

    Args:
        model: The model (left as found; runs under ``model.lock``).
        x: One preprocessed input ``[1, C, H, W]``.
        target: Class index or name; None means the predicted class.
        layer: A convolutional layer; None means the last one.
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"gradcam_steps takes one input [1, C, H, W]; got shape {tuple(x.shape)}.")
    layer = layer or default_cam_layer(model)
    _check_layer(model, layer)
    found: dict[str, Tensor] = {}

    def keep(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
        found["A"] = output

    with model.lock, _prepared(model.module), torch.enable_grad():
        with ForwardHooks() as hooks:
            hooks.after(model.module.get_submodule(layer), keep)
            logits = model.module(x.detach().clone().requires_grad_(True))
        chosen = int(logits.argmax(dim=1)) if target is None else resolve_target(model, target)
        score = logits[0, chosen]
        (gradients,) = torch.autograd.grad(score, found["A"])
    activations, gradients = found["A"][0].detach(), gradients[0]
    weights = gradients.mean(dim=(1, 2))
    weighted_sum = (weights[:, None, None] * activations).sum(dim=0)
    cam = torch.relu(weighted_sum)
    upsampled = F.interpolate(cam[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return GradCamSteps(
        layer=layer,
        target=chosen,
        score=float(score.detach()),
        activations=activations,
        gradients=gradients,
        weights=weights,
        weighted_sum=weighted_sum,
        cam=cam,
        upsampled=upsampled,
    )
