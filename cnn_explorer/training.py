"""A pure training loop: no UI, no threads, no files. Callers watch it through callbacks and stop it with a flag.

The data for each epoch comes from a function of the epoch number, so synthetic datasets can be drawn fresh
every epoch (free augmentation) while a fixed dataset simply returns itself.

:func:`fit` is the loop: per-batch progress (images/s, time left), a ``should_stop`` polled before every batch,
early stopping on the validation loss with the best weights restored, and divergence (NaN/inf) raised with the
step it happened at. Per batch it costs one clock read and one comparison on top of a plain PyTorch loop; the
progress callback is throttled by time, so it costs nothing however small the batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from cnn_explorer.fusion import training_view

__all__ = [
    "OPTIMIZERS",
    "PRECISIONS",
    "STOP_REASONS",
    "BatchProgress",
    "EpochResult",
    "FitResult",
    "Interrupted",
    "TrainConfig",
    "TrainingDiverged",
    "evaluate",
    "fit",
    "gradient_norms",
    "native_bfloat16",
    "predict_dataset",
    "train",
]

#: Optimizer name → ``(parameters, lr, weight_decay, beta2)`` → optimizer; SGD ignores ``beta2``.
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, lr, weight_decay, beta2: torch.optim.Adam(
        params, lr=lr, weight_decay=weight_decay, betas=(0.9, beta2)
    ),
    "adamw": lambda params, lr, weight_decay, beta2: torch.optim.AdamW(
        params, lr=lr, weight_decay=weight_decay, betas=(0.9, beta2)
    ),
    "sgd": lambda params, lr, weight_decay, beta2: torch.optim.SGD(
        params, lr=lr, momentum=0.9, weight_decay=weight_decay
    ),
}

#: Arithmetic of the training passes: plain float32, or bfloat16 autocast (weights and optimizer stay float32).
PRECISIONS = ("float32", "bfloat16")

#: Why :func:`fit` returned: every epoch ran, early stopping ended it, ``on_epoch`` returned True, or
#: ``should_stop`` said so (mid-epoch: the unfinished epoch is not in the history).
STOP_REASONS = ("completed", "early_stopped", "callback", "stopped")

# Validation costs about a third of training per image (forward only); used for the time-left estimate until the
# first validation pass has been timed.
_EVAL_COST_RATIO = 1 / 3
# Validation batch: on TinyVGG at 64×64, float32 channels-last, 1,000 images take 150 ms in batches of 128 and
# 320 ms in batches of 256 (the activations of 256 outgrow the cache).
_EVAL_BATCH = 128
# A validation loss must fall by more than this (relative) to count as better, so noise does not reset patience.
_MIN_IMPROVEMENT = 1e-4


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite.

    Attributes:
        epoch: 1-based epoch it happened in.
        step: 1-based batch of that epoch (None: during validation).
    """

    def __init__(self, message: str, epoch: int, step: int | None) -> None:
        super().__init__(message)
        self.epoch, self.step = epoch, step


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Attributes:
        epochs: Passes over the training data.
        batch_size: Images per optimizer step.
        lr: Peak learning rate (cosine-annealed to zero over the run).
        optimizer: A key of :data:`OPTIMIZERS`.
        weight_decay: L2 penalty.
        beta2: Adam's and AdamW's decay of the squared-gradient average (PyTorch's default 0.999). 0.99 forgets
            the large gradients of the first steps sooner, so the step size grows back sooner; SGD ignores it.
        seed: Seeds shuffling (weight initialization is the caller's: seed torch before building the model).
        patience: With validation data, stop after this many epochs without a lower validation loss (0: never).
        warmup: Share of the steps over which the learning rate climbs linearly from zero to ``lr`` before the
            cosine descent (a one-cycle schedule); a warm-up lets a higher peak start without diverging. 0: the
            cosine starts at ``lr`` on the first step.
        precision: A key of :data:`PRECISIONS`. ``"bfloat16"`` runs the training forward and backward passes in
            bfloat16 where the CPU computes it natively (AVX512-BF16 or AMX, e.g. Xeon Sapphire Rapids: about 2×
            faster for small CNNs) and in float32 elsewhere (emulated bfloat16 would be slower); validation is
            always float32, as the model will run.
        channels_last: Feed training and validation batches in channels-last memory layout (oneDNN's fast
            convolution kernels on CPU, bfloat16 ones above all; float32 validation of TinyVGG: 1.7× faster). The
            arithmetic is the same to float rounding.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    beta2: float = 0.999
    seed: int = 0
    patience: int = 0
    warmup: float = 0.0
    precision: str = "float32"
    channels_last: bool = False


@dataclass(frozen=True)
class EpochResult:
    """What one epoch achieved.

    Attributes:
        epoch: 1-based.
        train_loss: Mean cross-entropy over the epoch's batches (while the weights changed).
        train_accuracy: Share of training images classified right, as the batches went.
        val_loss: Mean cross-entropy on the validation data after the epoch (None without validation data).
        val_accuracy: Validation accuracy after the epoch.
        seconds: Wall time of the epoch, validation included.
        images_per_second: Training images per second (validation excluded).
        lr: Learning rate of the epoch's last step.
        best: This epoch has the lowest validation loss so far (its weights are the ones kept).
        first_loss: Loss of the epoch's first batch (in epoch 1: the untrained network's).
        peak_loss: Largest batch loss of the epoch.
        grad_norms: Each trained layer's gradient norm on the epoch's last batch (dotted path → L2 norm), measured
            once an epoch so it costs nothing per step.
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    images_per_second: float = 0.0
    lr: float = 0.0
    best: bool = False
    first_loss: float | None = None
    peak_loss: float | None = None
    grad_norms: dict[str, float] | None = None


@dataclass(frozen=True)
class BatchProgress:
    """Where a running :func:`fit` is, reported at most every ``progress_every`` seconds and after each epoch's
    last batch.

    Attributes:
        epoch: 1-based epoch.
        epochs: Epochs planned.
        batch: Batches done in this epoch.
        batches: Batches in this epoch.
        images_per_second: Training throughput over this epoch so far.
        seconds_left: Estimated time to the end of the last epoch, validation included.
        loss: Mean training loss of this epoch so far.
    """

    epoch: int
    epochs: int
    batch: int
    batches: int
    images_per_second: float
    seconds_left: float
    loss: float


@dataclass(frozen=True)
class FitResult:
    """How :func:`fit` ended.

    Attributes:
        history: One result per completed epoch.
        reason: One of :data:`STOP_REASONS`.
        best_epoch: The epoch whose weights the module holds on return (lowest validation loss); None without
            validation data or before the first epoch completed (the module then holds its latest weights).
    """

    history: list[EpochResult]
    reason: str
    best_epoch: int | None

    @property
    def best(self) -> EpochResult | None:
        return None if self.best_epoch is None else self.history[self.best_epoch - 1]


class Interrupted(Exception):
    """``should_stop`` returned True inside an evaluation pass (:func:`fit` turns it into the "stopped" reason)."""


def fit(
    module: nn.Module,
    data_for_epoch: Callable[[int], Dataset],
    config: TrainConfig,
    val_data: Dataset | None = None,
    *,
    on_epoch: Callable[[EpochResult], bool | None] | None = None,
    on_batch: Callable[[BatchProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress_every: float = 0.5,
    train_mode: Callable[[nn.Module], Any] | None = None,
) -> FitResult:
    """Train ``module`` in place with cross-entropy; with ``val_data``, keep the weights of the best epoch.

    Args:
        module: The network; left in eval mode. Only parameters with ``requires_grad`` are trained.
        data_for_epoch: Epoch number (0-based) → that epoch's training dataset of ``(tensor, label)``.
        config: The settings.
        val_data: Evaluated after every epoch when given; the module ends with the weights of the epoch with the
            lowest validation loss (early stopping with ``config.patience`` counts from it).
        on_epoch: Called after every epoch; returning True stops training.
        on_batch: Called with the progress at most every ``progress_every`` seconds and at each epoch's end.
        should_stop: Polled before every batch and every validation batch; True stops at once, dropping the
            unfinished epoch.
        progress_every: Seconds between ``on_batch`` calls.
        train_mode: Puts the module in training mode at each epoch's start (default ``module.train()``;
            ``architectures.train_mode`` keeps frozen batch norm in eval mode).

    Raises:
        TrainingDiverged: The training or validation loss became NaN or infinite.
        ValueError: Unknown optimizer, or no trainable parameters.
    """
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {config.optimizer!r}. Optimizers: {', '.join(OPTIMIZERS)}.")
    if config.precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {config.precision!r}. Precisions: {', '.join(PRECISIONS)}.")
    if not 0.0 <= config.warmup < 1.0:
        raise ValueError(f"warmup is a share of the steps, from 0 up to (not including) 1; got {config.warmup}.")
    parameters = [p for p in module.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("The model has no trainable parameters: unfreeze at least its last layer.")
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = OPTIMIZERS[config.optimizer](parameters, config.lr, config.weight_decay, config.beta2)
    stop = should_stop or (lambda: False)
    low_precision = config.precision == "bfloat16" and native_bfloat16()
    history: list[EpochResult] = []
    best_loss, best_state, best_epoch, waited = math.inf, None, None, 0
    reason = "completed"
    # For the time-left estimate: training seconds and steps so far, and the last validation pass's seconds.
    train_seconds, steps_done, val_seconds = 0.0, 0, None
    network = training_view(module)  # the same layers, computing the same values in fewer passes
    try:
        for epoch in range(config.epochs):
            started = time.perf_counter()
            dataset = data_for_epoch(epoch)
            if len(dataset) == 0:
                raise ValueError(f"The training data of epoch {epoch + 1} is empty: give it at least one image.")
            # A last batch of one image breaks batch norm in training mode; dropping it costs one image an epoch.
            drop_last = len(dataset) % config.batch_size == 1 and len(dataset) > 1
            loader = _loader(dataset, config.batch_size, generator, drop_last)
            batches = len(loader)
            total_steps = config.epochs * batches
            (train_mode or nn.Module.train)(module)
            total_loss, correct, seen = 0.0, torch.zeros((), dtype=torch.long), 0
            first_loss, peak_loss, grad_norms = None, -math.inf, None
            epoch_started = last_report = time.perf_counter()
            for step, (x, y) in enumerate(loader):
                if stop():
                    reason = "stopped"
                    return _finish(module, history, reason, best_state, best_epoch)
                lr = _set_lr(optimizer, config.lr, epoch * batches + step, total_steps, config.warmup)
                x = _layout(x, config.channels_last)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low_precision):
                    logits = network(x)
                loss = nn.functional.cross_entropy(logits.float(), y)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise _diverged(loss_value, x, lr, epoch + 1, step + 1)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if step + 1 == batches:  # once an epoch: the diagnostics' per-layer gradient norms
                    grad_norms = gradient_norms(module)
                optimizer.step()
                if first_loss is None:
                    first_loss = loss_value
                peak_loss = max(peak_loss, loss_value)
                total_loss += loss_value * len(y)
                correct += (logits.detach().argmax(1) == y).sum()
                seen += len(y)
                now = time.perf_counter()
                if on_batch is not None and (now - last_report >= progress_every or step + 1 == batches):
                    last_report = now
                    elapsed = now - epoch_started
                    done = steps_done + step + 1
                    per_step = (train_seconds + elapsed) / done
                    per_val = val_seconds if val_seconds is not None else _estimate_val(val_data, seen, elapsed)
                    on_batch(
                        BatchProgress(
                            epoch=epoch + 1,
                            epochs=config.epochs,
                            batch=step + 1,
                            batches=batches,
                            images_per_second=seen / elapsed if elapsed > 0 else 0.0,
                            seconds_left=per_step * (total_steps - done) + per_val * (config.epochs - epoch),
                            loss=total_loss / seen,
                        )
                    )
            train_elapsed = time.perf_counter() - epoch_started
            train_seconds += train_elapsed
            steps_done += batches
            val_loss = val_accuracy = None
            if val_data is not None:
                val_started = time.perf_counter()
                val_loss, val_accuracy = _evaluate(network, val_data, _EVAL_BATCH, stop, config.channels_last)
                val_seconds = time.perf_counter() - val_started
                if not math.isfinite(val_loss):
                    raise TrainingDiverged(
                        f"The validation loss became {val_loss} after epoch {epoch + 1}. Lower the learning rate "
                        f"(now {config.lr:g}) and try again.",
                        epoch + 1,
                        None,
                    )
            is_best = val_loss is not None and val_loss < best_loss * (1 - _MIN_IMPROVEMENT)
            if is_best:
                best_loss, best_epoch, waited = val_loss, epoch + 1, 0
                best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            else:
                waited += 1
            result = EpochResult(
                epoch=epoch + 1,
                train_loss=total_loss / max(seen, 1),
                train_accuracy=correct.item() / max(seen, 1),
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                seconds=time.perf_counter() - started,
                images_per_second=seen / train_elapsed if train_elapsed > 0 else 0.0,
                lr=lr if batches else 0.0,
                best=is_best,
                first_loss=first_loss,
                peak_loss=peak_loss if seen else None,
                grad_norms=grad_norms,
            )
            history.append(result)
            if on_epoch is not None and on_epoch(result):
                reason = "callback"
                break
            if val_data is not None and config.patience and waited >= config.patience:
                reason = "early_stopped"
                break
    except Interrupted:
        reason = "stopped"
    return _finish(module, history, reason, best_state, best_epoch)


def train(
    module: nn.Module,
    data_for_epoch: Callable[[int], Dataset],
    config: TrainConfig,
    val_data: Dataset | None = None,
    on_epoch: Callable[[EpochResult], bool | None] | None = None,
) -> list[EpochResult]:
    """:func:`fit` without the extras: train ``module`` in place and return one result per completed epoch.

    Raises:
        TrainingDiverged: The loss became NaN or infinite.
    """
    return fit(module, data_for_epoch, config, val_data, on_epoch=on_epoch).history


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), so ``precision="bfloat16"`` speeds up."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # torch's own test for oneDNN's bf16 kernels
    except (AttributeError, RuntimeError):
        return False


def gradient_norms(module: nn.Module) -> dict[str, float]:
    """The L2 norm of each layer's gradient as it stands (all its parameters together), keyed by the layer's dotted
    path, in the order of ``module.named_parameters()``; layers without a gradient (frozen) are left out."""
    squares: dict[str, float] = {}
    for name, parameter in module.named_parameters():
        if parameter.grad is not None:
            layer = name.rpartition(".")[0] or name
            squares[layer] = squares.get(layer, 0.0) + float(parameter.grad.detach().double().pow(2).sum())
    return {layer: math.sqrt(square) for layer, square in squares.items()}


@torch.no_grad()
def evaluate(module: nn.Module, dataset: Dataset, batch_size: int = _EVAL_BATCH) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``module`` on ``dataset`` (eval mode; the modes are restored)."""
    return _evaluate(module, dataset, batch_size, lambda: False)


@torch.no_grad()
def predict_dataset(
    module: nn.Module, dataset: Dataset, batch_size: int = _EVAL_BATCH, should_stop: Callable[[], bool] | None = None
) -> tuple[Tensor, Tensor]:
    """Labels ``[N]`` and softmax probabilities ``[N, classes]`` of ``module`` on ``dataset``, in dataset order
    (eval mode; the mode is restored).

    Raises:
        Interrupted: ``should_stop`` (polled before every batch) returned True.
    """
    labels, probabilities = [], []
    with _eval_mode(module):
        for x, y in _loader(dataset, batch_size):
            if should_stop is not None and should_stop():
                raise Interrupted
            labels.append(y)
            probabilities.append(torch.softmax(module(x), dim=1))
    return torch.cat(labels), torch.cat(probabilities)


# ── internals ───────────────────────────────────────────────────────────────────────────────────────────────────


class _Batches(Dataset):
    """A dataset that assembles whole batches (``batch(indices)``), indexed by a batch sampler's index lists."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        return self.dataset.batch(indices)


def _loader(
    dataset: Dataset, batch_size: int, generator: torch.Generator | None = None, drop_last: bool = False
) -> DataLoader:
    """Batches of ``dataset``, shuffled by ``generator`` (None: in order). A dataset with a ``batch(indices)``
    method (:class:`~cnn_explorer.data.LabelledImages`) builds each batch in one call, in the same order the plain
    loader would draw."""
    if not callable(getattr(dataset, "batch", None)):
        return DataLoader(dataset, batch_size, shuffle=generator is not None, generator=generator, drop_last=drop_last)
    order = RandomSampler(dataset, generator=generator) if generator is not None else SequentialSampler(dataset)
    # The loader draws its workers' base seed from ``generator`` too, as the plain one does: the same draws in the
    # same order, so both give the same batches and leave the same random state.
    sampler = BatchSampler(order, batch_size, drop_last)
    return DataLoader(_Batches(dataset), sampler=sampler, batch_size=None, generator=generator)


@torch.no_grad()
def _evaluate(
    module: nn.Module,
    dataset: Dataset,
    batch_size: int,
    should_stop: Callable[[], bool],
    channels_last: bool = False,
) -> tuple[float, float]:
    total_loss, correct, seen = 0.0, 0, 0
    with _eval_mode(module):
        for x, y in _loader(dataset, batch_size):
            if should_stop():
                raise Interrupted
            x = _layout(x, channels_last)
            logits = module(x)
            total_loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
    return total_loss / seen, correct / seen


def _layout(x: Tensor, channels_last: bool) -> Tensor:
    """A batch of images in channels-last memory layout when asked (other tensors as they are)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Eval mode for the duration; every submodule's own mode restored after (a frozen batch norm stays in eval)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _finish(
    module: nn.Module,
    history: list[EpochResult],
    reason: str,
    best_state: dict[str, Tensor] | None,
    best_epoch: int | None,
) -> FitResult:
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return FitResult(history=history, reason=reason, best_epoch=best_epoch)


