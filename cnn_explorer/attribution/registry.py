"""The explanation methods as data: each one's paper, parameters and reduction (``METHODS``), and the result.

:class:`Param` is one tunable parameter (the page builds its widget from it and checks a value against it);
:class:`MethodSpec` is one method; ``METHODS`` registers them all, so adding a method is one entry here and one
function in :mod:`~cnn_explorer.attribution.methods`. :class:`Explanation` is what
:func:`~cnn_explorer.attribution.running.explain` returns: the raw attribution, with the ``[H, W]`` heatmap the
spec's reduction makes of it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "CONSTANT_TOLERANCE",
    "METHODS",
    "Explanation",
    "MethodSpec",
    "Param",
]


#: A map whose values span at most this fraction of its largest magnitude is constant (see ``Explanation.is_constant``).
CONSTANT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Param:
    """One tunable parameter of a method, as data the page builds a widget from.

    Attributes:
        name: Keyword of :func:`explain`.
        label: Widget label.
        default: Default value (its type says int / float / str).
        low: Smallest allowed value (numbers).
        high: Largest allowed value (numbers).
        choices: Allowed values (strings).
        help: One sentence for the widget's tooltip.
    """

    name: str
    label: str
    default: int | float | str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""

    def check(self, value: Any) -> int | float | str:
        """``value`` converted to this parameter's type; ``ValueError`` naming the allowed range otherwise."""
        if self.choices:
            if value not in self.choices:
                raise ValueError(f"{self.label} must be one of {', '.join(self.choices)}; got {value!r}.")
            return value
        kind = type(self.default)
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.label} must be a number; got {value!r}.") from None
        if isinstance(value, float) and kind is int and value != number:
            raise ValueError(f"{self.label} must be a whole number; got {value!r}.")
        if not math.isfinite(number) or not (self.low <= number <= self.high):
            raise ValueError(f"{self.label} must be between {self.low:g} and {self.high:g}; got {value!r}.")
        return number


@dataclass(frozen=True)
class MethodSpec:
    """One explanation method.

    Attributes:
        key: Registry key (``"gradcam"``).
        name: Display name.
        paper: Title and year of the paper that defines it.
        url: Link to the paper.
        summary: One or two sentences for students: what the map means.
        implementation: The library call doing the work.
        family: ``"gradient"``, ``"perturbation"`` or ``"cam"``.
        params: Tunable parameters (see :class:`Param`).
        uses_layer: True for methods computed at a convolutional layer (the CAM family).
        reduction: How the attribution becomes an ``[H, W]`` heatmap: ``"max_abs"`` over channels (gradients),
            ``"sum"`` over channels (signed; integrated gradients' completeness holds for the sum), ``"mean"`` over
            channels, or ``"upsample"`` (a CAM, bilinearly to the input size).
        slow: True when one explanation takes many forward passes (the page shows progress and a cancel button).
        hooks: True when the method hooks modules (captum's guided backprop on every ReLU, TorchCAM on a conv's
            output): in-place ReLUs are switched off meanwhile, as one would overwrite a captured activation or
            break a backward hook. The other methods take gradients of the input or only run the model, which
            in-place ReLUs do not disturb, so they run the model as loaded (in-place ReLUs save a ResNet time).
        forward_only: True when the method only runs the model forward, many times, and never looks inside it
            (occlusion): it runs on an inference copy of the model (see :func:`_inference_copy`), the same
            function computed about 1.5× faster on a ResNet.
    """

    key: str
    name: str
    paper: str
    url: str
    summary: str
    implementation: str
    family: str
    params: tuple[Param, ...] = ()
    uses_layer: bool = False
    reduction: str = "max_abs"
    slow: bool = False
    hooks: bool = False
    forward_only: bool = False

    def defaults(self) -> dict[str, int | float | str]:
        """Every parameter at its default."""
        return {p.name: p.default for p in self.params}

    def checked(self, params: dict[str, Any]) -> dict[str, int | float | str]:
        """Defaults overridden by ``params``, each validated; ``ValueError`` for an unknown name or a bad value."""
        known = {p.name: p for p in self.params}
        if unknown := sorted(set(params) - set(known)):
            allowed = ", ".join(known) or "none"
            raise ValueError(f"{self.name} has no parameter {', '.join(unknown)}; its parameters: {allowed}.")
        return {name: p.check(params.get(name, p.default)) for name, p in known.items()}


