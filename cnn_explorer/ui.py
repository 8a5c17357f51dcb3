"""The only library module that imports streamlit: cached loaders and the shared sidebar.

Pages call :func:`selection` for the model and image chosen in the sidebar and never load either themselves.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import streamlit as st
import torch
from pandas.io.formats.style import Styler
from PIL import Image
from torch import Tensor, nn

from cnn_explorer import render, user_models
from cnn_explorer.architectures import TRAINABLE, StackError, describe_stack
from cnn_explorer.attribution import (
    METHODS,
    Explanation,
    MethodSpec,
    cam_layers,
    default_cam_layer,
    explain,
    gradcam_steps,
)
from cnn_explorer.data import DATASETS as TRAINING_DATA
from cnn_explorer.data import (
    DatasetError,
    DatasetUnavailable,
    LabelledImages,
    Prepared,
    datasets_home,
    extract_zip,
    imbalance,
    preview,
)
from cnn_explorer.data import prepare as prepare_data
from cnn_explorer.featurevis import (
    DATASETS,
    channel_scores,
    dataset_images,
    default_dataset,
    maximize_activation,
    top_images,
    visualizable_layers,
)
from cnn_explorer.images import (
    SAMPLES,
    ImageError,
    default_sample,
    image_digest,
    load_image,
    sample_bytes,
    samples_for,
)
from cnn_explorer.jobs import poll as poll_jobs
from cnn_explorer.jobs import stop as stop_job
from cnn_explorer.jobs import submit as submit_job
from cnn_explorer.layers import (
    LayerInfo,
    UnitArithmetic,
    activation_stats,
    capture_layers,
    effective_receptive_field,
    list_layers,
)
from cnn_explorer.pixels import image_pixels, normalize
from cnn_explorer.playground import (
    ACTIVATIONS,
    KERNEL_SIZES,
    KERNELS,
    PADDING_MODES,
    POOLS,
    ConvSettings,
    ConvStep,
    GradientFlow,
    KernelPreset,
    SharingRow,
    TranslationEffect,
    activation_curve,
    conv_step,
    convolve,
    default_translation_layer,
    gradient_flow,
    image_tensor,
    pad,
    pool,
    size_formula,
    spatial_layers,
    translation_effect,
    weight_sharing,
)
from cnn_explorer.report import DEFAULT_METHODS as REPORT_METHODS
from cnn_explorer.report import Report, ReportError, build_report, default_layers
from cnn_explorer.report import to_pdf as report_to_pdf
from cnn_explorer.robustness import ATTACKS, AttackResult, FlipSearch, attack, smallest_flip
from cnn_explorer.runner import validation_set
from cnn_explorer.runs import (
    RunError,
    RunNotFound,
    delete_run,
    export_run,
    get_run,
    list_runs,
    read_metrics,
    read_model_info,
    read_progress,
    read_results,
    read_timelapse,
    rename_run,
)
from cnn_explorer.runspec import LAYER_TYPES, Augmentation, DataSpec, LayerSpec, ModelSpec, RunSpec, Settings
from cnn_explorer.trust import METRICS, TrustReport, trust_report
from cnn_explorer.zoo import LoadedModel, ModelUnavailable, Prediction, available_models, load_model, model_entry
from cnn_explorer.zoo import predict as _predict

__all__ = [
    "HeatDisplay",
    "LayerCapture",
    "Selection",
    "activations_view",
    "attack_panels",
    "attack_result",
    "bounded_number",
    "cached_cam_layers",
    "cached_capture",
    "cached_dataset_images",
    "cached_effective_field",
    "cached_gradient_flow",
    "cached_input",
    "cached_layer_table",
    "cached_picture",
    "cached_pixels",
    "cached_prediction",
    "cached_prepared",
    "cached_translation",
    "cached_visualizable_layers",
    "cached_weight_sharing",
    "computed",
    "convolution_view",
    "current_run_id",
    "data_form",
    "data_preview",
    "explanation",
    "explanation_card",
    "filter_view",
    "filters_and_statistics",
    "flip_search_result",
    "gradcam_pair",
    "gradcam_walkthrough",
    "grid_picker",
    "grid_table",
    "heat_display_controls",
    "kernel_editor",
    "layer_overview",
    "layer_stepper",
    "method_params",
    "network_picture",
    "overfitting_note",
    "own_model_panel",
    "pooling_view",
    "report_export",
    "request_button",
    "require_selection",
    "require_view",
    "results_view",
    "run_actions",
    "run_monitor",
    "runs_overview",
    "selection",
    "settings_form",
    "show_arithmetic",
    "sidebar",
    "stack_editor",
    "stack_strip",
    "stack_summary",
    "start_run",
    "styled_table",
    "timelapse_view",
    "transfer_form",
    "trust_panel",
    "unavailable",
    "unit_position",
    "weight_sharing_view",
]

DEFAULT_MODEL = "tinyvgg-shapes"
_SOURCES = ("Sample", "Upload", "Camera")
_ACCEPTED = "PNG, JPEG, WebP, BMP, GIF or TIFF"
_UPLOAD_MB = 25  # images and data zips; server.maxUploadSize is the larger limit of a model file (own_model_panel)


@dataclass(frozen=True)
class Selection:
    """What the sidebar chose.

    Attributes:
        model: The loaded model, or None when it could not be loaded (``model_note`` says why).
        image: The decoded RGB image, or None (``image_note`` says why).
        image_digest: SHA-256 of the image bytes: the cache key of everything computed from it.
        image_label: Where the image came from, for captions.
    """

    model: LoadedModel | None
    model_note: str | None
    image: Image.Image | None
    image_note: str | None
    image_digest: str | None
    image_label: str


@st.cache_resource(max_entries=6, show_spinner=False)
def cached_model(name: str) -> LoadedModel:
    """One LoadedModel per name, shared by every session (computations hold ``model.lock``)."""
    progress = st.progress(0.0, text=f"Downloading the weights of {name} …")

    def report(done: int, total: int | None) -> None:
        fraction = done / total if total else 0.0
        progress.progress(min(fraction, 1.0), text=f"Downloading {name}: {done / 1e6:.1f} MB")

    try:
        return load_model(name, progress=report)
    finally:
        progress.empty()


@st.cache_resource(max_entries=32, show_spinner=False)
def _decoded(digest: str, _data: bytes) -> Image.Image:
    return load_image(_data)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_input(model_name: str, digest: str, _model: LoadedModel, _image: Image.Image):
    """The preprocessed input ``[1, C, H, W]`` for (model, image), computed once."""
    return _model.preprocess(_image)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_prediction(model_name: str, digest: str, _model: LoadedModel, _image: Image.Image) -> Prediction:
    """Class probabilities for (model, image), computed once."""
    return _predict(_model, cached_input(model_name, digest, _model, _image), k=len(_model.class_names))


def sidebar() -> Selection:
    """Draw the shared sidebar (model and image pickers) and remember the selection for the pages."""
    with st.sidebar:
        st.markdown("### Model")
        names = available_models()
        name = st.selectbox(
            "Model",
            names,
            index=names.index(DEFAULT_MODEL) if DEFAULT_MODEL in names else 0,
            format_func=_model_label,
            key="model_name",
            label_visibility="collapsed",
        )
        model, model_note = _load(name)
        if model is not None:
            st.caption(model.summary)
        own_model_panel(name)
        st.markdown("### Image")
        source = st.segmented_control("Source", _SOURCES, default="Sample", key="image_source") or "Sample"
        data, label = _image_bytes(source, name)
        image, image_note, digest = None, None, None
        if data is not None:
            digest = image_digest(data)
            try:
                image = _decoded(digest, data)
            except ImageError as err:
                image_note = str(err)  # shown once, in the page (require_selection)
    chosen = Selection(model, model_note, image, image_note, digest, label)
    st.session_state["selection"] = chosen
    return chosen


def selection() -> Selection:
    """The sidebar's current choice (the sidebar runs before every page)."""
    if "selection" not in st.session_state:
        _rerun_through_app()
    return st.session_state["selection"]


def _rerun_through_app() -> None:
    """Rerun a page that Streamlit started without app.py.

    With a ``pages/`` folder beside app.py, Streamlit starts in its legacy pages-folder mode and leaves it the first
    time app.py calls ``st.navigation``. So on a fresh server whose first visitor opens a page's URL (a bookmark, a
    shared link), the page script runs alone, without the sidebar. Leave that mode and rerun: app.py then runs and
    shows the requested page.
    """
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()


def require_selection() -> tuple[LoadedModel, Image.Image, str]:
    """The model, image and image digest, or stop the page with a message that says what to do."""
    chosen = selection()
    if chosen.model is None:
        st.info(chosen.model_note or "Choose a model in the sidebar.")
        st.stop()
    if chosen.image is None:
        if chosen.image_note:
            st.error(chosen.image_note)
        else:
            st.info(f"Choose a sample, upload an image ({_ACCEPTED}) or take a photo in the sidebar.")
        st.stop()
    return chosen.model, chosen.image, chosen.image_digest


def _model_label(name: str) -> str:
    entry = model_entry(name)
    note = "" if entry.is_ready() else " · needs download"
    return f"{name} ({entry.family}{note})"


def _load(name: str) -> tuple[LoadedModel | None, str | None]:
    try:
        return cached_model(name), None
    except ModelUnavailable as err:
        note = f"**{name} is not available here.** {err}"
        st.warning(note)
        return None, note


def _image_bytes(source: str, model_name: str) -> tuple[bytes | None, str]:
    if source == "Upload":
        upload = st.file_uploader(
            "Upload an image",
            key="upload",
            max_upload_size=_UPLOAD_MB,
            help=f"{_ACCEPTED}. The real format is checked, not the file name.",
        )
        return (upload.getvalue(), upload.name) if upload is not None else (None, "")
    if source == "Camera":
        photo = st.camera_input("Take a photo", key="camera")
        return (photo.getvalue(), "camera photo") if photo is not None else (None, "")
    keys = samples_for(model_name)
    suited = samples_for(model_name, made_for_it=True)
    # A new model starts on a sample made for it (a digit for the digit model), keeping the choice otherwise.
    if st.session_state.get("sample") not in keys or (
        st.session_state.get("sample_model") != model_name and suited and st.session_state["sample"] not in suited
    ):
        st.session_state["sample"] = default_sample(model_name)
    st.session_state["sample_model"] = model_name
    key = st.selectbox("Sample", keys, format_func=lambda k: SAMPLES[k].title, key="sample")
    st.caption(f"Licence: {SAMPLES[key].licence}", help=SAMPLES[key].source)
    return sample_bytes(key), SAMPLES[key].title


# ── the layer explorer ──────────────────────────────────────────────────────────────────────────────────────────

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


def layer_stepper(names: Sequence[str], key: str = "layer_step") -> str:
    """Previous / Next buttons around a slider over the layers; returns the current layer's name.

    The buttons move the slider through callbacks, which run before the script: Streamlit lets code set a widget's
    value only before the widget is drawn in a run.
    """
    names = list(names)
    if st.session_state.get(key) not in names:  # first visit, or another model
        st.session_state[key] = names[0]
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


