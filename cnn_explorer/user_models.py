"""Models the user brings: a ``state_dict`` for one of our architectures or a torchvision one, or a TorchScript archive.

:func:`add_model` checks a file completely before keeping it: it is read with ``torch.load(..., weights_only=True)``
(a pickle that would import and run code is refused without running it) or ``torch.jit.load``, the weights must fit
the architecture key by key and shape by shape, and the network must turn one input of its size into one score per
class. A model that passes is kept under ``CNN_EXPLORER_HOME`` and joins the zoo as ``my-<name>`` (family
``"your model"``), so every page can load it with :func:`~cnn_explorer.zoo.load_model`.

Layout (``HOME`` is ``$CNN_EXPLORER_HOME``, read at every call)::

    HOME/models/<name>/model.json    the description: kind, architecture, classes, input size, preprocessing, file
    HOME/models/<name>/weights.pt    a state_dict (kind "state_dict")
    HOME/models/<name>/model.ts      the TorchScript archive as uploaded (kind "torchscript")
    HOME/models/.names/<name>        claimed names: a removed model's name is never given out again

A model's folder is assembled in a staging folder and renamed into place in one step, so a reader sees a complete
model or none. Names are never reused because the app caches loaded models, predictions and explanations by name.

**TorchScript models are opaque.** A TorchScript archive is compiled code: its submodules are ``ScriptModule`` s,
which accept no forward hooks, cannot be resolved with ``get_submodule`` and whose in-place flags are compiled
constants. :class:`TorchScriptModel` therefore presents the archive as one function from image to scores, and only
the views that need nothing but the input, the output and the gradient between them apply: see
:data:`TORCHSCRIPT_VIEWS`. A ``state_dict`` upload has none of these limits.

Loading a TorchScript archive runs no Python and no pickle code (its constants go through TorchScript's own
restricted reader), but running the model executes the operators it was compiled with: add archives you trust.
PyTorch deprecates TorchScript in favour of ``torch.export``; a state_dict is the lasting format.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import shutil
import time
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
import torchvision.models
from torch import Tensor, nn

from cnn_explorer.architectures import ARCHITECTURES
from cnn_explorer.model import LoadedModel, ModelEntry, ModelUnavailable
from cnn_explorer.model_registry import register_source
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.runs import home

__all__ = [
    "ARCHITECTURE_NAMES",
    "FAMILY",
    "KINDS",
    "MAX_BYTES",
    "MAX_CLASSES",
    "PREFIX",
    "TORCHSCRIPT_VIEWS",
    "ModelFileError",
    "TorchScriptModel",
    "UserModel",
    "ViewSupport",
    "add_model",
    "entries",
    "is_torchscript",
    "limitations",
    "list_user_models",
    "load_user_model",
    "models_dir",
    "parse_class_names",
    "remove_model",
]

KINDS = ("state_dict", "torchscript")
FAMILY = "your model"
PREFIX = "my-"
MAX_BYTES = 600 * 2**20
"""Largest model file accepted (VGG-16's ImageNet state_dict, 528 MB, fits)."""
MAX_CLASSES = 100_000
_SHOWN = 8  # keys listed one by one in a mismatch message; the rest are counted
_SLUG_LENGTH = 40
_NAME = re.compile(rf"{PREFIX}[a-z0-9]+(?:-[a-z0-9]+)*")
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")  # where training scripts nest the weights
_FILES = {"state_dict": "weights.pt", "torchscript": "model.ts"}
_FORMAT = 1


class ModelFileError(ValueError):
    """A model file that cannot be added; the message says what is wrong and what to do."""


# ── what a TorchScript model supports ───────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class ViewSupport:
    """Whether one view of the app works on a TorchScript model, and why.

    Attributes:
        key: ``"predict"``, ``"layers"``, a method key of ``attribution.METHODS`` or a view's key.
        title: What the user knows the view as.
        supported: True when the view works.
        why: One or two sentences: what the view needs from the network.
    """

    key: str
    title: str
    supported: bool
    why: str


_NO_HOOKS = (
    "A TorchScript archive is compiled code: its layers are ScriptModules, which accept no forward hooks, so the app "
    "cannot record or change what a layer computes."
)
_STATE_DICT_TIP = "Add the same network as a state_dict (torch.save(model.state_dict(), path)) to use it."

TORCHSCRIPT_VIEWS: tuple[ViewSupport, ...] = (
    ViewSupport("predict", "Predict", True, "It needs only the network's output for the preprocessed image."),
    ViewSupport(
        "pixel_explanations",
        "Explain: saliency, integrated gradients, SmoothGrad, occlusion",
        True,
        "They need only the gradient of a class score with respect to the input, or forward passes of changed "
        "images; autograd goes through compiled code.",
    ),
    ViewSupport(
        "attacks",
        "Fool the model: FGSM and PGD",
        True,
        "They need only the gradient of the loss with respect to the input.",
    ),
    ViewSupport(
        "image_playground",
        "Playground: convolution and pooling of the image, activation curves",
        True,
        "They work on the image alone.",
    ),
    ViewSupport("layers", "Layers", False, f"{_NO_HOOKS} Feature maps and each value's arithmetic need them."),
    ViewSupport(
        "cam",
        "Explain: the CAM family (Grad-CAM, Grad-CAM++, Score-CAM, LayerCAM, guided Grad-CAM)",
        False,
        f"{_NO_HOOKS} A CAM weighs one convolutional layer's activations by their gradients.",
    ),
    ViewSupport(
        "guided_backprop",
        "Explain: guided backpropagation",
        False,
        "It replaces the backward pass of every ReLU module through hooks; inside compiled code there are none to "
        "change, and the map would silently be the plain gradient.",
    ),
    ViewSupport(
        "trust",
        "Explain: the trust checks",
        False,
        "The randomization check re-initializes the network's layers one by one, which compiled code does not allow.",
    ),
    ViewSupport(
        "feature_maps",
        "Feature maps in the Playground (pooling one, the translation demo, activations on one), weight sharing, "
        "what a filter wants to see; Grad-CAM in Fool the model",
        False,
        f"{_NO_HOOKS} These views read a layer's output or its weights.",
    ),
    ViewSupport(
        "transfer",
        "Train: transfer learning from it",
        False,
        "Transfer replaces the classifier layer; a compiled network's layers cannot be replaced.",
    ),
)
"""The views of the app and whether each works on a TorchScript model (the model card and the pages show them)."""


def limitations(model: LoadedModel) -> dict[str, str]:
    """What ``model`` cannot be used for, by view key (see :data:`TORCHSCRIPT_VIEWS`), each with the reason and what
    to do instead; empty for every model but a TorchScript one."""
    if not isinstance(model.module, TorchScriptModel):
        return {}
    return {view.key: f"{view.why} {_STATE_DICT_TIP}" for view in TORCHSCRIPT_VIEWS if not view.supported}


def is_torchscript(name: str) -> bool:
    """True when ``name`` is one of the user's models and a TorchScript one (known without loading it)."""
    try:
        return _read(_folder(name)).kind == "torchscript"
    except (KeyError, OSError, ValueError, TypeError):  # not a model of the user's, or unreadable
        return False


class TorchScriptModel(nn.Module):
    """A TorchScript archive as one opaque function from image to class scores.

    The scripted module is kept out of ``_modules`` on purpose: every tool of the app walks ``modules()`` to hook
    layers, disable in-place ReLUs or re-initialize weights, and on ScriptModules each of these raises or, worse,
    silently does nothing. Hidden, the network has no layers to offer, so layer views find none, CAMs are not
    offered and the randomization check says there is nothing to randomize; gradients with respect to the input
    still flow through it.

    Args:
        scripted: The loaded archive (``torch.jit.load``).
    """

    def __init__(self, scripted: torch.jit.ScriptModule):
        super().__init__()
        self.__dict__["scripted"] = scripted  # bypasses nn.Module.__setattr__, which would register it

    def forward(self, x: Tensor) -> Tensor:
        return self.scripted(x)

    def train(self, mode: bool = True) -> TorchScriptModel:
        self.scripted.train(mode)
        return super().train(mode)

    def extra_repr(self) -> str:
        return f"TorchScript {self.scripted.original_name}, {_parameter_count(self.scripted):,} parameters"


def _parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ── architectures a state_dict can be loaded into ───────────────────────────────────────────────────────────────


@functools.cache
def _torchvision_names() -> tuple[str, ...]:
    return tuple(torchvision.models.list_models(module=torchvision.models))


def _ours_args(name: str, state: Mapping[str, Tensor], input_size: tuple[int, int, int] | None) -> dict[str, Any]:
    """Constructor arguments of our architectures, read from the weights where they show (channels, sizes)."""
    args: dict[str, Any] = {}
    first = state.get({"TinyVGG": "conv_1_1.weight", "LeNet5": "c1.weight"}[name])
    if first is not None and first.dim() == 4:
        args["in_channels"] = int(first.shape[1])
    elif input_size is not None:
        args["in_channels"] = input_size[0]
    if name == "TinyVGG":
        if first is not None and first.dim() == 4:
            args["channels"] = int(first.shape[0])
        output = state.get("output.weight")
        if input_size is not None:
            args["input_size"] = input_size[1]
        elif output is not None and output.dim() == 2 and "channels" in args:
            # The linear layer reads channels × side × side values; invert TinyVGG's 64 → 62 → 60 → 30 → 28 → 26 → 13.
            side = math.isqrt(int(output.shape[1]) // args["channels"])
            args["input_size"] = 4 * side + 12
    return args


def _ours_input_size(name: str, args: dict[str, Any]) -> tuple[int, int, int]:
    side = args.get("input_size", 64) if name == "TinyVGG" else 32  # LeNet-5's C5 is 1×1 on 32×32 input only
    return (args.get("in_channels", 3 if name == "TinyVGG" else 1), side, side)


ARCHITECTURE_NAMES: tuple[str, ...] = (*ARCHITECTURES, *_torchvision_names())
"""Architectures a state_dict can be added for: ours first, then torchvision's classification models."""


def _build(architecture: str, num_classes: int, args: dict[str, Any]) -> nn.Module:
    if architecture in ARCHITECTURES:
        return ARCHITECTURES[architecture](num_classes=num_classes, **args)
    return torchvision.models.get_model(architecture, weights=None, num_classes=num_classes, **args)


def _torchvision_defaults(architecture: str) -> tuple[Preprocess, tuple[str, ...]]:
    """The preprocessing of torchvision's default weights for this architecture (ImageNet's resize, crop, mean and
    std) and their class names."""
    weights = torchvision.models.get_model_weights(architecture).DEFAULT
    transforms = weights.transforms()
    preprocess = Preprocess(
        resize=transforms.resize_size[0],
        crop=transforms.crop_size[0],
        mean=tuple(transforms.mean),
        std=tuple(transforms.std),
    )
    return preprocess, tuple(weights.meta["categories"])


# ── descriptions on disk ────────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class UserModel:
    """One added model, as its ``model.json`` describes it.

    Attributes:
        name: Registry name (``"my-flowers"``).
        title: The name as the user gave it.
        kind: ``"state_dict"`` or ``"torchscript"``.
        architecture: The architecture's name (for TorchScript, the scripted class's name).
        input_size: ``(C, H, W)``.
        class_names: One name per output.
        preprocess: How an image becomes the input.
        parameters: Number of parameters.
        file_name: The uploaded file's name.
        file_bytes: Its size.
        sha256: Its SHA-256.
        added: When it was added (seconds since the epoch).
        folder: Where it is kept.
        architecture_args: Constructor arguments (state_dict of our architectures).
    """

    name: str
    title: str
    kind: str
    architecture: str
    input_size: tuple[int, int, int]
    class_names: tuple[str, ...]
    preprocess: Preprocess
    parameters: int
    file_name: str
    file_bytes: int
    sha256: str
    added: float
    folder: Path
    architecture_args: dict[str, Any]

    @property
    def summary(self) -> str:
        kind = "TorchScript" if self.kind == "torchscript" else "state_dict"
        c, h, w = self.input_size
        return (
            f"{self.title} · your {self.architecture} ({kind}) · {self.parameters:,} parameters · "
            f"{len(self.class_names)} classes · {c}×{h}×{w}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "name": self.name,
            "title": self.title,
            "kind": self.kind,
            "architecture": self.architecture,
            "architecture_args": self.architecture_args,
            "input_size": list(self.input_size),
            "class_names": list(self.class_names),
            "preprocess": self.preprocess.to_dict(),
            "parameters": self.parameters,
            "file": {"name": self.file_name, "bytes": self.file_bytes, "sha256": self.sha256},
            "added": self.added,
            "torch": torch.__version__,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], folder: Path) -> UserModel:
        return cls(
            name=data["name"],
            title=data["title"],
            kind=data["kind"],
            architecture=data["architecture"],
            input_size=tuple(data["input_size"]),
            class_names=tuple(data["class_names"]),
            preprocess=Preprocess.from_dict(data["preprocess"]),
            parameters=int(data["parameters"]),
            file_name=data["file"]["name"],
            file_bytes=int(data["file"]["bytes"]),
            sha256=data["file"]["sha256"],
            added=float(data["added"]),
            folder=folder,
            architecture_args=dict(data.get("architecture_args", {})),
        )


def models_dir() -> Path:
    """``HOME/models``: one folder per added model."""
    return home() / "models"


def list_user_models() -> list[UserModel]:
    """Every added model, newest first (read from disk now; damaged descriptions are skipped)."""
    found = []
    folder = models_dir()
    for path in folder.iterdir() if folder.is_dir() else ():
        if not _NAME.fullmatch(path.name):  # staging folders and the name claims start with a dot
            continue
        try:
            found.append(_read(path))
        except (OSError, ValueError, KeyError, TypeError):  # removed meanwhile, or damaged: not offered
            continue
    return sorted(found, key=lambda model: model.added, reverse=True)


def _read(folder: Path) -> UserModel:
    return UserModel.from_dict(json.loads((folder / "model.json").read_text()), folder)


# ── the zoo's view ──────────────────────────────────────────────────────────────────────────────────────────────


@register_source(order=40)
def entries() -> dict[str, ModelEntry]:
    """The added models as zoo entries (read at every call: models are added and removed while the app runs)."""
    return {
        model.name: ModelEntry(
            name=model.name,
            family=FAMILY,
            summary=model.summary,
            is_ready=lambda model=model: (model.folder / _FILES[model.kind]).exists(),
            load=lambda progress, name=model.name: load_user_model(name),
        )
        for model in list_user_models()
    }


def load_user_model(name: str) -> LoadedModel:
    """Load an added model.

    Raises:
        KeyError: No added model has this name.
        ModelUnavailable: Its file is missing or damaged, or this torch/torchvision cannot rebuild it.
    """
    folder = _folder(name)
    try:
        model = _read(folder)
    except FileNotFoundError:
        raise KeyError(f"There is no model {name!r} of yours: add it first.") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelUnavailable(f"The description of {name} at {folder / 'model.json'} is damaged ({err}).") from err
    path = folder / _FILES[model.kind]
    try:
        if model.kind == "torchscript":
            module: nn.Module = TorchScriptModel(torch.jit.load(str(path), map_location="cpu"))
        else:
            module = _build(model.architecture, len(model.class_names), model.architecture_args)
            module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # a damaged file raises anything from OSError to UnpicklingError
        raise ModelUnavailable(
            f"{name} cannot be loaded from {path} ({err}). Remove it and add the file again."
        ) from err
    return LoadedModel(
        name=model.name,
        module=module.eval(),
        input_size=model.input_size,
        class_names=model.class_names,
        preprocess=model.preprocess,
        summary=model.summary,
        card=_card(model),
    )


def _card(model: UserModel) -> str:
    steps = "\n".join(f"{i}. {step}" for i, step in enumerate(model.preprocess.steps(), 1))
    kind = "TorchScript archive" if model.kind == "torchscript" else "state_dict"
    classes = ", ".join(model.class_names[:20])
    if len(model.class_names) > 20:
        classes += f" … ({len(model.class_names)} in all)"
    lines = [
        f"### {model.title} (`{model.name}`)\n",
        f"- **Added by you:** {kind} `{model.file_name}` ({model.file_bytes / 1e6:.1f} MB, SHA-256 "
        f"`{model.sha256[:16]}…`) on {time.strftime('%Y-%m-%d %H:%M', time.localtime(model.added))}",
        f"- **Architecture:** {model.architecture} ({model.parameters:,} parameters)",
        f"- **Input:** {' × '.join(map(str, model.input_size))} (channels × height × width)",
        f"- **Classes:** {classes}",
        "- **Accuracy:** unknown to the app (it has only the weights)",
        f"\n**Preprocessing**\n\n{steps}\n",
    ]
    if model.kind == "torchscript":
        lines.append("**What works with a TorchScript model**\n")
        lines += [f"- {'✅' if view.supported else '✖️'} **{view.title}** — {view.why}" for view in TORCHSCRIPT_VIEWS]
    return "\n".join(lines)


# ── adding and removing ─────────────────────────────────────────────────────────────────────────────────────────


def add_model(
    source: bytes | BinaryIO | str | os.PathLike,
    *,
    kind: str,
    architecture: str | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | bytes | None = None,
    input_size: Sequence[int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    standardize: bool = False,
    name: str | None = None,
    file_name: str | None = None,
) -> str:
    """Check a model file and keep it as one of the user's models.

    Args:
        source: The file: its bytes, an open binary file, or a path.
        kind: ``"state_dict"`` (read with ``torch.load(..., weights_only=True)``) or ``"torchscript"``
            (``torch.jit.load``).
        architecture: For a state_dict: one of :data:`ARCHITECTURE_NAMES` (``"TinyVGG"``, ``"LeNet5"``,
            ``"resnet18"``, ``"vgg16"`` …). Ignored for TorchScript.
        num_classes: Outputs of the network. Required for a state_dict (it sizes the classifier); for TorchScript
            it is read from the output when None, and checked against it otherwise.
        class_names: One name per class, or the bytes of a class-names file (one name per line, or a JSON list).
            None: torchvision's ImageNet names for a torchvision architecture with 1000 classes, else
            ``class 0``, ``class 1`` ….
        input_size: ``(C, H, W)`` with ``H == W``. Required for TorchScript; for a state_dict None derives it (our
            architectures from the weights, torchvision's from their default weights' crop).
        mean: Per-channel mean to normalize with, after scaling pixels to [0, 1]; give ``std`` with it. None:
            ImageNet's for a torchvision architecture (from torchvision's weights metadata), no normalization
            otherwise.
        std: Per-channel standard deviation.
        standardize: Instead of a fixed mean and std, standardize each image with its own (as CNN Explainer's
            TinyVGG and our shipped ``tinyvgg-shapes``); not with ``mean``/``std``.
        name: What to call it; the registry name is ``my-<name as a slug>`` (``-2``, ``-3`` … when taken; names
            are never reused). None: from ``file_name``.
        file_name: The uploaded file's name, for the model card.

    Returns:
        The registry name, for :func:`~cnn_explorer.zoo.load_model`.

    Raises:
        ModelFileError: Anything that keeps the file from working, with what to do: not a PyTorch file or damaged,
            a pickle that would run code (refused before anything of it runs), the wrong kind, keys or shapes that do
            not fit the architecture (listed), a network that fails on its input size or gives the wrong number of
            scores, class names that do not match, a bad size, mean or std, a file over :data:`MAX_BYTES`.
    """
    if kind not in KINDS:
        raise ModelFileError(f"Unknown kind {kind!r}: use one of {', '.join(KINDS)}.")
    if kind == "state_dict" and architecture not in ARCHITECTURE_NAMES:
        ours = ", ".join(ARCHITECTURES)
        raise ModelFileError(
            f"Unknown architecture {architecture!r}. A state_dict needs the network it was saved from: one of ours "
            f"({ours}) or a torchvision classification model (resnet18, vgg16, alexnet, mobilenet_v3_small …)."
        )
    if kind == "state_dict" and num_classes is None:
        raise ModelFileError("Give the number of classes: it sizes the classifier the weights are loaded into.")
    if num_classes is not None and not 1 <= num_classes <= MAX_CLASSES:
        raise ModelFileError(f"The number of classes must be from 1 to {MAX_CLASSES:,}; got {num_classes}.")
    names = parse_class_names(class_names) if isinstance(class_names, bytes | bytearray) else class_names
    size = _checked_size(input_size, required=kind == "torchscript")
    title = (name or Path(file_name or "").stem or "model").strip()

    models_dir().mkdir(parents=True, exist_ok=True)
    staging = models_dir() / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        path = staging / _FILES[kind]
        digest, length = _copy(source, path)
        if kind == "torchscript":
            module, args = _scripted(path), {}
            architecture = module.scripted.original_name
        else:
            state = _read_state_dict(path)
            module, args = _fitted(architecture, num_classes, state, size)
            torch.save(module.state_dict(), path)  # only the tensors, without whatever wrapped them
        size = size or _default_size(architecture, args)
        outputs = _check_forward(module, size, num_classes)
        names = _class_names(names, outputs, architecture)
        preprocess = _preprocess(architecture, size, mean, std, standardize)
        description = UserModel(
            name="",
            title=title,
            kind=kind,
            architecture=architecture,
            input_size=size,
            class_names=names,
            preprocess=preprocess,
            parameters=_parameter_count(module.scripted if kind == "torchscript" else module),
            file_name=file_name or _FILES[kind],
            file_bytes=length,
            sha256=digest,
            added=time.time(),
            folder=staging,
            architecture_args=args,
        )
        return _keep(staging, description)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when it was renamed into place


def remove_model(name: str) -> None:
    """Delete an added model (its name stays taken: see the module docstring).

    Raises:
        KeyError: No added model has this name.
    """
    folder = _folder(name)
    if not (folder / "model.json").exists():
        raise KeyError(f"There is no model {name!r} of yours to remove.")
    trash = models_dir() / f".removing-{uuid.uuid4().hex}"
    os.replace(folder, trash)  # it leaves the registry in one step, then its files go
    shutil.rmtree(trash, ignore_errors=True)


def parse_class_names(data: bytes | str) -> list[str]:
    """Class names from a file: a JSON list of names, or one name per line (blank lines skipped).

    Raises:
        ModelFileError: Not UTF-8 text, a JSON list of something else than strings, no names, or a name twice.
    """
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes | bytearray) else data
    except UnicodeDecodeError:
        raise ModelFileError(
            "The class-names file is not UTF-8 text: give one name per line, or a JSON list."
        ) from None
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as err:
            raise ModelFileError(f"The class-names file starts like JSON but is not valid JSON ({err}).") from None
        if not all(isinstance(n, str) for n in names):
            raise ModelFileError("The class-names JSON must be a list of strings, one per class, in output order.")
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    names = [n.strip() for n in names]
    if not names:
        raise ModelFileError("The class-names file holds no names: give one per line, in output order.")
    return names


# ── the checks ──────────────────────────────────────────────────────────────────────────────────────────────────


def _checked_size(input_size: Sequence[int] | None, *, required: bool) -> tuple[int, int, int] | None:
    if input_size is None:
        if required:
            raise ModelFileError(
                "A TorchScript model needs its input size (channels, height, width), e.g. 3, 224, 224."
            )
        return None
    size = tuple(int(v) for v in input_size)
    if len(size) != 3 or size[0] not in (1, 3) or size[1] < 1 or size[1] != size[2] or size[1] > 1024:
        raise ModelFileError(
            f"The input size must be (channels, height, width) with 1 (grey) or 3 (RGB) channels and a square side "
            f"of 1 to 1024 pixels (the app centre-crops a square); got {input_size}."
        )
    return size  # type: ignore[return-value]


def _copy(source: bytes | BinaryIO | str | os.PathLike, path: Path) -> tuple[str, int]:
    """Write the file to ``path``, refusing it once it passes :data:`MAX_BYTES`; returns (SHA-256, bytes)."""
    digest, length = hashlib.sha256(), 0
    reader = open(source, "rb") if isinstance(source, str | os.PathLike) else None  # noqa: SIM115
    stream = reader or source
    try:
        with open(path, "wb") as out:
            if isinstance(stream, bytes | bytearray | memoryview):
                chunks: Any = [bytes(stream)]
            else:
                chunks = iter(lambda: stream.read(1 << 20), b"")
            for chunk in chunks:
                length += len(chunk)
                if length > MAX_BYTES:
                    raise ModelFileError(
                        f"The file is larger than {MAX_BYTES // 2**20} MB, the most the app keeps for one model."
                    )
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    finally:
        if reader is not None:
            reader.close()
    if length == 0:
        raise ModelFileError("The file is empty.")
    return digest.hexdigest(), length


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if _is_torchscript(path):
        raise ModelFileError("This is a TorchScript archive, not a state_dict: add it as TorchScript.")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only refuses with UnpicklingError; damaged files raise anything
        refused = _GLOBAL.search(str(err))
        if refused:  # the unpickler stopped at the first object that is not a tensor: nothing of it was run
            raise ModelFileError(
                f"Refused: loading this file would import and run Python code ({refused.group(1)}), so none of it "
                "was run. It is probably a whole model saved with torch.save(model), or a checkpoint holding other "
                "Python objects. Only plain tensors are accepted: save the weights with torch.save(model.state_dict(), "
                "path), or export the model with torch.jit.save(torch.jit.script(model), path) and add it as "
                "TorchScript."
            ) from None
        raise ModelFileError(
            "This is not a PyTorch file, or it is damaged (truncated or changed in transit). Save the weights with "
            "torch.save(model.state_dict(), path) and upload that file."
        ) from None
    state = _unwrapped(loaded)
    if state is None:
        raise ModelFileError(
            f"The file holds a {type(loaded).__name__}, not a state_dict (a dictionary of parameter names to "
            "tensors). Save it with torch.save(model.state_dict(), path)."
        )
    return state


def _unwrapped(loaded: Any) -> dict[str, Tensor] | None:
    """The state_dict in what was loaded: the dict itself, or under a training checkpoint's usual key; a
    ``module.`` prefix (``nn.DataParallel``) is dropped."""
    if not isinstance(loaded, Mapping):
        return None
    if not all(isinstance(v, Tensor) for v in loaded.values()):
        nested = [loaded[k] for k in _CHECKPOINT_KEYS if isinstance(loaded.get(k), Mapping)]
        return _unwrapped(nested[0]) if nested else None
    state = {str(k): v for k, v in loaded.items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _listed(what: str, items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"{len(items)} {what}: {shown}{more}."


def _fitted(
    architecture: str, num_classes: int, state: dict[str, Tensor], size: tuple[int, int, int] | None
) -> tuple[nn.Module, dict[str, Any]]:
    """The architecture with the weights loaded; a :class:`ModelFileError` listing every key and shape that does not
    fit otherwise."""
    args = _ours_args(architecture, state, size) if architecture in ARCHITECTURES else {}
    try:
        module = _build(architecture, num_classes, args)
    except (ValueError, RuntimeError, TypeError) as err:
        raise ModelFileError(f"{architecture} cannot be built with {num_classes} classes and {args} ({err}).") from None
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} is {list(state[k].shape)} in the file, {list(v.shape)} in {architecture}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(_listed(f"missing key{'s' * (len(missing) > 1)}", missing))
        if unexpected:
            problems.append(_listed(f"unexpected key{'s' * (len(unexpected) > 1)}", unexpected))
        if shapes:
            problems.append(_listed(f"shape mismatch{'es' * (len(shapes) > 1)}", shapes))
        raise ModelFileError(
            f"The weights do not fit {architecture} with {num_classes} classes: {' '.join(problems)} Choose the "
            "architecture the file was saved from and its number of classes."
        )
    module.load_state_dict(state)
    return module, args


def _scripted(path: Path) -> TorchScriptModel:
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            "This is not a TorchScript archive (those are zip files written by torch.jit.save), or it is damaged."
        )
    if not _is_torchscript(path):
        raise ModelFileError("This looks like a state_dict, not a TorchScript archive: add it as a state_dict.")
    try:
        return TorchScriptModel(torch.jit.load(str(path), map_location="cpu"))
    except Exception as err:  # the C++ reader raises RuntimeError for anything it cannot read
        raise ModelFileError(
            f"This TorchScript archive cannot be loaded ({str(err).splitlines()[0]}). Save it again with "
            f"torch.jit.save(torch.jit.script(model), path), with torch {torch.__version__} or older."
        ) from None


def _default_size(architecture: str, args: dict[str, Any]) -> tuple[int, int, int]:
    if architecture in ARCHITECTURES:
        return _ours_input_size(architecture, args)
    crop = _torchvision_defaults(architecture)[0].crop
    return (3, crop, crop)


def _check_forward(module: nn.Module, size: tuple[int, int, int], num_classes: int | None) -> int:
    """Run the network once on a zero image: it must give one score per class. Returns the number of outputs."""
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, *size))
    except Exception as err:  # a network fails on a wrong size in many ways
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise ModelFileError(
            f"The network fails on a {'×'.join(map(str, size))} input ({first}). Give the input size it was trained on."
        ) from None
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 1:
        shape = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ModelFileError(
            f"The network must return one row of class scores [1, classes] for one image; it returned {shape}."
        )
    if num_classes is not None and out.shape[1] != num_classes:
        raise ModelFileError(
            f"The network gives {out.shape[1]} scores, not {num_classes}: check the number of classes."
        )
    if not torch.isfinite(out).all():
        raise ModelFileError("The network gives NaN or infinite scores on a plain input: its weights are broken.")
    return int(out.shape[1])


