"""Executing one training run from its spec: data, model, the loop, and every file the training page reads.

One code path for the background worker (``python -m cnn_explorer worker RUN_ID``, started by :mod:`jobs`) and the
command line's foreground ``train``. The run must already be "running" in the store (claimed); :func:`execute` ends
it as done, stopped or failed and never raises for what happens inside the run: a bad dataset, an impossible layer
stack, a diverging loss or a bug all become a failed run with a message, keeping the checkpoints already written.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from cnn_explorer import architectures, data, diagnostics, ood, runs, zoo
from cnn_explorer.attribution import cam_layers, default_cam_layer, explain
from cnn_explorer.layers import capture_activations, list_layers
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.progress import Cancelled, StopFn
from cnn_explorer.runspec import ModelSpec, RunSpec, Settings
from cnn_explorer.sources.imagenet import transfer_base
from cnn_explorer.training import (
    BatchProgress,
    EpochResult,
    Interrupted,
    TrainConfig,
    TrainingDiverged,
    fit,
    predict_dataset,
)

__all__ = [
    "Outcome",
    "build_module",
    "dead_relus",
    "describe_architecture",
    "execute",
    "train_config",
    "validation_set",
]

PROGRESS_EVERY_S = 0.5  # progress.json at most this often
STOP_POLL_S = 0.1  # the stop flag is looked at this often (a clock read per batch in between)
LOG_EVERY_S = 10.0  # a batch progress line in the log at most this often
RESULTS_BUDGET_AFTER_STOP_S = 2.0  # a stopped run computes its results only if that is quick
# Time-lapse frames stay small: at most this many feature maps and first-layer filters per frame.
TIMELAPSE_MAX_MAPS = 32
TIMELAPSE_MAX_FILTERS = 64
# Dead ReLUs are counted on at most this many validation images, in batches of this many (a transfer run's
# ResNet at 224 × 224 takes seconds per hundred images on a laptop's CPU).
DEAD_RELU_IMAGES = 1000
DEAD_RELU_BATCH = 64

LogFn = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    """How a run ended.

    Attributes:
        run_id: The run.
        status: ``"done"``, ``"stopped"`` or ``"failed"``.
        message: Why it stopped or failed (or how early stopping ended it); "" for a plain finish.
        history: One result per completed epoch.
        best_epoch: The epoch of ``best.pt`` (None: no epoch completed).
        seconds: Wall time from start to end.
    """

    run_id: str
    status: str
    message: str
    history: list[EpochResult] = field(default_factory=list)
    best_epoch: int | None = None
    seconds: float = 0.0

    @property
    def best(self) -> EpochResult | None:
        return None if self.best_epoch is None else self.history[self.best_epoch - 1]

    def metrics(self) -> dict[str, Any]:
        """The final metrics as JSON-able data (``val_accuracy`` and ``val_loss`` of the best checkpoint)."""
        best, last = self.best, (self.history[-1] if self.history else None)
        return {
            "run_id": self.run_id,
            "model": f"run-{self.run_id}",
            "status": self.status,
            "message": self.message,
            "epochs": len(self.history),
            "best_epoch": self.best_epoch,
            "val_accuracy": best.val_accuracy if best else None,
            "val_loss": best.val_loss if best else None,
            "train_accuracy": last.train_accuracy if last else None,
            "train_loss": last.train_loss if last else None,
            "images_per_second": last.images_per_second if last else None,
            "seconds": round(self.seconds, 3),
        }


class _StopCheck:
    """``should_stop`` for the loop: the run's stop flag (looked at every ``STOP_POLL_S``) or the caller's own;
    ``on_poll`` runs at each look."""

    def __init__(self, run_id: str, extra: StopFn | None, on_poll: Callable[[], None] | None = None) -> None:
        self.run_id, self.extra, self.on_poll = run_id, extra, on_poll
        self.next_look, self.requested = 0.0, False

    def __call__(self) -> bool:
        if self.requested:
            return True
        now = time.monotonic()
        if now >= self.next_look:
            self.next_look = now + STOP_POLL_S
            if self.on_poll is not None:
                self.on_poll()
            self.requested = runs.stop_requested(self.run_id) is not None or bool(self.extra and self.extra())
        return self.requested

    def check(self) -> None:
        self.next_look = 0.0
        if self():
            raise Cancelled("Stopped before training began.")  # asked for outside the loop (data, model)


def execute(
    run_id: str | int,
    *,
    log: LogFn | None = None,
    should_stop: StopFn | None = None,
    on_poll: Callable[[], None] | None = None,
) -> Outcome:
    """Train a claimed ("running") run to its end, writing metrics, progress, checkpoints, time-lapse and results.

    Args:
        run_id: The run; its status must be "running".
        log: Receives progress lines (the worker's go to ``worker.log``, the command line's to the terminal).
        should_stop: Polled with the run's stop flag; True stops the run (the command line's Ctrl-C).
        on_poll: Called whenever the stop flag is looked at (every ``STOP_POLL_S`` while training): the worker
            adjusts its torch threads there (:class:`~cnn_explorer.jobs.CoreShare`).

    Returns:
        The outcome, also recorded in the store (status, message, best validation accuracy).

    Raises:
        runs.RunError: The run is not "running".
    """
    run = runs.get_run(run_id)
    if run.status != "running":
        raise runs.RunError(f"Run {run.id} is {run.status}, not running: claim it before executing it.")
    log = log or (lambda message: None)
    started = time.perf_counter()
    stop = _StopCheck(run.id, should_stop, on_poll)
    session = _Session(run.id, run.spec, log, stop)
    try:
        status, message = session.run()
    except Cancelled as stopped:
        status, message = "stopped", str(stopped)
    except TrainingDiverged as err:
        status, message = "failed", str(err)
        session.results_after_failure()
    except (data.DatasetUnavailable, data.DatasetError, architectures.StackError, zoo.ModelUnavailable) as err:
        status, message = "failed", str(err)
    except Exception as err:  # a bug or an exhausted machine: the run fails, the process that runs it does not
        traceback.print_exc(file=sys.stderr)
        status = "failed"
        message = f"The run crashed: {type(err).__name__}: {err}. The details are in {run.folder / 'worker.log'}."
    finally:
        runs.clear_stop(run.id)
    outcome = Outcome(run.id, status, message, session.history, session.best_epoch, time.perf_counter() - started)
    # A stopped run's status was recorded the moment it stopped (see _Session.run); expect="running" keeps that.
    runs.set_status(run.id, status, message=message, expect="running")
    with contextlib.suppress(FileNotFoundError):  # the run was deleted while it finished
        runs.write_progress(run.id, {"phase": status, "message": message})
    log(f"run {run.id}: {status}. {message}".rstrip())
    return outcome


def validation_set(run_id: str | int) -> data.LabelledImages:
    """The run's validation images rebuilt from its spec exactly as its worker saw them: item ``i`` is row ``i`` of
    ``results.pt`` (``.image(i)`` is the picture to show). Deterministic, but it loads the dataset: cache it."""
    run = runs.get_run(run_id)
    base = None
    if run.spec.model.kind == "transfer":  # the run kept its base model's channels and normalization
        base = Preprocess.from_dict(runs.read_model_info(run.id)["preprocess"])
    return data.prepare(run.spec.data, run.spec.settings.seed, base_preprocess=base).val


def train_config(settings: Settings) -> TrainConfig:
    """The loop's configuration for a run's settings."""
    return TrainConfig(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        optimizer=settings.optimizer,
        weight_decay=settings.weight_decay,
        beta2=settings.beta2,
        seed=settings.seed,
        patience=settings.patience,
        warmup=settings.warmup,
        precision=settings.precision,
        # bfloat16's speed comes from oneDNN's channels-last kernels: in the default layout half of it is lost.
        channels_last=settings.precision == "bfloat16",
    )


def build_module(spec: ModelSpec, build: dict[str, Any], *, pretrained: bool = True) -> nn.Module:
    """The run's network from its model spec and the build arguments recorded in ``model.json`` (``pretrained``
    False: a transfer base's architecture without its weights, to load a checkpoint into)."""
    base = transfer_base(spec.base, pretrained=pretrained) if spec.kind == "transfer" else None
    return architectures.build_model(spec, **build, base=base)