@dataclass(frozen=True)
class Explanation:
    """One method's explanation of one input.

    Attributes:
        method: Key in ``METHODS``.
        target: The explained class index.
        target_name: Its name.
        layer: The layer a CAM was computed at (None for pixel methods).
        params: The parameter values used.
        attribution: The method's raw result: the shape of one input ``[C, H, W]`` for pixel methods, ``[h, w]`` at
            the layer's resolution for CAMs (before upsampling and normalization).
        input_size: ``(H, W)`` of the input.
        seconds: Wall time of the computation.
    """

    method: str
    target: int
    target_name: str
    layer: str | None
    params: dict[str, int | float | str]
    attribution: Tensor
    input_size: tuple[int, int]
    seconds: float = field(default=0.0, compare=False)

    @functools.cached_property
    def is_constant(self) -> bool:
        """True when the map says nothing: every value of the raw attribution is the same (to within a millionth of
        the largest magnitude), most often zero everywhere — a CAM whose weighted sum is negative at every position
        and cut off by its ReLU. Such a map ranks no region above another, so it is neither drawn nor scored."""
        return _is_constant(self.attribution)

    def blank_note(self, default_layer: str | None = None) -> str:
        """One sentence for a constant map (see :attr:`is_constant`): what it means and what to try instead.

        Args:
            default_layer: The model's default CAM layer, suggested when this map was computed at another one.
        """
        spec = METHODS[self.method]
        zero = float(self.attribution.abs().max()) == 0.0
        everywhere = "the map is zero everywhere" if zero else "the map has the same value everywhere"
        if not spec.uses_layer:
            return (
                f"{spec.name} ranks no pixel above another for {self.target_name} ({everywhere}); try another method."
            )
        others = " or ".join(
            name for key, name in (("gradcam", "Grad-CAM"), ("layercam", "LayerCAM")) if key != self.method
        )
        where = f"try {default_layer} or {others}" if default_layer and default_layer != self.layer else f"try {others}"
        return f"No region raises {self.target_name} at {self.layer} ({everywhere}); {where}."

    @functools.cached_property
    def heatmap(self) -> Tensor:
        """``[H, W]`` at the input resolution, not normalized (signed for integrated gradients and occlusion,
        non-negative for the others): the attribution reduced over channels, or a CAM upsampled bilinearly.
        Computed on first use (a caller that needs only the attribution, such as the trust metrics, skips it)."""
        return _heatmaps(METHODS[self.method], self.attribution[None], self.input_size)[0]


def _is_constant(values: Tensor) -> bool:
    values = values.detach().to(torch.float64)
    if values.numel() == 0 or not torch.isfinite(values).all():
        return False
    span = float(values.max() - values.min())
    return span <= CONSTANT_TOLERANCE * float(values.abs().max())


