"""The methods themselves: one function per key of ``METHODS``, each computing raw attributions for a batch.

Every function has the signature ``(module, x, targets, layer, values, seed) -> Tensor`` and is registered in
``_COMPUTE`` under its method's key; :func:`~cnn_explorer.attribution.running.explain_batch` prepares the model
(lock, eval mode, in-place ReLUs, progress hooks) and calls one. The gradient and perturbation methods are captum's
(``captum.attr``), the CAMs TorchCAM's (``torchcam.methods``, Grad-CAM++ with the paper's weights), guided Grad-CAM
their product. :func:`blurred` is the blurred baseline, shared with the trust checks' insertion curve.

captum and TorchCAM are imported by the functions that use them, on the first explanation: importing them costs
seconds, and most pages (and the app's cold start) never need them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "blurred",
]


def _captum_target(targets: list[int]) -> int | list[int]:
    """captum's target or TorchCAM's class_idx: a plain index for one input (a list costs them an index tensor)."""
    return targets[0] if len(targets) == 1 else targets


def _saliency(module: nn.Module, x: Tensor, targets: list[int], layer: str | None, values: dict, seed: int) -> Tensor:
    from captum.attr import Saliency

    return Saliency(module).attribute(x, target=_captum_target(targets), abs=True).detach()


def _integrated_gradients(
    module: nn.Module, x: Tensor, targets: list[int], layer: str | None, values: dict, seed: int
) -> Tensor:
    from captum.attr import IntegratedGradients

    baseline = blurred(x) if values["baseline"] == "blurred" else torch.zeros_like(x)
    ig = IntegratedGradients(module)
    return ig.attribute(
        x,
        baselines=baseline,
        target=_captum_target(targets),
        n_steps=values["steps"],
        internal_batch_size=values["batch"],
    ).detach()


def _smoothgrad(module: nn.Module, x: Tensor, targets: list[int], layer: str | None, values: dict, seed: int) -> Tensor:
    from captum.attr import NoiseTunnel, Saliency

    # The paper's noise level is a fraction of the input's range; captum's default (stdev 1.0) ignores the range.
    spans = (x.flatten(1).amax(dim=1) - x.flatten(1).amin(dim=1)).clamp_min(1e-6)
    stdevs = (values["noise"] * spans).tolist()
    tunnel = NoiseTunnel(Saliency(module))
    results = []
    with torch.random.fork_rng(devices=[]):
        for i in range(x.shape[0]):  # one seed per input: the same map alone or in a batch
            torch.manual_seed(seed)
            results.append(
                tunnel.attribute(
                    x[i : i + 1],
                    nt_type="smoothgrad",
                    nt_samples=values["samples"],
                    nt_samples_batch_size=values["batch"],
                    stdevs=stdevs[i],
                    target=targets[i],
                    abs=False,
                ).detach()
            )
    return torch.cat(results)


def _guided_backprop(
    module: nn.Module, x: Tensor, targets: list[int], layer: str | None, values: dict, seed: int
) -> Tensor:
    from captum.attr import GuidedBackprop

    return GuidedBackprop(module).attribute(x, target=_captum_target(targets)).detach()


def _occlusion_geometry(x: Tensor, values: dict) -> tuple[tuple[int, int], tuple[int, int]]:
    window = tuple(max(1, round(side * values["window"])) for side in x.shape[-2:])
    stride = tuple(max(1, round(w * values["stride"])) for w in window)
    return window, stride


def _occlusion(module: nn.Module, x: Tensor, targets: list[int], layer: str | None, values: dict, seed: int) -> Tensor:
    from captum.attr import Occlusion

    window, stride = _occlusion_geometry(x, values)
    channels = x.shape[1]
    return (
        Occlusion(module)
        .attribute(
            x,
            sliding_window_shapes=(channels, *window),
            strides=(channels, *stride),
            baselines=0.0,
            target=_captum_target(targets),
            perturbations_per_eval=values["batch"],
        )
        .detach()
    )


@functools.cache
def _gradcam_pp() -> type:
    """TorchCAM's Grad-CAM++ with the paper's weights (a class built on first use: TorchCAM loads then)."""
    from torchcam.methods import GradCAMpp

    class _GradCAMpp(GradCAMpp):
        """TorchCAM's Grad-CAM++ with the paper's pixel weights.

        TorchCAM 0.5.0 computes ``alpha[mask].div_(…)``: boolean indexing returns a copy, so the division never reaches
        ``alpha`` and every map is weighted by ``Σ g² · ReLU(g)`` instead of the paper's
        ``α = g² / (2g² + Σ_ab A_ab g³)`` (eq. 19, exponential-score closed form). Tested against the formula.
        """

        def _get_weights(
            self, class_idx: int | list[int], scores: Tensor, eps: float = 1e-8, **kwargs: Any
        ) -> list[Tensor]:
            self._backprop(scores, class_idx, **kwargs)
            weights = []
            for activation, gradient in zip(self.hook_a, self.hook_g, strict=True):
                g2 = gradient.pow(2)
                denominator = 2 * g2 + (activation * gradient.pow(3)).flatten(2).sum(-1)[..., None, None]
                alpha = torch.where(g2 > 0, g2 / (denominator + eps), torch.zeros_like(g2))
                weights.append((alpha * torch.relu(gradient)).flatten(2).sum(-1))
            return weights

    return _GradCAMpp


_TORCHCAM = frozenset({"gradcam", "gradcam++", "layercam", "scorecam"})  # the CAMs TorchCAM computes


def _torchcam_class(method: str) -> type:
    from torchcam.methods import GradCAM, LayerCAM, ScoreCAM

    return {"gradcam": GradCAM, "gradcam++": _gradcam_pp(), "layercam": LayerCAM, "scorecam": ScoreCAM}[method]


def _torchcam(module: nn.Module, x: Tensor, targets: list[int], layer: str, method: str, values: dict) -> Tensor:
    """A CAM at the layer's resolution, not normalized (TorchCAM applies the method's ReLU)."""
    options = {"batch_size": values["batch"]} if method == "scorecam" else {}
    with _torchcam_class(method)(module, target_layer=layer, **options) as extractor:
        if method == "scorecam":
            with torch.no_grad():
                scores = module(x)
        else:  # under explain_batch's enable_grad; the input requires grad so the layer's output does too
            scores = module(x.clone().requires_grad_(True))
        (cam,) = extractor(class_idx=_captum_target(targets), scores=scores, normalized=False)
    return cam.detach()


def _cam_method(method: str) -> Callable[..., Tensor]:
    def compute(module: nn.Module, x: Tensor, targets: list[int], layer: str | None, values: dict, seed: int) -> Tensor:
        assert layer is not None
        return _torchcam(module, x, targets, layer, method, values)

    return compute


def _guided_gradcam(
    module: nn.Module, x: Tensor, targets: list[int], layer: str | None, values: dict, seed: int
) -> Tensor:
    assert layer is not None
    cam = _torchcam(module, x, targets, layer, "gradcam", values)
    upsampled = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)
    return _guided_backprop(module, x, targets, None, values, seed) * upsampled


_BLUR_SIGMA = 0.1  # of the image side, for the "blurred" baseline


def blurred(x: Tensor) -> Tensor:
    """``x`` under a Gaussian blur of standard deviation 10 % of the shorter side (at least 1 pixel), edges
    replicated: the "blurred" baseline of integrated gradients and the start of the insertion curve in ``trust``."""
    sigma = max(1.0, _BLUR_SIGMA * min(x.shape[-2:]))
    radius = int(3 * sigma)
    kernel = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=x.dtype) / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    out = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), horizontal, groups=channels)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), vertical, groups=channels)


_COMPUTE: dict[str, Callable[..., Tensor]] = {
    "saliency": _saliency,
    "integrated_gradients": _integrated_gradients,
    "smoothgrad": _smoothgrad,
    "guided_backprop": _guided_backprop,
    "occlusion": _occlusion,
    "gradcam": _cam_method("gradcam"),
    "guided_gradcam": _guided_gradcam,
    "gradcam++": _cam_method("gradcam++"),
    "scorecam": _cam_method("scorecam"),
    "layercam": _cam_method("layercam"),
}
