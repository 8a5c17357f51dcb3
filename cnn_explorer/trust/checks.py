"""The argument checks every trust check shares, each raising ``ValueError`` with a message a user can act on.

The input must be one input of the model's size, a heatmap finite and of the input's size, counts whole numbers in
range; also the input's value range (the scale of every check's noise), the class traced when none is given, and
the words a cancelled check ends with.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from cnn_explorer.attribution import resolve_target
from cnn_explorer.model import LoadedModel

_CANCELLED = "The trust checks were cancelled."


def _check_input(model: LoadedModel, x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[0] != 1 or tuple(x.shape[1:]) != tuple(model.input_size):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{model.name} takes one input [1, {', '.join(map(str, model.input_size))}]; got {shape}.")


def _check_heatmap(x: Tensor, heatmap: Tensor) -> None:
    height, width = x.shape[-2:]
    if tuple(heatmap.shape) != (height, width):
        raise ValueError(
            f"The heatmap must be [{height}, {width}] like the input; got shape {tuple(heatmap.shape)}. "
            "Was it made for this input?"
        )
    if not torch.isfinite(heatmap).all():
        raise ValueError("The heatmap has NaN or infinite values; its pixels cannot be ranked.")


def _check_count(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}; got {value!r}.")


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}.")


def _span(x: Tensor) -> float:
    """The input's value range, floored so a constant input still gets noise."""
    return max(float(x.max() - x.min()), 1e-6)


def _target(model: LoadedModel, x: Tensor, target: int | str | None) -> int:
    if target is not None:
        return resolve_target(model, target)
    with model.lock, torch.no_grad():
        return int(model.module(x).argmax(dim=1))
