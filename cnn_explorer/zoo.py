"""The model registry: built-in models shipped in ``assets/models``, torchvision ImageNet models, trained runs, and the
user's own models (:mod:`cnn_explorer.user_models`).

Every model loads into a :class:`LoadedModel`: an ``nn.Module`` in eval mode with its class names, input size,
preprocessing and a lock that every hook-registering computation holds (one loaded model is shared by every
browser session).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision.models
from torch import Tensor, nn

from cnn_explorer import diagnostics, downloads, runs
from cnn_explorer.architectures import ARCHITECTURES
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.progress import ByteProgress
from cnn_explorer.runspec import RunSpec

__all__ = [
    "ASSETS_MODELS",
    "IMAGENET_MODELS",
    "LoadedModel",
    "ModelEntry",
    "ModelUnavailable",
    "Prediction",
    "available_models",
    "load_model",
    "model_entry",
    "predict",
]

ASSETS_MODELS = Path(__file__).resolve().parent.parent / "assets" / "models"
IMAGENET_MODELS = ("alexnet", "vgg16", "resnet18", "mobilenet_v3_small")
# torch.hub's convention: a checkpoint file name ends with the first digits of its SHA-256.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")


class ModelUnavailable(RuntimeError):
    """A model cannot be loaded here (weights not cached and no download possible, or a damaged file)."""


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
        lock: Held by every computation that registers hooks or changes module state.
    """

    name: str
    module: nn.Module
    input_size: tuple[int, int, int]
    class_names: tuple[str, ...]
    preprocess: Preprocess
    summary: str
    card: str
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


