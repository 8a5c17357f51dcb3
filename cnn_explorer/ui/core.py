"""Shared by every page: cached models, inputs and predictions, the selection the sidebar made, and widget defaults
that follow the model and image."""

from __future__ import annotations

import io
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import streamlit as st
from PIL import Image

from cnn_explorer import render
from cnn_explorer.attribution import cam_layers, default_cam_layer
from cnn_explorer.images import (
    load_image,
)
from cnn_explorer.layers import LayerInfo, list_layers
from cnn_explorer.zoo import LoadedModel, ModelUnavailable, Prediction, load_model, model_entry
from cnn_explorer.zoo import predict as _predict

DEFAULT_MODEL = "tinyvgg-shapes"
ACCEPTED_IMAGES = "PNG, JPEG, WebP, BMP, GIF or TIFF"
_DEFAULT_MEMO = "_default_of_{}"  # session key of what follow_default last gave a widget: (context, default, chosen)
UPLOAD_MB = 25  # images and data zips; server.maxUploadSize is the larger limit of a model file (own_model_panel)


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
def cached_image(digest: str, _data: bytes) -> Image.Image:
    """The decoded RGB image of an upload or sample, once per digest; raises ImageError."""
    return load_image(_data)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_layer_table(model_name: str, _model: LoadedModel) -> tuple[LayerInfo, ...]:
    """The model's layer table (shapes, parameters, receptive fields), computed once per model."""
    return tuple(list_layers(_model))


@st.cache_data(max_entries=16, show_spinner=False)
def cached_cam_layers(model_name: str, _model: LoadedModel) -> tuple[list[str], str | None]:
    """The conv layers a CAM can use and the default one (None when the model has no spatial conv output)."""
    layers = list(cam_layers(_model))
    try:
        return layers, default_cam_layer(_model)
    except ValueError:
        return layers, None


@st.cache_data(max_entries=64, show_spinner=False)
def cached_input(model_name: str, digest: str, _model: LoadedModel, _image: Image.Image):
    """The preprocessed input ``[1, C, H, W]`` for (model, image), computed once."""
    return _model.preprocess(_image)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_prediction(model_name: str, digest: str, _model: LoadedModel, _image: Image.Image) -> Prediction:
    """Class probabilities for (model, image), computed once."""
    return _predict(_model, cached_input(model_name, digest, _model, _image), k=len(_model.class_names))


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


def context_of(model: LoadedModel, digest: str) -> tuple[str, str]:
    """The context of a widget whose default depends on the model and the image (see :func:`follow_default`)."""
    return (model.name, digest)


def user_chose(key: str, context: Hashable) -> bool:
    """Whether widget ``key`` holds a value the person chose in ``context``, not the default the page gave it.

    Only what :func:`follow_default` recorded counts: a value changed after the page set the default is a choice.
    """
    state = st.session_state
    memo = state.get(_DEFAULT_MEMO.format(key))
    if memo is None or key not in state or memo[0] != context:
        return False
    return memo[2] or state[key] != memo[1]


def follow_default(key: str, default: Any, context: Hashable, *, chosen: bool | None = None) -> bool:
    """Set widget ``key``'s value before it is drawn: ``default``, unless the person chose another in this context.

    A default depends on what the page shows (the predicted class of this image, the strongest unit of this map) and
    must never outlive it, while a person's choice stays as long as its context does: another image or model (a new
    ``context``) drops the choice and starts again from the new default. Call it every run, right before the widget,
    and create the widget without its own default (no ``index=`` or ``value=``): its value comes from here.

    Args:
        key: The widget's key.
        default: The value the widget starts from in this run.
        context: What a choice belongs to, e.g. :func:`context_of` (model and image) or the model's name alone.
        chosen: Decide for the caller (a pair of widgets that is one choice); None: :func:`user_chose`.

    Returns:
        Whether the person's choice was kept.
    """
    kept = user_chose(key, context) if chosen is None else chosen
    if not kept:
        st.session_state[key] = default
    st.session_state[_DEFAULT_MEMO.format(key)] = (context, default, kept)
    return kept


