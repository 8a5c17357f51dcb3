"""Statistics of one layer's output for one input: range, mean, zero share, dead channels, histogram.

:func:`activation_stats` summarises a tensor captured by :mod:`cnn_explorer.layers.capture` for the layer page's
histogram and dead-channel list.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["HISTOGRAM_BINS", "ActivationStats", "activation_stats"]

HISTOGRAM_BINS = 40


@dataclass(frozen=True, eq=False)
class ActivationStats:
    """Summary statistics of one layer's output for one input.

    Attributes:
        min: Smallest value.
        max: Largest value.
        mean: Mean value.
        zero_share: Share of values exactly 0 (after a ReLU: the units it switched off).
        channel_max: Largest value per channel, ``[C]`` (for a vector, each element is its own channel).
        dead_channels: Channels whose every value is ≤ 0. After a ReLU-like layer these maps are entirely off for
            this image; after tanh or before an activation it only says the channel never went positive.
        histogram: Counts per bin, ``[bins]`` (float64, as ``torch.histogram`` returns).
        bin_edges: The bins' edges, ``[bins + 1]`` (float64).
    """

    min: float
    max: float
    mean: float
    zero_share: float
    channel_max: Tensor
    dead_channels: tuple[int, ...]
    histogram: Tensor
    bin_edges: Tensor


def activation_stats(t: Tensor, bins: int = HISTOGRAM_BINS) -> ActivationStats:
    """Statistics of one layer output for the page's histogram and dead-channel list.

    Args:
        t: A captured output for one input: ``[1, C, H, W]`` or ``[C, H, W]`` for maps, ``[1, K]`` or ``[K]`` for
            vectors (each element its own channel).
        bins: Histogram bins over ``[min, max]`` (widened by ±0.5 when all values are equal).
    """
    if t.dim() in (2, 4):
        if t.shape[0] != 1:
            raise ValueError(f"Expected the output for one input; got a batch of {t.shape[0]}.")
        t = t[0]
    if t.dim() not in (1, 3):
        raise ValueError(f"Expected maps [C, H, W] or a vector [K]; got shape {tuple(t.shape)}.")
    values = t.detach().to(torch.float64)
    channel_max = values.reshape(values.shape[0], -1).amax(dim=1) if values.dim() == 3 else values.clone()
    low, high = float(values.min()), float(values.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    histogram, edges = torch.histogram(values.flatten(), bins=bins, range=(low, high))
    return ActivationStats(
        min=float(values.min()),
        max=float(values.max()),
        mean=float(values.mean()),
        zero_share=float((values == 0).to(torch.float64).mean()),
        channel_max=channel_max,
        dead_channels=tuple(int(i) for i in torch.nonzero(channel_max <= 0).flatten()),
        histogram=histogram,
        bin_edges=edges,
    )
