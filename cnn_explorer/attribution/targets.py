"""What an explanation is of: the class (``target``) and, for the CAM family, the layer it is computed at.

:func:`cam_layers` finds, with one hooked forward pass per model (remembered while the model lives), every layer a
CAM can use: each convolution and each activated map (see ``ACTIVATIONS``); :func:`default_cam_layer` picks the last
rectified one. :func:`resolve_target` turns a class name or index into an index, with a message saying what is
allowed. :mod:`~cnn_explorer.attribution.running` and the Grad-CAM walkthrough check their arguments with these.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cnn_explorer.hooks import ForwardHooks
from cnn_explorer.layers import inplace_disabled
from cnn_explorer.model import LoadedModel

__all__ = [
    "ACTIVATIONS",
    "cam_layers",
    "default_cam_layer",
    "resolve_target",
]


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


_CAM_LAYERS: weakref.WeakKeyDictionary[nn.Module, dict[str, _CamLayer]] = weakref.WeakKeyDictionary()


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
