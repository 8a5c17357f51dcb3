"""What every model is once loaded, whatever its source: :class:`LoadedModel` with its :class:`Capabilities`, the
registry's :class:`ModelEntry`, :class:`ModelUnavailable`, and :func:`predict`.

A leaf: it imports nothing of the model registry, the sources or the architectures, so every one of them (and every
view) can build on it without an import circle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from cnn_explorer.preprocess import Preprocess
from cnn_explorer.progress import ByteProgress

__all__ = [
    "Capabilities",
    "LoadedModel",
    "ModelEntry",
    "ModelUnavailable",
    "Prediction",
    "predict",
]


class ModelUnavailable(RuntimeError):
    """A model cannot be loaded here (weights not cached and no download possible, or a damaged file)."""


@dataclass(frozen=True)
class Capabilities:
    """What a model allows, so each view can tell whether it applies (the views declare what they need).

    Attributes:
        hooks: Its layers accept forward hooks, resolve with ``get_submodule`` and can be replaced or re-initialized.
            False for an opaque compiled network (a TorchScript archive), which offers only its input and output and
            the gradient between them.
        task: What it outputs: ``"classification"`` (one score per class).
        input: What it reads: ``"image"``.
        kind: How the user knows the model's format, for messages (``"TorchScript model"``); empty for ordinary ones.
        why_not_hooks: Why its layers are closed; empty when ``hooks`` is True.
        instead: What to do to use the views that need them; empty when ``hooks`` is True.
    """

    hooks: bool = True
    task: str = "classification"
    input: str = "image"
    kind: str = ""
    why_not_hooks: str = ""
    instead: str = ""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference and inspection.

    Attributes:
        name: Registry name (``"tinyvgg-shapes"``).
        module: The network, in eval mode, parameters on the CPU.
        input_size: ``(C, H, W)`` of one preprocessed image.
        class_names: One readable name per output.
        preprocess: PIL image → ``[1, C, H, W]`` input tensor (see :class:`Preprocess`).
        summary: One line: architecture, size, data, accuracy.
        card: The model card in Markdown.
        capabilities: What it allows (hooks or not, task, input).
        lock: Held by every computation that registers hooks or changes module state.
    """

    name: str
    module: nn.Module
    input_size: tuple[int, int, int]
    class_names: tuple[str, ...]
    preprocess: Preprocess
    summary: str
    card: str
    capabilities: Capabilities = field(default_factory=Capabilities)
    lock: threading.RLock = field(default_factory=threading.RLock, compare=False, repr=False)


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry: what a model is and how to load it.

    Attributes:
        name: Registry name.
        family: ``"built-in"``, ``"ImageNet"``, ``"trained run"`` or ``"your model"``.
        summary: One line for pickers.
        is_ready: True when loading needs no download.
        load: Builds the :class:`LoadedModel`; takes an optional download progress callback.
    """

    name: str
    family: str
    summary: str
    is_ready: Callable[[], bool]
    load: Callable[[ByteProgress | None], LoadedModel]


@dataclass(frozen=True)
class Prediction:
    """Class probabilities for one input.

    Attributes:
        probabilities: Softmax of the logits, ``[num_classes]``.
        logits: The raw outputs, ``[num_classes]``.
        top: ``(class index, class name, probability)`` best first.
    """

    probabilities: Tensor
    logits: Tensor
    top: list[tuple[int, str, float]]


@torch.no_grad()
def predict(model: LoadedModel, x: Tensor, k: int = 5) -> Prediction:
    """Run the model on one preprocessed input ``[1, C, H, W]`` and rank the classes."""
    logits = model.module(x)[0]
    probabilities = torch.softmax(logits, dim=0)
    values, indices = probabilities.topk(min(k, probabilities.numel()))
    top = [(int(i), model.class_names[int(i)], float(v)) for v, i in zip(values, indices, strict=True)]
    return Prediction(probabilities=probabilities, logits=logits, top=top)
