"""The playground's pictures and figures: a convolution's output, the sliding window zoomed in, activation
curves, gradient flow, parameter counts and an adversarial perturbation (what :mod:`cnn_explorer.playground`
computes, drawn).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageDraw
from torch import Tensor

from cnn_explorer.render.colour import _DIVERGING, HIGHLIGHT_COLOUR, ColouredMap, _numpy
from cnn_explorer.render.pictures import map_image, pixels_image

__all__ = [
    "PADDING_EDGE_COLOUR",
    "activation_figure",
    "conv_output_image",
    "gradient_flow_figure",
    "params_figure",
    "perturbation_image",
    "window_zoom",
]


#: The image's edge in a zoomed window (outside it lies padding): amber, apart from magenta taps and grey pixels.
PADDING_EDGE_COLOUR = (245, 158, 11)
_SUM_TO_ONE = 1e-4  # a kernel whose weights sum to 1 within this keeps brightness: its output is drawn as a picture


def conv_output_image(output: Tensor | np.ndarray, kernel: Tensor | np.ndarray) -> ColouredMap:
    """A convolution's output ``[C, H, W]``, drawn so that what it means shows.

    When the kernel's weights sum to 1 (identity, blurs, sharpen, emboss) a flat area keeps its brightness, so the
    output is drawn as a picture on ``[0, 1]`` (values beyond are clipped). Otherwise (edge detectors sum to 0) the
    values are spread around zero on ``±`` their largest size: one channel on RdBu_r (blue below zero, red above),
    three channels as ``0.5 + value / (2·max)`` per colour, so mid-grey is zero.

    Returns:
        The image with its ``(vmin, vmax)`` and colour map (``"gray"`` or ``"rgb"`` for pictures, ``"RdBu_r"`` or
        ``"rgb"`` around zero).
    """
    values = _numpy(output)
    if values.ndim != 3 or values.shape[0] not in (1, 3):
        raise ValueError(f"Expected an output [1 or 3, H, W]; got shape {tuple(values.shape)}.")
    colour = "gray" if values.shape[0] == 1 else "rgb"
    if abs(float(_numpy(kernel).sum()) - 1) <= _SUM_TO_ONE:
        return ColouredMap(pixels_image(values), 0.0, 1.0, colour)
    peak = float(np.abs(values).max()) or 1.0
    if values.shape[0] == 1:
        return ColouredMap(map_image(values[0], -peak, peak, _DIVERGING, min_side=1), -peak, peak, _DIVERGING)
    return ColouredMap(pixels_image(0.5 + values / (2 * peak)), -peak, peak, "rgb")


def window_zoom(
    region: Tensor | np.ndarray,
    taps: Sequence[tuple[int, int]],
    image_box: tuple[int, int, int, int] | None = None,
    cell: int = 24,
) -> Image.Image:
    """A few pixels around a sliding window, each enlarged to a ``cell``-pixel square, its taps framed in magenta.

    Args:
        region: Pixels ``[C, h, w]`` in ``[0, 1]`` (one or three channels), padding included.
        taps: ``(row, column)`` in ``region`` of each pixel the kernel reads.
        image_box: ``(top, left, bottom, right)`` of the real image inside ``region`` (exclusive ends), framed in
            :data:`PADDING_EDGE_COLOUR` when padding shows; None when none does.
        cell: Side of one enlarged pixel.
    """
    picture = pixels_image(region).convert("RGB")
    picture = picture.resize((picture.width * cell, picture.height * cell), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(picture)
    if image_box is not None:
        top, left, bottom, right = image_box
        draw.rectangle(
            (left * cell, top * cell, right * cell - 1, bottom * cell - 1), outline=PADDING_EDGE_COLOUR, width=3
        )
    for row, col in taps:
        box = (col * cell + 1, row * cell + 1, (col + 1) * cell - 2, (row + 1) * cell - 2)
        draw.rectangle(box, outline=HIGHLIGHT_COLOUR, width=2)
    return picture


_CURVE_WIDEST, _CURVE_NARROWING, _CURVE_NARROWEST = 4.2, 0.7, 1.6  # line widths (points) of overlaid curves
_CURVE_DASHES = ("-", (0, (4, 1.5)), "-", (0, (6, 1.5, 1, 1.5)), (0, (1.5, 1)))


def activation_figure(x: Tensor | np.ndarray, curves: Mapping[str, tuple[Tensor, Tensor]]) -> Figure:
    """Activation functions (left) and their derivatives (right) over the same inputs ``x``.

    Args:
        x: The inputs.
        curves: Name → ``(f(x), f'(x))``.
    """
    xs = _numpy(x).ravel()
    fig = Figure(figsize=(8, 3), layout="constrained")
    values, slopes = fig.subplots(1, 2, sharex=True)
    for order, (name, (y, dy)) in enumerate(curves.items()):
        # Curves coincide (ReLU, LeakyReLU and GELU for x > 0): each later one is drawn narrower and in its own dash
        # pattern on top of the earlier ones, so every curve shows beside and through those drawn over it.
        style = {
            "label": name,
            "linewidth": max(_CURVE_WIDEST - _CURVE_NARROWING * order, _CURVE_NARROWEST),
            "linestyle": _CURVE_DASHES[order % len(_CURVE_DASHES)],
            "zorder": 2 + order,
        }
        values.plot(xs, _numpy(y).ravel(), **style)
        slopes.plot(xs, _numpy(dy).ravel(), **style)
    for ax, title in ((values, "f(x)"), (slopes, "f′(x), by autograd")):
        ax.axhline(0, color="#94a3b8", linewidth=0.8)
        ax.axvline(0, color="#94a3b8", linewidth=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("x", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    values.legend(fontsize=8, frameon=False)
    return fig


def gradient_flow_figure(norms: Mapping[str, Sequence[float]]) -> Figure:
    """The gradient norm reaching each layer of a deep stack, one line per activation, on a log scale."""
    fig = Figure(figsize=(6, 3.2), layout="constrained")
    ax = fig.subplots()
    for name, values in norms.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=name, linewidth=1.8)
    ax.set_yscale("log")
    ax.set_xlabel("layer (1 = nearest the input)", fontsize=9)
    ax.set_ylabel("‖∂loss / ∂weights‖", fontsize=9)
    ax.set_title("Gradient reaching each layer", fontsize=10)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def params_figure(layers: Sequence[str], conv: Sequence[int], dense: Sequence[int]) -> Figure:
    """Parameters of each conv layer beside those of an equivalent dense layer, as bars on a log scale."""
    fig = Figure(figsize=(6, 1.2 + 0.45 * len(layers)), layout="constrained")
    ax = fig.subplots()
    rows = np.arange(len(layers))[::-1]
    ax.barh(rows + 0.2, conv, height=0.4, color="#2563eb", label="convolution (shared kernel)")
    ax.barh(rows - 0.2, dense, height=0.4, color="#f59e0b", label="dense layer, same input and output")
    ax.set_yticks(rows, labels=list(layers), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log scale)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def perturbation_image(delta: Tensor | np.ndarray, epsilon: float) -> ColouredMap:
    """An adversarial perturbation ``[C, H, W]`` made visible: ``0.5 + δ / (2ε)``, so mid-grey is no change and
    black or white a change of ``∓ε``."""
    scale = epsilon if epsilon > 0 else 1.0
    return ColouredMap(pixels_image(0.5 + _numpy(delta) / (2 * scale)), -epsilon, epsilon, "rgb")
