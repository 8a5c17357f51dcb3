"""Matplotlib figures of numbers: top-k probabilities (the Predict page draws them as HTML, render.bars), colour
bars, 1-D layer outputs, histograms, curves.

Figures are ``matplotlib.figure.Figure`` objects built without pyplot (thread-safe, no global state).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter
from torch import Tensor

from cnn_explorer.model import Prediction
from cnn_explorer.render.bars import TOP_K_COLOURS
from cnn_explorer.render.colour import _HIGHLIGHT_HEX, _NEGATIVE_HEX, _POSITIVE_HEX, _numpy

__all__ = [
    "colourbar_figure",
    "curves_figure",
    "histogram_figure",
    "top_k_figure",
    "vector_figure",
]


def top_k_figure(prediction: Prediction, k: int = 5) -> Figure:
    """Horizontal bars of the top-k class probabilities, best on top."""
    top = prediction.top[:k]
    fig = Figure(figsize=(5, 0.7 * len(top) + 0.9), layout="constrained")
    ax = fig.subplots()
    names = [name for _, name, _ in top][::-1]
    values = [p for _, _, p in top][::-1]
    best, other = TOP_K_COLOURS
    colours = [other] * (len(top) - 1) + [best]
    bars = ax.barh(names, values, color=colours)
    ax.bar_label(bars, labels=[f"{v:.1%}" for v in values], padding=3, fontsize=12)
    ax.set_xlim(0, 1.2)  # room for the labels; the axis itself stops at 100 %
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.spines["bottom"].set_bounds(0, 1)
    ax.set_xlabel("probability (softmax)", fontsize=11)
    ax.tick_params(axis="y", labelsize=12)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def colourbar_figure(vmin: float, vmax: float, cmap: str, label: str = "") -> Figure:
    """A slim horizontal colour bar with its range written at both ends (and zero for a range across it)."""
    lo, hi = (vmin, vmax) if vmax > vmin else (vmin - 0.5, vmin + 0.5)  # a constant range still draws
    fig = Figure(figsize=(4.5, 0.75), layout="constrained")
    ax = fig.subplots()
    bar = fig.colorbar(ScalarMappable(norm=Normalize(lo, hi), cmap=cmap), cax=ax, orientation="horizontal")
    ticks = [vmin, vmax] if vmax > vmin else [vmin]
    if vmin < 0 < vmax:
        ticks.insert(1, 0.0)
    bar.set_ticks(ticks, labels=[f"{t:.3g}" for t in ticks])
    bar.ax.tick_params(labelsize=8, length=2)
    if label:
        bar.set_label(label, fontsize=8)
    return fig


def vector_figure(
    values: Tensor | np.ndarray,
    labels: Sequence[str] | None = None,
    title: str = "",
    highlight: int | None = None,
    max_bars: int = 64,
    top_k: int = 10,
) -> Figure:
    """A 1-D layer output (flatten, linear, softmax) as a chart, never as a squashed image.

    Up to ``max_bars`` values: one vertical bar each, red above zero and blue below (as in the grids), labelled
    when ``labels`` are given. Longer vectors (1690 flatten values, 1000 ImageNet logits): two panels, the whole
    vector as an area plot over its index (its shape: sparse, peaked, signed), and below it the ``top_k``
    largest values as labelled horizontal bars (what the numbers are). The highlighted value is magenta in both
    and added to the top bars when it is not among them.

    Args:
        values: The vector; any shape is flattened (a ``[1, N]`` output is fine).
        labels: One name per value (class names), or None for indices.
        title: Figure title.
        highlight: Index to mark (the selected unit or class).
        max_bars: Longest vector drawn as one bar per value.
        top_k: Bars in the lower panel of a long vector.
    """
    vector = _numpy(values).ravel()
    if labels is not None and len(labels) != vector.size:
        raise ValueError(f"Got {len(labels)} labels for {vector.size} values.")
    if highlight is not None and not 0 <= highlight < vector.size:
        raise ValueError(f"highlight={highlight} is outside 0…{vector.size - 1}.")
    if vector.size <= max_bars:
        return _bars_figure(vector, labels, title, highlight)
    return _long_vector_figure(vector, labels, title, highlight, top_k)


def histogram_figure(values: Tensor | np.ndarray, bins: int = 40, title: str = "", log: bool = False) -> Figure:
    """Histogram of all values of a tensor, annotated with the share of exact zeros (dead units after a ReLU).

    Args:
        values: Any tensor; flattened.
        bins: Number of bins.
        title: Axes title.
        log: Logarithmic counts, for when the zeros dwarf everything else.
    """
    flat = _numpy(values).ravel()
    if flat.size == 0:
        raise ValueError("Cannot draw a histogram of an empty tensor.")
    zeros = float(np.mean(flat == 0))
    fig = Figure(figsize=(5, 2.6), layout="constrained")
    ax = fig.subplots()
    ax.hist(flat, bins=bins, color="#64748b", log=log)
    ax.text(
        0.98,
        0.95,
        f"zeros: {zeros:.1%} of {flat.size:,}\nrange {flat.min():.3g} … {flat.max():.3g}",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=8,
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "#cbd5e1"},
    )
    ax.set_xlabel("activation")
    ax.set_ylabel("count")
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def curves_figure(
    fractions: Tensor | np.ndarray,
    curves: Mapping[str, Tensor | np.ndarray],
    title: str,
    xlabel: str,
    ylabel: str,
    dashed: Iterable[str] = (),
) -> Figure:
    """Several curves over one x axis (deletion/insertion curves, correlations over a randomization cascade).

    Args:
        fractions: The shared x values.
        curves: Label → y values, one line each.
        title: Figure title.
        xlabel: X axis label.
        ylabel: Y axis label.
        dashed: Labels drawn dashed and grey (reference curves such as a random order).
    """
    x = _numpy(fractions).ravel()
    dashed = set(dashed)
    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.subplots()
    for label, values in curves.items():
        y = _numpy(values).ravel()
        if y.size != x.size:
            raise ValueError(f"Curve {label!r} has {y.size} values for {x.size} x values.")
        style = {"linestyle": "--", "color": "grey"} if label in dashed else {}
        ax.plot(x, y, label=label, linewidth=1.8, **style)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    if x.size and np.all(x == np.round(x)):  # epochs, layer counts: no ticks between whole numbers
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return fig


def _sign_colours(vector: np.ndarray, highlight: int | None) -> list[str]:
    colours = [_POSITIVE_HEX if v >= 0 else _NEGATIVE_HEX for v in vector]
    if highlight is not None:
        colours[highlight] = _HIGHLIGHT_HEX
    return colours


def _bars_figure(vector: np.ndarray, labels: Sequence[str] | None, title: str, highlight: int | None) -> Figure:
    fig = Figure(figsize=(min(10.0, max(4.0, 0.2 * vector.size + 1.5)), 3.0), layout="constrained")
    ax = fig.subplots()
    index = np.arange(vector.size)
    ax.bar(index, vector, width=0.8, color=_sign_colours(vector, highlight))
    ax.axhline(0, color="#94a3b8", linewidth=0.8)
    if labels is not None:
        vertical = vector.size > 8 or max(len(str(name)) for name in labels) > 8
        ax.set_xticks(index, [str(name) for name in labels], rotation=90 if vertical else 0, fontsize=8)
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("index")
    ax.set_xlim(-0.6, vector.size - 0.4)
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def _long_vector_figure(
    vector: np.ndarray, labels: Sequence[str] | None, title: str, highlight: int | None, top_k: int
) -> Figure:
    top = list(np.argsort(-vector, kind="stable")[:top_k])
    if highlight is not None and highlight not in top:
        top.append(highlight)
    fig = Figure(figsize=(7.5, 2.2 + 0.24 * len(top)), layout="constrained")
    overview, ranked = fig.subplots(2, 1, height_ratios=[1.6, 0.2 + 0.16 * len(top)])
    index = np.arange(vector.size)
    overview.fill_between(index, 0, vector, color="#94a3b8", alpha=0.45, linewidth=0)
    overview.plot(index, vector, color="#475569", linewidth=0.6)
    overview.plot(top[:top_k], vector[top[:top_k]], "o", color=_POSITIVE_HEX, markersize=3)
    if highlight is not None:
        overview.axvline(highlight, color=_HIGHLIGHT_HEX, linewidth=1.2)
    overview.axhline(0, color="#94a3b8", linewidth=0.8)
    overview.set_xlim(0, vector.size - 1)
    overview.set_xlabel("index")
    overview.set_title(f"{title} — all {vector.size:,} values" if title else f"all {vector.size:,} values", fontsize=10)
    names = [f"{labels[i]} (#{i})" if labels is not None else f"#{i}" for i in top]
    bars = ranked.barh(names[::-1], vector[top][::-1], color=_sign_colours(vector[top], None)[::-1])
    if highlight is not None:
        bars[len(top) - 1 - top.index(highlight)].set_color(_HIGHLIGHT_HEX)
    ranked.bar_label(bars, labels=[f"{v:.3g}" for v in vector[top][::-1]], padding=3, fontsize=8)
    ranked.tick_params(axis="y", labelsize=8)
    ranked.set_title(f"top {min(top_k, vector.size)} values", fontsize=9)
    for ax in (overview, ranked):
        ax.spines[["top", "right"]].set_visible(False)
    return fig
