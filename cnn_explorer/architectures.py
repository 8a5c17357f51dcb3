"""The networks a run trains: the built-in TinyVGG and LeNet-5, editable layer stacks, and transfer learning.

Layers are named submodules (``conv_1_1``, ``relu_1_1`` …; ``conv1``, ``relu1`` … in a stack) so every view can
address them by dotted path, and no module is reused or in-place: what a layer outputs is exactly what the next one
reads.

* :func:`describe_stack` computes every layer's output shape and parameter count from a stack's description alone
  (nothing is allocated), with the count of the fully connected layer a convolution stands in for, and refuses an
  impossible stack naming the layer; :func:`build_stack` builds the same layers.
* :func:`transfer` copies a loaded model, gives it a new classifier head and chooses what trains.
* :func:`build_model` turns a run's :class:`~cnn_explorer.runspec.ModelSpec` into a module; a transfer run's base
  model is loaded by the caller (:func:`cnn_explorer.sources.imagenet.transfer_base`), so this module loads nothing.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnn_explorer.model import LoadedModel
from cnn_explorer.runspec import LayerSpec, ModelSpec

__all__ = [
    "ARCHITECTURES",
    "MAX_STACK_PARAMS",
    "TRAINABLE",
    "LeNet5",
    "StackError",
    "StackRow",
    "TinyVGG",
    "build_model",
    "build_stack",
    "describe_stack",
    "train_mode",
    "transfer",
]


class TinyVGG(nn.Sequential):
    """TinyVGG as in CNN Explainer (Wang et al. 2020, https://arxiv.org/abs/2004.15004).

    Two blocks of conv3×3 – ReLU – conv3×3 – ReLU – max-pool 2, unpadded, then flatten and one linear layer.
    A 64×64 input shrinks 64 → 62 → 60 → 30 → 28 → 26 → 13.

    Args:
        num_classes: Output classes.
        in_channels: Input channels (3 for RGB).
        channels: Feature maps per conv layer.
        input_size: Side of the square input, which fixes the linear layer's width.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, channels: int = 10, input_size: int = 64):
        side = ((input_size - 4) // 2 - 4) // 2
        super().__init__(
            OrderedDict(
                [
                    ("conv_1_1", nn.Conv2d(in_channels, channels, 3)),
                    ("relu_1_1", nn.ReLU()),
                    ("conv_1_2", nn.Conv2d(channels, channels, 3)),
                    ("relu_1_2", nn.ReLU()),
                    ("max_pool_1", nn.MaxPool2d(2)),
                    ("conv_2_1", nn.Conv2d(channels, channels, 3)),
                    ("relu_2_1", nn.ReLU()),
                    ("conv_2_2", nn.Conv2d(channels, channels, 3)),
                    ("relu_2_2", nn.ReLU()),
                    ("max_pool_2", nn.MaxPool2d(2)),
                    ("flatten", nn.Flatten()),
                    ("output", nn.Linear(channels * side * side, num_classes)),
                ]
            )
        )


class LeNet5(nn.Sequential):
    """LeNet-5 (LeCun et al. 1998, http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf) on 32×32 grey input.

    C1 conv5×5(6) – tanh – S2 avg-pool 2 – C3 conv5×5(16) – tanh – S4 avg-pool 2 – C5 conv5×5(120) – tanh –
    F6 linear(84) – tanh – output linear. As in the paper, C5 is a convolution whose output is 1×1. Every C3
    filter sees all S2 maps (the paper's sparse connection table was a hardware economy of its time).

    Args:
        num_classes: Output classes.
        in_channels: Input channels (1 for grey).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__(
            OrderedDict(
                [
                    ("c1", nn.Conv2d(in_channels, 6, 5)),
                    ("tanh1", nn.Tanh()),
                    ("s2", nn.AvgPool2d(2)),
                    ("c3", nn.Conv2d(6, 16, 5)),
                    ("tanh3", nn.Tanh()),
                    ("s4", nn.AvgPool2d(2)),
                    ("c5", nn.Conv2d(16, 120, 5)),
                    ("tanh5", nn.Tanh()),
                    ("flatten", nn.Flatten()),
                    ("f6", nn.Linear(120, 84)),
                    ("tanh6", nn.Tanh()),
                    ("output", nn.Linear(84, num_classes)),
                ]
            )
        )


# name → constructor taking (num_classes, in_channels); the model cards refer to these names.
ARCHITECTURES: dict[str, type[nn.Module]] = {"TinyVGG": TinyVGG, "LeNet5": LeNet5}


# --- Editable stacks --------------------------------------------------------------------------------------------

MAX_STACK_PARAMS = 50_000_000
"""Largest stack :func:`build_stack` builds (200 MB of float32 weights): beyond it a laptop cannot train it."""


class StackError(ValueError):
    """A layer stack (or transfer setup) that cannot work; the message names the layer and what to change."""


@dataclass(frozen=True)
class StackRow:
    """One layer of a stack, before it is built.

    Attributes:
        name: The layer's name in the built module (``"conv1"``).
        kind: Class name of the module (``"Conv2d"``).
        output_shape: Output shape without the batch dimension: ``(C, H, W)`` or ``(features,)``.
        params: Parameters of the layer.
        dense_params: For a convolution, the parameters of a fully connected layer mapping the same input to the
            same output (every output value weighing every input value, plus a bias each): what weight sharing and
            local connectivity save. None for other layers.
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    dense_params: int | None = None


@dataclass(frozen=True)
class _Planned:
    row: StackRow
    make: Callable[[], nn.Module]


_Shape = tuple[int, ...]
# What a layer type's planner returns: (module factory, output shape, params, dense params)
_PlanResult = tuple[functools.partial, _Shape, int, int | None]
_Planner = Callable[[LayerSpec, _Shape, str], _PlanResult]


def _positive(name: str, **values: int) -> None:
    for what, value in values.items():
        if value < 1:
            raise StackError(f"{name}: {what} must be at least 1, got {value}.")


def _feature_map(shape: _Shape, name: str, what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise StackError(
            f"{name}: {what} needs a feature map, but its input is already flat ({shape[0]} features). Move it "
            "before the flatten and linear layers."
        )
    return shape  # type: ignore[return-value]


def _plan_conv(spec: LayerSpec, shape: _Shape, name: str) -> _PlanResult:
    c, h, w = _feature_map(shape, name, "a convolution")
    k, s, p, out = spec.kernel, spec.stride or 1, spec.padding, spec.channels
    _positive(name, channels=out, kernel=k, stride=s)
    if p < 0:
        raise StackError(f"{name}: padding must be 0 or more, got {p}.")
    if h + 2 * p < k or w + 2 * p < k:
        padding = f" with padding {p}" if p else ""
        raise StackError(
            f"{name}: a {k}×{k} kernel does not fit a {h}×{w} input{padding}, the map would shrink below 1×1. "
            "Use a smaller kernel, add padding, or remove a pooling layer before it."
        )
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    dense = (c * h * w + 1) * (out * oh * ow)
    return functools.partial(nn.Conv2d, c, out, k, stride=s, padding=p), (out, oh, ow), out * (c * k * k + 1), dense


def _plan_pool(spec: LayerSpec, shape: _Shape, name: str) -> _PlanResult:
    c, h, w = _feature_map(shape, name, "pooling")
    k = spec.kernel
    s = spec.stride if spec.stride is not None else k
    _positive(name, size=k, stride=s)
    pools = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}
    if spec.mode not in pools:
        raise StackError(f"{name}: unknown pooling mode {spec.mode!r}; use 'max' or 'avg'.")
    if k > h or k > w:
        raise StackError(
            f"{name}: a {k}×{k} pool is bigger than its {h}×{w} input, the map would shrink below 1×1. Use a "
            "smaller window or remove a layer that shrinks the map before it."
        )
    return functools.partial(pools[spec.mode], k, stride=s), (c, (h - k) // s + 1, (w - k) // s + 1), 0, None


def _plan_activation(module: type[nn.Module]) -> _Planner:
    def plan(spec: LayerSpec, shape: _Shape, name: str) -> _PlanResult:
        return functools.partial(module), shape, 0, None

    return plan


def _plan_leaky_relu(spec: LayerSpec, shape: _Shape, name: str) -> _PlanResult:
    return functools.partial(nn.LeakyReLU, spec.slope), shape, 0, None


def _plan_batchnorm(spec: LayerSpec, shape: _Shape, name: str) -> _PlanResult:
    module = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    return functools.partial(module, shape[0]), shape, 2 * shape[0], None


def _plan_dropout(spec: LayerSpec, shape: _Shape, name: str) -> _PlanResult:
    if not 0.0 <= spec.p < 1.0:
        raise StackError(f"{name}: the drop probability must be from 0 up to (not including) 1, got {spec.p}.")
    return functools.partial(nn.Dropout, spec.p), shape, 0, None


def _plan_flatten(spec: LayerSpec, shape: _Shape, name: str) -> _PlanResult:
    return functools.partial(nn.Flatten), (math.prod(shape),), 0, None


def _plan_linear(spec: LayerSpec, shape: _Shape, name: str) -> _PlanResult:
    (features,) = shape  # the planner flattens a feature map first
    _positive(name, width=spec.width)
    return functools.partial(nn.Linear, features, spec.width), (spec.width,), (features + 1) * spec.width, None


@dataclass(frozen=True)
class _LayerType:
    prefix: str  # layer names are prefix + running number (conv1, conv2 …)
    plan: _Planner


_LAYER_TYPES: dict[str, _LayerType] = {
    "conv": _LayerType("conv", _plan_conv),
    "pool": _LayerType("pool", _plan_pool),
    "relu": _LayerType("relu", _plan_activation(nn.ReLU)),
    "leaky_relu": _LayerType("leaky_relu", _plan_leaky_relu),
    "sigmoid": _LayerType("sigmoid", _plan_activation(nn.Sigmoid)),
    "tanh": _LayerType("tanh", _plan_activation(nn.Tanh)),
    "batchnorm": _LayerType("bn", _plan_batchnorm),
    "dropout": _LayerType("dropout", _plan_dropout),
    "flatten": _LayerType("flatten", _plan_flatten),
    "linear": _LayerType("fc", _plan_linear),
}


def _plan(
    layers: Sequence[LayerSpec], in_channels: int, input_size: int, num_classes: int, dropout: float
) -> list[_Planned]:
    _positive("the input", channels=in_channels, size=input_size)
    _positive("the output", classes=num_classes)
    if not 0.0 <= dropout < 1.0:
        raise StackError(f"The dropout before the classifier must be from 0 up to (not including) 1, got {dropout}.")
    shape: _Shape = (in_channels, input_size, input_size)
    numbers: Counter[str] = Counter()
    planned: list[_Planned] = []

    def add(spec: LayerSpec, name: str | None = None) -> None:
        nonlocal shape
        layer_type = _LAYER_TYPES[spec.type]
        if name is None:
            numbers[layer_type.prefix] += 1
            name = f"{layer_type.prefix}{numbers[layer_type.prefix]}"
            if spec.type == "flatten" and numbers["flatten"] == 1:
                name = "flatten"  # there is normally one
        make, shape, params, dense = layer_type.plan(spec, shape, name)
        planned.append(_Planned(StackRow(name, make.func.__name__, shape, params, dense), make))

    for position, spec in enumerate(layers, 1):
        if spec.type not in _LAYER_TYPES:
            raise StackError(f"Layer {position}: unknown type {spec.type!r}. Types: {', '.join(_LAYER_TYPES)}.")
        if spec.type == "linear" and len(shape) == 3:
            add(LayerSpec("flatten"))
        add(spec)
    if len(shape) == 3:
        add(LayerSpec("flatten"))
    if dropout > 0:
        add(LayerSpec("dropout", p=dropout), name="head_dropout")
    add(LayerSpec("linear", width=num_classes), name="output")
    return planned


def describe_stack(
    layers: Sequence[LayerSpec], in_channels: int, input_size: int, num_classes: int, dropout: float = 0.0
) -> list[StackRow]:
    """Every layer :func:`build_stack` would build, with its output shape and parameter counts; nothing is built.

    Args:
        layers: The stack; a flatten is inserted before the first linear layer (or at the end) when missing, and
            the final linear layer to the classes (``output``) is appended, after ``head_dropout`` when
            ``dropout > 0``.
        in_channels: Channels of the input image.
        input_size: Side of the square input image.
        num_classes: Outputs of the final layer.
        dropout: Drop probability before the final layer (0: no dropout layer).

    Raises:
        StackError: A layer cannot work (its map would shrink below 1×1, a pool is bigger than its input, a value
            is not positive, a convolution follows a flat layer, an unknown type); the message names the layer.
    """
    return [planned.row for planned in _plan(layers, in_channels, input_size, num_classes, dropout)]


def build_stack(
    layers: Sequence[LayerSpec], in_channels: int, input_size: int, num_classes: int, dropout: float = 0.0
) -> nn.Sequential:
    """Build a stack as an ``nn.Sequential`` of named layers (``conv1``, ``relu1``, ``pool1`` … ``fc1``, ``output``).

    The layers are exactly the rows of :func:`describe_stack` (same arguments), each a new module, none in-place.
    A conv or linear layer feeding a ReLU or LeakyReLU starts with He initialization (see :func:`_he_init`).

    Raises:
        StackError: As :func:`describe_stack`, or the stack has more than :data:`MAX_STACK_PARAMS` parameters.
    """
    planned = _plan(layers, in_channels, input_size, num_classes, dropout)
    total = sum(p.row.params for p in planned)
    if total > MAX_STACK_PARAMS:
        biggest = max(planned, key=lambda p: p.row.params).row
        raise StackError(
            f"The stack has {total:,} parameters, more than the {MAX_STACK_PARAMS:,} a run may train; {biggest.name} "
            f"alone has {biggest.params:,}. Add pooling before the linear layers or make them narrower."
        )
    stack = nn.Sequential(OrderedDict((p.row.name, p.make()) for p in planned))
    _he_init(stack)
    return stack


def _he_init(stack: nn.Sequential) -> None:
    """He initialization (https://arxiv.org/abs/1502.01852) of every conv or linear layer that feeds a ReLU or
    LeakyReLU directly, biases zero.

    PyTorch's default draws weights with a variance of 1/(3·fan_in), a sixth of what keeps a signal's scale through
    a ReLU: four such layers shrink it about a thousandfold, and the first thousands of steps go into growing it
    back (TinyVGG on the shapes: 80 % validation accuracy after 100,000 images instead of 87 %).
    """
    layers = list(stack.children())
    for layer, after in itertools.pairwise(layers):
        if isinstance(layer, nn.Conv2d | nn.Linear) and isinstance(after, nn.ReLU | nn.LeakyReLU):
            slope = after.negative_slope if isinstance(after, nn.LeakyReLU) else 0.0
            nn.init.kaiming_normal_(layer.weight, a=slope, nonlinearity="leaky_relu")
            nn.init.zeros_(layer.bias)


# --- Transfer learning ------------------------------------------------------------------------------------------

TRAINABLE = ("head", "last", "all")
"""What trains in a transfer run: the new head only, the last N blocks and the head, or everything."""

# Where the classifier sits: our models' ``output``, torchvision ResNets' ``fc``, AlexNet/VGG/MobileNet's
# ``classifier`` (a Sequential whose last Linear is the head).
_HEAD_ATTRIBUTES = ("output", "fc", "classifier")


def _head_path(module: nn.Module) -> str:
    """Dotted path of the final classifier layer (an ``nn.Linear``)."""
    for attribute in _HEAD_ATTRIBUTES:
        child = getattr(module, attribute, None)
        if isinstance(child, nn.Linear):
            return attribute
        if isinstance(child, nn.Module):
            linears = [name for name, m in child.named_modules() if isinstance(m, nn.Linear)]
            if linears:
                return f"{attribute}.{linears[-1]}"
    raise StackError(
        f"Cannot find the classifier of this {type(module).__name__}: no Linear layer under "
        f"{', '.join(_HEAD_ATTRIBUTES)}."
    )


def _blocks(module: nn.Module, head: str) -> list[tuple[str, nn.Module]]:
    """The trainable blocks before the head, in order: top-level children with parameters, plain ``nn.Sequential``
    children (VGG's ``features``, ResNet's ``layer4``) opened one level so their blocks count one by one."""
    blocks = []
    for name, child in module.named_children():
        if type(child) is nn.Sequential:
            blocks += [(f"{name}.{n}", c) for n, c in child.named_children()]
        else:
            blocks.append((name, child))
    return [
        (name, block) for name, block in blocks if not _overlaps(name, head) and any(True for _ in block.parameters())
    ]


def _overlaps(path: str, other: str) -> bool:
    """One dotted path is the other or contains it."""
    return path == other or other.startswith(f"{path}.") or path.startswith(f"{other}.")


def transfer(base: LoadedModel, num_classes: int, trainable: str, last_n: int = 1, dropout: float = 0.0) -> nn.Module:
    """A copy of a zoo model with a new classifier head for ``num_classes``, and only the chosen parts trainable.

    The base is left untouched (the copy is made under its lock). The head (``output``, ``fc`` or the last Linear of
    ``classifier``) becomes a fresh ``nn.Linear`` with the same input width, preceded by dropout when
    ``dropout > 0`` (then the head is ``Sequential(dropout, linear)``).

    Args:
        base: The model to start from.
        num_classes: Outputs of the new head.
        trainable: ``"head"`` (only the new head), ``"last"`` (the last ``last_n`` blocks with parameters and the
            head; blocks as :func:`_blocks` counts them, all of them when ``last_n`` exceeds their number) or
            ``"all"``.
        last_n: Blocks to train with ``"last"``.
        dropout: Drop probability before the new head.

    Returns:
        The new module, in the base's mode (call :func:`train_mode` to train it), parameters ``requires_grad`` as
        chosen.

    Raises:
        StackError: An unknown ``trainable``, ``last_n < 1``, ``num_classes < 1``, a dropout outside [0, 1), or a
            model whose head cannot be found.
    """
    if trainable not in TRAINABLE:
        raise StackError(f"Unknown trainable {trainable!r}: use one of {', '.join(TRAINABLE)}.")
    _positive("transfer", classes=num_classes, **({"last_n": last_n} if trainable == "last" else {}))
    if not 0.0 <= dropout < 1.0:
        raise StackError(f"The dropout before the classifier must be from 0 up to (not including) 1, got {dropout}.")
    with base.lock:  # no computation's hooks are registered while it is copied
        module = copy.deepcopy(base.module)
    head = _head_path(module)
    blocks = _blocks(module, head)
    parent_path, _, leaf = head.rpartition(".")
    parent = module.get_submodule(parent_path) if parent_path else module
    old = module.get_submodule(head)
    new: nn.Module = nn.Linear(old.in_features, num_classes)
    if dropout > 0:
        new = nn.Sequential(OrderedDict(dropout=nn.Dropout(dropout), linear=new))
    setattr(parent, leaf, new)

    module.requires_grad_(trainable == "all")
    if trainable == "last":
        for _, block in blocks[-last_n:]:
            block.requires_grad_(True)
    new.requires_grad_(True)
    return module


def train_mode(module: nn.Module) -> nn.Module:
    """``module.train()``, except batch-norm layers whose parameters are all frozen stay in eval mode.

    A frozen batch norm would otherwise keep updating its running statistics from the new data while its scale and
    shift stay fixed, shifting what the frozen layers after it receive.
    """
    module.train()
    for m in module.modules():
        params = list(m.parameters(recurse=False))
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and params and not any(p.requires_grad for p in params):
            m.eval()
    return module


# --- A run's model ----------------------------------------------------------------------------------------------


def build_model(
    spec: ModelSpec,
    in_channels: int,
    input_size: int,
    num_classes: int,
    dropout: float = 0.0,
    *,
    base: LoadedModel | None = None,
) -> nn.Module:
    """The module a run trains: a stack built from scratch or a loaded model with a new head.

    Args:
        spec: ``kind="stack"`` (``layers``) or ``"transfer"`` (``base``, ``trainable``, ``last_n``).
        in_channels: Channels of the prepared data.
        input_size: Side of the prepared images.
        num_classes: Classes of the data.
        dropout: Drop probability before the classifier.
        base: For a transfer run, the model named by ``spec.base``, loaded by the caller
            (:func:`cnn_explorer.sources.imagenet.transfer_base`); ignored for a stack.

    Raises:
        StackError: An impossible stack, an unknown kind, no base model, or data that does not fit the base model.
    """
    if spec.kind == "stack":
        return build_stack(spec.layers, in_channels, input_size, num_classes, dropout)
    if spec.kind != "transfer":
        raise StackError(f"Unknown model kind {spec.kind!r}: use 'stack' or 'transfer'.")
    if not spec.base or base is None:
        raise StackError("A transfer run needs a base model: choose one from the model zoo.")
    channels, height, width = base.input_size
    if in_channels != channels:
        raise StackError(
            f"{spec.base} takes {channels}-channel images but the data has {in_channels}: prepare the data with the "
            "base model's preprocessing (prepare(..., base_preprocess=...))."
        )
    module = transfer(base, num_classes, spec.trainable, spec.last_n, dropout)
    _check_input_fits(module, spec.base, (in_channels, input_size, input_size), num_classes, (height, width))
    return module


def _check_input_fits(
    module: nn.Module, name: str, input_shape: _Shape, num_classes: int, trained_size: tuple[int, int]
) -> None:
    """Run the model on the meta device (shapes only, no arithmetic, no memory) to see that the input fits."""
    meta = {k: torch.empty_like(v, device="meta") for k, v in [*module.named_parameters(), *module.named_buffers()]}
    training = module.training
    try:
        with torch.no_grad():
            # eval mode and two images: batch norm must not object to statistics of a single value per channel
            out = torch.func.functional_call(module.eval(), meta, (torch.empty((2, *input_shape), device="meta"),))
    except NotImplementedError:  # an operator without a meta kernel: nothing can be said in advance
        return
    except (RuntimeError, ValueError) as err:
        raise StackError(
            f"{name} cannot take {input_shape[1]}×{input_shape[2]} images ({err}). Use the size it was trained on, "
            f"{trained_size[0]}×{trained_size[1]} (ImageNet models also take other sizes that are not too small)."
        ) from err
    finally:
        module.train(training)
    if tuple(out.shape) != (2, num_classes):
        raise StackError(f"{name} gives outputs of shape {tuple(out.shape)[1:]}, not {num_classes} class scores.")
