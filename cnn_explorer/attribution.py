"""Explanation methods: which input pixels, or which regions of a layer, made the model output a class.

``METHODS`` describes every method as data (paper, parameters with default and range) and :func:`explain` runs one.
The gradient and perturbation methods are captum's (``captum.attr``); the CAM family is TorchCAM's
(``torchcam.methods``); guided Grad-CAM is their product, as the paper defines it. The traps of running them on
torchvision models are handled here, once:

- in-place ReLUs are switched to out-of-place for the duration (otherwise a CAM layer's stored activation is
  rewritten by the ReLU after it, and captum's guided backprop fails on a leaf modified in place);
- CAMs are upsampled bilinearly and keep their ReLU (captum's ``LayerGradCam`` defaults to neither);
- every hook is removed and every flag restored in ``finally``, all under ``model.lock``, because one loaded model
  is shared by every browser session.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop, IntegratedGradients, NoiseTunnel, Occlusion, Saliency
from torch import Tensor, nn
from torch.fx.experimental.optimization import fuse
from torchcam.methods import GradCAM, GradCAMpp, LayerCAM, ScoreCAM

from cnn_explorer.hooks import ForwardHooks
from cnn_explorer.layers import inplace_disabled
from cnn_explorer.model import LoadedModel
from cnn_explorer.progress import Cancelled, Progress, StopFn, stop_if

__all__ = [
    "ACTIVATIONS",
    "CONSTANT_TOLERANCE",
    "METHODS",
    "Cancelled",
    "Explanation",
    "GradCamSteps",
    "MethodSpec",
    "Param",
    "blurred",
    "cam_layers",
    "default_cam_layer",
    "explain",
    "explain_batch",
    "gradcam_steps",
    "resolve_target",
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


_TORCHCAM = {"gradcam": GradCAM, "gradcam++": _GradCAMpp, "layercam": LayerCAM, "scorecam": ScoreCAM}
_CAM_LAYERS: weakref.WeakKeyDictionary[nn.Module, dict[str, _CamLayer]] = weakref.WeakKeyDictionary()
_BLUR_SIGMA = 0.1  # of the image side, for the "blurred" baseline


# ── layers and targets ──────────────────────────────────────────────────────────────────────────────────────────


# Activation modules whose output is the feature map the next layer reads: a CAM is defined on such a map (the
# paper's rectified maps), not on the convolution's raw output before it, which is negative over most of the image.
# ReLU-family maps are rectified; LeNet-5's tanh and MobileNetV3's hard-swish are where those architectures put
# their nonlinearity.
ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardtanh,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardsigmoid,
    nn.Softplus,
)


@dataclass(frozen=True)
class _CamLayer:
    """A layer a CAM can be computed at: a convolution, or a module whose output is an activation's output."""

    size: tuple[int, int]
    channels: int
    activated: bool


def _find_cam_layers(model: LoadedModel) -> dict[str, _CamLayer]:
    """One forward pass of a zero input with a hook on every module. A convolution called once is a CAM layer; so is
    any module called once whose output tensor *is* an activation module's output (a leaf ReLU, or a block such as
    ResNet's ``layer4.1`` that ends in one): the first module to produce that tensor names it. In-place flags are
    off meanwhile, so a tensor that a later in-place op rewrites is not mistaken for its successor."""
    module = model.module
    names = {m: name for name, m in module.named_modules() if m is not module}
    calls: dict[str, int] = {}
    found: dict[str, tuple[Tensor, bool]] = {}
    activated: list[Tensor] = []  # kept alive, so that identity compares tensors, not recycled ids

    def record(m: nn.Module, _inputs: Any, output: Any) -> None:
        name = names[m]
        calls[name] = calls.get(name, 0) + 1
        if not isinstance(output, Tensor) or output.dim() != 4:
            return
        if isinstance(m, ACTIVATIONS):
            activated.append(output)
        if isinstance(m, nn.Conv2d):
            found.setdefault(name, (output, False))
        elif any(output is t for t in activated) and not any(output is t for t, _ in found.values()):
            found.setdefault(name, (output, True))

    with ForwardHooks() as hooks, inplace_disabled(module), torch.no_grad():
        for m in names:
            hooks.after(m, record)
        module(torch.zeros(1, *model.input_size))
    return {
        name: _CamLayer((int(t.shape[-2]), int(t.shape[-1])), int(t.shape[1]), is_activated)
        for name, (t, is_activated) in found.items()
        if calls[name] == 1
    }


