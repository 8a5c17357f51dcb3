"""Widgets and views of the Playground page: convolution, pooling, activations, weight sharing, and what a filter
wants to see."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import streamlit as st
import torch
from PIL import Image
from torch import Tensor, nn

from cnn_explorer import render
from cnn_explorer.featurevis import (
    REFERENCE_SETS,
    channel_scores,
    dataset_images,
    default_dataset,
    maximize_activation,
    top_images,
    visualizable_layers,
)
from cnn_explorer.model import LoadedModel
from cnn_explorer.pixels import image_pixels
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
    follow_position,
    gradient_flow,
    image_tensor,
    pad,
    pool,
    size_formula,
    spatial_layers,
    translation_effect,
    weight_sharing,
)
from cnn_explorer.ui.core import cached_input, cached_layer_table, figure_png, require_selection, selection, sized_png
from cnn_explorer.ui.layer_cache import cached_capture
from cnn_explorer.ui.layers import bounded_number, grid_table, shape_text
from cnn_explorer.ui.long_task import computed, request_button
from cnn_explorer.ui.own_model import unavailable

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
def cached_translation_png(settings: tuple, layer: str, kind: str, window: int, stride: int, _effect) -> bytes:
    """The shift demo's curves as ``st.pyplot`` would show them, drawn once per ``settings`` (the key of
    :func:`cached_translation` that computed ``_effect``)."""
    changes = {
        f"maps of {layer}": _effect.maps_change,
        f"after {kind} pooling {window}/{stride}": _effect.pooled_change,
    }
    title, x_label, y_label = (
        "Change of the maps when the image shifts",
        "shift (input pixels)",
        "change (0: none, 1: most)",
    )
    return sized_png(figure_png(render.curves_figure(_effect.shifts, changes, title, x_label, y_label)))


@st.cache_data(max_entries=16, show_spinner=False)
def cached_spatial_layers(model_name: str, _model: LoadedModel) -> list[str]:
    """:func:`~cnn_explorer.playground.spatial_layers`, once per model (it walks the layer table)."""
    return spatial_layers(_model)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_translation_layer(model_name: str, _model: LoadedModel) -> str:
    """:func:`~cnn_explorer.playground.default_translation_layer`, once per model (it walks the layer table)."""
    return default_translation_layer(_model)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_activation_curves_png(chosen: tuple[str, ...]) -> bytes:
    """The chosen activations and their derivatives as ``st.pyplot`` would show them, drawn once per choice."""
    x = torch.linspace(*_CURVE_RANGE, _CURVE_POINTS)
    curves = {ACTIVATIONS[key].name: activation_curve(key, x) for key in chosen}
    return sized_png(figure_png(render.activation_figure(x, curves)))


@st.cache_data(max_entries=32, show_spinner=False)
def cached_gradient_flow_png(compared: tuple[str, ...], depth: int) -> bytes:
    """The gradient-flow comparison as ``st.pyplot`` would show it, drawn once per (activations, depth)."""
    flows = {ACTIVATIONS[key].name: cached_gradient_flow(key, depth).norms for key in compared}
    return sized_png(figure_png(render.gradient_flow_figure(flows)))


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


# The page without a model -----------------------------------------------------------------------------------

_NEEDS_A_MODEL = (
    "Convolution, pooling of the image and the activation curves need no model and work below. The feature maps, "
    "the shift demo, weight sharing and what a filter wants to see read a trained network's layers, so they wait "
    "for a model that is available."
)


def playground_selection() -> tuple[LoadedModel | None, Image.Image, str]:
    """The sidebar's model, image and image digest; unlike :func:`~cnn_explorer.ui.core.require_selection`, a model
    that could not be loaded is None instead of stopping the page, since half of the Playground needs none."""
    chosen = selection()
    if chosen.model is None and chosen.image is not None:
        return None, chosen.image, chosen.image_digest
    return require_selection()


def without_model_note() -> None:
    """When the sidebar's model is unavailable: why and how to get it (the sidebar only points here), once, then
    which sections work without it and which need it."""
    st.warning(selection().model_note or "The chosen model is not available here.")
    st.info(_NEEDS_A_MODEL)


def _needs_a_model(what: str) -> None:
    st.caption(f"{what} needs an available model: choose one in the sidebar.")


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


_Axis = tuple[int, int, int, int, int]  # (input side, kernel, stride, padding, dilation) along one side


def _step_inputs(digest: str, geometry: tuple[_Axis, _Axis], outputs: tuple[int, int]) -> tuple[list[str], list[int]]:
    """The keys and defaults of the step's row and column inputs: the window stays on the same place of the image
    when the kernel, stride, padding, dilation or image size change, and starts on the centre of a new image.

    The anchor is the position the person last chose with the settings it was chosen under (a new image's centre
    until they choose); every other setting gets the position that covers the same pixels
    (:func:`~cnn_explorer.playground.follow_position`). Each image and setting has inputs of its own: the browser
    sends back the value it last showed, and after a rerun cut short by the next click that is the old settings'
    value, which must not be read as a choice under the new ones.
    """
    anchor = st.session_state.get("conv_anchor")
    if anchor is None or anchor[0] != digest:
        anchor = (digest, tuple((axis, count // 2) for axis, count in zip(geometry, outputs, strict=True)))
        st.session_state["conv_anchor"] = anchor
    defaults = [follow_position(index, old, new) for (old, index), new in zip(anchor[1], geometry, strict=True)]
    tag = "_".join(str(number) for axis in geometry for number in axis)
    return [f"conv_{side}_{digest[:16]}_{tag}" for side in ("row", "col")], defaults


def _anchor_step(digest: str, geometry: tuple[_Axis, _Axis], position: tuple[int, int], defaults: list[int]) -> None:
    """Remember a position the person chose (one that is not the default the anchor gave) as the new anchor."""
    if list(position) != defaults:
        st.session_state["conv_anchor"] = (digest, tuple(zip(geometry, position, strict=True)))


def _advance(rows: int, cols: int, keys: list[str]) -> None:
    """Move the sliding window one position on, left to right, then the next row (and back to the start)."""
    row_key, col_key = keys
    index = (st.session_state.get(row_key, 0) * cols + st.session_state.get(col_key, 0) + 1) % (rows * cols)
    st.session_state[row_key], st.session_state[col_key] = divmod(index, cols)


def _output_caption(output: Tensor, shown: render.ColouredMap) -> str:
    low, high = float(output.min()), float(output.max())
    size = f"{output.shape[-1]}×{output.shape[-2]} output, values {low:.3g} … {high:.3g}"
    if shown.cmap in ("gray", "rgb") and shown.vmin == 0 and shown.vmax == 1:
        clipped = float(((output < 0) | (output > 1)).float().mean())
        return f"{size} · drawn as a picture on 0 … 1 ({clipped:.1%} of the values beyond it, clipped)"
    zero = "blue below zero, red above" if shown.cmap == _SIGNED else "mid-grey is zero"
    return f"{size} · drawn around zero on ±{shown.vmax:.3g} ({zero})"


def convolution_view(model: LoadedModel | None, image: Image.Image, digest: str) -> None:
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
    geometry = tuple((side, size, stride, padding, dilation) for side in picture.shape[-2:])
    keys, defaults = _step_inputs(digest, geometry, (rows, cols))
    channel = 0
    step_col, channel_col, row_col, col_col = st.columns([1.2, 1, 1, 1], vertical_alignment="bottom")
    if picture.shape[0] == 3:
        channel = channel_col.segmented_control(
            "Channel", [0, 1, 2], default=0, format_func=("red", "green", "blue").__getitem__, key="conv_channel"
        )
        channel = channel or 0
    with row_col:
        row = bounded_number(f"Output row (0…{rows - 1})", rows - 1, keys[0], default=defaults[0])
    with col_col:
        col = bounded_number(f"Output column (0…{cols - 1})", cols - 1, keys[1], default=defaults[1])
    _anchor_step(digest, geometry, (row, col), defaults)
    step_col.button(
        "Next position", key="conv_next", icon=":material/arrow_forward:", on_click=_advance, args=(rows, cols, keys)
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
        channel = bounded_number(f"Channel (0…{maps.shape[0] - 1})", maps.shape[0] - 1, f"{key}_channel_{model.name}")
    return maps[channel : channel + 1]


def pooling_view(model: LoadedModel | None, image: Image.Image, digest: str) -> None:
    """Max or average pooling on the image or a feature map, and the translation demo (these two need a model)."""
    source_col, kind_col, window_col, stride_col = st.columns([1.4, 1.2, 1, 1])
    sources = ["image", "feature map"] if model is not None else ["image"]
    source = source_col.segmented_control("Pool", sources, default="image", key="pool_source")
    kind = kind_col.segmented_control("Kind", list(POOLS), default="max", key="pool_kind") or "max"
    window = window_col.slider("Window", 2, 6, 2, key="pool_window")
    stride = stride_col.slider("Stride", 1, 6, window, key=f"pool_stride_{window}", help="Defaults to the window")
    if source == "feature map" and (model is None or unavailable(model, "feature_maps")):
        return
    if source == "feature map":
        maps = _feature_map_picker(model, digest, image, "pool", cached_spatial_layers(model.name, model))
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
        "network blind to position."
    )
    if model is None:
        _needs_a_model("The shift demo")
        return
    if unavailable(model, "feature_maps"):
        return
    layers, default = cached_spatial_layers(model.name, model), cached_translation_layer(model.name, model)
    layer_col, shift_col = st.columns(2)
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
    chart, note = st.columns([3, 2])
    png = cached_translation_png((model.name, digest, max_shift), layer, kind, window, stride, effect)
    chart.image(png, width="stretch", output_format="PNG")
    last = effect.shifts[-1]
    note.markdown(
        f"At a shift of {last} pixels the maps of `{layer}` changed by **{effect.maps_change[-1]:.1%}**, the pooled "
        f"maps by **{effect.pooled_change[-1]:.1%}**. At 1 pixel: {effect.maps_change[1]:.1%} against "
        f"{effect.pooled_change[1]:.1%}."
    )
    st.caption(
        "Change = ‖after − before‖ / (‖before‖ + ‖after‖), over all the layer's values: 0 % when the maps did not "
        "change, 100 % only when they turned into their opposite; the same pattern, just as strong, in an entirely "
        "different place reads 71 %."
    )


# Activations ----------------------------------------------------------------------------------------------------


def activations_view(model: LoadedModel | None, image: Image.Image, digest: str) -> None:
    """The activation functions and their derivatives, one applied to a real feature map, and gradient flow."""
    chosen = st.multiselect(
        "Activations",
        list(ACTIVATIONS),
        default=list(ACTIVATIONS),
        format_func=lambda k: ACTIVATIONS[k].name,
        key="act_chosen",
    )
    if chosen:
        st.image(cached_activation_curves_png(tuple(chosen)), width="stretch", output_format="PNG")
        for key in chosen:
            spec = ACTIVATIONS[key]
            st.markdown(f"**{spec.name}** $f(x) = {spec.formula}$, $f'(x) = {spec.derivative_formula}$ — {spec.note}")

    st.subheader("On a real feature map")
    st.markdown(
        "The values a convolution computes, before the network's nonlinearity, and what each activation makes of "
        "them. Both maps share one colour scale: blue below zero, red above."
    )
    if model is None:
        layers = []
        _needs_a_model("A real feature map")
    else:
        table = cached_layer_table(model.name, model)
        spatial = set(cached_spatial_layers(model.name, model))
        layers = [info.name for info in table if info.kind in ("Conv2d", "BatchNorm2d") and info.name in spatial]
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
    elif model is not None and not unavailable(model, "feature_maps"):  # a TorchScript model says why instead
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
        chart.image(cached_gradient_flow_png(tuple(compared), depth), width="stretch", output_format="PNG")
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
            "input": [shape_text(row.input_shape) for row in rows],
            "output": [shape_text(row.output_shape) for row in rows],
            "kernel": [shape_text(row.kernel) for row in rows],
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
        f"`{first.layer}` alone maps {shape_text(first.input_shape)} = {math.prod(first.input_shape):,} values to "
        f"{shape_text(first.output_shape)} = {math.prod(first.output_shape):,}: a dense layer needs a weight for every "
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
        channel = bounded_number(f"{label} (0…{count - 1})", count - 1, f"fv_channel_{model.name}")
    collection = collection_col.selectbox(
        "Compare with",
        list(REFERENCE_SETS),
        index=list(REFERENCE_SETS).index(default_dataset(model)),
        format_func=lambda k: REFERENCE_SETS[k].name,
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
        st.markdown(f"**The {_TOP_IMAGES} {REFERENCE_SETS[collection].name.lower()} with its highest mean activation**")
        scores = computed(
            scores_key,
            f"Running {REFERENCE_SETS[collection].name.lower()} through {layer}",
            lambda progress: channel_scores(
                model, layer, cached_dataset_images(collection, _COLLECTION_SIZE), progress=progress
            ),
            "fv_scores",
            on_request=True,
        )
        if scores is not None:
            top = top_images(scores, channel, _TOP_IMAGES)
            pictures = cached_dataset_images(collection, _COLLECTION_SIZE)
            if top.note:
                st.warning(top.note, icon=":material/info:")
            st.image(render.image_grid([pictures[i] for i in top.indices], cell=104))
            st.caption(
                f"Out of {scores.shape[0]} images: {REFERENCE_SETS[collection].description} Mean activation of each, "
                "strongest first: " + ", ".join(f"{score:.3g}" for score in top.scores)
            )
