"""Home: the input layer (the image as given and as the network sees it), the prediction, and a report to take away."""

import streamlit as st

from cnn_explorer import render, ui

model, image, digest = ui.require_selection()
x = ui.cached_input(model.name, digest, model, image)
prediction = ui.cached_prediction(model.name, digest, model, image)

best_index, best_name, best_probability = prediction.top[0]
st.title(f"{best_name} · {best_probability:.1%}")
st.caption(f"{model.name} says this {ui.selection().image_label or 'image'} is **{best_name}** — {model.summary}")
ui.ood_warning(model, x, digest, say_no_score=True)

given, seen, ranked = st.columns([1, 1, 1.3], gap="large")
with given:
    st.markdown("#### The image as given")
    st.image(render.for_display(image), width="stretch")
    st.caption(f"{image.width}×{image.height} pixels")
with seen:
    st.markdown("#### What the model sees")
    st.image(render.for_display(render.uint8_image(model.preprocess.geometry(image))), width="stretch")
    st.caption(f"input tensor `{list(x.shape)}` = [batch, channels, height, width]")
with ranked:
    k = min(5, len(model.class_names))
    st.markdown(f"#### Top {k} classes")
    st.html(render.top_k_bars(prediction, k=k))

st.markdown("#### The input layer, channel by channel")
channel_names = ["grey"] if x.shape[1] == 1 else ["red", "green", "blue"]
columns = st.columns(3)
for column, name, coloured in zip(columns, channel_names, render.channel_maps(x), strict=False):
    with column:
        st.image(render.for_display(coloured.image, 160), width="stretch")
        st.caption(f"**{name}**: {coloured.vmin:+.2f} … {coloured.vmax:+.2f} (blue below zero, white zero, red above)")
with columns[len(channel_names)] if len(channel_names) < 3 else st.container():
    st.markdown(
        "This is what the first layer actually reads: one number per pixel and channel, after preprocessing. "
        "Normalization centres the values on zero, so a convolution's weights see positive and negative inputs."
    )

with st.expander("How the image becomes the input tensor"):
    st.markdown("\n".join(f"{i}. {step}" for i, step in enumerate(model.preprocess.steps(), 1)))
with st.expander("Model card", expanded=False):
    st.markdown(model.card)
with st.expander("Export a report", icon=":material/description:", key="report_open", on_change="rerun") as report:
    if report.open:  # drawn only when opened: its layer table and CAM layers are a third of the first page's time
        ui.report_export(model, image, digest, ui.selection().image_label)