def describe_architecture(spec: ModelSpec) -> str:
    """A few words for pickers: ``"CNN: 4 conv, 1 linear"`` or ``"resnet18, new head (head trained)"``."""
    if spec.kind == "transfer":
        trained = {"head": "head trained", "last": f"last {spec.last_n} trained", "all": "all trained"}
        return f"{spec.base}, new head ({trained.get(spec.trainable, spec.trainable)})"
    convs = sum(layer.type == "conv" for layer in spec.layers)
    linears = sum(layer.type == "linear" for layer in spec.layers) + 1  # the builder appends the classifier
    return f"CNN: {convs} conv, {linears} linear"


# ── one run ─────────────────────────────────────────────────────────────────────────────────────────────────────


class _Session:
    """The state of one executing run, so the failure paths can still use what was built."""

    def __init__(self, run_id: str, spec: RunSpec, log: LogFn, stop: _StopCheck) -> None:
        self.run_id, self.spec, self.log, self.stop = run_id, spec, log, stop
        self.prepared: Any = None
        self.module: nn.Module | None = None
        self.loaded: zoo.LoadedModel | None = None
        self.history: list[EpochResult] = []
        self.best_epoch: int | None = None
        self.probe: _Probe | None = None
        self.last_log = self.last_prepare_report = 0.0

    def run(self) -> tuple[str, str]:
        spec, settings = self.spec, self.spec.settings
        self.stop.check()
        self._progress({"phase": "preparing data"})
        # A transfer run feeds its base model inputs like the ones it learnt on (channels, normalization).
        base = transfer_base(spec.model.base, self._on_prepare) if spec.model.kind == "transfer" else None
        self.prepared = prepared = data.prepare(
            spec.data,
            settings.seed,
            settings.augmentation,
            progress=self._on_prepare,
            base_preprocess=base.preprocess if base is not None else None,
        )
        # Drawn or decoded once, in every core's process: a fixed set of 11,000 shapes reads in half the time
        # (2 cores), and the first epoch no longer waits on them batch by batch.
        data.load_all([prepared.train, prepared.val], processes=os.cpu_count() or 1, progress=self._on_load)
        self.stop.check()
        self._progress({"phase": "building the model"})
        build = {
            "in_channels": prepared.input_size[0],
            "input_size": prepared.input_size[1],
            "num_classes": len(prepared.class_names),
            "dropout": settings.dropout,
        }
        torch.manual_seed(settings.seed)
        self.module = module = architectures.build_model(spec.model, **build, base=base)
        loaded = zoo.LoadedModel(
            name=f"run-{self.run_id}",
            module=module,
            input_size=tuple(prepared.input_size),
            class_names=tuple(prepared.class_names),
            preprocess=prepared.preprocess,
            summary=spec.name,
            card=spec.name,
        )
        self.loaded = loaded
        self.probe = _Probe.of(loaded, prepared.val)
        runs.write_model_info(self.run_id, self._model_info(build, module))
        self.stop.check()
        if self.probe is not None:
            runs.save_timelapse(self.run_id, 0, self.probe.frame(0))  # the untrained network: the slider's start
        config = train_config(settings)
        self.log(
            f"run {self.run_id}: {spec.name} · {len(prepared.train)} training / {len(prepared.val)} validation "
            f"images · {sum(p.numel() for p in module.parameters()):,} parameters"
        )
        result = fit(
            module,
            prepared.train_for_epoch,
            config,
            prepared.val,
            on_epoch=self._on_epoch,
            on_batch=self._on_batch,
            should_stop=self.stop,
            progress_every=PROGRESS_EVERY_S,
            train_mode=architectures.train_mode,
        )
        self.best_epoch = result.best_epoch
        epochs = len(result.history)
        if result.reason == "stopped":
            message = f"Stopped after {epochs} complete epoch{'s' * (epochs != 1)}."
            if result.best_epoch is not None:
                message += f" The best checkpoint is epoch {result.best_epoch}."
            runs.set_status(self.run_id, "stopped", message=message, expect="running")  # within the 2 s promised
            deadline = time.monotonic() + RESULTS_BUDGET_AFTER_STOP_S
            self._write_results(lambda: time.monotonic() > deadline)
            return "stopped", message
        self._progress({"phase": "computing results"})
        self._write_results(None)
        ood.fit_run(self.run_id, loaded, prepared, spec.data.kind, self.log)  # the "unlike its data" check
        message = ""
        if result.reason == "early_stopped":
            message = (
                f"Stopped early after epoch {epochs}: the validation loss did not improve for {settings.patience} "
                f"epochs. Kept epoch {result.best_epoch}."
            )
        # What went wrong, in the words the training view and the model card use too.
        return "done", " ".join(filter(None, (message, diagnostics.summary(diagnostics.run_diagnostics(self.run_id)))))

    def results_after_failure(self) -> None:
        """After a divergence: results of the best checkpoint written so far, if any (best effort)."""
        if self.module is None or self.best_epoch is None:
            return
        try:
            self.module.load_state_dict(runs.load_checkpoint(self.run_id, "best"))
            deadline = time.monotonic() + RESULTS_BUDGET_AFTER_STOP_S
            self._write_results(lambda: time.monotonic() > deadline)
        except Exception:  # the run has failed already; its message is the divergence, not this
            traceback.print_exc(file=sys.stderr)

    # ── callbacks ───────────────────────────────────────────────────────────────────────────────────────────────

    def _on_prepare(self, done: int, total: int | None) -> None:
        """A torchvision download's progress; also where a stop asked for during a long download is seen."""
        self.stop.check()
        now = time.monotonic()
        if now - self.last_prepare_report >= PROGRESS_EVERY_S:
            self.last_prepare_report = now
            self._progress({"phase": "downloading data", "bytes": done, "total_bytes": total})

    def _on_load(self, done: int, total: int) -> None:
        self.stop.check()
        now = time.monotonic()
        if now - self.last_prepare_report >= PROGRESS_EVERY_S or done == total:
            self.last_prepare_report = now
            self._progress({"phase": "reading images", "images": done, "total_images": total})

    def _on_batch(self, progress: BatchProgress) -> None:
        self._progress({"phase": "training", **asdict(progress)})
        now = time.monotonic()
        if now - self.last_log >= LOG_EVERY_S:
            self.last_log = now
            self.log(
                f"  epoch {progress.epoch}/{progress.epochs} batch {progress.batch}/{progress.batches} · "
                f"loss {progress.loss:.4f} · {progress.images_per_second:.0f} images/s · "
                f"{progress.seconds_left:.0f} s left"
            )

    def _on_epoch(self, result: EpochResult) -> None:
        assert self.module is not None
        self.history.append(result)
        runs.append_metrics(self.run_id, {**asdict(result), "time": time.time()})
        state = self.module.state_dict()
        runs.save_checkpoint(self.run_id, "last", state)
        if result.best:
            runs.save_checkpoint(self.run_id, "best", state)
            runs.set_best_val_accuracy(self.run_id, result.val_accuracy)
            self.best_epoch = result.epoch
        if self.probe is not None:
            runs.save_timelapse(self.run_id, result.epoch, self.probe.frame(result.epoch))
        val = "" if result.val_loss is None else f" · val loss {result.val_loss:.4f} acc {result.val_accuracy:.2%}"
        self.log(
            f"epoch {result.epoch}/{self.spec.settings.epochs}: loss {result.train_loss:.4f} "
            f"acc {result.train_accuracy:.2%}{val} · {result.images_per_second:.0f} images/s · "
            f"{result.seconds:.1f} s{' · best' if result.best else ''}"
        )

    # ── files ───────────────────────────────────────────────────────────────────────────────────────────────────

    def _progress(self, progress: dict[str, Any]) -> None:
        runs.write_progress(self.run_id, progress)

    def _model_info(self, build: dict[str, Any], module: nn.Module) -> dict[str, Any]:
        prepared = self.prepared
        return {
            "class_names": list(prepared.class_names),
            "input_size": list(prepared.input_size),
            "preprocess": prepared.preprocess.to_dict(),
            "model": asdict(self.spec.model),
            "build": build,
            "architecture": describe_architecture(self.spec.model),
            "parameters": sum(p.numel() for p in module.parameters()),
            "trainable_parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
            "data": {
                "train": len(prepared.train),
                "val": len(prepared.val),
                "counts": _jsonable(prepared.counts),
                "description": prepared.description,
            },
            "timelapse": None if self.probe is None else self.probe.layers(),
            "torch": torch.__version__,
        }

    def _write_results(self, should_stop: StopFn | None) -> None:
        if self.module is None or self.best_epoch is None or not len(self.prepared.val):
            return
        try:
            labels, probabilities = predict_dataset(self.module, self.prepared.val, should_stop=should_stop)
        except Interrupted:
            self.log(f"run {self.run_id}: results skipped (the validation pass did not fit in the time left)")
            return
        classes = len(self.prepared.class_names)
        right = probabilities.argmax(1) == labels
        per_class = torch.tensor(
            [right[labels == c].float().mean().item() if (labels == c).any() else math.nan for c in range(classes)]
        )
        best = self.history[self.best_epoch - 1]
        # Measured only for a full result (a stopped run has 2 s for all of it).
        dead = dead_relus(self.loaded, self.prepared.val) if should_stop is None and self.loaded is not None else None
        runs.save_results(
            self.run_id,
            {
                "labels": labels,
                "probabilities": probabilities,
                "per_class_accuracy": per_class,
                "class_names": list(self.prepared.class_names),
                "val_accuracy": right.float().mean().item(),
                "val_loss": best.val_loss,
                "epoch": self.best_epoch,
                "dead_relus": dead,
            },
        )


