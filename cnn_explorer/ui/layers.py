"""Widgets and views of the Layers page."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
import streamlit as st
import torch
from pandas.io.formats.style import Styler
from PIL import Image
from torch import Tensor, nn

from cnn_explorer import render
from cnn_explorer.layers import (
    LayerInfo,
    UnitArithmetic,
    activation_stats,
    capture_layers,
    effective_receptive_field,
    list_layers,
)
from cnn_explorer.ui.core import follow_default, user_chose
from cnn_explorer.zoo import LoadedModel

_FULL_CHANNELS = 4  # input channels whose patch, kernel and products are shown in full; the rest only as sums
_LONG_TABLE_ROWS = 64  # rows of a dense layer's contributions and of the softmax table
_AGREEMENT = 1e-5  # recomputed and captured values must agree this closely (relative, or absolute near zero)
_HIGHLIGHT_HEX = "#" + bytes(render.HIGHLIGHT_COLOUR).hex()
_SELECTED = f"background-color: {_HIGHLIGHT_HEX}; color: white"
_STRIP_LABELLED = 32  # longer networks are drawn as slim bars without labels
_STRIP_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("convolution", "#2563eb", ("Conv2d",)),
    ("pooling", "#f59e0b", ("MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d")),
    ("dense", "#7c3aed", ("Linear",)),
    ("activation", "#16a34a", ("ReLU", "ReLU6", "LeakyReLU", "Tanh", "Sigmoid", "Hardswish", "Hardsigmoid", "SiLU")),
    ("other", "#94a3b8", ()),
)


@dataclass(frozen=True, eq=False)
class LayerCapture:
    """Every layer's output and input for one (model, image), recorded in one forward pass. Read-only: shared.

    Attributes:
        outputs: Layer name → output ``[1, …]``, in execution order.
        inputs: Layer name → input ``[1, …]``, so :func:`~cnn_explorer.layers.explain_unit` runs no forward pass.
        value_range: ``(min, max)`` over every output: the range of the ``"global"`` colour scope.
    """

    outputs: dict[str, Tensor]
    inputs: dict[str, Tensor]
    value_range: tuple[float, float]


@st.cache_data(max_entries=16, show_spinner=False)
def cached_layer_table(model_name: str, _model: LoadedModel) -> tuple[LayerInfo, ...]:
    """The model's layer table (shapes, parameters, receptive fields), computed once per model."""
    return tuple(list_layers(_model))


@st.cache_resource(max_entries=8, show_spinner="Running the network once and recording every layer …")
def cached_capture(model_name: str, digest: str, _model: LoadedModel, _x: Tensor) -> LayerCapture:
    """Every layer's output and input for (model, image), computed once: stepping through layers reruns nothing.

    A resource, not data: the tensors are shared rather than copied on every rerun (a VGG's are hundreds of MB).
    """
    outputs, inputs = capture_layers(_model, _x)
    return LayerCapture(outputs=outputs, inputs=inputs, value_range=render.network_range(outputs))


@st.cache_data(max_entries=32, show_spinner="Back-propagating from the unit to the image …")
def cached_effective_field(
    model_name: str, digest: str, layer: str, index: tuple[int, ...], _model: LoadedModel, _x: Tensor
) -> Tensor:
    """The effective receptive field ``[H, W]`` of one unit, computed once per (model, image, layer, unit)."""
    return effective_receptive_field(_model, _x, layer, index)


def network_picture(model: LoadedModel, image: Image.Image) -> Image.Image:
    """The image as the network reads it (resized and cropped, before scaling), in RGB for drawing on."""
    return render.uint8_image(model.preprocess.geometry(image)).convert("RGB")


