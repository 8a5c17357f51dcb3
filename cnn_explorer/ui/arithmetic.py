"""The arithmetic of one value on the Layers page: the numbers behind it laid out by the layer's operation
(convolution, dense, pooling, elementwise, softmax), and the recomputed value beside the captured one."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image
from torch import Tensor

from cnn_explorer import layers
from cnn_explorer.layers import UnitArithmetic, UnknownLayer
from cnn_explorer.model import LoadedModel
from cnn_explorer.ui.core import context_of
from cnn_explorer.ui.layer_cache import LayerCapture, boxed_picture
from cnn_explorer.ui.layers import (
    HIGHLIGHT_HEX,
    ShownOutput,
    grid_table,
    styled_table,
    unit_position,
)

_FULL_CHANNELS = 4  # input channels whose patch, kernel and products are shown in full; the rest only as sums
_LONG_TABLE_ROWS = 64  # rows of a dense layer's contributions and of the softmax table
_AGREEMENT = 1e-5  # recomputed and captured values must agree this closely (relative, or absolute near zero)
_SELECTED = f"background-color: {HIGHLIGHT_HEX}; color: white"
_CAPTION = "font-size:0.875rem;color:rgba(49,51,63,0.6);margin-bottom:0.25rem"  # as st.caption draws its text


def unit_arithmetic_view(
    model: LoadedModel,
    capture: LayerCapture,
    x: Tensor,
    name: str,
    shown: ShownOutput,
    digest: str,
    picture: Image.Image,
) -> tuple[int, ...]:
    """The arithmetic of one value of the layer (for maps, at a row and column to choose); returns the unit's index."""
    output = capture.outputs[name][0]
    index = shown.index
    if output.dim() == 3:
        index = (shown.channel, *unit_position(output[shown.channel], context_of(model, digest)))
    try:
        unit = layers.explain_unit(
            model, capture.outputs, x, name, index, inputs=capture.inputs
        )  # via the module: a test stands in for it
    except (UnknownLayer, ValueError) as err:
        st.info(str(err))
    else:
        show_arithmetic(unit, model.class_names, picture)
    return index


def show_arithmetic(unit: UnitArithmetic, class_names: Sequence[str], picture: Image.Image) -> None:
    """Lay out the numbers behind one output value, then the recomputed and the captured value side by side.

    Args:
        unit: From :func:`~cnn_explorer.layers.explain_unit`.
        class_names: The model's classes, for the softmax table.
        picture: The network's input image (:func:`network_picture`), to draw the window on when the layer reads it.
    """
    st.markdown(f"**{unit.operation.capitalize()}** of `{unit.layer}` at {list(unit.index)}: {unit.formula}")
    _ARITHMETIC_VIEWS[unit.operation](unit, picture)
    if unit.softmax is not None:
        _softmax_view(unit, class_names)
    difference = abs(unit.result - unit.captured)
    agree = math.isclose(unit.result, unit.captured, rel_tol=_AGREEMENT, abs_tol=_AGREEMENT)
    recomputed, captured, verdict = st.columns(3)
    recomputed.metric("Recomputed", f"{unit.result:.6g}", border=True)
    captured.metric("Captured", f"{unit.captured:.6g}", help="The value the layer produced", border=True)
    verdict.metric(
        "Difference",
        f"{difference:.1e}",
        delta=f"agree to {_AGREEMENT:g}" if agree else f"differ by more than {_AGREEMENT:g}",
        delta_color="normal" if agree else "inverse",
        delta_arrow="off",
        border=True,
    )


def _window_picture(unit: UnitArithmetic, picture: Image.Image) -> None:
    if unit.image_window is not None:
        top, left, height, width = unit.image_window
        data, data_format = boxed_picture(picture, (top, left, top + height, left + width), 200)
        st.image(data, caption="The window on the input image", width=200, output_format=data_format)


