"""Playground: the building blocks of a CNN on their own, on the sidebar's image — convolution, pooling,
activations, weight sharing, and what a trained filter wants to see.

Each view is one function of ``ui`` over the library (``cnn_explorer.playground``, ``cnn_explorer.featurevis``);
this page picks the view and says in a few sentences what it shows.
"""

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from cnn_explorer import ui


@dataclass(frozen=True)
class View:
    title: str
    intro: str
    show: Callable


VIEWS = {
    "convolution": View(
        "Convolution",
        "A convolution slides a small grid of weights, the kernel, over the image. At every position it multiplies "
        "the pixels under the kernel by its weights and adds them up: one number of the output. Pick a classic kernel "
        "or type your own weights, and see how stride, padding and dilation change the output and its size.",
        ui.convolution_view,
    ),
    "pooling": View(
        "Pooling",
        "Pooling shrinks a map by keeping one number per window: the largest (max pooling) or the mean (average "
        "pooling). The network keeps *whether* a feature was found nearby and forgets exactly where, which makes it "
        "tolerate small shifts of the image.",
        ui.pooling_view,
    ),
    "activations": View(
        "Activations",
        "Without a nonlinearity between them, a stack of layers collapses into one linear map. The activation "
        "function bends each value; its slope decides how well the gradient travels back through many layers.",
        ui.activations_view,
    ),
    "sharing": View(
        "Weight sharing",
        "A convolution uses the same few weights at every position of the image. A fully connected layer with the "
        "same input and output would need one weight for every pair of input and output values.",
        ui.weight_sharing_view,
    ),
    "filters": View(
        "What a filter wants to see",
        "Start from noise and change the pixels, step by step, so that one channel responds as strongly as it can: "
        "the picture that comes out is what the channel looks for. Beside it, the images of a built-in collection "
        "on which the same channel is highest.",
        ui.filter_view,
    ),
}

MODEL_VIEWS = ("sharing", "filters")  # read a trained network's layers; the others work without a model

model, image, digest = ui.playground_selection()  # model is None when the sidebar's could not be loaded
st.title("Playground")
st.caption(
    "The pieces a CNN is built from, one at a time, on your image"
    + (f" and on {model.name}" if model is not None else "")
    + ". Every number on this page is computed, not illustrated."
)
if model is None:
    ui.without_model_note()
view = st.segmented_control(
    "View", list(VIEWS), default="convolution", format_func=lambda key: VIEWS[key].title, key="playground_view"
)
view = view or "convolution"  # clicking the chosen view again clears it
st.subheader(VIEWS[view].title)
st.markdown(VIEWS[view].intro)
if view in MODEL_VIEWS:
    if model is None:
        st.stop()  # the note above says why and what to do
    ui.require_view(model, "feature_maps")  # a TorchScript model's layers cannot be read
VIEWS[view].show(model, image, digest)