def layer_overview(layers: Sequence[LayerInfo]) -> None:
    """Totals and the table of every layer: shape, parameters, MACs, receptive field and jump."""
    count, params, macs = st.columns(3)
    count.metric("Layers", len(layers))
    params.metric("Parameters", f"{sum(info.params for info in layers):,}")
    macs.metric("Multiply-accumulates per image", f"{sum(info.macs for info in layers):,}")
    frame = pd.DataFrame(
        {
            "layer": [info.name for info in layers],
            "kind": [info.kind for info in layers],
            "block": [info.block for info in layers],
            "output shape": [_shape(info.output_shape) for info in layers],
            "parameters": [info.params for info in layers],
            "MACs": [info.macs for info in layers],
            "receptive field (px)": [info.receptive_field for info in layers],
            "jump (px)": [info.jump for info in layers],
        }
    )
    columns = {
        "parameters": st.column_config.NumberColumn(format="localized"),
        "MACs": st.column_config.NumberColumn(format="localized", help="Multiply-accumulates for one image"),
        "receptive field (px)": st.column_config.NumberColumn(help="Side of the input window one unit can see"),
        "jump (px)": st.column_config.NumberColumn(help="Input pixels between neighbouring units of a map"),
    }
    if not any(frame["block"]):
        frame = frame.drop(columns="block")  # a plain stack of layers: no blocks to name
    st.dataframe(frame, hide_index=True, column_config=columns, height=min(600, 40 + 35 * len(frame)))


def stack_strip(layers: Sequence[LayerInfo], current: str) -> str:
    """The network as one wrapping row of boxes, as HTML: height for a map's size, width for its channels.

    Maps shrink and channels grow from left to right; the current layer is framed in the highlight colour. A long
    network (more than :data:`_STRIP_LABELLED` layers) is drawn as slim bars without labels so that it stays a few
    lines high; every box names its layer on hover.
    """
    side = max(layers[0].input_shape[-2:]) if len(layers[0].input_shape) == 3 else 1
    widest = max(max(info.output_shape[0] for info in layers), 2)
    colours = {kind: colour for _, colour, kinds in _STRIP_GROUPS for kind in kinds}
    labelled = len(layers) <= _STRIP_LABELLED
    cell, most = (60, 34) if labelled else (14, 8)
    cells = []
    for info in layers:
        shape = info.output_shape
        height = round(6 + 50 * shape[-2] / side) if len(shape) == 3 else 4
        width = round(4 + most * math.log2(max(shape[0], 1)) / math.log2(widest)) if shape else 4
        mine = info.name == current
        frame = f"outline:3px solid {_HIGHLIGHT_HEX};outline-offset:1px;" if mine else ""
        label = ""
        if labelled:
            parts = info.name.split(".")
            tail = html.escape(".".join(parts[-2:]) if parts[-1].split("#")[0].isdigit() else parts[-1])
            label = (
                '<div style="margin-top:4px;max-width:60px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;'
                f'{"font-weight:700;color:#0f172a" if mine else ""}">{tail}</div><div>{_shape(shape)}</div>'
            )
        cells.append(
            f'<div title="{html.escape(info.name)} · {info.kind} · {_shape(shape)}" style="width:{cell}px;'
            'display:flex;flex-direction:column;align-items:center;font-size:10px;line-height:1.25;color:#475569">'
            f'<div style="width:{width}px;height:{height}px;background:{colours.get(info.kind, "#94a3b8")};'
            f'border-radius:2px;{frame}"></div>{label}</div>'
        )
    legend = " ".join(
        f'<span style="display:inline-block;width:9px;height:9px;background:{colour};border-radius:2px"></span> {name}'
        for name, colour, _ in _STRIP_GROUPS
    )
    return (
        f'<div style="display:flex;flex-wrap:wrap;align-items:flex-end;gap:{10 if labelled else 8}px 2px">'
        + "".join(cells)
        + "</div>"
        f'<div style="font-size:11px;color:#64748b;margin-top:6px">{legend} · box height: map size, '
        "width: number of channels (log scale); hover a box for its name</div>"
    )


def _shape(shape: Sequence[int]) -> str:
    return "×".join(str(n) for n in shape)