def _conv_view(unit: UnitArithmetic, picture: Image.Image) -> None:
    top, left, height, width = unit.window
    kh, kw = unit.weights.shape[-2:]
    step = ((height - 1) // max(kh - 1, 1), (width - 1) // max(kw - 1, 1))  # dilation: sampled positions
    channels = unit.input_channels
    sums = unit.channel_sums.numpy()
    # In full: the channels that contribute most, largest first (after a ReLU many windows are all zero).
    shown = np.argsort(-np.abs(sums), kind="stable")[:_FULL_CHANNELS].tolist()
    most = f"; the {len(shown)} that contribute most in full, every one in the sums below"
    st.caption(
        f"The window at rows {top}…{top + height - 1}, columns {left}…{left + width - 1} of the layer's input "
        f"(outside the input: zero padding), in each of its {len(channels)} input channel(s)"
        + (most if len(channels) > len(shown) else "")
        + "."
    )
    for i, tab in zip(shown, st.tabs([f"channel {channels[i]} · Σ {sums[i]:.4g}" for i in shown]), strict=True):
        # One element a tab, not six: every element is redrawn on a step, and the page is stepped a hundred times.
        tab.html(
            _side_by_side(
                [
                    ("input patch", grid_table(unit.patch[i], top, left, step)),
                    ("× kernel weights", grid_table(unit.weights[i])),
                    (f"= products, summing to {sums[i]:.6g}", grid_table(unit.products[i], top, left, step)),
                ],
                # Kernels wider than 5 get the products on a row of their own: three 7×7 tables do not fit.
                per_row=3 if kw <= 5 else 2,
            )
        )
    table, equation, where = st.columns([2, 2, 1.2])
    per_channel = grid_table(sums[:, None], labels=("input channel", channels, ["Σ patch × kernel"]))
    table.html(f"<div style='max-height:300px;overflow-y:auto'>{per_channel}</div>")  # a ResNet's 64 channels scroll
    equation.markdown(_sum_lines(f"Σ over {len(channels)} channel(s)", unit))
    with where:
        _window_picture(unit, picture)


def _side_by_side(tables: Sequence[tuple[str, str]], per_row: int) -> str:
    """Captioned HTML tables in one block, ``per_row`` to a row (as ``st.columns`` would lay them out)."""
    figures = "".join(
        f"<figure style='margin:0;flex:1 1 calc({100 / per_row:.4f}% - 1rem);min-width:0'>"
        f"<figcaption style='{_CAPTION}'>{html.escape(caption)}</figcaption>{table}</figure>"
        for caption, table in tables
    )
    return f"<div style='display:flex;flex-wrap:wrap;gap:1rem'>{figures}</div>"


def _sum_lines(what: str, unit: UnitArithmetic) -> str:
    bias = f"\n\n\\+ bias {unit.bias:.6g}" if unit.bias is not None else "\n\n(no bias)"
    return f"{what} = {unit.total:.6g}{bias}\n\n= **{unit.result:.6g}**"


def _linear_view(unit: UnitArithmetic, picture: Image.Image) -> None:
    products = unit.products.double().numpy()
    order = np.argsort(-np.abs(products), kind="stable")[:_LONG_TABLE_ROWS]
    frame = pd.DataFrame(
        {"input": unit.patch.double().numpy()[order], "weight": unit.weights.double().numpy()[order]},
        index=pd.Index(order, name="input position"),
    )
    frame["input × weight"] = products[order]
    table, equation = st.columns([3, 2])
    some = len(order) < len(products)
    table.caption(f"The {len(order)} largest of {len(products):,} products" if some else "Every input, largest first")
    table.dataframe(styled_table(frame, colour=["input × weight"]), height=min(320, 38 + 35 * len(frame)))
    equation.markdown(_sum_lines(f"Σ over all {len(products):,} products", unit))


def _weighted_sum_view(unit: UnitArithmetic, picture: Image.Image) -> None:
    (_conv_view if unit.patch is not None and unit.patch.dim() == 3 else _linear_view)(unit, picture)


def _window_view(unit: UnitArithmetic, picture: Image.Image) -> None:
    top, left, height, width = unit.window
    table, equation = st.columns([3, 2])
    table.caption(
        f"Channel {unit.index[0]} of the layer's input, rows {top}…{top + height - 1}, "
        f"columns {left}…{left + width - 1}"
    )
    table.html(grid_table(unit.patch, top, left, mark=unit.argmax))
    with equation:
        if unit.operation == "max":
            row, col = unit.argmax
            st.markdown(f"max = **{unit.result:.6g}**, at row {top + row}, column {left + col} (highlighted)")
        else:
            st.markdown(f"Σ window = {unit.total:.6g}\n\n÷ {unit.divisor:g}\n\n= **{unit.result:.6g}**")
        _window_picture(unit, picture)


def _elementwise_view(unit: UnitArithmetic, picture: Image.Image) -> None:
    st.markdown(f"x = input{list(unit.source)} = **{unit.before:.6g}** → {unit.formula} → **{unit.result:.6g}**")
    if unit.terms:
        st.dataframe(pd.DataFrame([unit.terms]), hide_index=True)


def _copy_view(unit: UnitArithmetic, picture: Image.Image) -> None:
    st.markdown(f"output[{unit.index[0]}] = input{list(unit.source)} = **{unit.before:.6g}** (channel, row, column)")


def _no_view(unit: UnitArithmetic, picture: Image.Image) -> None:
    return None


def _softmax_view(unit: UnitArithmetic, class_names: Sequence[str]) -> None:
    softmax = unit.softmax
    logits = softmax.logits.double().numpy()
    names = list(class_names) if len(class_names) == len(logits) else [str(i) for i in range(len(logits))]
    chosen = unit.index[-1]
    probabilities = softmax.probabilities.numpy()
    order = list(np.argsort(-probabilities, kind="stable")[:_LONG_TABLE_ROWS])
    if chosen not in order:
        order.append(chosen)
    frame = pd.DataFrame(
        {"class": names, "logit": logits, "exp(logit − max)": softmax.exps.numpy(), "probability": probabilities}
    ).iloc[order]
    styler = styled_table(frame, colour=["logit", "exp(logit − max)", "probability"]).apply(
        lambda row: [_SELECTED if row.name == chosen else "" for _ in row], axis=1
    )
    st.markdown(
        f"**Softmax**: exponentiate every logit after subtracting the largest ({softmax.shift:.4g}; it cancels in "
        f"the division and keeps exp finite), then divide by their sum Σ exp = {softmax.total:.6g}. "
        f"Class **{names[chosen]}** gets {probabilities[chosen]:.4%}."
    )
    st.dataframe(styler, height=min(320, 38 + 35 * len(frame)))


_ARITHMETIC_VIEWS: dict[str, Callable[[UnitArithmetic, Image.Image], None]] = {
    "weighted sum": _weighted_sum_view,
    "max": _window_view,
    "mean": _window_view,
    "elementwise": _elementwise_view,
    "copy": _copy_view,
    "softmax": _no_view,  # the softmax table follows for every view that carries one
}
