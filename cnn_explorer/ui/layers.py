"""Widgets and views of the Layers page."""

from __future__ import annotations

import html
import math
from collections.abc import Hashable, Sequence
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
    UnknownLayer,
    activation_stats,
    describe,
    effective_receptive_field,
    theoretical_field,
)
from cnn_explorer.model import LoadedModel
from cnn_explorer.ui.core import follow_default, png_on_click, user_chose
from cnn_explorer.ui.layer_cache import (
    COLOURBAR_WIDTH,
    MAP_WIDTH,
    LayerCapture,
    boxed_picture,
    cached_histogram_png,
    cached_vector_png,
    maps_pictures,
)

HIGHLIGHT_HEX = "#" + bytes(render.HIGHLIGHT_COLOUR).hex()
_STRIP_LABELLED = 32  # longer networks are drawn as slim bars without labels
_STRIP_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("convolution", "#2563eb", ("Conv2d",)),
    ("pooling", "#f59e0b", ("MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d")),
    ("dense", "#7c3aed", ("Linear",)),
    ("activation", "#16a34a", ("ReLU", "ReLU6", "LeakyReLU", "Tanh", "Sigmoid", "Hardswish", "Hardsigmoid", "SiLU")),
    ("other", "#94a3b8", ()),
)


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
            "output shape": [shape_text(info.output_shape) for info in layers],
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
        frame = f"outline:3px solid {HIGHLIGHT_HEX};outline-offset:1px;" if mine else ""
        label = ""
        if labelled:
            parts = info.name.split(".")
            tail = html.escape(".".join(parts[-2:]) if parts[-1].split("#")[0].isdigit() else parts[-1])
            label = (
                '<div style="margin-top:4px;max-width:60px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;'
                f'{"font-weight:700;color:#0f172a" if mine else ""}">{tail}</div><div>{shape_text(shape)}</div>'
            )
        cells.append(
            f'<div title="{html.escape(info.name)} · {info.kind} · {shape_text(shape)}" style="width:{cell}px;'
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


def shape_text(shape: Sequence[int]) -> str:
    """A shape as people write it: 3×224×224."""
    return "×".join(str(n) for n in shape)


PACES = (0.5, 1.0, 2.0, 3.0, 5.0)  # seconds per layer while playing


def layer_stepper(names: Sequence[str], context: Hashable = None, key: str = "layer_step") -> str:
    """Previous / Next buttons around a slider over the layers, and Play; returns the current layer's name.

    It starts on the first layer, and again for another ``context`` (the model's name): a layer chosen for one model
    is not carried to another. The buttons move the slider through callbacks, which run before the script: Streamlit
    lets code set a widget's value only before the widget is drawn in a run. The arrow keys ← and → press Previous and
    Next (for a lecture: one key per layer); Play walks on by itself, one layer per chosen pace, and stops at the end.
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
        shortcut="Left",
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
        shortcut="Right",
    )
    with slider:
        name = st.select_slider(
            "Layer", names, key=key, format_func=lambda name: f"{names.index(name) + 1}/{len(names)} · {name}"
        )
    _player(names, key, position)
    return name


def _player(names: list[str], key: str, position: int) -> None:
    """Play / Pause and the pace; while playing, a timed fragment steps to the next layer and reruns the page."""
    playing_key = f"{key}_playing"
    playing = bool(st.session_state.get(playing_key)) and position < len(names) - 1
    st.session_state[playing_key] = playing
    play, pace_col, _ = st.columns([1.6, 2.4, 6], vertical_alignment="center")
    play.button(
        "Pause" if playing else "Play",
        key=f"{key}_play",
        icon=":material/pause:" if playing else ":material/play_arrow:",
        on_click=_toggle_play,
        args=(names, key),
        width="stretch",
        help="Walk through the network by itself, one layer per chosen pace",
    )
    pace = pace_col.selectbox(
        "Pace",
        PACES,
        index=1,
        key=f"{key}_pace",
        format_func=lambda s: f"{s:g} s a layer",
        label_visibility="collapsed",
    )
    if playing:
        st.session_state[_PAGE_RUN.format(key)] = True  # this run is the page's: the fragment only draws itself
        st.fragment(run_every=pace)(_advance_while_playing)(names, key)


def _toggle_play(names: list[str], key: str) -> None:
    playing_key = f"{key}_playing"
    st.session_state[playing_key] = not st.session_state.get(playing_key)
    if st.session_state[playing_key] and st.session_state.get(key) == names[-1]:
        st.session_state[key] = names[0]  # Play at the last layer starts again from the first


_PAGE_RUN = "{}_page_run"


def _advance_while_playing(names: list[str], key: str) -> None:
    """The fragment's body: in the page's run it only draws itself; each timed run of its own steps one layer and
    reruns the page."""
    if st.session_state.get(_PAGE_RUN.format(key)):
        st.session_state[_PAGE_RUN.format(key)] = False
        return
    if st.session_state.get(f"{key}_playing"):
        _step(names, key, 1)
        st.rerun()


def _step(names: list[str], key: str, delta: int) -> None:
    position = names.index(st.session_state[key]) + delta
    st.session_state[key] = names[min(max(position, 0), len(names) - 1)]


def filters_and_statistics(
    module: nn.Module, layer: str, output: Tensor, shown_for: tuple[str, str] | None = None
) -> None:
    """A layer's kernels (first conv as colour patches) beside the histogram and dead channels of its output.

    Args:
        module: The layer's module.
        layer: Its name, for titles.
        output: Its captured output ``[1, …]``.
        shown_for: ``(model name, image digest)`` of the output: its histogram is then drawn once and cached.
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
        if shown_for is None:
            st.pyplot(render.histogram_figure(output, title=f"values of {layer}"))
        else:
            st.image(cached_histogram_png(*shown_for, layer, output), width="stretch", output_format="PNG")
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
    grid: render.FeatureGrid,
    maps: Tensor,
    channel: int,
    channel_key: str,
    key: str = "layer_grid",
    spec: dict | None = None,
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
        spec: The chart of ``grid`` already built (:func:`~cnn_explorer.render.grid_chart_spec`); None builds it.
    """
    # One chart per chosen channel: a chart remembers its last click, and clicking the same map again after the
    # channel was typed would change nothing. A fresh chart starts with no selection, so every click counts.
    chart_key = f"{key}_{channel}"
    st.html(_grid_style(f'[class*="st-key-{key}_"]', grid.image.width))
    st.vega_lite_chart(
        spec=spec or render.grid_chart_spec(grid, maps),  # the dict itself: an Altair chart costs ~50 ms to build
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
    labels: tuple[str, Sequence[object], Sequence[object]] | None = None,
) -> str:
    """A small 2-D array (a window, a kernel, a 16×16 map) as a compact coloured HTML table for ``st.html``.

    Row and column headers are positions in the layer's input: ``top + i · step``, ``left + j · step``, unless
    ``labels`` names them.

    Args:
        values: ``[h, w]``.
        top: Input row of the first table row.
        left: Input column of the first table column.
        step: Input rows and columns between neighbouring cells (a dilated kernel samples every d-th).
        cmap: Matplotlib colour map of the cell backgrounds.
        value_range: ``(vmin, vmax)`` of the colours; None: symmetric about zero.
        mark: ``(i, j)`` of a cell to frame in the highlight colour (the maximum of a max-pooling window).
        labels: ``(corner, row headers, column headers)`` instead of positions (a table of per-channel sums).
    """
    array = values.detach().double().numpy() if isinstance(values, Tensor) else np.asarray(values, np.float64)
    array = array + 0.0  # −0.0 (a zero input times a negative weight) prints as 0.00, not −0.00
    low, high, decimals = _scale(array, value_range)
    scaled = np.clip((array - low) / (high - low), 0, 1) if high > low else np.full(array.shape, 0.5)
    rgba = matplotlib.colormaps[cmap](np.nan_to_num(scaled, nan=0.5, posinf=1.0, neginf=0.0))
    cell = "padding:2px 5px;text-align:right;border:1px solid #e2e8f0"
    head = f"{cell};background:#f8fafc;color:#64748b;font-weight:400"
    corner, row_names, column_names = labels or (
        "",
        [top + i * step[0] for i in range(array.shape[0])],
        [left + j * step[1] for j in range(array.shape[1])],
    )
    rows = [f"<tr><th style='{head}'>{html.escape(corner)}</th>"]
    rows += [f"<th style='{head}'>{html.escape(str(name))}</th>" for name in column_names]
    rows.append("</tr>")
    for i, line in enumerate(array):
        rows.append(f"<tr><th style='{head}'>{html.escape(str(row_names[i]))}</th>")
        for j, value in enumerate(line):
            r, g, b, _ = rgba[i, j]
            ink = "#0f172a" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"
            frame = f";outline:3px solid {HIGHLIGHT_HEX};outline-offset:-3px" if mark == (i, j) else ""
            shade = f"rgb({round(r * 255)},{round(g * 255)},{round(b * 255)})"
            rows.append(f"<td style='{cell};background:{shade};color:{ink}{frame}'>{value:.{decimals}f}</td>")
        rows.append("</tr>")
    return (
        "<div style='overflow-x:auto'><table style='border-collapse:collapse;font-size:12px;"
        "font-variant-numeric:tabular-nums;line-height:1.4'>" + "".join(rows) + "</table></div>"
    )


# The page's sections ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ShownOutput:
    """What the layer's output section showed: the chosen channel (or unit), and for maps the grid and the map (the map
    and the grid as PNG where they were drawn from the cache)."""

    channel: int
    index: tuple[int, ...]
    grid: render.FeatureGrid | None = None
    selected: Image.Image | bytes | None = None
    grid_png: bytes | None = None


def layer_output_view(model: LoadedModel, layers: Sequence[LayerInfo], name: str, capture: LayerCapture) -> ShownOutput:
    """The layer's heading and description, then its output: feature maps (a grid to pick from, the chosen map and
    its values) or a vector (a bar per unit). Stops the page for an output that is not drawn here."""
    info = next(layer for layer in layers if layer.name == name)
    if name not in capture.outputs:  # a layer whose output is not a tensor
        st.info(f"{name} produced no tensor to show.")
        st.stop()
    output = capture.outputs[name][0]
    st.subheader(f"{name} · {info.kind}")
    block = f" It belongs to a **{info.block}**: {describe(info.block)}" if info.block else ""
    st.markdown(info.description + block)
    st.caption(
        f"input {list(info.input_shape)} → output {list(info.output_shape)} · {info.params:,} parameters · each unit "
        + ("sees the whole input" if info.whole_input else f"sees {info.receptive_field} px, {info.jump} px apart")
    )
    if output.dim() == 3:
        return _maps_view(model, name, output, capture)
    if output.dim() == 1:
        follow_default("layer_channel", strongest_unit(output)[0], model.name)  # the logits: the predicted class
        channel = bounded_number(f"Unit (0…{output.shape[0] - 1})", output.shape[0] - 1, "layer_channel")
        is_logits = info is layers[-1] and output.shape[0] == len(model.class_names)
        labels = tuple(model.class_names) if is_logits else None
        png, width = cached_vector_png(capture.source, name, channel, labels, output)
        st.image(png, width=width, output_format="PNG")  # about its natural size: stretched, text grows
        return ShownOutput(channel, (channel,))
    st.info(f"An output of shape {list(info.output_shape)} is not drawn here.")
    st.stop()


def _maps_view(model: LoadedModel, name: str, output: Tensor, capture: LayerCapture) -> ShownOutput:
    """Every map of a ``[C, H, W]`` output in a grid beside the chosen one, its colour bar and its values."""
    maps, detail = st.columns([3, 2], gap="large")
    with detail:
        scope = st.segmented_control(
            "Colour scale",
            list(render.SCALES),
            format_func=lambda key: render.SCALES[key].label,
            default="layer",
            key="layer_scope",
        )
        scope = scope or "layer"  # clicking the chosen option again clears it
        st.caption(render.SCALES[scope].description)
        follow_default("layer_channel", 0, model.name)  # a channel the person chose stays for this model
        channel = bounded_number(f"Channel (0…{output.shape[0] - 1})", output.shape[0] - 1, "layer_channel")
    pictures, colourbar = maps_pictures(capture, name, scope, channel, output)
    grid = pictures.grid
    low, high = grid.ranges[channel]
    with maps:
        with st.container(height=560 if grid.image.height > 560 else "content", border=False):
            grid_picker(grid, output, channel, "layer_channel", spec=pictures.grid_spec)
        st.caption(
            f"All {output.shape[0]} maps, channel {channel} framed: hover a map for its values, click to pick it"
        )
    with detail:
        selected = pictures.map_png
        shown, shown_format = pictures.map_shown
        st.image(shown, width=MAP_WIDTH, output_format=shown_format)
        st.image(colourbar, width=COLOURBAR_WIDTH, output_format="PNG")
        values = output[channel]
        st.caption(f"Channel {channel}: {float(values.min()):.4g} … {float(values.max()):.4g}")
    table = render.value_table(output[channel])
    if table is not None:
        with st.expander(f"The values of channel {channel}", expanded=output.shape[-1] <= 8):
            st.html(grid_table(table, cmap=grid.cmap, value_range=(low, high)))
    return ShownOutput(channel, (channel,), grid, selected, pictures.grid_png)


def receptive_field_view(
    model: LoadedModel,
    layers: Sequence[LayerInfo],
    name: str,
    index: tuple[int, ...],
    digest: str,
    x: Tensor,
    picture: Image.Image,
) -> None:
    """The input pixels the unit can see, beside (on request) how strongly each of them moves it."""
    box = theoretical_field(layers, name, *index[1:])
    theory, effective = st.columns(2)
    with theory:
        data, data_format = boxed_picture(picture, box, 320)
        st.image(data, width=320, output_format=data_format)
        st.caption(
            f"The input pixels unit {list(index)} can see: rows {box[0]}…{box[2] - 1}, columns {box[1]}…{box[3] - 1}"
        )
    with effective:
        if st.toggle("Effective receptive field (one backward pass per unit)", key="layer_erf"):
            try:
                heat = cached_effective_field(model.name, digest, name, index, model, x)
            except (UnknownLayer, ValueError) as err:
                st.info(str(err))
            else:
                st.image(render.for_display(render.overlay(picture, heat, box=box), 320), width=320)
                st.caption("How strongly each pixel moves this unit: |∂ unit / ∂ pixel|, summed over colour channels")
        else:
            st.caption("How much each pixel inside the field actually moves the unit: usually a blob in its centre.")


def layer_downloads(model_name: str, name: str, shown: ShownOutput) -> None:
    """Download buttons for the grid of maps and the chosen map (maps only)."""
    if shown.grid is None:
        return
    stem = f"{model_name}-{name.replace('#', '-call')}"
    channel = shown.channel
    downloads = [
        ("grid", "the grid", shown.grid_png or shown.grid.image, "maps"),
        ("map", f"channel {channel}", shown.selected, f"channel{channel}"),
    ]
    for column, (key, what, png, suffix) in zip(st.columns([1, 1, 2]), downloads, strict=False):
        column.download_button(
            f"Download {what} (PNG)",
            png_on_click(png),
            f"{stem}-{suffix}.png",
            "image/png",
            key=f"download_{key}",
            icon=":material/download:",
        )