def _cam_layer_info(model: LoadedModel) -> dict[str, _CamLayer]:
    with model.lock:  # hooks only while no other thread runs the shared module
        if (known := _CAM_LAYERS.get(model.module)) is None:
            known = _CAM_LAYERS[model.module] = _find_cam_layers(model)
    return known


def cam_layers(model: LoadedModel) -> dict[str, tuple[int, int]]:
    """The layers a CAM can be computed at, in execution order (those called once per forward), each with the
    height and width of its output: every convolution, and every activated map (the output of a ReLU or another
    activation, or of a block that ends in one; see :data:`ACTIVATIONS`)."""
    return {name: info.size for name, info in _cam_layer_info(model).items()}


def default_cam_layer(model: LoadedModel) -> str:
    """The layer the CAMs use by default: the last convolution whose output is still a map (more than 1×1), taken
    after its activation when one follows it (TinyVGG's ``relu_2_2``, ResNet's ``layer4.1``, VGG's ``features.29``).

    CAMs are defined on rectified feature maps: the raw output of a convolution before its ReLU is negative over
    most of the image, and Score-CAM or Grad-CAM++ on it is often zero everywhere. LeNet-5's last spatial
    convolution, ``c3``, is followed by ``tanh3``; its ``c5`` is 1×1 and would give a constant map."""
    spatial = [(name, info) for name, info in _cam_layer_info(model).items() if info.size[0] * info.size[1] > 1]
    convs = [i for i, (_, info) in enumerate(spatial) if not info.activated]
    if not convs:
        raise ValueError(f"{model.name} has no convolutional layer with a spatial output; CAMs do not apply to it.")
    after = [name for name, info in spatial[convs[-1] + 1 :] if info.activated]
    return after[-1] if after else spatial[convs[-1]][0]


def resolve_target(model: LoadedModel, target: int | str) -> int:
    """A class index from an index or a class name; ``ValueError`` saying what is allowed otherwise."""
    if isinstance(target, str):
        if target in model.class_names:
            return model.class_names.index(target)
        raise ValueError(
            f"{model.name} has no class {target!r}. Use a name from its class list "
            f"(e.g. {', '.join(repr(n) for n in model.class_names[:5])}) or an index 0–{len(model.class_names) - 1}."
        )
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < len(model.class_names):
        raise ValueError(f"Target {target!r} is not a class of {model.name}: use 0–{len(model.class_names) - 1}.")
    return target


def _check_layer(model: LoadedModel, layer: str) -> None:
    layers = cam_layers(model)
    if layer not in layers:
        raise ValueError(
            f"{layer!r} is not a layer of {model.name} a CAM can use. Its convolutions and activated maps: "
            f"{', '.join(layers)}."
        )


# ── running a method ────────────────────────────────────────────────────────────────────────────────────────────


