"""Fooling the model: FGSM and PGD on the sidebar's image with an ε slider — the perturbation, the adversarial
image, the new top classes, Grad-CAM before and after, and the smallest ε that flips the prediction."""

import streamlit as st

from cnn_explorer import ui

model, image, digest = ui.require_selection()
pixels = ui.cached_pixels(model.name, digest, model, image)

st.title("Fooling the model")
st.caption(
    "An adversarial example changes every pixel by a tiny amount ε, chosen with the model's own gradient so that the "
    "loss of its answer rises as fast as possible. The change can be invisible and still flip the prediction: the "
    "model does not see the way we do."
)
method, epsilon, steps = ui.attack_settings()
ui.attack_view(model, digest, pixels, method, epsilon, steps)
st.subheader("The smallest ε that flips the prediction")
ui.flip_search_view(model, digest, pixels, method, steps)
