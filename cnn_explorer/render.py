"""Tensors → images and figures. The only library module that turns tensors into pixels.

Figures are ``matplotlib.figure.Figure`` objects built without pyplot (thread-safe, no global state).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

from cnn_explorer.zoo import Prediction

__all__ = ["ColouredMap", "channel_maps", "for_display", "top_k_figure", "uint8_image"]


@dataclass(frozen=True)
class ColouredMap:
    """One 2-D map coloured with an explicit scale.

    Attributes:
        image: The coloured map.
        vmin: Value shown at the bottom of the colour scale.
        vmax: Value shown at the top.
        cmap: Matplotlib colour map name.
    """

    image: Image.Image
    vmin: float
    vmax: float
    cmap: str


def for_display(img: Image.Image, min_side: int = 224) -> Image.Image:
    """Upscale a small image with nearest-neighbour so its pixels stay visible as squares."""
    factor = -(-min_side // max(1, min(img.size)))
    if factor <= 1:
        return img
    return img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)


def uint8_image(x: Tensor) -> Image.Image:
    """A uint8 ``[C, H, W]`` tensor (1 or 3 channels) → PIL image."""
    array = x.detach().cpu().numpy()
    return Image.fromarray(array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0)))


def channel_maps(x: Tensor, cmap: str = "RdBu_r", symmetric: bool = True) -> list[ColouredMap]:
    """Each channel of an input or activation ``[1, C, H, W]`` coloured on its own scale.

    Args:
        x: The tensor; the batch dimension must be 1.
        cmap: Matplotlib colour map.
        symmetric: Centre the scale on zero (for normalized inputs, where the sign matters).
    """
    maps = []
    for channel in x[0].detach().cpu().numpy():
        lo, hi = float(channel.min()), float(channel.max())
        if symmetric:
            lo, hi = -max(abs(lo), abs(hi)), max(abs(lo), abs(hi))
        maps.append(ColouredMap(image=_colour(channel, lo, hi, cmap), vmin=lo, vmax=hi, cmap=cmap))
    return maps


def top_k_figure(prediction: Prediction, k: int = 5) -> Figure:
    """Horizontal bars of the top-k class probabilities, best on top."""
    top = prediction.top[:k]
    fig = Figure(figsize=(5, 0.45 * len(top) + 0.6), layout="constrained")
    ax = fig.subplots()
    names = [name for _, name, _ in top][::-1]
    values = [p for _, _, p in top][::-1]
    colours = ["#cbd5e1"] * (len(top) - 1) + ["#2563eb"]
    bars = ax.barh(names, values, color=colours)
    ax.bar_label(bars, labels=[f"{v:.1%}" for v in values], padding=3, fontsize=9)
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("probability (softmax)")
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def _colour(values: np.ndarray, vmin: float, vmax: float, cmap: str) -> Image.Image:
    span = vmax - vmin
    scaled = np.zeros_like(values) if span == 0 else (values - vmin) / span
    rgba = matplotlib.colormaps[cmap](np.clip(scaled, 0, 1), bytes=True)
    return Image.fromarray(rgba[..., :3])
