"""Shared by the render tests: sample feature maps, and the colours and pixels they are checked against."""

from __future__ import annotations

import matplotlib
import numpy as np
import torch

from cnn_explorer import render


def maps(c: int, h: int, w: int, seed: int = 0, signed: bool = True) -> torch.Tensor:
    """Random maps whose channels have different magnitudes, so the three scopes give different colours."""
    x = torch.randn(c, h, w, generator=torch.Generator().manual_seed(seed)) * torch.linspace(0.5, 3, c)[:, None, None]
    return x if signed else x.relu()


def expected(value: float, vmin: float, vmax: float, cmap: str) -> tuple[int, ...]:
    """The colour matplotlib gives a value on [vmin, vmax]: the reference every cell is checked against."""
    scaled = np.clip((np.float64(value) - vmin) / (vmax - vmin), 0.0, 1.0)
    return tuple(int(v) for v in matplotlib.colormaps[cmap](scaled, bytes=True)[:3])


def pixel(grid: render.TiledImage, channel: int, row: int, col: int) -> tuple[int, ...]:
    """The pixel showing value ``(row, col)`` of map ``channel`` (the middle of its enlarged square)."""
    top, left, _, _ = grid.cell_box(channel)
    f = int(grid.factor)
    return tuple(int(v) for v in np.asarray(grid.image)[top + row * f + f // 2, left + col * f + f // 2])
