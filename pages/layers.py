"""Layers: step through the network one layer at a time: its feature maps, the arithmetic of one value, its field.

The forward pass runs once per (model, image) (``ui.cached_capture``); stepping only reads what it recorded.
"""

import streamlit as st

from cnn_explorer import ui

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


@st.fragment
def layer_view(model, digest, x, layers, capture, picture) -> None:
    """Everything that follows the chosen layer. A click here reruns this part alone (not the sidebar, the checks and
    the overview above), so stepping through the layers answers in a blink."""
    name = ui.layer_stepper([info.name for info in layers], context=model.name)
    st.html(ui.stack_strip(layers, name))
    shown = ui.layer_output_view(model, layers, name, capture)  # stops the page for an output it cannot draw

    st.markdown("### The arithmetic of one value")
    index = ui.unit_arithmetic_view(model, capture, x, name, shown, digest, picture)

    st.markdown("### Receptive field")
    ui.receptive_field_view(model, layers, name, index, digest, x, picture)

    with st.expander("Filters and statistics", key="layer_filters", on_change="rerun") as filters:
        if filters.open:  # drawn only when opened: a closed one cost a histogram per new layer
            module = model.module.get_submodule(next(info.path for info in layers if info.name == name))
            ui.filters_and_statistics(module, name, capture.outputs[name], shown_for=(model.name, digest))

    ui.layer_downloads(model.name, name, shown)
    ui.prepare_next_layer(layers, name, capture, shown.channel)


layer_view(model, digest, x, layers, capture, picture)
