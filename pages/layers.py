"""Layers: step through the network one layer at a time: its feature maps, the arithmetic of one value, its field.

The forward pass runs once per (model, image) (``ui.cached_capture``); stepping only reads what it recorded.
"""

import math

import streamlit as st

from cnn_explorer import render, ui
from cnn_explorer.layers import UnknownLayer, describe, explain_unit, theoretical_field

model, image, digest = ui.require_selection()
ui.require_view(model, "layers")  # a TorchScript model's layers cannot be hooked
x = ui.cached_input(model.name, digest, model, image)
layers = ui.cached_layer_table(model.name, model)
capture = ui.cached_capture(model.name, digest, model, x)
picture = ui.network_picture(model, image)

st.title("Layers")
st.caption(
    f"{model.name} reads this {ui.selection().image_label or 'image'} through {len(layers)} layers. Step through "
    "them: every value below was recorded in one forward pass, and each one can be recomputed by hand."
)
ui.ood_warning(model, x, digest)
with st.expander("Overview: every layer, its output, parameters and receptive field"):
    ui.layer_overview(layers)

name = ui.layer_stepper([info.name for info in layers], context=model.name)
info = next(layer for layer in layers if layer.name == name)
st.html(ui.stack_strip(layers, name))
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

grid = selected = None
if output.dim() == 3:
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
        ui.follow_default("layer_channel", 0, model.name)  # a channel the person chose stays for this model
        channel = ui.bounded_number(f"Channel (0…{output.shape[0] - 1})", output.shape[0] - 1, "layer_channel")
    cell = min(200, max(48, 620 // math.ceil(math.sqrt(output.shape[0]))))  # fill the column, ≤ 16 maps a row
    grid = render.feature_grid(output, scope, capture.value_range, highlight=channel, cell=cell, max_width=900)
    low, high = grid.ranges[channel]
    with maps:
        with st.container(height=560 if grid.image.height > 560 else "content", border=False):
            ui.grid_picker(grid, output, channel, "layer_channel")
        st.caption(
            f"All {output.shape[0]} maps, channel {channel} framed: hover a map for its values, click to pick it"
        )
    with detail:
        selected = render.map_image(output[channel], low, high, grid.cmap)
        st.image(selected, width=320)
        st.pyplot(render.colourbar_figure(low, high, grid.cmap, f"{render.SCALES[scope].label} range"), width=320)
        values = output[channel]
        st.caption(f"Channel {channel}: {float(values.min()):.4g} … {float(values.max()):.4g}")
    table = render.value_table(output[channel])
    if table is not None:
        with st.expander(f"The values of channel {channel}", expanded=output.shape[-1] <= 8):
            st.html(ui.grid_table(table, cmap=grid.cmap, value_range=(low, high)))
elif output.dim() == 1:
    ui.follow_default("layer_channel", ui.strongest_unit(output)[0], model.name)  # the logits: the predicted class
    channel = ui.bounded_number(f"Unit (0…{output.shape[0] - 1})", output.shape[0] - 1, "layer_channel")
    is_logits = info is layers[-1] and output.shape[0] == len(model.class_names)
    labels = list(model.class_names) if is_logits else None
    figure = render.vector_figure(output, labels, title=name, highlight=channel)
    st.pyplot(figure, width=round(figure.get_figwidth() * 110))  # about its natural size: stretched, text grows
else:
    st.info(f"An output of shape {list(info.output_shape)} is not drawn here.")
    st.stop()

st.markdown("### The arithmetic of one value")
index = (channel,)
if output.dim() == 3:
    index = (channel, *ui.unit_position(output[channel], ui.context_of(model, digest)))
try:
    unit = explain_unit(model, capture.outputs, x, name, index, inputs=capture.inputs)
except (UnknownLayer, ValueError) as err:
    st.info(str(err))
else:
    ui.show_arithmetic(unit, model.class_names, picture)

st.markdown("### Receptive field")
box = theoretical_field(layers, name, *index[1:])
theory, effective = st.columns(2)
with theory:
    st.image(render.for_display(render.overlay(picture, box=box), 320), width=320)
    st.caption(
        f"The input pixels unit {list(index)} can see: rows {box[0]}…{box[2] - 1}, columns {box[1]}…{box[3] - 1}"
    )
with effective:
    if st.toggle("Effective receptive field (one backward pass per unit)", key="layer_erf"):
        try:
            heat = ui.cached_effective_field(model.name, digest, name, index, model, x)
        except (UnknownLayer, ValueError) as err:
            st.info(str(err))
        else:
            st.image(render.for_display(render.overlay(picture, heat, box=box), 320), width=320)
            st.caption("How strongly each pixel moves this unit: |∂ unit / ∂ pixel|, summed over colour channels")
    else:
        st.caption("How much each pixel inside the field actually moves the unit: usually a blob in its centre.")

with st.expander("Filters and statistics"):
    ui.filters_and_statistics(model.module.get_submodule(info.path), name, capture.outputs[name])

if grid is not None:
    stem = f"{model.name}-{name.replace('#', '-call')}"
    downloads = [("grid", "the grid", grid.image, "maps"), ("map", f"channel {channel}", selected, f"channel{channel}")]
    for column, (key, what, png, suffix) in zip(st.columns([1, 1, 2]), downloads, strict=False):
        column.download_button(
            f"Download {what} (PNG)",
            render.to_png_bytes(png),
            f"{stem}-{suffix}.png",
            "image/png",
            key=f"download_{key}",
            icon=":material/download:",
        )