def available_models() -> list[str]:
    """Every model name the app can offer: built-in first, then ImageNet (even when they still need a download),
    then finished training runs (``run-<id>``, newest first), then the user's own models (``my-<name>``, newest
    first); the run store and the user's models are read at every call."""
    return list(_registry())


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; ``KeyError`` naming the known models otherwise."""
    registry = _registry()
    if name not in registry:
        raise KeyError(f"Unknown model {name!r}. Known models: {', '.join(registry)}.")
    return registry[name]


def load_model(name: str, progress: ByteProgress | None = None) -> LoadedModel:
    """Load a model by registry name.

    Args:
        name: One of :func:`available_models`.
        progress: Called with (bytes done, total) while ImageNet weights download.

    Raises:
        KeyError: Unknown name.
        ModelUnavailable: Weights neither cached nor downloadable, or damaged.
    """
    return model_entry(name).load(progress)


@torch.no_grad()
def predict(model: LoadedModel, x: Tensor, k: int = 5) -> Prediction:
    """Run the model on one preprocessed input ``[1, C, H, W]`` and rank the classes."""
    logits = model.module(x)[0]
    probabilities = torch.softmax(logits, dim=0)
    values, indices = probabilities.topk(min(k, probabilities.numel()))
    top = [(int(i), model.class_names[int(i)], float(v)) for v, i in zip(values, indices, strict=True)]
    return Prediction(probabilities=probabilities, logits=logits, top=top)


# ── the registry ────────────────────────────────────────────────────────────────────────────────────────────────


def _registry() -> dict[str, ModelEntry]:
    from cnn_explorer import user_models  # at call time: it builds on this module

    return {**_builtin_entries(), **_imagenet_entries(), **_run_entries(), **user_models.entries()}


@cache
def _builtin_entries() -> dict[str, ModelEntry]:
    entries = {}
    for meta_path in sorted(ASSETS_MODELS.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        entries[meta["name"]] = ModelEntry(
            name=meta["name"],
            family="built-in",
            summary=meta["summary"],
            is_ready=lambda meta_path=meta_path: meta_path.with_suffix(".pt").exists(),
            load=lambda progress, meta_path=meta_path: _load_builtin(meta_path),
        )
    return entries


def _load_builtin(meta_path: Path) -> LoadedModel:
    meta = json.loads(meta_path.read_text())
    module = ARCHITECTURES[meta["architecture"]](**meta["architecture_args"])
    weights_path = meta_path.with_suffix(".pt")
    try:
        module.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    except Exception as err:  # a damaged file raises anything from OSError to UnpicklingError
        raise ModelUnavailable(
            f"The weights of {meta['name']} at {weights_path} are missing or damaged ({err}). "
            "Restore them with `git checkout assets/models` or retrain with `make train-defaults`."
        ) from err
    preprocess = Preprocess.from_dict(meta["preprocess"])
    card_path = meta_path.with_suffix(".md")
    return LoadedModel(
        name=meta["name"],
        module=module.eval(),
        input_size=(preprocess.channels, preprocess.crop, preprocess.crop),
        class_names=tuple(meta["class_names"]),
        preprocess=preprocess,
        summary=meta["summary"],
        card=card_path.read_text() if card_path.exists() else meta["summary"],
    )


@cache
def _imagenet_entries() -> dict[str, ModelEntry]:
    entries = {}
    for name in IMAGENET_MODELS:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        entries[name] = ModelEntry(
            name=name,
            family="ImageNet",
            summary=_imagenet_summary(name, weights),
            is_ready=lambda weights=weights: _checkpoint_path(weights).exists(),
            load=lambda progress, name=name, weights=weights: _load_imagenet(name, weights, progress),
        )
    return entries


def _imagenet_summary(name: str, weights: torchvision.models.WeightsEnum) -> str:
    metrics = weights.meta["_metrics"]["ImageNet-1K"]
    return (
        f"{name} · torchvision {weights} · {weights.meta['num_params'] / 1e6:.1f} M parameters · "
        f"1000 ImageNet classes · top-1 {metrics['acc@1']:.1f} %"
    )


def _load_imagenet(name: str, weights: torchvision.models.WeightsEnum, progress: ByteProgress | None) -> LoadedModel:
    path = _checkpoint_path(weights)
    if not path.exists():
        _download(weights.url, path, progress, name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module = torchvision.models.get_model(name, weights=None)
        module.load_state_dict(state)
    except Exception as err:  # a damaged or hostile file raises anything from OSError to UnpicklingError
        raise ModelUnavailable(
            f"The cached weights for {name} at {path} are damaged ({err}). Delete the file and load the model "
            "again to download a fresh copy."
        ) from err
    transforms = weights.transforms()
    preprocess = Preprocess(
        resize=transforms.resize_size[0],
        crop=transforms.crop_size[0],
        mean=tuple(transforms.mean),
        std=tuple(transforms.std),
    )
    return LoadedModel(
        name=name,
        module=module.eval(),
        input_size=(3, preprocess.crop, preprocess.crop),
        class_names=tuple(weights.meta["categories"]),
        preprocess=preprocess,
        summary=_imagenet_summary(name, weights),
        card=_imagenet_card(name, weights, preprocess),
    )


def _imagenet_card(name: str, weights: torchvision.models.WeightsEnum, preprocess: Preprocess) -> str:
    metrics = weights.meta["_metrics"]["ImageNet-1K"]
    steps = "\n".join(f"{i}. {step}" for i, step in enumerate(preprocess.steps(), 1))
    return (
        f"### {name} (torchvision `{weights}`)\n\n"
        f"- **Data:** ImageNet-1K, 1000 classes\n"
        f"- **Parameters:** {weights.meta['num_params']:,}\n"
        f"- **Accuracy (ImageNet-1K validation):** top-1 {metrics['acc@1']:.2f} %, top-5 {metrics['acc@5']:.2f} %\n"
        f"- **Training recipe:** {weights.meta.get('recipe', 'see torchvision')}\n"
        f"- **Weights:** {weights.url}\n\n"
        f"**Preprocessing**\n\n{steps}\n"
    )


# ── trained runs from the run store ─────────────────────────────────────────────────────────────────────────────


def _run_entries() -> dict[str, ModelEntry]:
    """Finished runs with a best checkpoint, read from the store now (not cached: runs finish, get renamed and
    deleted while the app runs)."""
    entries = {}
    for run in runs.list_runs(runs.FINISHED):
        if not run.has_checkpoint:
            continue
        try:
            info = runs.read_model_info(run.id)
        except (runs.RunNotFound, ValueError, OSError):  # deleted meanwhile, or damaged: not offered
            continue
        entries[run.model_name] = ModelEntry(
            name=run.model_name,
            family="trained run",
            summary=_run_summary(run, info),
            is_ready=lambda run=run: run.has_checkpoint,
            load=lambda progress, run_id=run.id: _load_run(run_id),
        )
    return entries


def _run_summary(run: runs.Run, info: dict) -> str:
    accuracy = "" if run.best_val_accuracy is None else f" · val acc {run.best_val_accuracy:.1%}"
    return f"{run.name} · {info['architecture']} · {info['parameters']:,} params{accuracy}"


def _load_run(run_id: str) -> LoadedModel:
    from cnn_explorer import architectures  # at call time: a transfer model's builder loads its base from the zoo

    run = runs.get_run(run_id)
    info = runs.read_model_info(run.id)
    model_spec = RunSpec.from_dict({"name": run.name, "model": info["model"]}).model
    try:
        module = architectures.build_model(model_spec, **info["build"], pretrained=False)  # best.pt has them all
        module.load_state_dict(runs.load_checkpoint(run.id, "best"))
    except Exception as err:  # a damaged file raises anything from OSError to UnpicklingError
        raise ModelUnavailable(
            f"The best checkpoint of run {run.id} ({run.name}) at {run.folder / 'best.pt'} cannot be loaded "
            f"({err}). Train the run again."
        ) from err
    preprocess = Preprocess.from_dict(info["preprocess"])
    return LoadedModel(
        name=run.model_name,
        module=module.eval(),
        input_size=tuple(info["input_size"]),
        class_names=tuple(info["class_names"]),
        preprocess=preprocess,
        summary=_run_summary(run, info),
        card=_run_card(run, info, preprocess),
    )


def _run_card(run: runs.Run, info: dict, preprocess: Preprocess) -> str:
    spec, settings = run.spec, run.spec.settings
    results = runs.read_results(run.id)
    best = f"{run.best_val_accuracy:.2%}" if run.best_val_accuracy is not None else "—"
    epoch = f" (epoch {results['epoch']})" if results is not None else ""
    steps = "\n".join(f"{i}. {step}" for i, step in enumerate(preprocess.steps(), 1))
    diagnosed = diagnostics.run_diagnostics(run.id)
    found = "\n".join(f"- {d.sentence} *{d.advice}*" for d in diagnosed)
    message = run.message.replace(diagnostics.summary(diagnosed), "").strip()  # the run's message repeats them
    lines = [
        f"### {run.name} (`{run.model_name}`)\n",
        f"- **Architecture:** {info['architecture']} ({info['parameters']:,} parameters, "
        f"{info['trainable_parameters']:,} trained)",
        f"- **Data:** {info['data'].get('description') or spec.data.kind} Classes: {', '.join(info['class_names'])}.",
        f"- **Training:** {settings.optimizer_text()}, learning rate {settings.lr:g} (cosine), "
        f"batch {settings.batch_size}, {settings.epochs} epochs, weight decay {settings.weight_decay:g}, "
        f"dropout {settings.dropout:g}, patience {settings.patience or 'off'}, seed {settings.seed}",
        f"- **Validation accuracy of the kept checkpoint:** {best}{epoch}",
        f"- **Run:** {run.status}{f' — {message}' if message else ''}",
        *([f"\n**What went wrong in training**\n\n{found}\n"] if found else []),
        f"\n**Preprocessing**\n\n{steps}\n",
    ]
    return "\n".join(lines)


# ── ImageNet weights in torch's hub cache ───────────────────────────────────────────────────────────────────────


def _checkpoint_path(weights: torchvision.models.WeightsEnum) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` keeps these weights (honours ``TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _download(url: str, path: Path, progress: ByteProgress | None, name: str | None = None) -> None:
    """Download ``url`` to ``path`` (:func:`~cnn_explorer.downloads.download`), checking the hash prefix in the file
    name as torch.hub does; a failure is a :class:`ModelUnavailable` that says why and what to do.

    Args:
        name: The model the weights are for, named in the messages (default: the file's name).
    """
    match = _HASH_IN_NAME.search(path.name)
    try:
        downloads.download(url, path, progress, sha256_prefix=match.group(1) if match else None)
    except downloads.DownloadError as err:
        what = f"{name}'s weights" if name else f"The weights {path.name}"
        fix = (
            f"start the app online without {downloads.OFFLINE_VARIABLE} set"
            if isinstance(err, downloads.Offline)
            else "connect to the internet and choose it again"
        )
        raise ModelUnavailable(
            f"{what} are not on this computer and could not be downloaded ({err.reason}). To use it: {fix}, or put "
            f"the file {path.name} (from {url}) in {path.parent}."
        ) from err