def layer_stepper(names: Sequence[str], context: Hashable = None, key: str = "layer_step") -> str:
    """Previous / Next buttons around a slider over the layers; returns the current layer's name.

    It starts on the first layer, and again for another ``context`` (the model's name): a layer chosen for one model
    is not carried to another. The buttons move the slider through callbacks, which run before the script: Streamlit
    lets code set a widget's value only before the widget is drawn in a run.
    """
    names = list(names)
    follow_default(key, names[0], context, chosen=user_chose(key, context) and st.session_state[key] in names)
    position = names.index(st.session_state[key])
    back, slider, forward = st.columns([1.6, 7, 1.6], vertical_alignment="bottom")
    back.button(
        "Previous",
        key=f"{key}_previous",
        icon=":material/arrow_back:",
        on_click=_step,
        args=(names, key, -1),
        disabled=position == 0,
        width="stretch",
    )
    forward.button(
        "Next",
        key=f"{key}_next",
        icon=":material/arrow_forward:",
        icon_position="right",
        on_click=_step,
        args=(names, key, 1),
        disabled=position == len(names) - 1,
        width="stretch",
    )
    with slider:
        return st.select_slider(
            "Layer", names, key=key, format_func=lambda name: f"{names.index(name) + 1}/{len(names)} · {name}"
        )


def _step(names: list[str], key: str, delta: int) -> None:
    position = names.index(st.session_state[key]) + delta
    st.session_state[key] = names[min(max(position, 0), len(names) - 1)]


