"""The Playground's views as data: each one's title, the few sentences that say what it shows, the function that
draws it, and whether it needs a model's layers; :func:`playground_view` picks one and draws it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st
from PIL import Image

from cnn_explorer.model import LoadedModel
from cnn_explorer.ui.own_model import require_view
from cnn_explorer.ui.playground import (
    activations_view,
    convolution_view,
    filter_view,
    pooling_view,
    weight_sharing_view,
)


@dataclass(frozen=True)
class View:
    """One view of the Playground: its title, its introduction and the function that draws it."""

    title: str
    intro: str
    show: Callable


VIEWS = {
    "convolution": View(
        "Convolution",
        "A convolution slides a small grid of weights, the kernel, over the image. At every position it multiplies "
        "the pixels under the kernel by its weights and adds them up: one number of the output. Pick a classic kernel "
        "or type your own weights, and see how stride, padding and dilation change the output and its size.",
        convolution_view,
    ),
    "pooling": View(
        "Pooling",
        "Pooling shrinks a map by keeping one number per window: the largest (max pooling) or the mean (average "
        "pooling). The network keeps *whether* a feature was found nearby and forgets exactly where, which makes it "
        "tolerate small shifts of the image.",
        pooling_view,
    ),
    "activations": View(
        "Activations",
        "Without a nonlinearity between them, a stack of layers collapses into one linear map. The activation "
        "function bends each value; its slope decides how well the gradient travels back through many layers.",
        activations_view,
    ),
    "sharing": View(
        "Weight sharing",
        "A convolution uses the same few weights at every position of the image. A fully connected layer with the "
        "same input and output would need one weight for every pair of input and output values.",
        weight_sharing_view,
    ),
    "filters": View(
        "What a filter wants to see",
        "Start from noise and change the pixels, step by step, so that one channel responds as strongly as it can: "
        "the picture that comes out is what the channel looks for. Beside it, the images of a built-in collection "
        "on which the same channel is highest.",
        filter_view,
    ),
}

MODEL_VIEWS = ("sharing", "filters")  # read a trained network's layers; the others work without a model


def playground_view(model: LoadedModel | None, image: Image.Image, digest: str) -> None:
    """The view picker, then the chosen view's title, introduction and the view itself. A view that reads a
    model's layers stops here without one (the page's note said why) or with a model whose layers cannot be read."""
    view = st.segmented_control(
        "View", list(VIEWS), default="convolution", format_func=lambda key: VIEWS[key].title, key="playground_view"
    )
    view = view or "convolution"  # clicking the chosen view again clears it
    st.subheader(VIEWS[view].title)
    st.markdown(VIEWS[view].intro)
    if view in MODEL_VIEWS:
        if model is None:
            st.stop()  # the note above says why and what to do
        require_view(model, "feature_maps")  # a TorchScript model's layers cannot be read
    VIEWS[view].show(model, image, digest)
