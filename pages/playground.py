"""Playground: the building blocks of a CNN on their own, on the sidebar's image — convolution, pooling,
activations, weight sharing, and what a trained filter wants to see.

Each view is one function of ``ui`` over the library (``cnn_explorer.playground``, ``cnn_explorer.featurevis``);
``ui.playground_view`` picks the view and says in a few sentences what it shows.
"""

import streamlit as st

from cnn_explorer import ui

model, image, digest = ui.playground_selection()  # model is None when the sidebar's could not be loaded
st.title("Playground")
st.caption(
    "The pieces a CNN is built from, one at a time, on your image"
    + (f" and on {model.name}" if model is not None else "")
    + ". Every number on this page is computed, not illustrated."
)
if model is None:
    ui.without_model_note()
st.fragment(ui.playground_view)(model, image, digest)  # a change here reruns the view alone, not the sidebar