def _diverged(loss: float, x: Tensor, lr: float, epoch: int, step: int) -> TrainingDiverged:
    where = f"epoch {epoch}, step {step}"
    if not torch.isfinite(x).all():
        return TrainingDiverged(
            f"The loss became {loss} at {where}: the input batch contains NaN or infinite values. "
            "Check the data (a damaged image or a normalization that divides by zero).",
            epoch,
            step,
        )
    return TrainingDiverged(
        f"The loss became {loss} at {where} (learning rate {lr:.3g}): the weights diverged. "
        "Lower the learning rate (a tenth is a good first try), or use Adam instead of SGD, and try again.",
        epoch,
        step,
    )


def _estimate_val(val_data: Dataset | None, seen: int, elapsed: float) -> float:
    if val_data is None or seen == 0:
        return 0.0
    return len(val_data) * elapsed / seen * _EVAL_COST_RATIO


def _set_lr(optimizer: torch.optim.Optimizer, peak: float, step: int, steps: int, warmup: float = 0.0) -> float:
    """The rate of 0-based ``step`` of ``steps``: a linear climb to ``peak`` over the first ``warmup`` share of the
    steps (the first step already above zero), then cosine annealing towards zero; returns the rate set."""
    climb = warmup * steps
    if step < climb:
        lr = peak * (step + 1) / (math.floor(climb) + 1)
    else:
        lr = peak * 0.5 * (1 + math.cos(math.pi * (step / steps - warmup) / (1 - warmup)))
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