def unit_position(height: int, width: int) -> tuple[int, int]:
    """Row and column inputs for one unit of a ``height × width`` map.

    On a layer of another size the unit moves to the same relative place (the middle at first), so stepping
    follows one spot of the image through the network.
    """
    previous = st.session_state.get("unit_map_size")
    if previous is not None and previous != (height, width):
        for key, old, new in (("unit_row", previous[0], height), ("unit_col", previous[1], width)):
            if key in st.session_state:
                st.session_state[key] = min(int((st.session_state[key] + 0.5) * new / old), new - 1)
    st.session_state["unit_map_size"] = (height, width)
    row_input, col_input, _ = st.columns([1, 1, 3])
    with row_input:
        row = bounded_number(f"Row (0…{height - 1})", height - 1, "unit_row", default=height // 2)
    with col_input:
        col = bounded_number(f"Column (0…{width - 1})", width - 1, "unit_col", default=width // 2)
    return row, col


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


# ── explanations ────────────────────────────────────────────────────────────────────────────────────────────────


class _ResultStore:
    """Explanations and trust reports shared by every session, keyed on (model, image digest, method, target,
    layer, parameters).

    Not ``st.cache_data``: a slow computation shows its own progress bar and cancel button while it runs, and a
    cancelled one must store nothing. Bounded; thread-safe.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self._entries: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, key: tuple) -> Any:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
            return self._entries.get(key)

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


@st.cache_resource(show_spinner=False)
def _results() -> _ResultStore:
    return _ResultStore()


@st.cache_data(max_entries=16, show_spinner=False)
def cached_cam_layers(model_name: str, _model: LoadedModel) -> tuple[list[str], str | None]:
    """The conv layers a CAM can use and the default one (None when the model has no spatial conv output)."""
    layers = list(cam_layers(_model))
    try:
        return layers, default_cam_layer(_model)
    except ValueError:
        return layers, None


def method_params(spec: MethodSpec) -> dict[str, int | float | str]:
    """Widgets for a method's parameters, built from ``spec.params``; returns the chosen values."""
    values: dict[str, int | float | str] = {}
    for param in spec.params:
        key = f"explain_{spec.key}_{param.name}"
        if param.choices:
            values[param.name] = st.selectbox(param.label, param.choices, key=key, help=param.help or None)
        elif isinstance(param.default, int):
            values[param.name] = st.slider(
                param.label, int(param.low), int(param.high), int(param.default), key=key, help=param.help or None
            )
        else:
            values[param.name] = st.slider(
                param.label,
                float(param.low),
                float(param.high),
                float(param.default),
                step=0.01,
                key=key,
                help=param.help or None,
            )
    return values


def explanation(
    model: LoadedModel,
    x: Tensor,
    digest: str,
    method: str,
    target: int,
    layer: str | None,
    params: dict[str, int | float | str],
) -> Explanation | None:
    """The explanation from the shared store, or computed now.

    A slow method runs with a progress bar, its elapsed time and a Cancel button: clicking it makes Streamlit stop
    this run at the next progress update (the library restores the model on the way out), and the method then waits
    for a click on Compute. Returns None while it waits; a bad parameter shows an error.
    """
    spec = METHODS[method]
    key = _result_key("explanation", model, digest, method, target, layer, params)
    store = _results()
    if (found := store.get(key)) is not None:
        return found
    skipped = st.session_state.setdefault("explain_skipped", set())
    if spec.slow and key in skipped:
        st.info(f"{spec.name} was cancelled.")
        st.button("Compute", key=f"explain_compute_{method}", on_click=skipped.discard, args=(key,))
        return None
    progress = slot = None
    if spec.slow:
        slot = st.empty()
        with slot.container():
            bar = st.progress(0.0, text=f"{spec.name} …")
            st.button("Cancel", key=f"explain_cancel_{method}", on_click=skipped.add, args=(key,))
        started = time.perf_counter()

        def progress(fraction: float) -> None:
            bar.progress(fraction, text=f"{spec.name}: {fraction:.0%} · {time.perf_counter() - started:.1f} s")

    try:
        result = explain(model, x, method, target=target, layer=layer, progress=progress, **params)
    except ValueError as error:
        st.error(str(error))
        return None
    store.put(key, result)
    if slot is not None:
        slot.empty()
    return result


@dataclass(frozen=True)
class HeatDisplay:
    """How the page draws every heatmap (chosen once, applied to all methods)."""

    cmap: str
    alpha: float
    sign: str
    normalized: bool


def heat_display_controls() -> HeatDisplay:
    """Colour map, opacity, sign and scale widgets in one row."""
    cmap_col, alpha_col, sign_col, scale_col = st.columns([1, 1, 1.6, 1])
    cmap = cmap_col.selectbox("Colour map", render.HEAT_CMAPS, key="explain_cmap")
    alpha = alpha_col.slider("Opacity", 0.0, 1.0, 0.6, 0.05, key="explain_alpha")
    sign = sign_col.segmented_control(
        "Sign", list(render.SIGNS), default="positive", key="explain_sign", help="\n\n".join(render.SIGNS.values())
    )
    scale = scale_col.segmented_control("Scale", ["normalized", "raw"], default="normalized", key="explain_scale")
    return HeatDisplay(
        cmap=cmap, alpha=alpha, sign=sign or "positive", normalized=(scale or "normalized") == "normalized"
    )


def explanation_card(result: Explanation, picture: Image.Image, display: HeatDisplay) -> None:
    """One method's map over the image, its colour range, what it was computed for, a PNG download."""
    shown = render.heat_overlay(
        picture,
        result.heatmap,
        sign=display.sign,
        normalized=display.normalized,
        cmap=display.cmap,
        alpha=display.alpha,
    )
    st.image(render.for_display(shown.image, 320), width="stretch")
    at = f" at `{result.layer}`" if result.layer else ""
    unit = "of the largest" if display.normalized else "raw units"
    st.caption(f"{result.target_name}{at} · {shown.vmin:.3g} … {shown.vmax:.3g} ({unit}) · {result.seconds:.2f} s")
    st.download_button(
        "PNG",
        render.to_png_bytes(shown.image),
        file_name=f"{result.method}-{result.target_name}.png",
        mime="image/png",
        key=f"explain_download_{result.method}",
        icon=":material/download:",
    )


def gradcam_walkthrough(model: LoadedModel, x: Tensor, target: int, layer: str, picture: Image.Image) -> None:
    """Grad-CAM computed step by step, each step shown, the end checked against the method's own result."""
    steps = gradcam_steps(model, x, target=target, layer=layer)
    method = explain(model, x, "gradcam", target=target, layer=layer)
    k, (h, w) = steps.activations.shape[0], steps.cam.shape
    st.markdown(
        f"**1 · Activations.** The {k} feature maps $A_k$ of `{layer}` ({h}×{w} each) for this image: what the layer "
        "detected, and where."
    )
    grid = render.feature_grid(steps.activations, "layer", cell=72, max_width=900)
    st.image(grid.image)
    st.caption(f"{grid.ranges[0][0]:.3g} … {grid.ranges[0][1]:.3g}, one colour scale for the layer ({grid.cmap})")
    st.markdown(
        f"**2 · Gradients.** $\\partial y / \\partial A_k$: how much the score of **{model.class_names[target]}** "
        f"(the logit $y = {steps.score:.4g}$, before softmax) rises when each activation rises. Red raises it."
    )
    gradients = render.feature_grid(steps.gradients, "layer", cmap="RdBu_r", cell=72, max_width=900)
    st.image(gradients.image)
    st.caption(f"{gradients.ranges[0][0]:.3g} … {gradients.ranges[0][1]:.3g}, blue below zero, red above")
    st.markdown(
        "**3 · One weight per map.** $\\alpha_k$ = the mean of map $k$'s gradients over its "
        f"{h * w} positions: how important map $k$ is for the class, as a whole."
    )
    bars, _ = st.columns([3, 2])
    bars.pyplot(render.vector_figure(steps.weights, title="α_k, one per channel"), width="stretch")
    st.markdown(
        "**4 · Weighted sum** $\\sum_k \\alpha_k A_k$ (blue where the weighted maps speak against the class), "
        "**5 · ReLU** keeps only the evidence for it, **6 · upsampled** bilinearly to the input's size."
    )
    weighted, relu, up = st.columns(3)
    peak = float(steps.weighted_sum.abs().max()) or 1.0
    weighted.image(render.map_image(steps.weighted_sum, -peak, peak, "RdBu_r", 240))
    weighted.caption(f"Σ α·A: {float(steps.weighted_sum.min()):.3g} … {float(steps.weighted_sum.max()):.3g}")
    top = float(steps.cam.max()) or 1.0
    relu.image(render.map_image(steps.cam, 0.0, top, "jet", 240))
    relu.caption(f"ReLU: 0 … {float(steps.cam.max()):.3g}")
    up.image(render.for_display(render.heat_overlay(picture, steps.upsampled).image, 240))
    up.caption(f"Upsampled to {x.shape[-1]}×{x.shape[-2]} and laid over the image")
    difference = float((steps.upsampled - method.heatmap).abs().max())
    verdict = "the same map" if difference <= 1e-5 * max(top, 1.0) else "a different map — please report this"
    st.success(
        f"Step 6 against `explain(model, x, 'gradcam')` (TorchCAM): largest difference {difference:.2g} — {verdict}."
    )


def _result_key(
    kind: str, model: LoadedModel, digest: str, method: str, target: int, layer: str | None, params: dict
) -> tuple:
    """What a result depends on (a CAM layer only for the methods that use one)."""
    layer = layer if METHODS[method].uses_layer else None
    return (kind, model.name, digest, method, target, layer, tuple(sorted(params.items())))


def trust_panel(
    model: LoadedModel,
    x: Tensor,
    digest: str,
    methods: Sequence[str],
    target: int,
    layer: str | None,
    params: dict[str, dict],
) -> None:
    """ "Can I trust these maps?": deletion/insertion curves, the randomization sanity check, infidelity and
    sensitivity for each chosen method, on demand (they take many forward passes), with progress and a cancel."""
    store = _results()
    keys = {m: _result_key("trust", model, digest, m, target, layer, params.get(m, {})) for m in methods}
    requested = st.session_state.setdefault("trust_requested", set())
    missing = [m for m in methods if store.get(keys[m]) is None]
    if missing and not all(keys[m] in requested for m in missing):
        names = ", ".join(METHODS[m].name for m in missing)
        st.button(
            f"Run the checks for {names}",
            key="trust_run",
            icon=":material/fact_check:",
            on_click=requested.update,
            args=([keys[m] for m in missing],),
            help="Hundreds of forward passes per method: seconds on the built-in models, a minute on ImageNet ones.",
        )
    for method in missing:
        if keys[method] not in requested:
            continue
        slot = st.empty()
        with slot.container():
            bar = st.progress(0.0, text=f"Checking {METHODS[method].name} …")
            st.button("Cancel", key=f"trust_cancel_{method}", on_click=requested.discard, args=(keys[method],))
        started = time.perf_counter()

        def progress(fraction: float, name: str = METHODS[method].name, bar=bar, started=started) -> None:
            bar.progress(fraction, text=f"Checking {name}: {fraction:.0%} · {time.perf_counter() - started:.1f} s")

        try:
            report = trust_report(
                model, x, method, target=target, layer=layer, params=params.get(method, {}), progress=progress
            )
        except ValueError as error:
            slot.empty()
            st.error(f"{METHODS[method].name}: {error}")
            requested.discard(keys[method])
            continue
        store.put(keys[method], report)
        slot.empty()
    reports = {m: store.get(keys[m]) for m in methods if store.get(keys[m]) is not None}
    if reports:
        _trust_results(reports, model.class_names[target])


def _trust_results(reports: dict[str, TrustReport], class_name: str) -> None:
    rows = []
    for method, report in reports.items():
        curves, check = report.faithfulness, report.randomization
        rows.append(
            {
                "method": METHODS[method].name,
                "deletion AUC ↓": f"{curves.deletion.auc:.3f} (random {curves.random_deletion.auc:.3f})",
                "insertion AUC ↑": f"{curves.insertion.auc:.3f} (random {curves.random_insertion.auc:.3f})",
                "ρ after randomization ↓": f"{check.correlation:.2f}",
                "sanity check": "⚠ barely changes" if check.flagged else "✓ changes",
                "infidelity ↓": f"{report.infidelity:.3g}",
                "max sensitivity ↓": f"{report.sensitivity:.3g}",
                "seconds": f"{report.seconds:.1f}",
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    for report in reports.values():
        if report.randomization.flagged:
            st.warning(f"{METHODS[report.explanation.method].name}: {report.randomization.verdict}")
    first = next(iter(reports.values()))
    deletion, insertion, randomization = st.columns(3)
    with deletion:
        curves = {METHODS[m].name: r.faithfulness.deletion.probabilities for m, r in reports.items()}
        curves["random order"] = first.faithfulness.random_deletion.probabilities
        st.pyplot(
            render.curves_figure(
                first.faithfulness.deletion.fractions,
                curves,
                "Deletion",
                "share of pixels removed",
                f"p({class_name})",
                dashed=["random order"],
            ),
            width="stretch",
        )
        _metric_note("deletion")
    with insertion:
        curves = {METHODS[m].name: r.faithfulness.insertion.probabilities for m, r in reports.items()}
        curves["random order"] = first.faithfulness.random_insertion.probabilities
        st.pyplot(
            render.curves_figure(
                first.faithfulness.insertion.fractions,
                curves,
                "Insertion",
                "share of pixels revealed",
                f"p({class_name})",
                dashed=["random order"],
            ),
            width="stretch",
        )
        _metric_note("insertion")
    with randomization:
        steps = [0] + [step.randomized for step in first.randomization.steps]
        curves = {
            METHODS[m].name: [1.0] + [step.correlation for step in r.randomization.steps] for m, r in reports.items()
        }
        st.pyplot(
            render.curves_figure(
                steps, curves, "Randomizing weights from the top", "layers randomized", "Spearman ρ with the original"
            ),
            width="stretch",
        )
        _metric_note("randomization")
    for key in ("infidelity", "sensitivity"):
        _metric_note(key)


def _metric_note(key: str) -> None:
    metric = METRICS[key]
    st.caption(f"**{metric.name}** ({metric.better} is better): {metric.reading} [{metric.paper}]({metric.url})")


# ── playground ──────────────────────────────────────────────────────────────────────────────────────────────────

_PICTURE_SIDES = (128, 256, 512)
_STEP_MARGIN = 2  # image pixels shown around the sliding window in the zoomed step
_ZOOM_SIDE = 260  # pixels of the zoomed window
_CURVE_RANGE = (-5.0, 5.0)
_CURVE_POINTS = 401
_TOP_IMAGES = 9
_COLLECTION_SIZE = 300  # images searched for a channel's favourites
_SIGNED = "RdBu_r"


@st.cache_resource(max_entries=16, show_spinner=False)
def cached_picture(digest: str, mode: str, max_side: int, _image: Image.Image) -> Tensor:
    """The sidebar's image as ``[C, H, W]`` in ``[0, 1]``, grey or colour, at most ``max_side`` pixels; shared,
    read-only."""
    return image_tensor(_image, mode, max_side)


@st.cache_resource(max_entries=16, show_spinner=False)
def cached_pixels(model_name: str, digest: str, _model: LoadedModel, _image: Image.Image) -> Tensor:
    """The image as the model sees it before normalization, ``[1, C, H, W]`` in ``[0, 1]``; shared, read-only."""
    return image_pixels(_model, _image)


@st.cache_data(max_entries=32, show_spinner="Shifting the image and running the network on each shift …")
def cached_translation(
    model_name: str,
    digest: str,
    layer: str,
    kind: str,
    window: int,
    stride: int,
    max_shift: int,
    _model: LoadedModel,
    _x: Tensor,
) -> TranslationEffect:
    """:func:`~cnn_explorer.playground.translation_effect`, once per (model, image, settings)."""
    return translation_effect(_model, _x, layer, kind=kind, window=window, stride=stride, max_shift=max_shift)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_gradient_flow(activation: str, depth: int) -> GradientFlow:
    """:func:`~cnn_explorer.playground.gradient_flow` of the seeded stack, once per (activation, depth)."""
    return gradient_flow(activation, depth=depth)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_weight_sharing(model_name: str, _model: LoadedModel) -> list[SharingRow]:
    """:func:`~cnn_explorer.playground.weight_sharing`, once per model."""
    return weight_sharing(_model)


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_dataset_images(key: str, count: int) -> list[Image.Image]:
    """The first ``count`` images of a built-in collection, drawn or loaded once; shared, read-only."""
    return dataset_images(key, count)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_visualizable_layers(model_name: str, _model: LoadedModel) -> list[str]:
    """The conv and dense layers whose channels can be visualized, once per model."""
    return visualizable_layers(_model)


def computed(
    key: tuple,
    label: str,
    compute: Callable[[Callable[[float], None]], Any],
    widget_key: str,
    *,
    on_request: bool = False,
) -> Any:
    """A slow result from the shared store, or computed now with a progress bar, its elapsed time and Cancel.

    With ``on_request`` the computation runs only after :func:`request_button` asked for ``key``, and Cancel
    withdraws the request; otherwise it starts at once, and once cancelled waits for a click on Compute. Cancel
    makes Streamlit stop the run at the next progress update (the library restores the model on the way out).
    Returns None while nothing is stored; a ``ValueError`` of the library is shown as an error.

    Args:
        key: What the result depends on (kind, model name, image digest, parameters).
        label: What is computed, for the progress bar.
        compute: Called with a progress callback (fraction done); returns the result to store.
        widget_key: Prefix of the buttons' keys.
        on_request: Wait for a request.
    """
    store = _results()
    if (found := store.get(key)) is not None:
        return found
    requested = st.session_state.setdefault("playground_requested", set())
    cancelled = st.session_state.setdefault("playground_cancelled", set())
    if on_request and key not in requested:
        return None
    if not on_request and key in cancelled:
        st.info(f"{label} was cancelled.")
        st.button("Compute", key=f"{widget_key}_compute", on_click=cancelled.discard, args=(key,))
        return None
    slot = st.empty()
    with slot.container():
        bar = st.progress(0.0, text=f"{label} …")
        withdraw = requested.discard if on_request else cancelled.add
        st.button("Cancel", key=f"{widget_key}_cancel", on_click=withdraw, args=(key,))
    started = time.perf_counter()

    def progress(fraction: float) -> None:
        bar.progress(
            min(max(fraction, 0.0), 1.0), text=f"{label}: {fraction:.0%} · {time.perf_counter() - started:.1f} s"
        )

    try:
        result = compute(progress)
    except ValueError as error:
        slot.empty()
        requested.discard(key)
        st.error(str(error))
        return None
    store.put(key, result)
    requested.discard(key)
    slot.empty()
    return result


def request_button(label: str, keys: Sequence[tuple], widget_key: str, **kwargs) -> None:
    """A button that asks :func:`computed` (``on_request=True``) for the results under ``keys``; drawn only while
    one of them is neither stored nor already asked for."""
    requested = st.session_state.setdefault("playground_requested", set())
    store = _results()
    if any(store.get(key) is None and key not in requested for key in keys):
        st.button(label, key=widget_key, on_click=requested.update, args=(list(keys),), **kwargs)


# Convolution ----------------------------------------------------------------------------------------------------


def kernel_editor(preset: KernelPreset, size: int, key: str) -> Tensor | None:
    """The preset's kernel in an editable table (a fresh table for every preset and size); returns the kernel as
    edited, or None, with an error, while a cell is empty."""
    frame = pd.DataFrame(preset.kernel(size).double().numpy(), columns=[f"col {j}" for j in range(size)])
    columns = {name: st.column_config.NumberColumn(name, format="%.4f", width="small") for name in frame.columns}
    edited = st.data_editor(frame, key=f"{key}_{preset.key}_{size}", hide_index=True, column_config=columns)
    values = edited.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        st.error("Every weight of the kernel needs a number.")
        return None
    return torch.tensor(values, dtype=torch.float32)


def _advance(rows: int, cols: int) -> None:
    """Move the sliding window one position on, left to right, then the next row (and back to the start)."""
    index = (st.session_state.get("conv_row", 0) * cols + st.session_state.get("conv_col", 0) + 1) % (rows * cols)
    st.session_state["conv_row"], st.session_state["conv_col"] = divmod(index, cols)


def _output_caption(output: Tensor, shown: render.ColouredMap) -> str:
    low, high = float(output.min()), float(output.max())
    size = f"{output.shape[-1]}×{output.shape[-2]} output, values {low:.3g} … {high:.3g}"
    if shown.cmap in ("gray", "rgb") and shown.vmin == 0 and shown.vmax == 1:
        clipped = float(((output < 0) | (output > 1)).float().mean())
        return f"{size} · drawn as a picture on 0 … 1 ({clipped:.1%} of the values beyond it, clipped)"
    zero = "blue below zero, red above" if shown.cmap == _SIGNED else "mid-grey is zero"
    return f"{size} · drawn around zero on ±{shown.vmax:.3g} ({zero})"


def convolution_view(model: LoadedModel, image: Image.Image, digest: str) -> None:
    """The kernel playground on the sidebar's image: presets and an editable kernel, stride, padding, dilation,
    the output with its size formula, and one step of the slide."""
    preset_col, size_col, mode_col, side_col = st.columns([2, 1, 1.3, 1])
    preset = KERNELS[
        preset_col.selectbox("Kernel", list(KERNELS), format_func=lambda k: KERNELS[k].name, key="conv_preset")
    ]
    size = size_col.segmented_control(
        "Kernel size", KERNEL_SIZES, default=3, format_func=lambda k: f"{k}×{k}", key="conv_size"
    )
    mode = mode_col.segmented_control(
        "Channels",
        ["grey", "rgb"],
        default="grey",
        format_func={"grey": "grey", "rgb": "each colour"}.get,
        key="conv_mode",
    )
    side = side_col.selectbox("Image size", _PICTURE_SIDES, index=1, format_func=lambda s: f"≤ {s} px", key="conv_side")
    stride_col, padding_col, padding_mode_col, dilation_col = st.columns([1, 1, 1.3, 1])
    stride = stride_col.slider("Stride", 1, 4, 1, key="conv_stride")
    padding = padding_col.slider("Padding", 0, 4, 0, key="conv_padding")
    padding_mode = padding_mode_col.segmented_control(
        "Pad with", list(PADDING_MODES), default="zeros", key="conv_padding_mode"
    )
    dilation = dilation_col.slider("Dilation", 1, 3, 1, key="conv_dilation", help="Pixels between the kernel's taps")
    size, mode, padding_mode = size or 3, mode or "grey", padding_mode or "zeros"  # a second click clears a choice

    picture = cached_picture(digest, mode, side, image)
    kernel_col, formula_col = st.columns([1, 2], gap="large")
    with kernel_col:
        kernel = kernel_editor(preset, size, "conv_kernel")
        st.caption(f"{preset.summary} Edit any weight and the output follows.")
    if kernel is None:
        return
    settings = ConvSettings(stride, padding, padding_mode, dilation)
    try:
        output = convolve(picture, kernel, settings)
    except ValueError as error:
        st.error(str(error))
        return
    height, width = size_formula(*picture.shape[-2:], size, stride, padding, dilation)
    with formula_col:
        st.markdown(
            "**Output size.** Each side: the input $n$, plus padding $p$ on both ends, minus the span of the dilated "
            "kernel $d(k-1)+1$, counted in steps of the stride $s$, plus the first position."
        )
        st.latex(height.latex)
        st.latex(width.latex)
        st.caption(
            "Like every CNN library, the kernel slides without being flipped (strictly, cross-correlation), and the "
            "same kernel runs over each colour channel on its own."
        )

    rows, cols = output.shape[-2:]
    channel = 0
    step_col, channel_col, row_col, col_col = st.columns([1.2, 1, 1, 1], vertical_alignment="bottom")
    if picture.shape[0] == 3:
        channel = channel_col.segmented_control(
            "Channel", [0, 1, 2], default=0, format_func=("red", "green", "blue").__getitem__, key="conv_channel"
        )
        channel = channel or 0
    with row_col:
        row = bounded_number(f"Output row (0…{rows - 1})", rows - 1, "conv_row", default=rows // 2)
    with col_col:
        col = bounded_number(f"Output column (0…{cols - 1})", cols - 1, "conv_col", default=cols // 2)
    step_col.button(
        "Next position", key="conv_next", icon=":material/arrow_forward:", on_click=_advance, args=(rows, cols)
    )
    step = conv_step(picture, kernel, settings, row, col, channel)

    source, result = st.columns(2)
    shown = render.conv_output_image(output, kernel)
    with source:
        st.image(_boxed(render.pixels_image(picture), step.box), width="stretch")
        st.caption(
            f"Input: {picture.shape[-1]}×{picture.shape[-2]} pixels, "
            f"{'grey' if picture.shape[0] == 1 else 'three colour channels'}, values 0 … 1; the window in magenta"
        )
    with result:
        st.image(_boxed(shown.image, (row, col, row + 1, col + 1)), width="stretch")
        st.caption(_output_caption(output, shown))
    _conv_step_view(step, picture, settings, output)


def _boxed(picture: Image.Image, box: tuple[int, int, int, int], min_side: int = 320) -> Image.Image:
    """The picture enlarged to at least ``min_side`` pixels, then the box drawn on it: a box drawn before enlarging
    would cover the pixels of a small image (an 8×8 digit) instead of framing them."""
    enlarged = render.for_display(picture, min_side)
    factor = enlarged.width // picture.width
    return render.overlay(enlarged, box=tuple(side * factor for side in box))


def _conv_step_view(step: ConvStep, picture: Tensor, settings: ConvSettings, output: Tensor) -> None:
    """The zoomed window, the three tables (window, kernel, products) and the value written."""
    p, d, k = settings.padding, settings.dilation, step.kernel.shape[0]
    padded = pad(picture[step.channel : step.channel + 1], p, settings.padding_mode)
    top, left = step.top + p - _STEP_MARGIN, step.left + p - _STEP_MARGIN
    span = d * (k - 1) + 1 + 2 * _STEP_MARGIN
    r0, c0 = max(top, 0), max(left, 0)
    region = padded[:, r0 : top + span, c0 : left + span]
    taps = [(step.top + p + i * d - r0, step.left + p + j * d - c0) for i in range(k) for j in range(k)]
    image_box = (p - r0, p - c0, p + picture.shape[-2] - r0, p + picture.shape[-1] - c0) if p else None
    cell = max(6, min(40, _ZOOM_SIDE // max(region.shape[-2:])))
    padded_taps = int(step.in_padding.sum())
    st.markdown(
        f"**One step of the slide**, output ({step.row}, {step.col}): the kernel's {k * k} taps read the pixels "
        f"framed below, multiply each by its weight, and the sum is written to the output."
        + (f" {padded_taps} of the taps fall on padding ({settings.padding_mode})." if padded_taps else "")
    )
    zoom, window, weights, products = st.columns([1.3, 1, 1, 1])
    zoom.image(render.window_zoom(region, taps, image_box, cell=cell))
    zoom.caption("The window up close" + (": the amber line is the image's edge" if p else ""))
    steps = (d, d)
    window.caption("input under the taps")
    window.html(grid_table(step.window, step.top, step.left, steps, cmap="gray", value_range=(0.0, 1.0)))
    weights.caption("× kernel weights")
    weights.html(grid_table(step.kernel))
    products.caption("= products")
    products.html(grid_table(step.products, step.top, step.left, steps))
    written = float(output[step.channel, step.row, step.col])
    st.markdown(
        f"Sum of the {k * k} products: **{step.value:.6g}**, the value at output row {step.row}, column {step.col} "
        f"(the whole output computed at once holds {written:.6g} there)."
    )


# Pooling --------------------------------------------------------------------------------------------------------


def _feature_map_picker(model: LoadedModel, digest: str, image: Image.Image, key: str, layers: Sequence[str]) -> Tensor:
    """A layer and a channel of the current model; returns that channel's map ``[1, h, w]`` for the image."""
    x = cached_input(model.name, digest, model, image)
    capture = cached_capture(model.name, digest, model, x)
    layer_col, channel_col = st.columns(2)
    layer = layer_col.selectbox("Layer", layers, key=f"{key}_layer_{model.name}")
    maps = capture.outputs[layer][0]
    with channel_col:
        channel = bounded_number(f"Channel (0…{maps.shape[0] - 1})", maps.shape[0] - 1, f"{key}_channel")
    return maps[channel : channel + 1]


def pooling_view(model: LoadedModel, image: Image.Image, digest: str) -> None:
    """Max or average pooling on the image or a feature map, and the translation demo."""
    source_col, kind_col, window_col, stride_col = st.columns([1.4, 1.2, 1, 1])
    source = source_col.segmented_control("Pool", ["image", "feature map"], default="image", key="pool_source")
    kind = kind_col.segmented_control("Kind", list(POOLS), default="max", key="pool_kind") or "max"
    window = window_col.slider("Window", 2, 6, 2, key="pool_window")
    stride = stride_col.slider("Stride", 1, 6, window, key=f"pool_stride_{window}", help="Defaults to the window")
    if source == "feature map" and unavailable(model, "feature_maps"):
        return
    if source == "feature map":
        maps = _feature_map_picker(model, digest, image, "pool", spatial_layers(model))
        what = "the feature map"
    else:
        maps = cached_picture(digest, "grey", 256, image)
        what = "the grey image"
    try:
        pooled = pool(maps, kind, window, stride)
    except ValueError as error:
        st.error(str(error))
        return
    height, width = size_formula(*maps.shape[-2:], window, stride)
    st.latex(height.latex)
    st.latex(width.latex)
    low, high = float(maps.min()), float(maps.max())
    cmap = "gray" if source != "feature map" else render.default_cmap(maps)
    vmin, vmax = low, high
    if cmap in render.DIVERGING_CMAPS:  # zero in the middle of the scale
        vmax = max(abs(low), abs(high)) or 1.0
        vmin = -vmax
    before, after = st.columns(2)
    before.image(render.map_image(maps[0], vmin, vmax, cmap, 320), width="stretch")
    before.caption(f"{what}: {maps.shape[-1]}×{maps.shape[-2]}, values {low:.3g} … {high:.3g}")
    after.image(render.map_image(pooled[0], vmin, vmax, cmap, 320), width="stretch")
    after.caption(
        f"{kind} pooled, window {window}, stride {stride}: {pooled.shape[-1]}×{pooled.shape[-2]}, values "
        f"{float(pooled.min()):.3g} … {float(pooled.max()):.3g} (same colour scale)"
    )

    st.subheader("Why pooling helps with small shifts")
    st.markdown(
        "Shift the image a few pixels to the right: a convolution's maps move along with it, so compared position "
        "by position they change a lot. After pooling, a pattern that stays inside its pooling window gives the same "
        "value, so the pooled maps change less: pooling tolerates shifts smaller than its window, it does not make the "
        "network blind to position. The curves measure the change as ‖after − before‖ / ‖before‖."
    )
    if unavailable(model, "feature_maps"):
        return
    layers = spatial_layers(model)
    layer_col, shift_col = st.columns(2)
    default = default_translation_layer(model)
    layer = layer_col.selectbox(
        "Layer whose maps are pooled", layers, index=layers.index(default), key=f"pool_translation_layer_{model.name}"
    )
    max_shift = shift_col.slider("Largest shift (pixels)", 1, 16, 8, key="pool_max_shift")
    x = cached_input(model.name, digest, model, image)
    try:
        effect = cached_translation(model.name, digest, layer, kind, window, stride, max_shift, model, x)
    except ValueError as error:
        st.error(str(error))
        return
    figure = render.curves_figure(
        effect.shifts,
        {f"maps of {layer}": effect.maps_change, f"after {kind} pooling {window}/{stride}": effect.pooled_change},
        "Change of the maps when the image shifts",
        "shift (input pixels)",
        "relative change",
    )
    chart, note = st.columns([3, 2])
    chart.pyplot(figure, width="stretch")
    last = effect.shifts[-1]
    note.markdown(
        f"At a shift of {last} pixels the maps of `{layer}` changed by **{effect.maps_change[-1]:.1%}**, the pooled "
        f"maps by **{effect.pooled_change[-1]:.1%}**. At 1 pixel: {effect.maps_change[1]:.1%} against "
        f"{effect.pooled_change[1]:.1%}."
    )


# Activations ----------------------------------------------------------------------------------------------------


def activations_view(model: LoadedModel, image: Image.Image, digest: str) -> None:
    """The activation functions and their derivatives, one applied to a real feature map, and gradient flow."""
    chosen = st.multiselect(
        "Activations",
        list(ACTIVATIONS),
        default=list(ACTIVATIONS),
        format_func=lambda k: ACTIVATIONS[k].name,
        key="act_chosen",
    )
    if chosen:
        x = torch.linspace(*_CURVE_RANGE, _CURVE_POINTS)
        curves = {ACTIVATIONS[key].name: activation_curve(key, x) for key in chosen}
        st.pyplot(render.activation_figure(x, curves), width="stretch")
        for key in chosen:
            spec = ACTIVATIONS[key]
            st.markdown(f"**{spec.name}** $f(x) = {spec.formula}$, $f'(x) = {spec.derivative_formula}$ — {spec.note}")

    st.subheader("On a real feature map")
    st.markdown(
        "The values a convolution computes, before the network's nonlinearity, and what each activation makes of "
        "them. Both maps share one colour scale: blue below zero, red above."
    )
    candidates = [info.name for info in cached_layer_table(model.name, model) if info.kind in ("Conv2d", "BatchNorm2d")]
    spatial = set(spatial_layers(model))
    layers = [name for name in candidates if name in spatial]
    if layers:
        function_col, _ = st.columns([1, 1])
        key = function_col.selectbox(
            "Activation", list(ACTIVATIONS), format_func=lambda k: ACTIVATIONS[k].name, key="act_apply"
        )
        values = _feature_map_picker(model, digest, image, "act", layers)[0]
        after = ACTIVATIONS[key].function(values)
        peak = float(values.abs().max()) or 1.0
        before_col, after_col = st.columns(2)
        before_col.image(render.map_image(values, -peak, peak, _SIGNED, 320), width="stretch")
        negative = float((values < 0).float().mean())
        before_col.caption(
            f"before: {float(values.min()):.3g} … {float(values.max()):.3g}, {negative:.1%} of the values below zero"
        )
        after_col.image(render.map_image(after, -peak, peak, _SIGNED, 320), width="stretch")
        zeros = float((after == 0).float().mean())
        after_col.caption(
            f"after {ACTIVATIONS[key].name}: {float(after.min()):.3g} … {float(after.max()):.3g}, "
            f"{zeros:.1%} exactly zero"
        )
    elif not unavailable(model, "feature_maps"):  # a TorchScript model says why instead
        st.info(f"{model.name} has no convolution with a spatial map to show.")

    st.subheader("Why deep sigmoid networks stopped learning")
    st.markdown(
        "Backpropagation multiplies the gradient by each layer's slope on its way to the input. The sigmoid's slope is "
        "at most 0.25, so in a deep stack the first layers receive almost nothing and barely learn; ReLU's slope is 1 "
        "wherever it is active. Below, one batch through a seeded stack of dense layers (same data and weight draws "
        "for every activation, each with the initialization scale recommended for it)."
    )
    pick_col, depth_col = st.columns([2, 1])
    compared = pick_col.multiselect(
        "Compare",
        list(ACTIVATIONS),
        default=["sigmoid", "relu"],
        format_func=lambda k: ACTIVATIONS[k].name,
        key="act_flow",
    )
    depth = depth_col.slider("Layers", 5, 50, 20, key="act_depth")
    flows = {ACTIVATIONS[key].name: cached_gradient_flow(key, depth) for key in compared}
    if flows:
        chart, note = st.columns([3, 2])
        chart.pyplot(render.gradient_flow_figure({name: flow.norms for name, flow in flows.items()}), width="stretch")
        note.markdown(
            "\n".join(
                f"- **{name}**: layer 1 gets {flow.norms[0]:.2g}, layer {depth} gets {flow.norms[-1]:.2g} "
                f"({flow.norms[-1] / max(flow.norms[0], 1e-300):.2g}× more)"
                for name, flow in flows.items()
            )
        )


# Weight sharing -------------------------------------------------------------------------------------------------


def weight_sharing_view(model: LoadedModel, image: Image.Image, digest: str) -> None:
    """Each conv layer's parameters beside those of a dense layer with the same input and output."""
    rows = cached_weight_sharing(model.name, model)
    if not rows:
        st.info(f"{model.name} has no convolution layers.")
        return
    frame = pd.DataFrame(
        {
            "layer": [row.layer for row in rows],
            "input": [_shape(row.input_shape) for row in rows],
            "output": [_shape(row.output_shape) for row in rows],
            "kernel": [_shape(row.kernel) for row in rows],
            "conv parameters": [row.conv_params for row in rows],
            "dense parameters": [row.dense_params for row in rows],
            "dense / conv": [f"{row.ratio:,.0f}×" for row in rows],
        }
    )
    numbers = st.column_config.NumberColumn(format="localized")
    st.dataframe(
        frame,
        hide_index=True,
        column_config={"conv parameters": numbers, "dense parameters": numbers},
        height=min(600, 40 + 35 * len(frame)),
    )
    conv_total, dense_total = sum(row.conv_params for row in rows), sum(row.dense_params for row in rows)
    first = rows[0]
    st.markdown(
        f"Together the {len(rows)} convolutions of {model.name} have **{conv_total:,}** parameters; dense layers "
        f"doing the same mappings would need **{dense_total:,}** ({dense_total / conv_total:,.0f} times as many). "
        f"`{first.layer}` alone maps {_shape(first.input_shape)} = {math.prod(first.input_shape):,} values to "
        f"{_shape(first.output_shape)} = {math.prod(first.output_shape):,}: a dense layer needs a weight for every "
        f"pair, {first.dense_params:,} in all, while the convolution reuses its {first.conv_params:,} weights at every "
        "position."
    )
    shown = rows[:24]
    figure = render.params_figure(
        [row.layer for row in shown], [row.conv_params for row in shown], [row.dense_params for row in shown]
    )
    st.pyplot(figure, width=round(figure.get_figwidth() * 110))  # about its natural size: stretched, text grows


# What a filter wants to see -------------------------------------------------------------------------------------


def filter_view(model: LoadedModel, image: Image.Image, digest: str) -> None:
    """Activation maximization for a chosen channel beside the dataset images that excite it most."""
    layers = cached_visualizable_layers(model.name, model)
    convs = [name for name in layers if isinstance(model.module.get_submodule(name), nn.Conv2d)]
    layer_col, channel_col, collection_col = st.columns([1.4, 1, 1.4])
    layer = layer_col.selectbox(
        "Layer", layers, index=layers.index(convs[-1] if convs else layers[-1]), key=f"fv_layer_{model.name}"
    )
    module = model.module.get_submodule(layer)
    count = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
    is_class = isinstance(module, nn.Linear) and count == len(model.class_names) and layer == layers[-1]
    with channel_col:
        label = "Class" if is_class else "Channel"
        channel = bounded_number(f"{label} (0…{count - 1})", count - 1, "fv_channel")
    collection = collection_col.selectbox(
        "Compare with",
        list(DATASETS),
        index=list(DATASETS).index(default_dataset(model)),
        format_func=lambda k: DATASETS[k].name,
        key=f"fv_collection_{model.name}",
    )
    with st.expander("Optimization settings"):
        steps_col, tv_col, blur_col, seed_col = st.columns(4)
        steps = steps_col.slider("Steps", 10, 500, 120, 10, key="fv_steps")
        tv_weight = tv_col.slider("Smoothness (TV weight)", 0.0, 2.0, 0.5, 0.05, key="fv_tv")
        blur_every = blur_col.slider("Blur every … steps (0: never)", 0, 20, 4, key="fv_blur")
        seed = seed_col.number_input("Seed", 0, 10_000, 0, key="fv_seed")
        side = model.input_size[-1]
        if side > 128 and not isinstance(module, nn.Linear):
            side = st.select_slider("Image side", [64, 96, 128, 160, 224], 128, key="fv_side")
        st.caption(
            "Random jitter of up to 1/16 of the side each step, total variation and an occasional slight blur keep the "
            "image from turning into high-frequency noise that excites the channel without looking like anything."
        )
    params = {"steps": steps, "tv_weight": tv_weight, "blur_every": blur_every, "seed": int(seed), "size": side}
    vis_key = ("featurevis", model.name, layer, channel, tuple(sorted(params.items())))
    scores_key = ("channel_scores", model.name, layer, collection, _COLLECTION_SIZE)
    what = model.class_names[channel] if is_class else f"channel {channel}"
    request_button(
        f"Visualize {what} of {layer}",
        [vis_key, scores_key],
        "fv_run",
        icon=":material/auto_awesome:",
        help="A few hundred forward and backward passes: seconds on the built-in models, minutes on ImageNet ones.",
    )
    optimized, favourites = st.columns(2, gap="large")
    with optimized:
        st.markdown(f"**What excites {what} most**, optimized from noise")
        result = computed(
            vis_key,
            f"Optimizing an image for {what}",
            lambda progress: maximize_activation(model, layer, channel, progress=progress, **params),
            "fv_vis",
            on_request=True,
        )
        if result is not None:
            st.image(render.for_display(render.pixels_image(result.image), 320), width=320)
            st.caption(
                f"Mean activation of {what}: {result.start_activation:.4g} for the starting noise → "
                f"**{result.final_activation:.4g}** after {result.params['steps']} steps ({result.seconds:.1f} s)"
            )
            steps_done = list(range(1, len(result.history) + 1))
            st.pyplot(
                render.curves_figure(steps_done, {"objective": result.history}, "", "step", "mean activation"),
                width=420,
            )
    with favourites:
        st.markdown(f"**The {_TOP_IMAGES} {DATASETS[collection].name.lower()} that excite it most**")
        scores = computed(
            scores_key,
            f"Running {DATASETS[collection].name.lower()} through {layer}",
            lambda progress: channel_scores(
                model, layer, cached_dataset_images(collection, _COLLECTION_SIZE), progress=progress
            ),
            "fv_scores",
            on_request=True,
        )
        if scores is not None:
            top = top_images(scores, channel, _TOP_IMAGES)
            pictures = cached_dataset_images(collection, _COLLECTION_SIZE)
            st.image(render.image_grid([pictures[i] for i in top.indices], cell=104))
            st.caption(
                f"Out of {scores.shape[0]} images: {DATASETS[collection].description} Mean activation of each, "
                "strongest first: " + ", ".join(f"{score:.3g}" for score in top.scores)
            )


# Fooling the model ----------------------------------------------------------------------------------------------


def attack_result(model: LoadedModel, digest: str, pixels: Tensor, method: str, epsilon: float, steps: int):
    """The attack from the shared store, or run now (PGD with progress and Cancel)."""
    key = ("attack", model.name, digest, method, round(epsilon, 8), steps if ATTACKS[method].iterative else 1)
    return computed(
        key,
        f"{ATTACKS[method].name} attack",
        lambda progress: attack(model, pixels, method, epsilon, steps=steps, progress=progress),
        f"attack_{method}",
    )


def attack_panels(result: AttackResult, model: LoadedModel) -> None:
    """Original, amplified perturbation and adversarial image side by side, then the top classes before and after."""
    original, perturbation, adversarial = st.columns(3)
    changed = float((result.perturbation.abs() > 0).float().mean())
    linf = float(result.perturbation.abs().max())
    original.image(render.for_display(render.pixels_image(result.pixels), 280), width="stretch")
    original.caption(f"Original: **{model.class_names[result.label]}** ({result.before.top[0][2]:.1%})")
    shown = render.perturbation_image(result.perturbation, result.epsilon)
    perturbation.image(render.framed(render.for_display(shown.image, 280)), width="stretch")
    perturbation.caption(
        f"Perturbation, amplified ×{0.5 / result.epsilon:.0f} (mid-grey: no change, white: +ε, black: −ε, per colour): "
        f"largest change {linf * 255:.2f}/255 "
        f"= {linf:.4f}, {changed:.1%} of the pixel values moved"
        if result.epsilon > 0
        else "No perturbation at ε = 0"
    )
    best, _, probability = result.after.top[0]
    adversarial.image(render.for_display(render.pixels_image(result.adversarial), 280), width="stretch")
    verdict = "the prediction flipped" if result.flipped else "still the same prediction"
    adversarial.caption(f"Adversarial: **{model.class_names[best]}** ({probability:.1%}) — {verdict}")
    before, after = result.before, result.after
    rows = [
        {
            "rank": rank + 1,
            "before": f"{b[1]} · {b[2]:.2%}",
            "after": f"{a[1]} · {a[2]:.2%}",
        }
        for rank, (b, a) in enumerate(zip(before.top, after.top, strict=True))
    ]
    label = model.class_names[result.label]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(
        f"p({label}) fell from {float(before.probabilities[result.label]):.2%} to "
        f"{float(after.probabilities[result.label]):.2%} · {ATTACKS[result.method].name}, ε = "
        f"{result.epsilon * 255:.2f}/255, {result.steps} step(s) of {result.step_size * 255:.2f}/255 · "
        f"{result.seconds:.2f} s"
    )


def gradcam_pair(model: LoadedModel, digest: str, result: AttackResult, attack_key: str) -> None:
    """Grad-CAM of the original image's prediction beside Grad-CAM of the adversarial image's prediction."""
    try:
        layer = default_cam_layer(model)
    except ValueError:
        st.info(f"{model.name} has no convolution layer with a spatial map for Grad-CAM.")
        return
    original, _, adversarial = st.columns(3)  # under the original and the adversarial image above
    pairs = (
        (result.pixels, digest, result.label, "Original"),
        (result.adversarial, f"{digest}/{attack_key}", result.after.top[0][0], "Adversarial"),
    )
    for column, (pixels, key, target, title) in zip((original, adversarial), pairs, strict=True):
        with column:
            x = normalize(model, pixels[None])
            found = explanation(model, x, key, "gradcam", target, layer, {})
            if found is not None:
                picture = render.pixels_image(pixels).convert("RGB")
                shown = render.heat_overlay(picture, found.heatmap)
                st.image(render.for_display(shown.image, 280), width="stretch")
                st.caption(f"{title}: Grad-CAM for **{found.target_name}** at `{layer}`")


def flip_search_result(
    model: LoadedModel, digest: str, pixels: Tensor, method: str, max_epsilon: float, steps: int
) -> FlipSearch | None:
    """The smallest flipping ε from the shared store, or searched after a click (with progress and Cancel)."""
    key = ("flip", model.name, digest, method, round(max_epsilon, 8), steps if ATTACKS[method].iterative else 1)
    request_button(
        f"Find the smallest ε for {ATTACKS[method].name}",
        [key],
        "flip_run",
        icon=":material/search:",
        help="Bisection: about ten attacks.",
    )
    return computed(
        key,
        "Bisecting ε",
        lambda progress: smallest_flip(model, pixels, method, max_epsilon=max_epsilon, steps=steps, progress=progress),
        "flip",
        on_request=True,
    )


# ── training ────────────────────────────────────────────────────────────────────────────────────────────────────

_LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)
_BATCH_SIZES = (8, 16, 32, 64, 128, 256)
_WEIGHT_DECAYS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)
_STACK_COLUMNS = ("type", "channels", "kernel", "stride", "padding", "mode", "p", "width")
_LIVE_S = 1.0  # the live view refreshes this often while a run trains


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_prepared(data_json: str, seed: int, base_name: str | None) -> Prepared:
    """A run's data (unaugmented), for the preview and the shape table; keyed on the DataSpec's JSON."""
    base = cached_model(base_name).preprocess if base_name else None
    return prepare_data(DataSpec(**json.loads(data_json)), seed, base_preprocess=base)


def _json(spec: DataSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True)


def data_form(start: DataSpec, key: str) -> DataSpec:
    """Widgets for the dataset: kind, size, count, validation share, limit; a zip upload for "your images"."""
    kinds = list(TRAINING_DATA)
    kind_col, size_col, count_col, split_col = st.columns(4)
    kind = kind_col.selectbox(
        "Dataset", kinds, index=kinds.index(start.kind), format_func=lambda k: TRAINING_DATA[k].title, key=f"{key}_kind"
    )
    st.caption(TRAINING_DATA[kind].description)
    size = size_col.select_slider("Image side", [16, 28, 32, 48, 64, 96, 128], value=start.size, key=f"{key}_size")
    count = count_col.select_slider(
        "Shapes per epoch",
        [500, 1000, 2000, 4000, 8000],
        value=start.count,
        key=f"{key}_count",
        disabled=kind != "shapes",
    )
    val_split = split_col.slider("Validation share", 0.05, 0.5, start.val_split, 0.05, key=f"{key}_val")
    path, grayscale = start.path, TRAINING_DATA[kind].channels == 1
    if kind == "folder":
        path = _uploaded_folder(key)
    return DataSpec(kind=kind, size=size, count=count, path=path, val_split=val_split, grayscale=grayscale)


def _uploaded_folder(key: str) -> str | None:
    upload = st.file_uploader(
        "A zip of class folders (one folder of images per class)",
        type=["zip"],
        key=f"{key}_zip",
        max_upload_size=_UPLOAD_MB,
        help="Up to 20,000 images and 500 MB unpacked; files that are not images are skipped and counted.",
    )
    if upload is None:
        return None
    content = upload.getvalue()
    folder = datasets_home() / "uploads" / hashlib.sha256(content).hexdigest()[:16]
    if not folder.exists():
        try:
            report = extract_zip(content, folder)
        except DatasetError as error:
            st.error(f"{upload.name}: {error}")
            return None
        if report.skipped:
            st.info(f"{report.skipped} entries of {upload.name} were skipped (not images, or outside class folders).")
    return str(folder)


def data_preview(spec: DataSpec, seed: int, base: str | None) -> Prepared | None:
    """Samples of each class, the class counts and an imbalance warning; None (with a message) when the data
    cannot be loaded. Downloads wait for a click."""
    if spec.kind == "folder" and not spec.path:
        st.info("Upload a zip of class folders to train on your own images.")
        return None
    if TRAINING_DATA[spec.kind].source == "download" and not st.session_state.get(f"train_load_{spec.kind}"):
        st.button(
            f"Load {TRAINING_DATA[spec.kind].title}",
            key=f"train_load_button_{spec.kind}",
            on_click=st.session_state.__setitem__,
            args=(f"train_load_{spec.kind}", True),
            help="Read from disk when present, else downloaded (needs internet).",
        )
        return None
    try:
        with st.spinner(f"Loading {TRAINING_DATA[spec.kind].title} …"):
            prepared = cached_prepared(_json(spec), seed, base)
    except (DatasetError, DatasetUnavailable) as error:
        st.error(str(error))
        return None
    counts = prepared.counts
    st.caption(
        f"{len(prepared.train):,} training · {len(prepared.val):,} validation images · {len(counts)} classes · "
        f"input {list(prepared.input_size)}"
    )
    if warning := imbalance(counts):
        st.warning(warning)
    rows = preview(prepared, per_class=8)
    for name, images in rows[:12]:
        label, strip = st.columns([1, 6])
        label.markdown(f"**{name}**  \n{counts.get(name, 0):,} images")
        strip.image([render.for_display(img.convert("RGB"), 64) for img in images], width=64)
    if len(rows) > 12:
        st.caption(f"… and {len(rows) - 12} more classes.")
    return prepared


def stack_editor(layers: Sequence[LayerSpec], key: str) -> tuple[LayerSpec, ...]:
    """The layer stack as an editable table (add, delete, reorder rows); the class layer is added by the run."""
    frame = pd.DataFrame([{c: getattr(layer, c) for c in _STACK_COLUMNS} for layer in layers], columns=_STACK_COLUMNS)
    edited = st.data_editor(
        frame,
        key=key,
        num_rows="dynamic",
        hide_index=True,
        width="stretch",
        column_config={
            "type": st.column_config.SelectboxColumn("layer", options=list(LAYER_TYPES), required=True),
            "channels": st.column_config.NumberColumn("channels (conv)", min_value=1, max_value=512, step=1),
            "kernel": st.column_config.NumberColumn("kernel / window", min_value=1, max_value=15, step=1),
            "stride": st.column_config.NumberColumn("stride (empty: window)", min_value=1, max_value=8, step=1),
            "padding": st.column_config.NumberColumn("padding (conv)", min_value=0, max_value=7, step=1),
            "mode": st.column_config.SelectboxColumn("pool", options=["max", "avg"]),
            "p": st.column_config.NumberColumn("dropout p", min_value=0.0, max_value=0.9, step=0.05),
            "width": st.column_config.NumberColumn("width (linear)", min_value=1, max_value=4096, step=1),
        },
    )
    defaults = LayerSpec("conv")
    stack = []
    for row in edited.to_dict("records"):
        if not row.get("type"):
            continue
        values = {c: row[c] for c in _STACK_COLUMNS[1:] if row.get(c) is not None and not pd.isna(row[c])}
        for name in ("channels", "kernel", "stride", "padding", "width"):
            if name in values:
                values[name] = int(values[name])
        if row["type"] == "pool" and "stride" not in values:
            values["stride"] = None
        stack.append(replace(defaults, type=row["type"], **values))
    return tuple(stack)


def stack_summary(layers: Sequence[LayerSpec], prepared: Prepared, dropout: float) -> bool:
    """Every layer's output shape and parameters next to a dense layer's; False (with the reason) if impossible."""
    channels, size = prepared.input_size[0], prepared.input_size[-1]
    try:
        rows = describe_stack(layers, channels, size, len(prepared.class_names), dropout)
    except StackError as error:
        st.error(str(error))
        return False
    table = pd.DataFrame(
        [
            {
                "layer": row.name,
                "kind": row.kind,
                "output": " × ".join(map(str, row.output_shape)),
                "parameters": row.params,
                "dense layer instead": row.dense_params,
            }
            for row in rows
        ]
    )
    st.dataframe(table, hide_index=True, width="stretch")
    total = sum(row.params for row in rows)
    dense = sum(row.dense_params or row.params for row in rows)
    st.caption(
        f"**{total:,} parameters.** The same network with every convolution replaced by a fully connected layer "
        f"of the same input and output sizes would need {dense:,} — weight sharing and local connections save "
        f"{dense / max(total, 1):,.0f}×."
    )
    return True


def settings_form(start: Settings, key: str) -> Settings:
    """Optimizer, learning rate, batch size, epochs, regularization, early stopping, seed and augmentation."""
    a, b, c, d = st.columns(4)
    optimizer = a.selectbox(
        "Optimizer",
        ["adam", "adamw", "sgd"],
        index=["adam", "adamw", "sgd"].index(start.optimizer),
        key=f"{key}_opt",
        format_func={"adam": "Adam", "adamw": "AdamW", "sgd": "SGD + momentum"}.get,
    )
    lr = b.select_slider(
        "Learning rate",
        _LEARNING_RATES,
        value=_nearest(_LEARNING_RATES, start.lr),
        key=f"{key}_lr",
        format_func=lambda v: f"{v:g}",
    )
    batch = c.select_slider("Batch size", _BATCH_SIZES, value=start.batch_size, key=f"{key}_batch")
    epochs = d.slider("Epochs", 1, 60, start.epochs, key=f"{key}_epochs")
    a, b, c, d = st.columns(4)
    weight_decay = a.select_slider(
        "Weight decay", _WEIGHT_DECAYS, value=start.weight_decay, key=f"{key}_wd", format_func=lambda v: f"{v:g}"
    )
    dropout = b.slider("Dropout before the classifier", 0.0, 0.7, start.dropout, 0.05, key=f"{key}_dropout")
    patience = c.slider("Early stopping patience (0: off)", 0, 10, start.patience, key=f"{key}_patience")
    seed = d.number_input("Seed", 0, 2**31 - 1, start.seed, key=f"{key}_seed")
    a, b, c, d = st.columns(4)
    flip = a.toggle("Mirror left–right", start.augmentation.flip, key=f"{key}_flip")
    rotation = b.slider("Rotate up to ±°", 0, 45, int(start.augmentation.rotation), key=f"{key}_rot")
    crop = c.slider("Random crop: keep ≥ (0: off)", 0.0, 0.95, start.augmentation.crop, 0.05, key=f"{key}_crop")
    jitter = d.slider("Colour jitter", 0.0, 0.5, start.augmentation.color_jitter, 0.05, key=f"{key}_jitter")
    return Settings(
        epochs=epochs,
        batch_size=batch,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        dropout=dropout,
        patience=patience,
        seed=int(seed),
        augmentation=Augmentation(flip=flip, rotation=float(rotation), crop=crop, color_jitter=jitter),
    )


def _nearest(options: Sequence[float], value: float) -> float:
    return min(options, key=lambda option: abs(math.log(option) - math.log(value)))


def transfer_form(key: str) -> ModelSpec:
    """Start from a zoo model: which one, and what trains."""
    # A TorchScript model's classifier cannot be replaced (user_models.TORCHSCRIPT_VIEWS): not offered.
    names = [n for n in available_models() if model_entry(n).is_ready() and not user_models.is_torchscript(n)]
    base_col, trainable_col, last_col = st.columns([2, 2, 1])
    base = base_col.selectbox("Start from", names, key=f"{key}_base", format_func=_model_label)
    trainable = (
        trainable_col.segmented_control(
            "Train",
            list(TRAINABLE),
            default="head",
            key=f"{key}_trainable",
            format_func={"head": "the new head only", "last": "the last blocks + head", "all": "everything"}.get,
        )
        or "head"
    )
    last_n = last_col.number_input("Last blocks", 1, 8, 1, key=f"{key}_last_n", disabled=trainable != "last")
    return ModelSpec(kind="transfer", base=base, trainable=trainable, last_n=int(last_n))


def current_run_id() -> str | None:
    """The run the page shows: the one picked this session, else the newest."""
    chosen = st.session_state.get("train_run")
    known = {run.id for run in list_runs()}
    if chosen in known:
        return chosen
    newest = max(known, key=int, default=None)
    return newest


def run_monitor(run_id: str) -> None:
    """The live view of one run: status, progress, curves, stop. While the run is queued or training, it re-reads
    the store every second (a fragment: the rest of the page stays still); when the run ends, the whole page
    reruns once so its results, time-lapse and actions appear."""
    poll_jobs()
    try:
        live = get_run(run_id).status in ("queued", "running")
    except RunNotFound:
        st.info("This run was deleted.")
        return
    st.fragment(_monitor, run_every=_LIVE_S if live else None)(run_id)


def _monitor(run_id: str) -> None:
    poll_jobs()
    try:
        run = get_run(run_id)
    except RunNotFound:
        st.info("This run was deleted.")
        return
    live = run.status in ("queued", "running")
    watched = f"train_live_{run.id}"
    if st.session_state.get(watched) and not live:
        st.session_state[watched] = False
        st.rerun()  # the run just ended: redraw the page with its results
    st.session_state[watched] = live
    head, stop_col = st.columns([5, 1])
    head.markdown(f"#### {run.name} · run {run.id} · {run.status}")
    if live:
        stop_col.button(
            "Stop",
            key=f"train_stop_{run.id}",
            icon=":material/stop:",
            on_click=stop_job,
            args=(run.id,),
            kwargs={"wait": False},
        )
    if run.status == "queued":
        st.info("Queued: one run trains at a time on this machine; it starts when the current one ends.")
    progress = read_progress(run.id) or {}
    if run.status == "running" and "epoch" in progress:
        fraction = ((progress["epoch"] - 1) + progress.get("batch", 0) / max(progress.get("batches", 1), 1)) / max(
            run.spec.settings.epochs, 1
        )
        st.progress(
            min(max(fraction, 0.0), 1.0),
            text=f"epoch {progress['epoch']}/{run.spec.settings.epochs} · batch {progress.get('batch', 0)}/"
            f"{progress.get('batches', 0)} · {progress.get('images_per_second') or 0:,.0f} images/s · "
            f"{_duration(progress.get('seconds_left'))} left",
        )
    if run.status == "failed":
        st.error(f"The run failed: {run.message}")
    elif run.status == "stopped" and run.message:
        st.warning(run.message)
    metrics = read_metrics(run.id)
    if metrics:
        _curves(metrics)
    elif live:
        st.caption("Curves appear after the first epoch.")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _curves(metrics: list[dict]) -> None:
    epochs = [m["epoch"] for m in metrics]
    loss_col, acc_col = st.columns(2)
    loss = {"training": [m["train_loss"] for m in metrics]}
    accuracy = {"training": [m["train_accuracy"] for m in metrics]}
    if metrics[0].get("val_loss") is not None:
        loss["validation"] = [m["val_loss"] for m in metrics]
        accuracy["validation"] = [m["val_accuracy"] for m in metrics]
    loss_col.pyplot(render.curves_figure(epochs, loss, "Loss", "epoch", "cross-entropy"), width="stretch")
    acc_col.pyplot(render.curves_figure(epochs, accuracy, "Accuracy", "epoch", "share correct"), width="stretch")
    if note := overfitting_note(metrics):
        st.warning(note)


def overfitting_note(metrics: list[dict]) -> str | None:
    """A note when validation loss has risen for two epochs while training loss kept falling."""
    if len(metrics) < 3 or metrics[-1].get("val_loss") is None:
        return None
    last = metrics[-3:]
    val_rising = last[0]["val_loss"] < last[1]["val_loss"] < last[2]["val_loss"]
    train_falling = last[0]["train_loss"] > last[1]["train_loss"] > last[2]["train_loss"]
    if val_rising and train_falling:
        return (
            "Validation loss has risen for two epochs while training loss kept falling: the model is starting to "
            "memorize its training images (overfitting). More data or augmentation, dropout, weight decay or early "
            "stopping help."
        )
    return None


def timelapse_view(run_id: str) -> None:
    """The probe image through training: first-layer filters, one layer's maps, Grad-CAM and the probabilities at
    every epoch, scrubbed with a slider."""
    frames = read_timelapse(run_id)
    if not frames:
        st.caption("The time-lapse appears after the first epoch.")
        return
    info = read_model_info(run_id)
    class_names = info.get("class_names", [])
    epoch = st.select_slider(
        "Epoch",
        [f["epoch"] for f in frames],
        value=frames[-1]["epoch"],
        key=f"train_timelapse_{run_id}",
        help="Epoch 0 is the network before training.",
    )
    frame = next(f for f in frames if f["epoch"] == epoch)
    filters, maps, cam = st.columns(3)
    if "filters" in frame:
        grid = render.kernel_grid(frame["filters"], cell=40)
        filters.image(grid.image, caption=f"first-layer filters ({frame.get('filters_layer', '')})")
    if "features" in frame:
        grid = render.feature_grid(frame["features"], "layer", cell=48, max_width=420)
        maps.image(grid.image, caption=f"feature maps of {frame.get('features_layer', '')} for the probe image")
    if "gradcam" in frame:
        picture = _validation_images(run_id).image(frame.get("probe_index", 0)).convert("RGB")
        cam.image(
            render.for_display(render.heat_overlay(picture, frame["gradcam"]).image, 200),
            caption="Grad-CAM for the probe's true class",
        )
    probabilities = frame.get("probabilities")
    if probabilities is not None and class_names:
        best = int(probabilities.argmax())
        st.caption(f"At epoch {epoch} the probe is **{class_names[best]}** with {float(probabilities[best]):.1%}.")


def results_view(run_id: str) -> None:
    """Confusion matrix (pick a cell to see its images with saliency), per-class accuracy, the most confidently
    wrong validation images."""
    results = read_results(run_id)
    if results is None:
        st.caption("Results appear when the run finishes.")
        return
    names = list(results["class_names"])
    labels, probabilities = results["labels"], results["probabilities"]
    predicted = probabilities.argmax(dim=1)
    matrix = torch.zeros(len(names), len(names), dtype=torch.long)
    matrix.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
    st.markdown(
        f"Best checkpoint (epoch {results.get('epoch')}): **{results['val_accuracy']:.1%}** of "
        f"{len(labels):,} validation images right."
    )
    table, classes = st.columns([5, 2])
    frame = pd.DataFrame(matrix.numpy(), index=[f"{n} →" for n in names], columns=names)
    table.caption("Rows: the true class; columns: what the model said.")
    table.dataframe(frame.style.background_gradient(cmap="Blues", axis=None), width="stretch")
    per_class = pd.DataFrame({"class": names, "accuracy": [float(a) for a in results["per_class_accuracy"]]})
    classes.dataframe(
        per_class,
        hide_index=True,
        width="stretch",
        column_config={
            "accuracy": st.column_config.ProgressColumn("accuracy", min_value=0.0, max_value=1.0, format="percent")
        },
    )
    true_col, pred_col = st.columns(2)
    true_name = true_col.selectbox("True class", names, key=f"train_cell_true_{run_id}")
    pred_name = pred_col.selectbox("Predicted as", names, index=min(1, len(names) - 1), key=f"train_cell_pred_{run_id}")
    t, p = names.index(true_name), names.index(pred_name)
    indices = torch.nonzero((labels == t) & (predicted == p)).flatten().tolist()
    st.caption(f"{len(indices)} validation images of {true_name} predicted as {pred_name}" + (":" if indices else "."))
    if indices:
        _cell_images(run_id, indices[:8], probabilities, names)
    wrong = torch.nonzero(predicted != labels).flatten()
    if len(wrong):
        confidence = probabilities[wrong, predicted[wrong]]
        worst = wrong[confidence.argsort(descending=True)][:8].tolist()
        st.markdown("**Most confidently wrong**")
        _cell_images(run_id, worst, probabilities, names, with_truth=labels)


def _cell_images(run_id: str, indices: list[int], probabilities: Tensor, names: list[str], with_truth=None) -> None:
    """Validation images with their prediction and saliency map (the run's model explains itself)."""
    images = _validation_images(run_id)
    model = cached_model(f"run-{run_id}")
    columns = st.columns(8)  # a fixed width per image, however few there are
    for column, index in zip(columns, indices, strict=False):
        x, _ = images[index]
        x = x[None]
        best = int(probabilities[index].argmax())
        saliency = explain(model, x, "saliency", target=best)
        picture = images.image(index).convert("RGB")
        column.image(render.for_display(render.heat_overlay(picture, saliency.heatmap).image, 96))
        truth = f"true {names[int(with_truth[index])]} · " if with_truth is not None else ""
        column.caption(f"{truth}{names[best]} {float(probabilities[index, best]):.0%}")


@st.cache_resource(max_entries=4, show_spinner=False)
def _validation_images(run_id: str) -> LabelledImages:
    """The run's validation images as its worker saw them (row ``i`` of its results is item ``i``)."""
    return validation_set(run_id)


def runs_overview() -> None:
    """Every run with its settings and best validation accuracy; curves of chosen runs overlaid; pick, rename,
    delete, export, open in the other pages."""
    all_runs = list_runs()
    if not all_runs:
        st.caption("No runs yet.")
        return
    table = pd.DataFrame(
        [
            {
                "run": run.id,
                "name": run.name,
                "status": run.status,
                "data": run.spec.data.kind,
                "model": run.spec.model.base
                if run.spec.model.kind == "transfer"
                else f"{len(run.spec.model.layers)} layers",
                "epochs": run.spec.settings.epochs,
                "lr": run.spec.settings.lr,
                "best val acc": run.best_val_accuracy,
            }
            for run in all_runs
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={"best val acc": st.column_config.NumberColumn(format="percent")},
    )
    ids = [run.id for run in all_runs]
    chosen = st.multiselect(
        "Overlay the curves of",
        ids,
        default=ids[-2:],
        key="train_overlay",
        format_func=lambda i: f"{i} · {next(r.name for r in all_runs if r.id == i)}",
    )
    if chosen:
        curves = {
            f"{i} val" if read_metrics(i) and read_metrics(i)[0].get("val_accuracy") is not None else f"{i} train": [
                m.get("val_accuracy") or m["train_accuracy"] for m in read_metrics(i)
            ]
            for i in chosen
        }
        longest = max((len(c) for c in curves.values()), default=0)
        if longest:
            padded = {k: v + [float("nan")] * (longest - len(v)) for k, v in curves.items()}
            st.pyplot(
                render.curves_figure(
                    list(range(1, longest + 1)), padded, "Accuracy by epoch", "epoch", "share correct"
                ),
                width="content",
            )


def run_actions(run_id: str) -> None:
    """Open the run's model in the other pages, export it, rename or delete it."""
    run = get_run(run_id)
    open_layers, open_explain, export, rename, delete = st.columns(5)
    if run.in_zoo:
        open_layers.button(
            "Open in Layers",
            key="train_open_layers",
            on_click=_open_run,
            args=(run.model_name, "pages/layers.py"),
            icon=":material/layers:",
        )
        open_explain.button(
            "Explain it",
            key="train_open_explain",
            on_click=_open_run,
            args=(run.model_name, "pages/explain.py"),
            icon=":material/psychology_alt:",
        )
        export.download_button(
            "Export zip",
            export_run(run.id),
            file_name=f"{run.model_name}.zip",
            mime="application/zip",
            key="train_export",
            icon=":material/download:",
        )
    with rename.popover("Rename"):
        new_name = st.text_input("New name", run.name, key=f"train_rename_{run.id}")
        st.button("Save", key="train_rename_save", on_click=_rename, args=(run.id, new_name))
    if run.status not in ("queued", "running"):
        delete.button("Delete", key="train_delete", on_click=_delete, args=(run.id,), icon=":material/delete:")


def _open_run(model_name: str, page: str) -> None:
    st.session_state["model_name"] = model_name
    st.session_state["train_switch_to"] = page


def _rename(run_id: str, name: str) -> None:
    try:
        rename_run(run_id, name)
    except RunError as error:
        st.session_state["train_message"] = str(error)


def _delete(run_id: str) -> None:
    try:
        delete_run(run_id)
    except RunError as error:
        st.session_state["train_message"] = str(error)
    st.session_state.pop("train_run", None)


def start_run(spec: RunSpec) -> None:
    """Queue the run (it starts at once when nothing else trains) and show it."""
    st.session_state["train_run"] = submit_job(spec)


# ── your own model ──────────────────────────────────────────────────────────────────────────────────────────────

_OWN_KINDS = {"state_dict": "state_dict", "torchscript": "TorchScript"}
_OWN_HELP = {
    "state_dict": "A file written by torch.save(model.state_dict(), path): only tensors, for an architecture below.",
    "torchscript": "A file written by torch.jit.save(torch.jit.script(model), path). Some views need a state_dict: "
    "see the model card.",
}


def own_model_panel(current: str) -> None:
    """The sidebar's "Add your own model": a state_dict or TorchScript file with its classes, size and normalization;
    added, it becomes the selected model. When the current model is one of the user's, a button removes it."""
    with st.expander("Add your own model", icon=":material/upload_file:"):
        kind = st.segmented_control(
            "Kind", list(_OWN_KINDS), default="state_dict", format_func=_OWN_KINDS.get, key="own_kind"
        )
        kind = kind or "state_dict"  # clicking the chosen kind again clears it
        upload = st.file_uploader(
            "Model file", key="own_file", max_upload_size=user_models.MAX_BYTES // 2**20, help=_OWN_HELP[kind]
        )
        if kind == "state_dict":
            st.selectbox(
                "Architecture",
                user_models.ARCHITECTURE_NAMES,
                key="own_architecture",
                help="The network the weights were saved from: ours, or a torchvision classification model.",
            )
            st.number_input("Classes", 1, user_models.MAX_CLASSES, 10, key="own_classes")
        else:
            channels_col, side_col = st.columns(2)
            channels_col.selectbox(
                "Channels", [3, 1], format_func={3: "3 (RGB)", 1: "1 (grey)"}.get, key="own_channels"
            )
            side_col.number_input("Input side", 1, 1024, 224, key="own_side", help="Height = width, in pixels")
        st.file_uploader(
            "Class names (optional)",
            type=["txt", "json"],
            key="own_class_file",
            max_upload_size=1,
            help="One name per line, or a JSON list, in output order.",
        )
        standardize = st.checkbox(
            "Standardize each image",
            key="own_standardize",
            help="Subtract the image's own mean and divide by its own std, as CNN Explainer's TinyVGG (and ours) do.",
        )
        mean_col, std_col = st.columns(2)
        mean_col.text_input("Mean (optional)", key="own_mean", placeholder="0.485, 0.456, 0.406", disabled=standardize)
        std_col.text_input("Std (optional)", key="own_std", placeholder="0.229, 0.224, 0.225", disabled=standardize)
        st.caption("Without them pixels are only scaled to [0, 1]; torchvision architectures default to ImageNet's.")
        st.text_input("Name (optional)", key="own_name", placeholder=upload.name if upload else "from the file name")
        st.button("Add model", key="own_add", on_click=_add_own_model, disabled=upload is None, type="primary")
        if (message := st.session_state.pop("own_message", None)) is not None:
            level, text = message
            (st.success if level == "success" else st.error)(text)
        if model_entry(current).family == user_models.FAMILY:
            st.button(f"Remove {current}", key="own_remove", on_click=_remove_own_model, args=(current,))


def _numbers(text: str, what: str) -> list[float] | None:
    if not text.strip():
        return None
    try:
        return [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise user_models.ModelFileError(
            f"The {what} must be numbers separated by commas, e.g. 0.5, 0.5, 0.5."
        ) from None


def _add_own_model() -> None:
    state = st.session_state
    upload, kind = state.get("own_file"), state.get("own_kind") or "state_dict"
    if upload is None:
        return
    try:
        class_file = state.get("own_class_file")
        options: dict[str, Any] = {
            "class_names": class_file.getvalue() if class_file is not None else None,
            "standardize": bool(state.get("own_standardize")),
            "name": state.get("own_name") or None,
            "file_name": upload.name,
        }
        if not options["standardize"]:
            options["mean"] = _numbers(state.get("own_mean", ""), "mean")
            options["std"] = _numbers(state.get("own_std", ""), "standard deviations")
        if kind == "state_dict":
            options |= {"architecture": state["own_architecture"], "num_classes": int(state["own_classes"])}
        else:
            options["input_size"] = (int(state["own_channels"]), int(state["own_side"]), int(state["own_side"]))
        upload.seek(0)
        with st.spinner(f"Checking {upload.name} …"):
            name = user_models.add_model(upload, kind=kind, **options)
    except user_models.ModelFileError as error:
        state["own_message"] = ("error", f"{upload.name}: {error}")
        return
    state["model_name"] = name  # the picker shows it at once
    state["own_message"] = ("success", f"Added as **{name}**. Its model card is on the Predict page.")


def _remove_own_model(name: str) -> None:
    with contextlib.suppress(KeyError):  # removed meanwhile, e.g. from another tab
        user_models.remove_model(name)
    st.session_state["model_name"] = DEFAULT_MODEL
    st.session_state["own_message"] = ("success", f"Removed {name}.")


def unavailable(model: LoadedModel, *views: str) -> list[str]:
    """The views among ``views`` that ``model`` cannot show (a TorchScript model and views that need its layers: see
    ``user_models.TORCHSCRIPT_VIEWS``), said in one ``st.info`` with the reason and what to do; empty when all work."""
    limits = user_models.limitations(model)
    missing = [view for view in views if view in limits]
    if missing:
        titles = {v.key: v.title for v in user_models.TORCHSCRIPT_VIEWS}
        lines = [f"- **{titles[view]}**: {limits[view]}" for view in missing]
        st.info(f"{model.name} is a TorchScript model, so this is not available:\n" + "\n".join(lines))
    return missing


def require_view(model: LoadedModel, view: str) -> None:
    """Stop the page, saying why and what to do, when ``model`` cannot show this view (see :func:`unavailable`)."""
    if unavailable(model, view):
        st.stop()


# ── report ──────────────────────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class _PreparedReport:
    """A built report and its PDF, or why there is no PDF."""

    report: Report
    pdf: bytes | None
    pdf_note: str | None


@st.cache_resource(show_spinner=False)
def _reports() -> _ResultStore:
    """Finished reports shared by every session, keyed on (model, image digest, options). A report is megabytes of
    embedded PNGs: only a few are kept."""
    return _ResultStore(max_entries=4)


def report_export(model: LoadedModel, image: Image.Image, digest: str, image_label: str) -> None:
    """The report's controls (which layers and methods, whether to run the trust checks) and, once built on a click,
    its HTML and PDF downloads. Built reports are shared by every session (keyed on model, image and options)."""
    table = cached_layer_table(model.name, model)
    drawable = [info.name for info in table if len(info.output_shape) == 3]
    _, default_layer = cached_cam_layers(model.name, model)
    offered = [key for key, spec in METHODS.items() if default_layer or not spec.uses_layer]
    layers_col, methods_col = st.columns(2)
    layers = layers_col.multiselect(
        "Feature maps of",
        drawable,
        default=[name for name in default_layers(table) if name in drawable],
        key=f"report_layers_{model.name}",
        help="The first, a middle and the last convolution are a good overview.",
    )
    methods = methods_col.multiselect(
        "Explanations",
        offered,
        default=[key for key in REPORT_METHODS if key in offered],
        format_func=lambda key: METHODS[key].name,
        key=f"report_methods_{model.name}",
        help="Each of the predicted class, with the method's default settings.",
    )
    trust = st.checkbox(
        "With the trust checks of each explanation",
        value=True,
        key="report_trust",
        help="Deletion/insertion, randomization, infidelity and sensitivity, as on the Explain page: seconds on the "
        "built-in models, up to a minute per method on ImageNet ones.",
    )
    key = ("report", model.name, digest, tuple(layers), tuple(methods), trust, image_label)
    store = _reports()
    prepared = store.get(key)
    if prepared is None:
        slot = st.empty()
        with slot.container():
            clicked = st.button("Build the report", key="report_build", icon=":material/description:", type="primary")
            st.caption("One HTML file with every image inside, and its PDF: it opens offline, with nothing to install.")
        if not clicked:
            return
        prepared = _build_report(model, image, layers, methods, trust, image_label)
        if prepared is None:
            return
        store.put(key, prepared)
        slot.empty()
    stem = prepared.report.file_stem
    html_col, pdf_col = st.columns(2)
    html_col.download_button(
        "Download HTML",
        prepared.report.html.encode("utf-8"),
        file_name=f"{stem}.html",
        mime="text/html",
        key="report_download_html",
        on_click="ignore",
        icon=":material/download:",
    )
    if prepared.pdf is not None:
        pdf_col.download_button(
            "Download PDF",
            prepared.pdf,
            file_name=f"{stem}.pdf",
            mime="application/pdf",
            key="report_download_pdf",
            on_click="ignore",
            icon=":material/picture_as_pdf:",
        )
    else:
        pdf_col.warning(prepared.pdf_note)


def _build_report(
    model: LoadedModel, image: Image.Image, layers: list[str], methods: list[str], trust: bool, image_label: str
) -> _PreparedReport | None:
    """Build the report and print its PDF, with progress; None (and the reason shown) when the options are refused."""
    bar = st.progress(0.0, text="Building the report …")
    try:
        with st.spinner("Building the report …"):
            report = build_report(
                model,
                image,
                layers=layers,
                methods=methods,
                trust=trust,
                image_label=image_label,
                progress=lambda fraction, what: bar.progress(fraction, text=what),
            )
            bar.progress(1.0, text="Printing the PDF …")
            try:
                pdf, note = report_to_pdf(report.html), None
            except ReportError as error:
                pdf, note = None, str(error)
    except (ValueError, KeyError) as error:  # UnknownLayer is a KeyError
        bar.empty()
        st.error(f"The report cannot be built: {error}")
        return None
    bar.empty()
    return _PreparedReport(report=report, pdf=pdf, pdf_note=note)