def require_selection() -> tuple[LoadedModel, Image.Image, str]:
    """The model, image and image digest, or stop the page with a message that says what to do."""
    chosen = selection()
    if chosen.model is None:
        st.warning(chosen.model_note or "Choose a model in the sidebar.")
        st.stop()
    if chosen.image is None:
        if chosen.image_note:
            st.error(chosen.image_note)
        else:
            st.info(f"Choose a sample, upload an image ({ACCEPTED_IMAGES}), take a photo or draw one in the sidebar.")
        st.stop()
    return chosen.model, chosen.image, chosen.image_digest


def model_label(name: str) -> str:
    """The picker's text: the name, short enough for the sidebar; the family is in the caption under it."""
    return name if model_entry(name).is_ready() else f"{name} (download)"


def model_or_why(name: str) -> tuple[LoadedModel | None, str | None]:
    """The model, or None and why (the page shows it, once: see :func:`require_selection`)."""
    try:
        return cached_model(name), None
    except ModelUnavailable as err:
        return None, str(err)


# What st.pyplot passes to savefig: a figure saved with these and shown with st.image is the same picture, and its
# bytes can be cached by what the figure shows (rendering a Matplotlib figure costs tens of milliseconds per rerun).
PYPLOT_SAVEFIG = {"bbox_inches": "tight", "dpi": 200, "format": "png"}


def png_on_click(picture: bytes | Image.Image) -> Callable[[], bytes]:
    """The ``data`` of an ``st.download_button`` offering ``picture`` as PNG, produced when the person clicks.

    Bytes given to the button are stored for the page's session, and the browser fetches them back at once to check
    the link: on the Layers page that was the grid's PNG (300 KB for a ResNet layer) and the chosen map, on every
    step; on Explain, a PNG encoded and fetched for every map on every rerun.
    """

    def data() -> bytes:
        return picture if isinstance(picture, bytes) else render.to_png_bytes(picture)

    return data


def figure_png(figure: Any) -> bytes:
    """A Matplotlib figure as the PNG ``st.pyplot`` would show."""
    buffer = io.BytesIO()
    figure.savefig(buffer, **PYPLOT_SAVEFIG)
    return buffer.getvalue()


# Streamlit sends an image wider than it is shown (or than its widest content, 2 × 730 pixels) shrunk, decoding,
# resizing and encoding it again on every run. A cached picture encoded and shrunk once so is sent as it is.
_WIDEST_CONTENT = 2 * 730  # streamlit.elements.lib.image_utils.MAXIMUM_CONTENT_WIDTH


def _shrunk(data: bytes, image_format: str, width: int | None) -> bytes:
    """``data`` shrunk bilinearly to ``width`` (None: Streamlit's widest content) when wider, as Streamlit does."""
    image = Image.open(io.BytesIO(data))
    target = width or _WIDEST_CONTENT
    if image.width <= target:
        return data
    shrunk = image.resize((target, int(1.0 * image.height * target / image.width)), resample=Image.BILINEAR)
    buffer = io.BytesIO()
    shrunk.save(buffer, format=image_format, quality=90)
    return buffer.getvalue()


def sized_png(png: bytes, width: int | None = None) -> bytes:
    """``png`` as ``st.image(png, width=width)`` sends it: shrunk bilinearly to ``width`` pixels (None: Streamlit's
    widest content, as for ``"stretch"``) when it is wider, the same pixels Streamlit would send. Call it where the
    PNG is cached; Streamlit then passes the bytes on untouched instead of shrinking them again on every rerun."""
    return _shrunk(png, "PNG", width)


def shown_image(image: Image.Image, width: int | None = None) -> tuple[bytes, str]:
    """The bytes and format ``st.image(image, width=width)`` sends for a picture: PNG when it may have an alpha
    channel, else JPEG at quality 100, shrunk as :func:`sized_png`. Show them with ``st.image(data, width=width,
    output_format=format)``: the same bytes, encoded once where they are cached instead of on every rerun."""
    image_format = "PNG" if image.mode in {"RGBA", "LA", "P"} else "JPEG"
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, quality=100)
    return _shrunk(buffer.getvalue(), image_format, width), image_format