def explain(
    model: LoadedModel,
    x: Tensor,
    method: str,
    *,
    target: int | str | None = None,
    layer: str | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    should_stop: StopFn | None = None,
    **params: Any,
) -> Explanation:
    """Explain the model's output for one input.

    Args:
        model: The model; its module is left exactly as found (no hooks, flags and mode restored).
        x: One preprocessed input ``[1, C, H, W]``.
        method: A key of ``METHODS``.
        target: Class index or name; None explains the predicted class.
        layer: Convolutional layer for the CAM methods; None means the last one.
        seed: Seeds the random noise of SmoothGrad (every other method is deterministic).
        progress: Called with the fraction done as forward passes complete.
        should_stop: Polled before every forward pass; when it returns True, :class:`Cancelled` is raised.
        **params: The method's parameters (see ``METHODS[method].params``); missing ones take their defaults.

    Raises:
        ValueError: Unknown method, target, layer or parameter, or ``x`` not one input.
        Cancelled: ``should_stop`` returned True.
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"explain takes one input [1, C, H, W]; got shape {tuple(x.shape)}. Use explain_batch.")
    targets = None if target is None else [target]
    return explain_batch(
        model, x, method, targets=targets, layer=layer, seed=seed, progress=progress, should_stop=should_stop, **params
    )[0]


def explain_batch(
    model: LoadedModel,
    x: Tensor,
    method: str,
    *,
    targets: Sequence[int | str] | None = None,
    layer: str | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    should_stop: StopFn | None = None,
    **params: Any,
) -> list[Explanation]:
    """Explain each input of a batch ``[N, C, H, W]``: the same maps as :func:`explain` on each input alone.

    ``targets`` gives one class per input (None: each input's predicted class); the other arguments are those of
    :func:`explain`.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}. Methods: {', '.join(METHODS)}.")
    spec = METHODS[method]
    values = spec.checked(params)
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(model.input_size):
        raise ValueError(
            f"{model.name} takes inputs [N, {', '.join(map(str, model.input_size))}]; got shape {tuple(x.shape)}."
        )
    if targets is not None and len(targets) != x.shape[0]:
        raise ValueError(f"Got {len(targets)} targets for {x.shape[0]} inputs: give one per input.")
    if spec.uses_layer:
        layer = layer or default_cam_layer(model)
        _check_layer(model, layer)
    else:
        layer = None

    x = x.detach().to(torch.float32)
    started = time.perf_counter()

    def run(out_of_place: bool) -> tuple[list[int], Tensor]:
        with model.lock, _prepared(model.module, out_of_place, quiet=method not in _TORCHCAM):
            if targets is None:
                with torch.no_grad():
                    chosen = model.module(x).argmax(dim=1).tolist()
            else:
                chosen = [resolve_target(model, t) for t in targets]
            module = _inference_copy(model.module) if spec.forward_only else model.module
            counting = (
                _counting(module, _expected_rows(spec, values, model, x, layer), progress, should_stop)
                if progress is not None or should_stop is not None
                else contextlib.nullcontext()  # a hook on the root slows every forward pass a little: only when asked
            )
            # also under a caller's no_grad (captum's sensitivity_max): CAMs backpropagate
            with counting, torch.enable_grad():
                return chosen, _COMPUTE[method](module, x, chosen, layer, values, seed)

    try:
        chosen, attributions = run(out_of_place=spec.hooks)
    except RuntimeError as err:
        # torchvision's in-place ReLUs are safe for gradients (they train that way); a model that applies one twice
        # to the same tensor is not: autograd refuses, and the method runs again with the flags off.
        if spec.hooks or "modified by an inplace operation" not in str(err):
            raise
        chosen, attributions = run(out_of_place=True)
    seconds = time.perf_counter() - started
    size = (int(x.shape[-2]), int(x.shape[-1]))
    return [
        Explanation(
            method=method,
            target=t,
            target_name=model.class_names[t],
            layer=layer,
            params=dict(values),
            attribution=attribution,
            input_size=size,
            seconds=seconds,
        )
        for t, attribution in zip(chosen, attributions, strict=True)
    ]


def _heatmaps(spec: MethodSpec, attributions: Tensor, size: tuple[int, int]) -> Tensor:
    if spec.reduction == "upsample":
        return F.interpolate(attributions[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    if spec.reduction == "sum":
        return attributions.sum(dim=1)
    if spec.reduction == "mean":
        return attributions.mean(dim=1)
    return attributions.abs().amax(dim=1)


@contextmanager
def _prepared(module: nn.Module, out_of_place: bool = True, quiet: bool = True) -> Iterator[None]:
    """Eval mode and (``out_of_place``) out-of-place ReLUs for the duration; modes restored after. With ``quiet``,
    captum's warnings about reused ReLU modules, hooks and inputs that did not require gradients (expected, and
    handled) are silenced. Each part costs only when there is something to do: on a sub-millisecond explanation the
    bookkeeping would otherwise be a tenth of the time."""
    modules, inplace_capable = _structure(module)
    modes = [(m, m.training) for m in modules]
    switched = [m for m in inplace_capable if m.inplace is True] if out_of_place else []
    try:
        # A loaded model is in eval mode already; setting a flag goes through Module.__setattr__, so only flags that
        # change are set (here and below).
        if any(training for _, training in modes):
            module.eval()
        with (
            inplace_disabled(module, switched) if switched else contextlib.nullcontext(),
            warnings.catch_warnings() if quiet else contextlib.nullcontext(),
        ):
            if quiet:
                warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        for m, training in modes:
            if m.training != training:
                m.training = training


def _inference_copy(module: nn.Module) -> nn.Module:
    """The same function as ``module`` (in eval mode), faster to run forward many times: a copy with each
    BatchNorm folded into the conv before it (torch.fx's ``fuse``) and the conv weights channels-last, the layout
    oneDNN convolves fastest on a CPU. The outputs differ from the module's by float rounding only (about 1e-6 of
    the logits). Occlusion's windows on a ResNet-18 run about 1.5× faster; the copy costs 60 ms to make.

    A model fx cannot trace (data-dependent control flow, a TorchScript archive) keeps its BatchNorms, and one
    that cannot even be copied runs as it is: the shared module itself is never changed.
    """
    try:
        fast = fuse(module)
    except Exception:  # symbolic tracing fails with one of several errors on code it cannot follow
        try:
            fast = copy.deepcopy(module)
        except Exception:  # e.g. a module holding an open resource
            return module
    return fast.requires_grad_(False).to(memory_format=torch.channels_last)


_STRUCTURE: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[nn.Module, ...], tuple[nn.Module, ...]]] = (
    weakref.WeakKeyDictionary()
)


