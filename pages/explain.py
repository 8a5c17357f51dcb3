"""Explain: why the model decided what it did — saliency and the CAM family side by side, Grad-CAM taught step by
step, and whether each map can be trusted."""

import streamlit as st

from cnn_explorer import render, ui

model, image, digest = ui.require_selection()
x = ui.cached_input(model.name, digest, model, image)
prediction = ui.cached_prediction(model.name, digest, model, image)
picture = ui.network_picture(model, image)
default_layer = ui.cached_cam_layers(model.name, model)[1]

_, best_name, best_probability = prediction.top[0]
st.title(f"Why {best_name}?")
st.caption(
    f"{model.name} says **{best_name}** with probability {render.percent(best_probability)}. Each map below answers "
    "*which parts of the image made the score of the chosen class high* — each in its own way."
)
ui.ood_warning(model, x, digest)


@st.fragment
def explanations(model, x, digest, prediction, picture, default_layer) -> None:
    """The controls and everything they change. A click here reruns this part alone (not the sidebar, the title and
    the checks above it)."""
    choice = ui.explain_controls(model, prediction, digest)
    ui.explanation_grid(model, x, digest, choice, picture)

    if default_layer:
        st.subheader("Grad-CAM, step by step")
        with st.expander(
            f"How Grad-CAM computed its map for {model.class_names[choice.target]} at {choice.layer}", expanded=False
        ):
            ui.gradcam_walkthrough(model, x, choice.target, choice.layer, picture)

    st.subheader("Can I trust these maps?")
    st.caption(
        "A map can look convincing and still not describe the model. These checks test each chosen method on this "
        "image: does removing what it highlights hurt the prediction, does it change when the model's weights are "
        "destroyed, does it predict the effect of small changes, and is it stable."
    )
    if not ui.unavailable(model, "trust"):
        ui.trust_panel(model, x, digest, choice.methods, choice.target, choice.layer, choice.params)


explanations(model, x, digest, prediction, picture, default_layer)