def dead_relus(
    model: zoo.LoadedModel, dataset: Any, max_images: int = DEAD_RELU_IMAGES, batch_size: int = DEAD_RELU_BATCH
) -> dict[str, list[int]]:
    """The ReLU units that never fired on the first ``max_images`` images of ``dataset``: ReLU layer (as
    :func:`~cnn_explorer.layers.list_layers` names it) → ``[dead units, units]``.

    A unit is one channel of a feature map (dead: never above zero at any position of any image) or one feature of
    a flat output. The outputs come from :func:`~cnn_explorer.layers.capture_activations` (the module's eval mode,
    its lock held, its hooks removed after each batch).
    """
    names = [layer.name for layer in list_layers(model) if layer.kind == "ReLU"]
    count = min(len(dataset), max_images)
    fired: dict[str, Tensor] = {}
    for start in range(0, count if names else 0, batch_size):
        indices = list(range(start, min(start + batch_size, count)))
        x = dataset.batch(indices)[0] if callable(getattr(dataset, "batch", None)) else _stack(dataset, indices)
        for name, output in capture_activations(model, x, names).items():
            positive = output > 0
            alive = positive.flatten(2).any(2).any(0) if positive.dim() > 2 else positive.any(0)
            fired[name] = alive | fired[name] if name in fired else alive
    return {name: [int((~alive).sum()), alive.numel()] for name, alive in fired.items()}