def _structure(module: nn.Module) -> tuple[tuple[nn.Module, ...], tuple[nn.Module, ...]]:
    """``module.modules()`` and those of them with an ``inplace`` flag, found once per module: a loaded model's
    structure does not change, and walking it costs a tenth of a cheap explanation on a small model."""
    if (found := _STRUCTURE.get(module)) is None:
        modules = tuple(module.modules())
        found = _STRUCTURE[module] = (modules, tuple(m for m in modules if hasattr(m, "inplace")))
    return found


@contextmanager
def _counting(
    module: nn.Module, expected_rows: int, progress: Progress | None, should_stop: StopFn | None
) -> Iterator[None]:
    """Report progress and honour cancellation at every forward pass of the model (a pre-hook on the root)."""
    done = 0

    def before_forward(_module: nn.Module, inputs: tuple[Any, ...]) -> None:
        nonlocal done
        stop_if(should_stop, "The explanation was cancelled.")
        if progress is not None:
            progress(min(done / max(expected_rows, 1), 1.0))
        done += inputs[0].shape[0] if inputs and isinstance(inputs[0], Tensor) else 1

    with ForwardHooks() as hooks:
        hooks.before(module, before_forward)
        yield
    if progress is not None:
        progress(1.0)


def _expected_rows(spec: MethodSpec, values: dict, model: LoadedModel, x: Tensor, layer: str | None) -> int:
    """Forward rows the method will run, for the progress fraction."""
    n = x.shape[0]
    if spec.key == "integrated_gradients":
        return n * values["steps"]
    if spec.key == "smoothgrad":
        return n * values["samples"]
    if spec.key == "occlusion":  # captum's pass on the unoccluded input, then one per window
        window, stride = _occlusion_geometry(x, values)
        windows = math.prod((side - w) // s + 1 for side, w, s in zip(x.shape[-2:], window, stride, strict=True))
        return n * (1 + windows)
    if spec.key == "scorecam":  # TorchCAM's pass that records the layer, one per channel, then the scores
        return n * (1 + _cam_layer_info(model)[layer].channels)
    return n


def _captum_target(targets: list[int]) -> int | list[int]:
    """captum's target or TorchCAM's class_idx: a plain index for one input (a list costs them an index tensor)."""
    return targets[0] if len(targets) == 1 else targets


# ── the methods ─────────────────────────────────────────────────────────────────────────────────────────────────


def _saliency(module: nn.Module, x: Tensor, targets: list[int], layer: str | None, values: dict, seed: int) -> Tensor:
    return Saliency(module).attribute(x, target=_captum_target(targets), abs=True).detach()


def _integrated_gradients(
    module: nn.Module, x: Tensor, targets: list[int], layer: str | None, values: dict, seed: int
) -> Tensor:
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
    return GuidedBackprop(module).attribute(x, target=_captum_target(targets)).detach()


def _occlusion_geometry(x: Tensor, values: dict) -> tuple[tuple[int, int], tuple[int, int]]:
    window = tuple(max(1, round(side * values["window"])) for side in x.shape[-2:])
    stride = tuple(max(1, round(w * values["stride"])) for w in window)
    return window, stride


def _occlusion(module: nn.Module, x: Tensor, targets: list[int], layer: str | None, values: dict, seed: int) -> Tensor:
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


def _torchcam(module: nn.Module, x: Tensor, targets: list[int], layer: str, method: str, values: dict) -> Tensor:
    """A CAM at the layer's resolution, not normalized (TorchCAM applies the method's ReLU)."""
    options = {"batch_size": values["batch"]} if method == "scorecam" else {}
    with _TORCHCAM[method](module, target_layer=layer, **options) as extractor:
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


# ── Grad-CAM, step by step ──────────────────────────────────────────────────────────────────────────────────────


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