def _heatmaps(spec: MethodSpec, attributions: Tensor, size: tuple[int, int]) -> Tensor:
    if spec.reduction == "upsample":
        return F.interpolate(attributions[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    if spec.reduction == "sum":
        return attributions.sum(dim=1)
    if spec.reduction == "mean":
        return attributions.mean(dim=1)
    return attributions.abs().amax(dim=1)


_BATCH = Param("batch", "Images per forward pass", 32, 1, 256, help="More is faster and uses more memory.")

METHODS: dict[str, MethodSpec] = {
    spec.key: spec
    for spec in (
        MethodSpec(
            key="saliency",
            name="Saliency (vanilla gradient)",
            paper="Simonyan, Vedaldi & Zisserman 2014, Deep Inside Convolutional Networks",
            url="https://arxiv.org/abs/1312.6034",
            summary="How much the class score changes when one pixel changes a little: the size of the gradient of "
            "the score with respect to each input value (largest over the colour channels).",
            implementation="captum.attr.Saliency",
            family="gradient",
        ),
        MethodSpec(
            key="integrated_gradients",
            name="Integrated gradients",
            paper="Sundararajan, Taly & Yan 2017, Axiomatic Attribution for Deep Networks",
            url="https://arxiv.org/abs/1703.01365",
            summary="Gradients averaged along a straight path from a baseline image to the input, times the "
            "difference: the attributions add up to the score of the input minus the score of the baseline. Red "
            "pushed towards the class, blue against it.",
            implementation="captum.attr.IntegratedGradients",
            family="gradient",
            params=(
                Param("steps", "Steps along the path", 50, 8, 300, help="More steps, a closer integral."),
                Param(
                    "baseline",
                    "Baseline",
                    "zero",
                    choices=("zero", "blurred"),
                    help="zero: the input tensor all zeros (the mean colour); blurred: a heavily blurred input.",
                ),
                Param("batch", "Steps per forward pass", 25, 1, 300, help="More is faster and uses more memory."),
            ),
            reduction="sum",
            slow=True,
        ),
        MethodSpec(
            key="smoothgrad",
            name="SmoothGrad",
            paper="Smilkov et al. 2017, SmoothGrad: removing noise by adding noise",
            url="https://arxiv.org/abs/1706.03825",
            summary="The gradient averaged over copies of the image with random noise added: the speckle of the plain "
            "gradient averages out and the shape that matters remains.",
            implementation="captum.attr.NoiseTunnel(Saliency)",
            family="gradient",
            params=(
                Param("samples", "Noisy samples", 25, 4, 100),
                Param(
                    "noise",
                    "Noise level",
                    0.15,
                    0.0,
                    0.5,
                    help="Standard deviation of the noise as a fraction of the input's range (the paper's 10–20 %).",
                ),
                Param("batch", "Samples per forward pass", 25, 1, 100, help="More is faster and uses more memory."),
            ),
            slow=True,
        ),
        MethodSpec(
            key="guided_backprop",
            name="Guided backpropagation",
            paper="Springenberg et al. 2015, Striving for Simplicity: The All Convolutional Net",
            url="https://arxiv.org/abs/1412.6806",
            summary="The gradient with every ReLU letting only positive gradients through on the way back. Sharp, "
            "pretty — and known to depend little on the model's weights (see the trust panel). On a network "
            "without ReLUs (LeNet-5 uses tanh) it equals the plain gradient.",
            implementation="captum.attr.GuidedBackprop",
            family="gradient",
            hooks=True,
        ),
        MethodSpec(
            key="occlusion",
            name="Occlusion",
            paper="Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks",
            url="https://arxiv.org/abs/1311.2901",
            summary="Slide a grey square over the image and measure how much the class score drops: a drop (red) "
            "means the covered region was evidence for the class.",
            implementation="captum.attr.Occlusion",
            family="perturbation",
            params=(
                Param("window", "Window (fraction of the side)", 0.125, 0.03, 0.5),
                Param("stride", "Stride (fraction of the window)", 0.5, 0.25, 1.0),
                _BATCH,
            ),
            reduction="mean",
            slow=True,
            forward_only=True,
        ),
        MethodSpec(
            key="gradcam",
            name="Grad-CAM",
            paper="Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks",
            url="https://arxiv.org/abs/1610.02391",
            summary="The layer's feature maps weighted by how much the class score rises with each (its average "
            "gradient), summed, with negative values cut off: where in the layer the evidence for the class lies.",
            implementation="torchcam.methods.GradCAM",
            family="cam",
            uses_layer=True,
            reduction="upsample",
            hooks=True,
        ),
        MethodSpec(
            key="guided_gradcam",
            name="Guided Grad-CAM",
            paper="Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks",
            url="https://arxiv.org/abs/1610.02391",
            summary="Guided backpropagation multiplied by the upsampled Grad-CAM: fine detail, but only inside the "
            "region Grad-CAM points at.",
            implementation="captum.attr.GuidedBackprop × torchcam.methods.GradCAM",
            family="cam",
            uses_layer=True,
            hooks=True,
        ),
        MethodSpec(
            key="gradcam++",
            name="Grad-CAM++",
            paper="Chattopadhyay et al. 2018, Grad-CAM++: Improved Visual Explanations",
            url="https://arxiv.org/abs/1710.11063",
            summary="Grad-CAM with each map's weight built from positive gradients only, weighted by higher-order "
            "terms: better when the class appears several times in the image.",
            implementation="torchcam.methods.GradCAMpp (its pixel weights corrected to the paper's)",
            family="cam",
            uses_layer=True,
            reduction="upsample",
            hooks=True,
        ),
        MethodSpec(
            key="scorecam",
            name="Score-CAM",
            paper="Wang et al. 2020, Score-CAM: Score-Weighted Visual Explanations",
            url="https://arxiv.org/abs/1910.01279",
            summary="No gradients: each feature map, upsampled and scaled to 0…1, masks the image; the class score "
            "of each masked image (softmax over the maps) is that map's weight.",
            implementation="torchcam.methods.ScoreCAM",
            family="cam",
            params=(_BATCH,),
            uses_layer=True,
            reduction="upsample",
            slow=True,
            hooks=True,
        ),
        MethodSpec(
            key="layercam",
            name="LayerCAM",
            paper="Jiang et al. 2021, LayerCAM: Exploring Hierarchical Class Activation Maps",
            url="https://doi.org/10.1109/TIP.2021.3089943",
            summary="Every position of every map weighted by its own positive gradient instead of one weight per map: "
            "finer maps, and meaningful at early layers too.",
            implementation="torchcam.methods.LayerCAM",
            family="cam",
            uses_layer=True,
            reduction="upsample",
            hooks=True,
        ),
    )
}