def _class_names(names: Sequence[str] | None, outputs: int, architecture: str) -> tuple[str, ...]:
    if names is None:
        if architecture in _torchvision_names():
            categories = _torchvision_defaults(architecture)[1]
            if len(categories) == outputs:
                return categories
        return tuple(f"class {i}" for i in range(outputs))
    names = tuple(str(n).strip() for n in names)
    if len(names) != outputs:
        raise ModelFileError(
            f"{len(names)} class names for {outputs} outputs: give exactly one name per class, in output order."
        )
    if any(not n for n in names):
        raise ModelFileError("A class name is empty: give each class a name.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ModelFileError(f"Class names must differ; repeated: {', '.join(repeated[:_SHOWN])}.")
    return names


def _preprocess(
    architecture: str,
    size: tuple[int, int, int],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    standardize: bool,
) -> Preprocess:
    channels, side = size[0], size[1]
    if standardize:
        if mean is not None or std is not None:
            raise ModelFileError("Standardize each image, or give a mean and std: not both.")
        return Preprocess(resize=side, crop=side, grayscale=channels == 1, per_image_standardization=True)
    resize = side
    if architecture in _torchvision_names():
        default, _ = _torchvision_defaults(architecture)
        resize = round(side * default.resize / default.crop)  # torchvision's ratio (256 for 224)
        if mean is None and std is None and channels == 3:
            mean, std = default.mean, default.std
    if (mean is None) != (std is None):
        raise ModelFileError("Give both the mean and the standard deviation, or neither.")
    if mean is not None and std is not None:
        mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if len(mean) != channels or len(std) != channels:
            raise ModelFileError(
                f"Give one mean and one standard deviation per input channel ({channels}); got {len(mean)} and "
                f"{len(std)}."
            )
        if not all(math.isfinite(v) for v in (*mean, *std)) or min(std) <= 0:
            raise ModelFileError("The mean must be finite and every standard deviation above 0.")
    return Preprocess(resize=resize, crop=side, grayscale=channels == 1, mean=mean, std=std)


# ── the folder ──────────────────────────────────────────────────────────────────────────────────────────────────


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-").removeprefix(PREFIX)  # "My shapes" → my-shapes
    return slug[:_SLUG_LENGTH].strip("-") or "model"


def _folder(name: str) -> Path:
    if not _NAME.fullmatch(name):  # names become folder names: nothing else may reach the file system
        raise KeyError(f"{name!r} is not the name of a model of yours (those are {PREFIX}<name>).")
    return models_dir() / name


def _keep(staging: Path, description: UserModel) -> str:
    """Claim a free name, write the description and move the staging folder into place; returns the name."""
    claims = models_dir() / ".names"
    claims.mkdir(exist_ok=True)
    base = f"{PREFIX}{_slug(description.title)}"
    for number in range(1, 10_000):
        name = base if number == 1 else f"{base}-{number}"
        try:
            (claims / name).touch(exist_ok=False)  # atomic: two uploads never get the same name
        except FileExistsError:
            continue
        break
    else:
        raise ModelFileError(f"Every name {base}-N is taken: choose another name.")
    data = {**description.to_dict(), "name": name}
    tmp = staging / ".model.json.tmp"
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, staging / "model.json")
    os.replace(staging, models_dir() / name)
    return name
