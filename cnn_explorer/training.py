"""A pure training loop: no UI, no threads. Callers watch it through a callback and stop it by returning True.

The data for each epoch comes from a function of the epoch number, so synthetic datasets can be drawn fresh
every epoch (free augmentation) while a fixed dataset simply returns itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

__all__ = ["OPTIMIZERS", "EpochResult", "TrainConfig", "TrainingDiverged", "evaluate", "train"]

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, lr, weight_decay: torch.optim.Adam(params, lr=lr, weight_decay=weight_decay),
    "adamw": lambda params, lr, weight_decay: torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay),
    "sgd": lambda params, lr, weight_decay: torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay),
}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Attributes:
        epochs: Passes over the training data.
        batch_size: Images per optimizer step.
        lr: Peak learning rate (cosine-annealed to zero over the run).
        optimizer: A key of :data:`OPTIMIZERS`.
        weight_decay: L2 penalty.
        seed: Seeds weight initialization and shuffling.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class EpochResult:
    """What one epoch achieved."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float


def train(
    module: nn.Module,
    data_for_epoch: Callable[[int], Dataset],
    config: TrainConfig,
    val_data: Dataset | None = None,
    on_epoch: Callable[[EpochResult], bool | None] | None = None,
) -> list[EpochResult]:
    """Train ``module`` in place with cross-entropy.

    Args:
        module: The network; left in eval mode when done.
        data_for_epoch: Epoch number (0-based) → that epoch's training dataset of ``(tensor, label)``.
        config: The settings.
        val_data: Evaluated after every epoch when given.
        on_epoch: Called after every epoch; returning True stops training.

    Returns:
        One result per completed epoch.

    Raises:
        TrainingDiverged: The loss became NaN or infinite.
    """
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = OPTIMIZERS[config.optimizer](module.parameters(), config.lr, config.weight_decay)
    history = []
    for epoch in range(config.epochs):
        started = time.perf_counter()
        loader = DataLoader(data_for_epoch(epoch), batch_size=config.batch_size, shuffle=True, generator=generator)
        steps_per_epoch = len(loader)
        module.train()
        total_loss, correct, seen = 0.0, 0, 0
        for step, (x, y) in enumerate(loader):
            _set_lr(optimizer, config.lr, (epoch * steps_per_epoch + step) / (config.epochs * steps_per_epoch))
            logits = module(x)
            loss = nn.functional.cross_entropy(logits, y)
            if not math.isfinite(loss.item()):
                raise TrainingDiverged(
                    f"The loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}. "
                    "Lower the learning rate and try again."
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        val_loss, val_accuracy = evaluate(module, val_data) if val_data is not None else (None, None)
        result = EpochResult(
            epoch=epoch + 1,
            train_loss=total_loss / seen,
            train_accuracy=correct / seen,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            seconds=time.perf_counter() - started,
        )
        history.append(result)
        if on_epoch is not None and on_epoch(result):
            break
    module.eval()
    return history


@torch.no_grad()
def evaluate(module: nn.Module, dataset: Dataset, batch_size: int = 256) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``module`` on ``dataset`` (eval mode; the mode is restored)."""
    was_training = module.training
    module.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in DataLoader(dataset, batch_size=batch_size):
        logits = module(x)
        total_loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    module.train(was_training)
    return total_loss / seen, correct / seen


def _set_lr(optimizer: torch.optim.Optimizer, peak: float, progress: float) -> None:
    """Cosine annealing from ``peak`` to zero over the run (progress in [0, 1))."""
    for group in optimizer.param_groups:
        group["lr"] = peak * 0.5 * (1 + math.cos(math.pi * progress))
