"""The user's own models, kept: :func:`add_model` checks a file completely (:mod:`cnn_explorer.model_files`) before
keeping it under ``CNN_EXPLORER_HOME``, where it joins the model registry as ``my-<name>`` (family ``"your model"``),
so every page can load it with :func:`~cnn_explorer.zoo.load_model`; :func:`remove_model` deletes it.

Layout (``HOME`` is ``$CNN_EXPLORER_HOME``, read at every call)::

    HOME/models/<name>/model.json    the description: kind, architecture, classes, input size, preprocessing, file
    HOME/models/<name>/weights.pt    a state_dict (kind "state_dict")
    HOME/models/<name>/model.ts      the TorchScript archive as uploaded (kind "torchscript")
    HOME/models/.names/<name>        claimed names: a removed model's name is never given out again

A model's folder is assembled in a staging folder and renamed into place in one step, so a reader sees a complete
model or none. Names are never reused because the app caches loaded models, predictions and explanations by name.

A TorchScript model is opaque (see :mod:`cnn_explorer.model_files`): it loads with the
:data:`~cnn_explorer.model_files.TORCHSCRIPT` capabilities, and each view of the app declares what it needs. Loading
a TorchScript archive runs no Python and no pickle code (its constants go through TorchScript's own restricted
reader), but running the model executes the operators it was compiled with: add archives you trust. PyTorch
deprecates TorchScript in favour of ``torch.export``; a state_dict is the lasting format.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from cnn_explorer.architectures import ARCHITECTURES
from cnn_explorer.model import Capabilities, LoadedModel, ModelEntry, ModelUnavailable
from cnn_explorer.model_files import (
    ARCHITECTURE_NAMES,
    MAX_BYTES,
    MAX_CLASSES,
    TORCHSCRIPT,
    ModelFileError,
    TorchScriptModel,
    build_architecture,
    check,
    checked_size,
    copy_file,
    parse_class_names,
)
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
    "TORCHSCRIPT",
    "ModelFileError",
    "TorchScriptModel",
    "UserModel",
    "add_model",
    "entries",
    "is_torchscript",
    "list_user_models",
    "load_user_model",
    "models_dir",
    "parse_class_names",
    "remove_model",
]

KINDS = ("state_dict", "torchscript")
FAMILY = "your model"
PREFIX = "my-"
_SLUG_LENGTH = 40
_NAME = re.compile(rf"{PREFIX}[a-z0-9]+(?:-[a-z0-9]+)*")
_FILES = {"state_dict": "weights.pt", "torchscript": "model.ts"}
_FORMAT = 1


def is_torchscript(name: str) -> bool:
    """True when ``name`` is one of the user's models and a TorchScript one (known without loading it)."""
    try:
        return _read(_folder(name)).kind == "torchscript"
    except (KeyError, OSError, ValueError, TypeError):  # not a model of the user's, or unreadable
        return False


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
            module = build_architecture(model.architecture, len(model.class_names), model.architecture_args)
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
        capabilities=TORCHSCRIPT if model.kind == "torchscript" else Capabilities(),
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
        lines += [
            "**What works with a TorchScript model**\n",
            "- ✅ **What needs only the network's output and the gradient with respect to the input:** predictions, "
            "saliency, integrated gradients, SmoothGrad, occlusion, adversarial attacks (FGSM, PGD), and what works "
            "on the image alone (convolution, pooling, activation curves).",
            f"- ✖️ **What reads, hooks, replaces or re-initializes a layer:** feature maps and each value's "
            f"arithmetic, the CAM family, guided backpropagation, the randomization check, filters, transfer "
            f"learning. {TORCHSCRIPT.why_not_hooks} {TORCHSCRIPT.instead}",
        ]
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
    size = checked_size(input_size, required=kind == "torchscript")
    title = (name or Path(file_name or "").stem or "model").strip()

    models_dir().mkdir(parents=True, exist_ok=True)
    staging = models_dir() / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        path = staging / _FILES[kind]
        digest, length = copy_file(source, path)
        checked = check(path, kind, architecture, num_classes, names, size, mean, std, standardize)
        description = UserModel(
            name="",
            title=title,
            kind=kind,
            architecture=checked.architecture,
            input_size=checked.input_size,
            class_names=checked.class_names,
            preprocess=checked.preprocess,
            parameters=checked.parameters,
            file_name=file_name or _FILES[kind],
            file_bytes=length,
            sha256=digest,
            added=time.time(),
            folder=staging,
            architecture_args=checked.architecture_args,
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
