"""Layers of a loaded model: the layer table, activation capture, one unit's arithmetic, receptive fields.

Every function that registers hooks holds ``model.lock`` and registers them through
:class:`~cnn_explorer.hooks.ForwardHooks`: they ignore calls from other threads, so a prediction running beside a
capture is never recorded into it, and are removed on exit, leaving the module as it was found.

Layers are the LEAF modules (modules without children) in the order they run. A module called more than once in
one forward pass (ResNet's ``BasicBlock`` calls its ``relu`` twice) is one layer per call: the first call is named
by its dotted path (``"layer1.0.relu"``), the k-th by the path and ``#k`` (``"layer1.0.relu#2"``).
:func:`list_layers`, :func:`capture_activations`, :func:`capture_inputs`, :func:`capture_layers`,
:func:`explain_unit` and :func:`effective_receptive_field` all use these names; :attr:`LayerInfo.path` is always
the plain dotted path.

Stepping through layers costs no forward pass: capture once per (model, image) with :func:`capture_layers`, then
pass both dicts to :func:`explain_unit`.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from cnn_explorer.hooks import ForwardHooks, StopForward, run_until_stopped
from cnn_explorer.model import LoadedModel

__all__ = [
    "HISTOGRAM_BINS",
    "LAYER_DESCRIPTIONS",
    "ActivationStats",
    "LayerInfo",
    "SoftmaxArithmetic",
    "UnitArithmetic",
    "UnknownLayer",
    "activation_stats",
    "capture_activations",
    "capture_inputs",
    "capture_layers",
    "describe",
    "effective_receptive_field",
    "explain_unit",
    "inplace_disabled",
    "list_layers",
    "theoretical_field",
]

HISTOGRAM_BINS = 40
_CALL_MARK = "#"
_NAMES_IN_MESSAGES = 20  # a ResNet has ~70 layers: name the first ones and count the rest

# ── what each kind of layer does ────────────────────────────────────────────────────────────────────────────────

LAYER_DESCRIPTIONS: dict[str, str] = {
    "Conv2d": "Slides small learned filters over its input; each output value is a weighted sum of one window "
    "across the input channels plus a bias, so each map lights up where its pattern appears.",
    "ReLU": "Keeps positive values and sets negative ones to zero (max(0, x)); an in-place ReLU overwrites its "
    "input instead of allocating a new tensor, with the same result.",
    "ReLU6": "Like ReLU but also caps values at 6 (min(max(0, x), 6)), which keeps activations small for "
    "low-precision arithmetic.",
    "LeakyReLU": "Keeps positive values and scales negative ones by a small slope, so negative inputs still pass "
    "a little signal.",
    "Tanh": "Squashes every value into (−1, 1) with the hyperbolic tangent, as in the original LeNet.",
    "Sigmoid": "Squashes every value into (0, 1) with 1 / (1 + e⁻ˣ).",
    "Hardswish": "A cheap piecewise approximation of x · sigmoid(x): zero below −3, x above 3, a smooth ramp between.",
    "Hardsigmoid": "A cheap piecewise-linear sigmoid: 0 below −3, 1 above 3, a straight line between.",
    "SiLU": "Multiplies each value by its own sigmoid (x · σ(x)), a smooth ReLU-like curve that lets small "
    "negative values through.",
    "GELU": "Weights each value by the chance that a standard normal variable is below it (x · Φ(x)), a smooth "
    "ReLU-like curve.",
    "Softmax": "Turns a vector of scores into probabilities: exponentiate each score, then divide by the sum.",
    "MaxPool2d": "Keeps the largest value of each small window, shrinking the maps while keeping the strongest "
    "responses.",
    "AvgPool2d": "Replaces each small window by its average, shrinking the maps smoothly.",
    "AdaptiveAvgPool2d": "Averages each map over a grid of regions sized to give a fixed output size (often one "
    "value per map: global average pooling).",
    "AdaptiveMaxPool2d": "Takes the maximum of each map over a grid of regions sized to give a fixed output size.",
    "BatchNorm2d": "Normalizes each channel with the mean and variance learned during training, then scales and "
    "shifts it by learned factors (at inference a fixed per-channel a·x + b).",
    "Dropout": "Randomly zeroes values during training to prevent co-adaptation; at inference it passes values "
    "through unchanged.",
    "Flatten": "Lays the feature maps out as one long vector so dense layers can read them.",
    "Linear": "A dense layer: each output is a weighted sum of every input value plus a bias.",
    "Identity": "Passes its input through unchanged (a placeholder where a layer was removed or not needed).",
    # Blocks, for the page to explain the container a layer sits in (LayerInfo.block).
    "BasicBlock": "A residual block: two 3×3 convolutions whose result is added to the block's input (the "
    "shortcut, itself a strided 1×1 convolution when the shape changes), so each block learns a correction.",
    "Bottleneck": "A residual block: a 1×1 convolution narrows the channels, a 3×3 works in the narrow space, a "
    "1×1 widens them again, and the result is added to the block's input.",
    "InvertedResidual": "MobileNet's block: a 1×1 convolution widens the channels, a depthwise convolution filters "
    "each channel on its own, a 1×1 narrows them again, with a shortcut when shapes allow.",
    "SqueezeExcitation": "Squeeze-and-excitation: global average pooling summarises each channel, two small 1×1 "
    "convolutions turn the summary into one weight per channel in (0, 1), and the block's input channels are "
    "multiplied by those weights.",
    "Conv2dNormActivation": "A convolution followed by batch normalization and an activation, packaged as one unit.",
}
_GENERIC_DESCRIPTION = "A {kind} layer: it transforms its input; see the PyTorch documentation of {kind} for details."


def describe(kind: str) -> str:
    """One sentence saying what a layer (or block) of class name ``kind`` does; a generic sentence when unknown."""
    return LAYER_DESCRIPTIONS.get(kind, _GENERIC_DESCRIPTION.format(kind=kind))


# ── results ─────────────────────────────────────────────────────────────────────────────────────────────────────


class UnknownLayer(KeyError):
    """A layer name that does not exist in the model or did not run for this input."""

    def __str__(self) -> str:  # KeyError's str() would quote the whole message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class LayerInfo:
    """One call of a leaf module, as :func:`list_layers` reports it.

    Attributes:
        name: The layer's name: its dotted path for the first call, ``path#k`` for the k-th call of a reused module.
        path: Dotted path of the module, usable with ``module.get_submodule``.
        call: 1 for the first call of the module in a forward pass, k for the k-th.
        kind: Class name of the module (``"Conv2d"``).
        block: Class name of the closest enclosing block that is not a plain container (``"BasicBlock"``,
            ``"SqueezeExcitation"``), ``""`` at the top level.
        input_shape: Shape of the layer's input without the batch dimension (the image for the first layer).
        output_shape: Shape of the layer's output without the batch dimension.
        params: The module's own parameters; 0 on repeated calls, so the column sums to the model's total.
        macs: Multiply-accumulates for one input: conv ``out_elems × in_ch/groups × kh × kw``, linear
            ``in × out``, batch norm one per output element (its eval-time scale-and-shift), 0 for everything else
            (comparisons and nonlinearities are not multiply-accumulates). Counted on every call.
        receptive_field: Side in input pixels of the theoretical receptive field of one output unit (the larger of
            the two axes). It may exceed the image (ResNet-18's last conv: 435 px on a 224 px input); it is the
            image side when ``whole_input``.
        jump: Stride in input pixels between adjacent output units (the larger axis); the image side for vectors
            and 1×1 outputs of global layers (linear, flatten, adaptive pooling to 1×1).
        field_size: Receptive field ``(height, width)`` in input pixels.
        field_jump: Jump ``(rows, columns)`` in input pixels.
        field_origin: ``(top, left)`` in input pixels of output unit (0, 0)'s field, negative where padding extends
            it past the image; unit (r, c)'s field starts at ``origin + (r, c) × jump``.
        whole_input: Every output unit depends on the whole input: after global pooling, flatten or a dense layer,
            and after a squeeze-and-excitation gate (its global pooling reaches every later unit).
        description: One sentence on what this kind of layer does.
    """

    name: str
    path: str
    call: int
    kind: str
    block: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    macs: int
    receptive_field: int
    jump: int
    field_size: tuple[int, int]
    field_jump: tuple[int, int]
    field_origin: tuple[int, int]
    whole_input: bool
    description: str


@dataclass(frozen=True, eq=False)
class SoftmaxArithmetic:
    """Logits → exp → normalized, for the whole vector.

    Attributes:
        logits: The scores, ``[K]``.
        shift: The largest logit, subtracted before exponentiating; it cancels in the division and keeps ``exp``
            finite.
        exps: ``exp(logits − shift)``, ``[K]`` (float64).
        total: Sum of ``exps``.
        probabilities: ``exps / total``, ``[K]`` (float64); equals ``torch.softmax(logits)``.
    """

    logits: Tensor
    shift: float
    exps: Tensor
    total: float
    probabilities: Tensor


@dataclass(frozen=True, eq=False)
class UnitArithmetic:
    """The numbers behind one output value of one layer, for a page to lay out.

    Which fields are set depends on ``operation``; the others are None (or empty).

    Attributes:
        layer: Layer name (as in :func:`list_layers`).
        kind: Class name of the layer.
        index: Position of the value in the layer's output, without the batch dimension.
        operation: ``"weighted sum"`` (conv, linear), ``"max"``, ``"mean"`` (pooling), ``"elementwise"``
            (activations, batch norm, dropout), ``"copy"`` (flatten), ``"softmax"``.
        formula: How ``result`` follows from the numbers, in words and symbols.
        result: The value recomputed from the numbers below.
        captured: The value the layer actually produced (from the captured activations); equals ``result`` up to
            float rounding.
        patch: The input values the unit reads. Conv: ``[C_in/groups, kh, kw]`` (padding included, as zeros for
            zero padding; with dilation, only the sampled positions). Pooling: ``[kh, kw]`` of one channel (max
            pooling pads with −inf, average pooling with zeros). Linear: the input vector ``[in]``.
        weights: Conv: the kernel ``[C_in/groups, kh, kw]``; linear: the weight row ``[in]``.
        products: ``patch × weights`` element by element (float32, as the layer multiplies).
        channel_sums: Conv: the products summed per input channel, ``[C_in/groups]`` (float64).
        input_channels: The layer-input channels the unit reads (a grouped conv reads only its group's).
        total: Sum of all products (weighted sums) or of the window (average pooling).
        bias: The bias added, None when the layer has none.
        divisor: Average pooling: what the window sum is divided by (PyTorch's rule for padding and ceil mode).
        argmax: Max pooling: position ``(row, col)`` of the maximum inside ``patch``.
        before: Elementwise layers: the input value; ``result`` is the value after.
        source: Elementwise and copy layers: the position of ``before`` in the layer's input.
        terms: Named scalars of the formula (batch norm: mean, var, eps, gamma, beta; LeakyReLU: slope).
        window: ``(top, left, height, width)`` of the window in the layer's input; top/left are negative where it
            reaches into the padding. Height and width span the dilated kernel.
        image_window: When the layer's input is the image itself: the same window in input-image pixels, clipped
            to the image (padding lies outside it). None otherwise.
        softmax: For the model's final layer (its logits) and for softmax layers: the softmax of the whole vector.
    """

    layer: str
    kind: str
    index: tuple[int, ...]
    operation: str
    formula: str
    result: float
    captured: float
    patch: Tensor | None = None
    weights: Tensor | None = None
    products: Tensor | None = None
    channel_sums: Tensor | None = None
    input_channels: tuple[int, ...] = ()
    total: float | None = None
    bias: float | None = None
    divisor: float | None = None
    argmax: tuple[int, ...] | None = None
    before: float | None = None
    source: tuple[int, ...] | None = None
    terms: dict[str, float] = field(default_factory=dict)
    window: tuple[int, int, int, int] | None = None
    image_window: tuple[int, int, int, int] | None = None
    softmax: SoftmaxArithmetic | None = None


@dataclass(frozen=True, eq=False)
class ActivationStats:
    """Summary statistics of one layer's output for one input.

    Attributes:
        min: Smallest value.
        max: Largest value.
        mean: Mean value.
        zero_share: Share of values exactly 0 (after a ReLU: the units it switched off).
        channel_max: Largest value per channel, ``[C]`` (for a vector, each element is its own channel).
        dead_channels: Channels whose every value is ≤ 0. After a ReLU-like layer these maps are entirely off for
            this image; after tanh or before an activation it only says the channel never went positive.
        histogram: Counts per bin, ``[bins]`` (float64, as ``torch.histogram`` returns).
        bin_edges: The bins' edges, ``[bins + 1]`` (float64).
    """

    min: float
    max: float
    mean: float
    zero_share: float
    channel_max: Tensor
    dead_channels: tuple[int, ...]
    histogram: Tensor
    bin_edges: Tensor


# ── layer names and hooks ───────────────────────────────────────────────────────────────────────────────────────


def _layer_key(path: str, call: int) -> str:
    return path if call == 1 else f"{path}{_CALL_MARK}{call}"


def _split_key(name: str) -> tuple[str, int]:
    """``"layer1.0.relu#2"`` → ``("layer1.0.relu", 2)``; a name without a mark is the first call."""
    path, mark, call = name.rpartition(_CALL_MARK)
    if not mark:
        return name, 1
    if not call.isdigit() or int(call) < 1:
        raise UnknownLayer(f"Layer name {name!r}: after {_CALL_MARK!r} comes the call number (2, 3, …).")
    return path, int(call)


def _leaf_paths(root: nn.Module) -> list[str]:
    return [path for path, module in root.named_modules() if next(module.children(), None) is None]


def _resolve(root: nn.Module, name: str) -> tuple[str, int, nn.Module]:
    """Split a layer name and find its module; :class:`UnknownLayer` naming the valid layers otherwise."""
    path, call = _split_key(name)
    try:
        return path, call, root.get_submodule(path)
    except AttributeError:
        leaves = _leaf_paths(root)
        shown = ", ".join(leaves[:_NAMES_IN_MESSAGES])
        more = f" … and {len(leaves) - _NAMES_IN_MESSAGES} more" if len(leaves) > _NAMES_IN_MESSAGES else ""
        raise UnknownLayer(
            f"Unknown layer {name!r}. Layers of this model: {shown}{more} (a module's k-th call is 'path#k')."
        ) from None


def _first_tensor(value: Any) -> Tensor | None:
    """A module's output or input as one tensor: itself, or the first tensor of a tuple/list."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        return next((v for v in value if isinstance(v, Tensor)), None)
    return None


_LayerHook = Callable[[str, nn.Module, Tensor | None], None]


@contextmanager
def _hooked(
    root: nn.Module, paths: Iterable[str], *, before: _LayerHook | None = None, after: _LayerHook | None = None
) -> Iterator[None]:
    """Call ``before(key, module, input)`` and ``after(key, module, output)`` around each call of the modules at
    ``paths`` in this thread (``key`` is the layer name with its call mark); every hook is removed on exit, also when
    the forward pass raised."""
    calls: dict[str, int] = {}

    def hook_pair(path: str) -> tuple[Callable[..., None], Callable[..., None]]:
        def pre_hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            calls[path] = calls.get(path, 0) + 1
            if before is not None:
                before(_layer_key(path, calls[path]), module, _first_tensor(args))

        def post_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if after is not None:
                after(_layer_key(path, calls[path]), module, _first_tensor(output))

        return pre_hook, post_hook

    with ForwardHooks() as hooks:
        for path in dict.fromkeys(paths):
            module = root.get_submodule(path)
            pre_hook, post_hook = hook_pair(path)
            hooks.before(module, pre_hook)
            hooks.after(module, post_hook)
        yield


_run = run_until_stopped  # a name of this module, so that a test can count the forward passes it runs


def _snapshot(t: Tensor) -> Tensor:
    # Cloned at the moment the layer produced it: later in-place ops (ResNet's `out += identity`, in-place
    # ReLUs) write into the original tensor, never into the copy.
    return t.detach().clone()


# ── capture ─────────────────────────────────────────────────────────────────────────────────────────────────────


def _capture(
    model: LoadedModel, x: Tensor, layers: Sequence[str] | None, *, outputs: bool, inputs: bool, stop_early: bool
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """One forward pass recording the wanted layers' outputs and/or inputs, in execution order.

    With ``stop_early`` the pass ends as soon as everything wanted is recorded (the rest of the network is not
    needed).
    """
    root = model.module
    if layers is None:
        wanted: set[str] | None = None
        paths = _leaf_paths(root)
    else:
        resolved = [_resolve(root, name) for name in layers]
        wanted = {_layer_key(path, call) for path, call, _ in resolved}
        paths = [path for path, _, _ in resolved]
    captured_outputs: dict[str, Tensor] = {}
    captured_inputs: dict[str, Tensor] = {}
    last_recorded = captured_outputs if outputs else captured_inputs  # outputs come after inputs
    seen: list[str] = []

    def done() -> bool:
        return stop_early and wanted is not None and wanted <= last_recorded.keys()

    def before(key: str, module: nn.Module, value: Tensor | None) -> None:
        seen.append(key)
        if inputs and value is not None and (wanted is None or key in wanted):
            captured_inputs[key] = _snapshot(value)
            if done():
                raise StopForward

    def after(key: str, module: nn.Module, value: Tensor | None) -> None:
        if outputs and value is not None and (wanted is None or key in wanted):
            captured_outputs[key] = _snapshot(value)
            if done():
                raise StopForward

    with model.lock, torch.no_grad(), _hooked(root, paths, before=before, after=after):
        _run(root, x)
    if wanted is not None:
        missing = [name for name in layers or () if _layer_key(*_split_key(name)) not in seen]
        if missing:
            raise UnknownLayer(
                f"Layer(s) {', '.join(map(repr, missing))} did not run for this input. Calls of these modules that "
                f"ran: {', '.join(seen[:_NAMES_IN_MESSAGES])}{' …' if len(seen) > _NAMES_IN_MESSAGES else ''}."
            )
    return captured_outputs, captured_inputs


def capture_activations(model: LoadedModel, x: Tensor, layers: Sequence[str] | None = None) -> dict[str, Tensor]:
    """The output of each named layer for input ``x``: detached copies taken the moment each layer produced them.

    Args:
        model: The model; its lock is held during the forward pass.
        x: Input batch ``[N, C, H, W]``.
        layers: Layer names as :func:`list_layers` gives them (``"conv1"``, ``"layer1.0.relu#2"`` for a second
            call); any submodule's dotted path works too (``"layer1.0"``: the block's output). None: every layer.

    Returns:
        Layer name → output ``[N, …]``, in execution order. With ``layers=None`` the keys are exactly the names of
        :func:`list_layers`.

    Raises:
        UnknownLayer: A name that is no submodule (the message names the valid layers), or a call that did not run.
    """
    outputs, _ = _capture(model, x, layers, outputs=True, inputs=False, stop_early=False)
    return outputs


def capture_layers(
    model: LoadedModel, x: Tensor, layers: Sequence[str] | None = None
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Outputs and inputs of the named layers in one forward pass: what the layer page caches per (model, image).

    Returns:
        ``(outputs, inputs)``, each as :func:`capture_activations` and :func:`capture_inputs` would return them.
    """
    return _capture(model, x, layers, outputs=True, inputs=True, stop_early=False)


def capture_inputs(model: LoadedModel, x: Tensor, layers: Sequence[str] | None = None) -> dict[str, Tensor]:
    """The input of each named layer for input ``x``, copied as the layer received it (before an in-place op).

    A layer's input is not always the previous layer's output: a ResNet shortcut reads the block's input, a
    residual sum or ``torch.flatten`` happens outside any layer. :func:`explain_unit` reads its patches from here.
    Arguments, return value and errors as :func:`capture_activations`.
    """
    _, inputs = _capture(model, x, layers, outputs=False, inputs=True, stop_early=False)
    return inputs


# ── the layer table and receptive fields ────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class _Geometry:
    """Where one unit of a tensor looks in the input: field size, jump and the first unit's field origin, per axis.

    Propagation through a window layer (kernel k, stride s, padding p, dilation d):
    ``size_out = size_in + (k − 1)·d·jump_in``, ``jump_out = jump_in·s``, ``origin_out = origin_in − p·jump_in``
    (the same as tracking the first unit's centre, ``start_out = start_in + ((k − 1)·d/2 − p)·jump_in``).

    ``whole`` marks tensors whose every unit depends on the whole input (after global pooling, a dense layer, or a
    squeeze-and-excitation gate multiplied into a map); ``size`` is then the image's, while ``jump`` still says
    how far apart the units of a map lie.
    """

    size: tuple[int, int]
    jump: tuple[int, int]
    origin: tuple[int, int]
    whole: bool = False

    @staticmethod
    def image() -> _Geometry:
        return _Geometry(size=(1, 1), jump=(1, 1), origin=(0, 0))

    @staticmethod
    def everything(image_hw: tuple[int, int]) -> _Geometry:
        return _Geometry(size=image_hw, jump=image_hw, origin=(0, 0), whole=True)

    def window(
        self, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int]
    ) -> _Geometry:
        size = zip(self.size, kernel, dilation, self.jump, strict=True)
        return _Geometry(
            size=self.size if self.whole else tuple(s + (k - 1) * d * j for s, k, d, j in size),
            jump=tuple(j * s for j, s in zip(self.jump, stride, strict=True)),
            origin=tuple(o - p * j for o, p, j in zip(self.origin, padding, self.jump, strict=True)),
            whole=self.whole,
        )

    @staticmethod
    def merge(geometries: Sequence[_Geometry]) -> _Geometry:
        """The geometry of a result computed from several tensors: the union of their fields. Branches of a map
        (a residual sum) give the widest one; a whole-input factor (an SE gate) makes every unit see the whole
        input while the map's jump stays."""
        maps = [g for g in geometries if not g.whole]
        if not maps:
            return geometries[0]
        widest = max(maps, key=lambda g: g.size)
        whole = next((g for g in geometries if g.whole), None)
        return widest if whole is None else replace(widest, size=whole.size, whole=True)


class _GeometryMap:
    """Tensor → geometry, by identity, without keeping tensors alive (a dead or reused id is detected)."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[Tensor], _Geometry]] = {}

    def get(self, t: Tensor) -> _Geometry | None:
        entry = self._entries.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else None

    def set(self, t: Tensor, geometry: _Geometry) -> None:
        self._entries[id(t)] = (weakref.ref(t), geometry)


def _tensors(value: Any) -> Iterator[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


class _GeometryMode(TorchFunctionMode):
    """Carries geometries through operations outside any layer (``out += identity``, ``torch.flatten``,
    ``scale * input``) with :meth:`_Geometry.merge`, so a residual sum follows its longest branch. Operations
    inside a layer get the same treatment first; the layer's forward hook then overwrites it with its own rule."""

    def __init__(self, geometries: _GeometryMap):
        super().__init__()
        self._geometries = geometries

    def __torch_function__(
        self, func: Callable[..., Any], types: tuple[type, ...], args: tuple[Any, ...] = (), kwargs: dict | None = None
    ) -> Any:
        result = func(*args, **(kwargs or {}))
        known = [g for t in _tensors((args, kwargs)) if (g := self._geometries.get(t)) is not None]
        if known:
            merged = _Geometry.merge(known)
            for t in _tensors(result):
                self._geometries.set(t, merged)
        return result


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _conv_padding(module: nn.Conv2d) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` padding of a conv, resolving ``"same"`` / ``"valid"`` as PyTorch does."""
    if module.padding == "valid":
        return 0, 0, 0, 0
    if module.padding == "same":
        (top, bottom), (left, right) = (
            (total // 2, total - total // 2)
            for total in (d * (k - 1) for d, k in zip(module.dilation, module.kernel_size, strict=True))
        )
        return top, bottom, left, right
    ph, pw = _pair(module.padding)
    return ph, ph, pw, pw


def _window_params(module: nn.Module) -> tuple[tuple[int, int], ...]:
    """``(kernel, stride, padding (top, left), dilation)`` of a conv or pooling layer."""
    if isinstance(module, nn.Conv2d):
        top, _, left, _ = _conv_padding(module)
        return _pair(module.kernel_size), _pair(module.stride), (top, left), _pair(module.dilation)
    kernel = _pair(module.kernel_size)
    stride = _pair(module.stride) if module.stride is not None else kernel
    return kernel, stride, _pair(module.padding), _pair(getattr(module, "dilation", 1))


_Shape = tuple[int, ...]
_GeometryRule = Callable[[nn.Module, _Geometry, _Shape, _Shape, tuple[int, int]], _Geometry]


def _window_rule(module: nn.Module, g: _Geometry, inp: _Shape, out: _Shape, image_hw: tuple[int, int]) -> _Geometry:
    return g.window(*_window_params(module))


def _adaptive_rule(module: nn.Module, g: _Geometry, inp: _Shape, out: _Shape, image_hw: tuple[int, int]) -> _Geometry:
    in_hw, out_hw = inp[-2:], out[-2:]
    if out_hw != (1, 1) and all(i % o == 0 for i, o in zip(in_hw, out_hw, strict=True)):
        # Evenly divisible: an ordinary pooling (VGG's 7×7 → 7×7 is the identity).
        kernel = tuple(i // o for i, o in zip(in_hw, out_hw, strict=True))
        return g.window(kernel, kernel, (0, 0), (1, 1))
    return _Geometry.everything(image_hw)


def _global_rule(module: nn.Module, g: _Geometry, inp: _Shape, out: _Shape, image_hw: tuple[int, int]) -> _Geometry:
    return _Geometry.everything(image_hw)


def _default_rule(module: nn.Module, g: _Geometry, inp: _Shape, out: _Shape, image_hw: tuple[int, int]) -> _Geometry:
    """Elementwise and per-channel layers keep the geometry; a layer with no rule that changes the spatial size
    or turns maps into vectors is taken to see the whole input."""
    both_maps = len(inp) >= 3 and len(out) >= 3 and inp[-2:] == out[-2:]
    both_vectors = len(inp) < 3 and len(out) < 3
    return g if both_maps or both_vectors else _Geometry.everything(image_hw)


_GEOMETRY_RULES: dict[type[nn.Module], _GeometryRule] = {
    nn.Conv2d: _window_rule,
    nn.MaxPool2d: _window_rule,
    nn.AvgPool2d: _window_rule,
    nn.AdaptiveAvgPool2d: _adaptive_rule,
    nn.AdaptiveMaxPool2d: _adaptive_rule,
    nn.Linear: _global_rule,
    nn.Flatten: _global_rule,
}

_MacsRule = Callable[[nn.Module, _Shape, _Shape], int]

_MACS_RULES: dict[type[nn.Module], _MacsRule] = {
    nn.Conv2d: lambda m, inp, out: math.prod(out) * (m.in_channels // m.groups) * math.prod(_pair(m.kernel_size)),
    nn.Linear: lambda m, inp, out: math.prod(out) * m.in_features,
    # Eval-time batch norm is one multiply-add per element (a·x + b); it folds into the conv before it.
    nn.BatchNorm2d: lambda m, inp, out: math.prod(out),
}


def _by_type(registry: Mapping[type[nn.Module], Any], module: nn.Module) -> Any:
    """The registry entry for the module's class or its nearest registered base class, None when none."""
    return next((registry[cls] for cls in type(module).__mro__ if cls in registry), None)


_PLAIN_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _blocks(root: nn.Module) -> dict[str, str]:
    """Leaf path → class name of its closest enclosing block that is not a plain container."""
    blocks: dict[str, str] = {}

    def walk(module: nn.Module, prefix: str, block: str) -> None:
        for name, child in module.named_children():
            path = f"{prefix}{name}"
            inner = block if type(child) in _PLAIN_CONTAINERS else type(child).__name__
            if next(child.children(), None) is None:
                blocks[path] = block
            else:
                walk(child, f"{path}.", inner)

    walk(root, "", "")
    return blocks


def list_layers(model: LoadedModel) -> list[LayerInfo]:
    """Every leaf layer in execution order, with shapes, parameters, MACs and receptive field.

    Found by running one zero input of ``model.input_size`` with hooks (under ``model.lock``). A module called
    several times appears once per call (see the module docstring for names). Receptive fields are propagated
    along the data flow: each layer applies its kernel/stride/padding/dilation to the geometry of the tensor it
    actually reads, and an operation outside the layers that merges tensors (a residual ``+``) takes the widest
    field among them; for a ResNet that is the main path's conv chain, never the shortcut's. Linear, flatten and
    adaptive pooling to 1×1 see the whole input, and so does every unit after a squeeze-and-excitation gate.
    """
    root = model.module
    image_hw = (model.input_size[-2], model.input_size[-1])
    blocks = _blocks(root)
    geometries = _GeometryMap()
    pending: dict[str, tuple[_Shape, _Geometry]] = {}
    layers: list[LayerInfo] = []

    def before(key: str, module: nn.Module, value: Tensor | None) -> None:
        geometry = (geometries.get(value) if value is not None else None) or _Geometry.image()
        pending[key] = (tuple(value.shape[1:]) if value is not None else (), geometry)

    def after(key: str, module: nn.Module, value: Tensor | None) -> None:
        in_shape, in_geometry = pending.pop(key)
        out_shape = tuple(value.shape[1:]) if value is not None else ()
        rule = _by_type(_GEOMETRY_RULES, module) or _default_rule
        geometry = rule(module, in_geometry, in_shape, out_shape, image_hw)
        if value is not None:
            geometries.set(value, geometry)
        path, call = _split_key(key)
        macs_rule = _by_type(_MACS_RULES, module)
        kind = type(module).__name__
        layers.append(
            LayerInfo(
                name=key,
                path=path,
                call=call,
                kind=kind,
                block=blocks.get(path, ""),
                input_shape=in_shape,
                output_shape=out_shape,
                params=sum(p.numel() for p in module.parameters(recurse=False)) if call == 1 else 0,
                macs=macs_rule(module, in_shape, out_shape) if macs_rule is not None else 0,
                receptive_field=max(geometry.size),
                jump=max(geometry.jump),
                field_size=geometry.size,
                field_jump=geometry.jump,
                field_origin=geometry.origin,
                whole_input=geometry.whole,
                description=describe(kind),
            )
        )

    x = torch.zeros(1, *model.input_size)
    geometries.set(x, _Geometry.image())
    hooks = _hooked(root, _leaf_paths(root), before=before, after=after)
    with model.lock, torch.no_grad(), hooks, _GeometryMode(geometries):
        root(x)
    return layers


def theoretical_field(
    layers: LoadedModel | Sequence[LayerInfo], layer: str, row: int = 0, col: int = 0
) -> tuple[int, int, int, int]:
    """The input pixels that output unit ``(row, col)`` of ``layer`` can see.

    Args:
        layers: The model, or its :func:`list_layers` (pass it when calling repeatedly: it avoids a forward pass).
        layer: Layer name.
        row: Output row of the unit (ignored for vector outputs, which see the whole input).
        col: Output column.

    Returns:
        ``(top, left, bottom, right)`` in input-image pixels, clipped to the image, bottom and right exclusive
        (``image[top:bottom, left:right]``).
    """
    infos = list_layers(layers) if isinstance(layers, LoadedModel) else list(layers)
    by_name = {info.name: info for info in infos}
    if layer not in by_name:
        raise UnknownLayer(f"Unknown layer {layer!r}. Layers: {', '.join(list(by_name)[:_NAMES_IN_MESSAGES])} …")
    info = by_name[layer]
    height, width = infos[0].input_shape[-2:]  # the first layer reads the image
    if info.whole_input or len(info.output_shape) < 3:
        return 0, 0, height, width
    out_h, out_w = info.output_shape[-2:]
    if not (0 <= row < out_h and 0 <= col < out_w):
        raise ValueError(f"Unit ({row}, {col}) is outside {layer!r}'s {out_h}×{out_w} output.")
    top = info.field_origin[0] + row * info.field_jump[0]
    left = info.field_origin[1] + col * info.field_jump[1]
    return (
        max(top, 0),
        max(left, 0),
        min(top + info.field_size[0], height),
        min(left + info.field_size[1], width),
    )


# ── the arithmetic of one unit ──────────────────────────────────────────────────────────────────────────────────

_Fields = dict[str, Any]  # UnitArithmetic fields an explainer fills in
_Explainer = Callable[[nn.Module, Tensor, tuple[int, ...]], _Fields]


def _read_window(
    inp: Tensor, window: tuple[int, int, int, int], dilation: tuple[int, int], fill: float = 0.0
) -> Tensor:
    """``inp[..., top:top+height:dh, left:left+width:dw]`` where positions outside the input read ``fill``.

    Only the window is copied, never a padded copy of the whole input: a step stays cheap on large maps.
    """
    top, left, height, width = window
    in_h, in_w = inp.shape[-2:]
    dense = inp.new_full((*inp.shape[:-2], height, width), fill)
    r0, r1, c0, c1 = max(top, 0), min(top + height, in_h), max(left, 0), min(left + width, in_w)
    if r0 < r1 and c0 < c1:
        dense[..., r0 - top : r1 - top, c0 - left : c1 - left] = inp[..., r0:r1, c0:c1]
    return dense[..., :: dilation[0], :: dilation[1]].clone()


def _explain_conv(module: nn.Conv2d, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    channel, row, col = index
    kernel, stride, dilation = _pair(module.kernel_size), _pair(module.stride), _pair(module.dilation)
    top, bottom, left, right = _conv_padding(module)
    per_group = module.in_channels // module.groups
    group = channel // (module.out_channels // module.groups)
    channels = range(group * per_group, (group + 1) * per_group)
    height, width = ((k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True))
    window = (row * stride[0] - top, col * stride[1] - left, height, width)
    group_input = inp[channels.start : channels.stop]
    if module.padding_mode == "zeros":
        patch = _read_window(group_input, window, dilation)
    else:  # reflect / replicate / circular padding reads the input itself: pad it as the layer does
        padded = F.pad(group_input, (left, right, top, bottom), mode=module.padding_mode)
        patch = _read_window(padded, (window[0] + top, window[1] + left, height, width), dilation)
    weights = module.weight[channel].detach().clone()
    products = patch * weights
    channel_sums = products.to(torch.float64).sum(dim=(1, 2))
    total = float(channel_sums.sum())
    bias = float(module.bias[channel].detach()) if module.bias is not None else None
    return {
        "operation": "weighted sum",
        "formula": "Σ (patch × kernel) over channels, rows, columns" + (" + bias" if bias is not None else ""),
        "patch": patch,
        "weights": weights,
        "products": products,
        "channel_sums": channel_sums,
        "input_channels": tuple(channels),
        "total": total,
        "bias": bias,
        "result": total + (bias or 0.0),
        "window": window,
    }


def _pool_window(
    module: nn.Module, inp: Tensor, index: tuple[int, ...], fill: float
) -> tuple[Tensor, tuple[int, int, int, int]]:
    """The pooling window of one output unit as ``[kh, kw]``, positions outside the input set to ``fill`` (in
    ceil mode the last window may run past the padding too)."""
    channel, row, col = index
    kernel, stride, padding, dilation = _window_params(module)
    height, width = ((k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True))
    window = (row * stride[0] - padding[0], col * stride[1] - padding[1], height, width)
    return _read_window(inp[channel], window, dilation, fill), window


def _explain_max_pool(module: nn.MaxPool2d, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    patch, window = _pool_window(module, inp, index, fill=-math.inf)
    flat = int(torch.argmax(patch))
    return {
        "operation": "max",
        "formula": "max over the window (padding counts as −∞)",
        "patch": patch,
        "argmax": (flat // patch.shape[1], flat % patch.shape[1]),
        "result": float(patch.max()),
        "window": window,
    }


def _avg_pool_divisor(module: nn.AvgPool2d, inp: Tensor, window: tuple[int, int, int, int]) -> int:
    """What PyTorch divides an average-pooling window's sum by (its CPU kernel's rule)."""
    if module.divisor_override:
        return int(module.divisor_override)
    padding_h, padding_w = _pair(module.padding)
    top, left, kh, kw = window
    in_h, in_w = inp.shape[-2:]
    bottom, right = min(top + kh, in_h + padding_h), min(left + kw, in_w + padding_w)
    if module.count_include_pad:
        return (bottom - top) * (right - left)
    return (min(bottom, in_h) - max(top, 0)) * (min(right, in_w) - max(left, 0))


def _explain_avg_pool(module: nn.AvgPool2d, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    patch, window = _pool_window(module, inp, index, fill=0.0)
    total = float(patch.to(torch.float64).sum())
    divisor = _avg_pool_divisor(module, inp, window)
    return {
        "operation": "mean",
        "formula": "Σ window ÷ divisor (padding counts as 0)",
        "patch": patch,
        "total": total,
        "divisor": float(divisor),
        "result": total / divisor,
        "window": window,
    }


def _adaptive_window(module: nn.Module, inp: Tensor, index: tuple[int, ...]) -> tuple[Tensor, tuple[int, ...]]:
    channel, row, col = index
    in_h, in_w = inp.shape[-2:]
    sizes = zip(_pair_or_none(module.output_size), (in_h, in_w), strict=True)
    out_h, out_w = (size if size is not None else full for size, full in sizes)  # None keeps the input's size
    # PyTorch's adaptive windows: start = ⌊i·in/out⌋, end = ⌈(i+1)·in/out⌉.
    top, bottom = (row * in_h) // out_h, -((-(row + 1) * in_h) // out_h)
    left, right = (col * in_w) // out_w, -((-(col + 1) * in_w) // out_w)
    return inp[channel, top:bottom, left:right].clone(), (top, left, bottom - top, right - left)


def _pair_or_none(value: int | Sequence[int | None] | None) -> tuple[int | None, int | None]:
    return (value, value) if value is None or isinstance(value, int) else (value[0], value[1])


def _explain_adaptive_avg_pool(module: nn.AdaptiveAvgPool2d, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    patch, window = _adaptive_window(module, inp, index)
    total = float(patch.to(torch.float64).sum())
    return {
        "operation": "mean",
        "formula": "Σ region ÷ its size",
        "patch": patch,
        "total": total,
        "divisor": float(patch.numel()),
        "result": total / patch.numel(),
        "window": window,
    }


def _explain_adaptive_max_pool(module: nn.AdaptiveMaxPool2d, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    patch, window = _adaptive_window(module, inp, index)
    flat = int(torch.argmax(patch))
    return {
        "operation": "max",
        "formula": "max over the region",
        "patch": patch,
        "argmax": (flat // patch.shape[1], flat % patch.shape[1]),
        "result": float(patch.max()),
        "window": window,
    }


def _explain_linear(module: nn.Linear, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    *rows, out = index
    patch = inp[tuple(rows)].clone()
    weights = module.weight[out].detach().clone()
    products = patch * weights
    total = float(products.to(torch.float64).sum())
    bias = float(module.bias[out].detach()) if module.bias is not None else None
    return {
        "operation": "weighted sum",
        "formula": "Σ (input × weights)" + (" + bias" if bias is not None else ""),
        "patch": patch,
        "weights": weights,
        "products": products,
        "total": total,
        "bias": bias,
        "result": total + (bias or 0.0),
    }


_ELEMENTWISE_FORMULAS: dict[type[nn.Module], Callable[[nn.Module], str]] = {
    nn.ReLU: lambda m: "max(0, x)",
    nn.ReLU6: lambda m: "min(max(0, x), 6)",
    nn.LeakyReLU: lambda m: f"x if x > 0 else {m.negative_slope:g} · x",
    nn.Tanh: lambda m: "tanh(x) = (eˣ − e⁻ˣ) / (eˣ + e⁻ˣ)",
    nn.Sigmoid: lambda m: "1 / (1 + e⁻ˣ)",
    nn.Hardswish: lambda m: "x · min(max(x + 3, 0), 6) / 6",
    nn.Hardsigmoid: lambda m: "min(max(x + 3, 0), 6) / 6",
    nn.SiLU: lambda m: "x · σ(x)",
    nn.GELU: lambda m: "x · Φ(x)",
    nn.Identity: lambda m: "x",
    nn.Dropout: lambda m: "x (dropout is off at inference)",
}


def _explain_elementwise(module: nn.Module, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    before = inp[index].reshape(1).clone()
    # The layer's own function on the one value (forward, not __call__: no hooks fire, none are needed).
    after = module.forward(before.clone())
    terms = {"slope": float(module.negative_slope)} if isinstance(module, nn.LeakyReLU) else {}
    return {
        "operation": "elementwise",
        "formula": _by_type(_ELEMENTWISE_FORMULAS, module)(module),
        "before": float(before),
        "source": index,
        "terms": terms,
        "result": float(after),
    }


def _explain_batch_norm(module: nn.BatchNorm2d, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    if module.training or module.running_mean is None or module.running_var is None:
        raise ValueError(f"{type(module).__name__} uses batch statistics here; explain it in eval mode.")
    channel = index[0]
    terms = {
        "mean": float(module.running_mean[channel]),
        "var": float(module.running_var[channel]),
        "eps": float(module.eps),
        "gamma": float(module.weight[channel].detach()) if module.weight is not None else 1.0,
        "beta": float(module.bias[channel].detach()) if module.bias is not None else 0.0,
    }
    before = float(inp[index])
    result = (before - terms["mean"]) / math.sqrt(terms["var"] + terms["eps"]) * terms["gamma"] + terms["beta"]
    return {
        "operation": "elementwise",
        "formula": "(x − mean) / √(var + eps) · gamma + beta",
        "before": before,
        "source": index,
        "terms": terms,
        "result": result,
    }


def _explain_flatten(module: nn.Flatten, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    flat = inp.flatten(start_dim=module.start_dim - 1 if module.start_dim > 0 else module.start_dim)
    if flat.dim() != 1:
        raise ValueError("Only flattening each sample to one vector is explained.")
    source = tuple(int(i) for i in torch.unravel_index(torch.tensor(index[0]), inp.shape))
    return {
        "operation": "copy",
        "formula": "the value at its position in the maps, read row by row",
        "before": float(flat[index[0]]),
        "source": source,
        "result": float(flat[index[0]]),
    }


def _softmax_arithmetic(logits: Tensor) -> SoftmaxArithmetic:
    values = logits.detach().to(torch.float64)
    shift = float(values.max())
    exps = torch.exp(values - shift)
    total = float(exps.sum())
    return SoftmaxArithmetic(
        logits=logits.detach().clone(), shift=shift, exps=exps, total=total, probabilities=exps / total
    )


def _explain_softmax(module: nn.Softmax, inp: Tensor, index: tuple[int, ...]) -> _Fields:
    if inp.dim() != 1:
        raise ValueError("Only a softmax over one vector per sample is explained.")
    softmax = _softmax_arithmetic(inp)
    return {
        "operation": "softmax",
        "formula": "exp(x − max) / Σ exp(x − max)",
        "before": float(inp[index]),
        "source": index,
        "softmax": softmax,
        "result": float(softmax.probabilities[index]),
    }


_EXPLAINERS: dict[type[nn.Module], _Explainer] = {
    nn.Conv2d: _explain_conv,
    nn.MaxPool2d: _explain_max_pool,
    nn.AvgPool2d: _explain_avg_pool,
    nn.AdaptiveAvgPool2d: _explain_adaptive_avg_pool,
    nn.AdaptiveMaxPool2d: _explain_adaptive_max_pool,
    nn.Linear: _explain_linear,
    nn.BatchNorm2d: _explain_batch_norm,
    nn.Flatten: _explain_flatten,
    nn.Softmax: _explain_softmax,
    **dict.fromkeys(_ELEMENTWISE_FORMULAS, _explain_elementwise),
}


def _check_index(layer: str, index: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    index = tuple(int(i) for i in index)
    if len(index) != len(shape) or not all(0 <= i < n for i, n in zip(index, shape, strict=True)):
        raise ValueError(f"Index {index} is not a position in {layer!r}'s output of shape {tuple(shape)}.")
    return index


def explain_unit(
    model: LoadedModel,
    activations: Mapping[str, Tensor],
    x: Tensor,
    layer: str,
    index: Sequence[int],
    *,
    inputs: Mapping[str, Tensor] | None = None,
) -> UnitArithmetic:
    """The arithmetic behind one output value of one layer, for the first sample of ``x``.

    Args:
        model: The model.
        activations: From :func:`capture_activations` for ``x``; supplies the captured value (and the logits for
            the softmax panel).
        x: The input batch the activations were captured for.
        layer: Layer name; conv, linear, max/average/adaptive pooling, batch norm, flatten, softmax and the
            elementwise activations (ReLU, ReLU6, LeakyReLU, Tanh, Sigmoid, Hardswish, Hardsigmoid, SiLU, GELU,
            Identity, Dropout) are explained.
        index: Position in the layer's output without the batch dimension: ``(channel, row, col)`` for maps,
            ``(k,)`` for vectors.
        inputs: From :func:`capture_inputs` (or :func:`capture_layers`) for ``x``. When it holds ``layer`` no
            forward pass runs (stepping through layers stays free); otherwise the network runs up to this layer to
            read its input.

    Returns:
        The numbers; ``result`` is recomputed from them and ``captured`` is the layer's own value. When the layer is
        the model's last (its output a vector of logits), ``softmax`` holds logits → exp → probabilities.

    Raises:
        UnknownLayer: ``layer`` unknown or not in ``activations``.
        ValueError: An index outside the output, or a kind of layer that is not explained.
    """
    path, call, module = _resolve(model.module, layer)
    layer = _layer_key(path, call)  # "relu#1" is "relu"
    if layer not in activations:
        raise UnknownLayer(f"Layer {layer!r} is not among the captured activations; capture it first.")
    explainer = _by_type(_EXPLAINERS, module)
    if explainer is None:
        kinds = ", ".join(sorted(cls.__name__ for cls in _EXPLAINERS))
        raise ValueError(f"The arithmetic of a {type(module).__name__} layer is not shown. Explained: {kinds}.")
    output = activations[layer][0]
    index = _check_index(layer, index, output.shape)
    if inputs is not None and layer in inputs:
        layer_input = inputs[layer]
    else:
        layer_input = _capture(model, x, [layer], outputs=False, inputs=True, stop_early=True)[1][layer]
    fields = explainer(module, layer_input[0], index)
    image_window = None
    if fields.get("window") is not None and layer_input.shape == x.shape and torch.equal(layer_input, x):
        top, left, height, width = fields["window"]
        image_h, image_w = x.shape[-2:]
        top_c, left_c = max(top, 0), max(left, 0)
        image_window = (top_c, left_c, min(top + height, image_h) - top_c, min(left + width, image_w) - left_c)
    if output.dim() == 1 and path == _leaf_paths(model.module)[-1] and "softmax" not in fields:
        fields["softmax"] = _softmax_arithmetic(output)
    return UnitArithmetic(
        layer=layer,
        kind=type(module).__name__,
        index=index,
        captured=float(output[index]),
        image_window=image_window,
        **fields,
    )


# ── effective receptive field ───────────────────────────────────────────────────────────────────────────────────


@contextmanager
def inplace_disabled(root: nn.Module, modules: Iterable[nn.Module] | None = None) -> Iterator[None]:
    """Turn every ``inplace=True`` flag off for the duration: an in-place op on a captured output would rewrite
    the graph the gradient runs through. The flags are restored even when the body raises.

    Args:
        root: The model.
        modules: The modules of ``root`` that may have the flag, when the caller knows them (default: all of them;
            looking for a missing attribute on a module costs a microsecond or two).
    """
    switched = [m for m in (root.modules() if modules is None else modules) if getattr(m, "inplace", None) is True]
    try:
        for module in switched:
            module.inplace = False
        yield
    finally:
        for module in switched:
            module.inplace = True


def effective_receptive_field(model: LoadedModel, x: Tensor, layer: str, index: Sequence[int]) -> Tensor:
    """How much each input pixel moves one output unit: ``|∂ unit / ∂ input|`` summed over input channels.

    Luo et al. 2016, "Understanding the Effective Receptive Field in Deep CNNs", https://arxiv.org/abs/1701.04128.
    The forward pass stops right after ``layer``; gradients come from ``torch.autograd.grad``, so no ``.grad`` is
    left on the parameters. Runs under ``model.lock``; in-place flags are switched off meanwhile and restored.

    Args:
        model: The model.
        x: Input batch; its first sample is used.
        layer: Layer name.
        index: The unit's position in the layer's output, without the batch dimension.

    Returns:
        ``[H, W]`` at the input's resolution; zero outside the theoretical receptive field.
    """
    root = model.module
    path, call, _ = _resolve(root, layer)
    layer = _layer_key(path, call)
    found: dict[str, Tensor] = {}

    def after(key: str, module: nn.Module, value: Tensor | None) -> None:
        if key == layer and value is not None:
            found["output"] = value
            raise StopForward

    with model.lock, inplace_disabled(root), torch.enable_grad():
        image = x[:1].detach().clone().requires_grad_(True)
        with _hooked(root, [path], after=after):
            _run(root, image)
        if "output" not in found:
            raise UnknownLayer(f"Layer {layer!r} did not run for this input.")
        output = found["output"][0]
        unit = output[_check_index(layer, index, output.shape)]
        if not unit.requires_grad:
            return torch.zeros(x.shape[-2:])
        (grad,) = torch.autograd.grad(unit, image, allow_unused=True)
    if grad is None:
        return torch.zeros(x.shape[-2:])
    return grad[0].abs().sum(dim=0)


# ── statistics ──────────────────────────────────────────────────────────────────────────────────────────────────


def activation_stats(t: Tensor, bins: int = HISTOGRAM_BINS) -> ActivationStats:
    """Statistics of one layer output for the page's histogram and dead-channel list.

    Args:
        t: A captured output for one input: ``[1, C, H, W]`` or ``[C, H, W]`` for maps, ``[1, K]`` or ``[K]`` for
            vectors (each element its own channel).
        bins: Histogram bins over ``[min, max]`` (widened by ±0.5 when all values are equal).
    """
    if t.dim() in (2, 4):
        if t.shape[0] != 1:
            raise ValueError(f"Expected the output for one input; got a batch of {t.shape[0]}.")
        t = t[0]
    if t.dim() not in (1, 3):
        raise ValueError(f"Expected maps [C, H, W] or a vector [K]; got shape {tuple(t.shape)}.")
    values = t.detach().to(torch.float64)
    channel_max = values.reshape(values.shape[0], -1).amax(dim=1) if values.dim() == 3 else values.clone()
    low, high = float(values.min()), float(values.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    histogram, edges = torch.histogram(values.flatten(), bins=bins, range=(low, high))
    return ActivationStats(
        min=float(values.min()),
        max=float(values.max()),
        mean=float(values.mean()),
        zero_share=float((values == 0).to(torch.float64).mean()),
        channel_max=channel_max,
        dead_channels=tuple(int(i) for i in torch.nonzero(channel_max <= 0).flatten()),
        histogram=histogram,
        bin_edges=edges,
    )