def _stack(dataset: Any, indices: list[int]) -> Tensor:
    return torch.stack([dataset[i][0] for i in indices])


# ── the time-lapse probe ────────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class _Probe:
    """The fixed image the time-lapse follows (the first validation image) and the layers it is seen at."""

    model: zoo.LoadedModel
    x: Tensor
    label: int
    filters_layer: str | None
    features_layer: str | None
    gradcam_layer: str | None

    @staticmethod
    def of(model: zoo.LoadedModel, val: Any) -> _Probe | None:
        if not len(val):
            return None
        x, label = val[0]
        # conv layers in execution order, each called once per forward (cam_layers also lists activated maps)
        convs = [name for name in cam_layers(model) if isinstance(model.module.get_submodule(name), nn.Conv2d)]
        spatial = [name for name, (h, w) in cam_layers(model).items() if h * w > 1]
        return _Probe(
            model=model,
            x=x.unsqueeze(0),
            label=int(label),
            filters_layer=convs[0] if convs else None,
            features_layer=convs[len(convs) // 2] if convs else None,
            gradcam_layer=default_cam_layer(model) if spatial else None,
        )

    def layers(self) -> dict[str, Any]:
        return {
            "probe_index": 0,
            "label": self.label,
            "filters_layer": self.filters_layer,
            "features_layer": self.features_layer,
            "gradcam_layer": self.gradcam_layer,
        }

    def frame(self, epoch: int) -> dict[str, Any]:
        module = self.model.module
        modes = [(m, m.training) for m in module.modules()]
        module.eval()
        try:
            with torch.no_grad():
                probabilities = torch.softmax(module(self.x), dim=1)[0]
            frame: dict[str, Any] = {"epoch": epoch, **self.layers(), "probabilities": probabilities}
            if self.filters_layer is not None:
                weight = module.get_submodule(self.filters_layer).weight
                frame["filters"] = weight.detach()[:TIMELAPSE_MAX_FILTERS].clone()
            if self.features_layer is not None:
                maps = capture_activations(self.model, self.x, [self.features_layer])[self.features_layer]
                frame["features"] = maps[0, :TIMELAPSE_MAX_MAPS].clone()
            if self.gradcam_layer is not None:
                cam = explain(self.model, self.x, "gradcam", target=self.label, layer=self.gradcam_layer)
                frame["gradcam"] = cam.heatmap.detach().clone()
        finally:
            for m, training in modes:
                m.training = training
            # Grad-CAM backpropagated into the weights' .grad; the next step zeroes them before its backward, but a
            # clean slate costs nothing and keeps the loop's numbers independent of the time-lapse.
            for p in module.parameters():
                p.grad = None
        return frame


def _jsonable(value: Any) -> Any:
    """Counts as plain JSON (tuples, numpy or tensor numbers, non-string keys made strings)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