def filters_and_statistics(module: nn.Module, layer: str, output: Tensor) -> None:
    """A layer's kernels (first conv as colour patches) beside the histogram and dead channels of its output.

    Args:
        module: The layer's module.
        layer: Its name, for titles.
        output: Its captured output ``[1, …]``.
    """
    kernels, statistics = st.columns(2)
    with kernels:
        if isinstance(module, nn.Conv2d):
            few = module.out_channels * min(module.in_channels // module.groups, 16) <= 16
            grid = render.kernel_grid(module.weight, cell=96 if few else 56)  # a few kernels are drawn larger
            st.image(grid.image, width=min(grid.image.width, 560))
            (shown, inputs), (total, total_inputs) = grid.shown, grid.total
            colours = " (colour patches: grey is zero)" if grid.mode == "rgb" else " (blue < 0 < red)"
            st.caption(f"{shown} of {total} filters, {inputs} of {total_inputs} input channels each{colours}")
        else:
            st.caption(f"A {type(module).__name__} layer has no kernels.")
    with statistics:
        stats = activation_stats(output)
        st.pyplot(render.histogram_figure(output, title=f"values of {layer}"))
        dead = ", ".join(map(str, stats.dead_channels[:20])) + (" …" if len(stats.dead_channels) > 20 else "")
        st.caption(
            f"{stats.zero_share:.1%} of the values are exactly zero; mean {stats.mean:.4g}. "
            + (f"Channels never above zero for this image: {dead}." if dead else "Every channel goes above zero.")
        )


def unit_position(values: Tensor, context: Hashable) -> tuple[int, int]:
    """Row and column inputs for one unit of a map ``values`` ``[H, W]``, starting on its strongest unit.

    The default is the largest value of the map (the middle of a constant map), so the arithmetic below shows a unit
    that does something: the middle of a max-pooling output is often a window of zeros. The default follows the map
    (another layer, channel or image); a unit the person chose stays for this model and image (``context``), and on
    a layer of another size it moves to the same relative place, so stepping follows one spot of the image through
    the network.
    """
    height, width = values.shape[-2:]
    keys = ("unit_row", "unit_col")
    chosen = any(user_chose(key, context) for key in keys)
    previous = st.session_state.get("unit_map_size")
    if chosen and previous is not None and previous != (height, width):
        for key, old, new in zip(keys, previous, (height, width), strict=True):
            if key in st.session_state:
                st.session_state[key] = min(int((st.session_state[key] + 0.5) * new / old), new - 1)
    st.session_state["unit_map_size"] = (height, width)
    for key, default in zip(keys, strongest_unit(values), strict=True):
        follow_default(key, default, context, chosen=chosen)
    row_input, col_input, _ = st.columns([1, 1, 3])
    with row_input:
        row = bounded_number(f"Row (0…{height - 1})", height - 1, "unit_row")
    with col_input:
        col = bounded_number(f"Column (0…{width - 1})", width - 1, "unit_col")
    return row, col


def strongest_unit(values: Tensor) -> tuple[int, ...]:
    """The position of the largest value of ``values`` (the first one on a tie), or its middle when all are equal."""
    if values.numel() == 0 or bool((values == values.flatten()[0]).all()):
        return tuple(side // 2 for side in values.shape)
    flat = int(torch.nan_to_num(values.detach(), nan=-math.inf).argmax())
    return tuple(int(i) for i in np.unravel_index(flat, tuple(values.shape)))


def bounded_number(label: str, upper: int, key: str, default: int = 0, **kwargs) -> int:
    """An integer input over ``0…upper`` whose remembered value is first pulled into range (ranges change with the
    layer; Streamlit refuses a remembered value outside them)."""
    remembered = st.session_state.get(key)
    if remembered is None or not 0 <= remembered <= upper:
        st.session_state[key] = min(max(int(default if remembered is None else remembered), 0), upper)
    return int(st.number_input(label, min_value=0, max_value=upper, step=1, key=key, **kwargs))


def grid_picker(
    grid: render.FeatureGrid, maps: Tensor, channel: int, channel_key: str, key: str = "layer_grid"
) -> None:
    """The tiled feature maps, where hovering a map shows its channel and range and clicking it picks it.

    A click sets the session value of the number input ``channel_key`` (in a callback, which runs before the script,
    so the input already shows the clicked channel when it is drawn); that input stays the keyboard path to the same
    choice.

    Args:
        grid: From :func:`~cnn_explorer.render.feature_grid` of ``maps``, with ``channel`` framed.
        maps: The layer's maps ``[C, H, W]``, for the tooltips.
        channel: The channel chosen now.
        channel_key: Session key of the channel's number input.
        key: Prefix of the chart's key.
    """
    # One chart per chosen channel: a chart remembers its last click, and clicking the same map again after the
    # channel was typed would change nothing. A fresh chart starts with no selection, so every click counts.
    chart_key = f"{key}_{channel}"
    st.html(_grid_style(f'[class*="st-key-{key}_"]', grid.image.width))
    st.altair_chart(
        render.grid_chart(grid, maps),
        width="content",
        theme=None,
        key=chart_key,
        on_select=lambda: _pick_channel(chart_key, channel_key),
        selection_mode=render.GRID_SELECTION,
    )


def _grid_style(chart: str, width: int) -> str:
    """CSS for a grid chart (CSS selector ``chart``) whose image is ``width`` pixels wide.

    The chart is drawn at the image's size, its pixels unsmoothed (a value stays a square, on high-density screens
    too). A column narrower than that shrinks it as a whole (the SVG keeps its aspect ratio), and only then are the
    pixels smoothed: dropping whole rows of pixels would thin out the gaps and the frame of the selected map.
    """
    rules = (
        f"{chart} {{container-type: inline-size; width: 100%}}",  # the column's width, for the query below
        f"{chart} svg.marks {{max-width: 100%; height: auto}}",
        f"@container (max-width: {width - 1}px) {{{chart} svg.marks image {{image-rendering: auto !important}}}}",
    )
    return f"<style>{' '.join(rules)}</style>"


def _pick_channel(chart_key: str, channel_key: str) -> None:
    points = st.session_state[chart_key].selection.get(render.GRID_SELECTION) or []
    if points:  # a click beside the maps clears the selection: keep the channel then
        st.session_state[channel_key] = int(points[0]["channel"])


def _scale(values: np.ndarray, value_range: tuple[float, float] | None) -> tuple[float, float, int]:
    """``(vmin, vmax, decimals)``: the colour range (symmetric about zero unless given) and the decimals that show
    three significant digits of the largest value."""
    finite = np.abs(values[np.isfinite(values)])
    peak = float(finite.max()) if finite.size else 0.0
    decimals = 2 if peak == 0 else min(6, max(2, 2 - math.floor(math.log10(peak))))
    low, high = value_range or (-peak, peak)
    return low, high, decimals


def styled_table(
    frame: pd.DataFrame,
    colour: Sequence[str] | None = None,
    cmap: str = "RdBu_r",
    value_range: tuple[float, float] | None = None,
) -> Styler:
    """A long table for ``st.dataframe``: numbers to four significant digits, some columns coloured as the maps are.

    Args:
        frame: The numbers.
        colour: Columns to colour; None colours all.
        cmap: Matplotlib colour map.
        value_range: ``(vmin, vmax)`` of the colours; None: symmetric about zero over the coloured columns.
    """
    columns = list(frame.columns if colour is None else colour)
    low, high, _ = _scale(frame[columns].to_numpy(dtype=np.float64), value_range)
    numbers = [column for column in frame.columns if pd.api.types.is_float_dtype(frame[column])]
    styler = frame.style.format("{:.4g}", subset=numbers)
    return styler.background_gradient(cmap=cmap, vmin=low, vmax=high, subset=columns, axis=None)


def grid_table(
    values: Tensor | np.ndarray,
    top: int = 0,
    left: int = 0,
    step: tuple[int, int] = (1, 1),
    cmap: str = "RdBu_r",
    value_range: tuple[float, float] | None = None,
    mark: tuple[int, int] | None = None,
) -> str:
    """A small 2-D array (a window, a kernel, a 16×16 map) as a compact coloured HTML table for ``st.html``.

    Row and column headers are positions in the layer's input: ``top + i · step``, ``left + j · step``.

    Args:
        values: ``[h, w]``.
        top: Input row of the first table row.
        left: Input column of the first table column.
        step: Input rows and columns between neighbouring cells (a dilated kernel samples every d-th).
        cmap: Matplotlib colour map of the cell backgrounds.
        value_range: ``(vmin, vmax)`` of the colours; None: symmetric about zero.
        mark: ``(i, j)`` of a cell to frame in the highlight colour (the maximum of a max-pooling window).
    """
    array = values.detach().double().numpy() if isinstance(values, Tensor) else np.asarray(values, np.float64)
    array = array + 0.0  # −0.0 (a zero input times a negative weight) prints as 0.00, not −0.00
    low, high, decimals = _scale(array, value_range)
    scaled = np.clip((array - low) / (high - low), 0, 1) if high > low else np.full(array.shape, 0.5)
    rgba = matplotlib.colormaps[cmap](np.nan_to_num(scaled, nan=0.5, posinf=1.0, neginf=0.0))
    cell = "padding:2px 5px;text-align:right;border:1px solid #e2e8f0"
    head = f"{cell};background:#f8fafc;color:#64748b;font-weight:400"
    rows = ["<tr><th style='" + head + "'></th>"]
    rows += [f"<th style='{head}'>{left + j * step[1]}</th>" for j in range(array.shape[1])]
    rows.append("</tr>")
    for i, line in enumerate(array):
        rows.append(f"<tr><th style='{head}'>{top + i * step[0]}</th>")
        for j, value in enumerate(line):
            r, g, b, _ = rgba[i, j]
            ink = "#0f172a" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"
            frame = f";outline:3px solid {_HIGHLIGHT_HEX};outline-offset:-3px" if mark == (i, j) else ""
            shade = f"rgb({round(r * 255)},{round(g * 255)},{round(b * 255)})"
            rows.append(f"<td style='{cell};background:{shade};color:{ink}{frame}'>{value:.{decimals}f}</td>")
        rows.append("</tr>")
    return (
        "<div style='overflow-x:auto'><table style='border-collapse:collapse;font-size:12px;"
        "font-variant-numeric:tabular-nums;line-height:1.4'>" + "".join(rows) + "</table></div>"
    )


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
        boxed = render.overlay(picture, box=(top, left, top + height, left + width))
        st.image(render.for_display(boxed, 200), caption="The window on the input image", width=200)


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
        with tab:
            # Kernels wider than 5 get the products on a row of their own: three 7×7 tables do not fit side by side.
            patch, kernel, products = st.columns(3) if kw <= 5 else (*st.columns(2), st.container())
            patch.caption("input patch")
            patch.html(grid_table(unit.patch[i], top, left, step))
            kernel.caption("× kernel weights")
            kernel.html(grid_table(unit.weights[i]))
            products.caption(f"= products, summing to {sums[i]:.6g}")
            products.html(grid_table(unit.products[i], top, left, step))
    table, equation, where = st.columns([2, 2, 1.2])
    per_channel = pd.DataFrame({"input channel": channels, "Σ patch × kernel": sums})
    table.dataframe(
        styled_table(per_channel, colour=["Σ patch × kernel"]), hide_index=True, height=min(300, 38 + 35 * len(sums))
    )
    equation.markdown(_sum_lines(f"Σ over {len(channels)} channel(s)", unit))
    with where:
        _window_picture(unit, picture)


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
