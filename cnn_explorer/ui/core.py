"""Shared by every page: cached models, inputs and predictions, the selection the sidebar made, result stores."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import streamlit as st
from PIL import Image

from cnn_explorer.images import (
    SAMPLES,
    default_sample,
    load_image,
    sample_bytes,
    samples_for,
)
from cnn_explorer.zoo import LoadedModel, ModelUnavailable, Prediction, load_model, model_entry
from cnn_explorer.zoo import predict as _predict

DEFAULT_MODEL = "tinyvgg-shapes"
_SOURCES = ("Sample", "Upload", "Camera", "Draw")  # Draw: ui/draw.py
_ACCEPTED = "PNG, JPEG, WebP, BMP, GIF or TIFF"
_DEFAULT_MEMO = "_default_of_{}"  # session key of what follow_default last gave a widget: (context, default, chosen)
_UPLOAD_MB = 25  # images and data zips; server.maxUploadSize is the larger limit of a model file (own_model_panel)


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
def _decoded(digest: str, _data: bytes) -> Image.Image:
    return load_image(_data)


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
            st.info(f"Choose a sample, upload an image ({_ACCEPTED}), take a photo or draw one in the sidebar.")
        st.stop()
    return chosen.model, chosen.image, chosen.image_digest


def _model_label(name: str) -> str:
    """The picker's text: the name, short enough for the sidebar; the family is in the caption under it."""
    return name if model_entry(name).is_ready() else f"{name} (download)"


def _load(name: str) -> tuple[LoadedModel | None, str | None]:
    """The model, or None and why (the page shows it, once: see :func:`require_selection`)."""
    try:
        return cached_model(name), None
    except ModelUnavailable as err:
        return None, str(err)


def _image_bytes(source: str, model_name: str) -> tuple[bytes | None, str]:
    if source == "Upload":
        upload = st.file_uploader(
            "Upload an image",
            key="upload",
            max_upload_size=_UPLOAD_MB,
            help=f"{_ACCEPTED}. The real format is checked, not the file name.",
        )
        return (upload.getvalue(), upload.name) if upload is not None else (None, "")
    if source == "Camera":
        photo = st.camera_input("Take a photo", key="camera")
        return (photo.getvalue(), "camera photo") if photo is not None else (None, "")
    keys = samples_for(model_name)
    suited = samples_for(model_name, made_for_it=True)
    # A new model starts on a sample made for it (a digit for the digit model), keeping the choice otherwise.
    if st.session_state.get("sample") not in keys or (
        st.session_state.get("sample_model") != model_name and suited and st.session_state["sample"] not in suited
    ):
        st.session_state["sample"] = default_sample(model_name)
    st.session_state["sample_model"] = model_name
    key = st.selectbox("Sample", keys, format_func=lambda k: SAMPLES[k].title, key="sample")
    st.caption(f"Licence: {SAMPLES[key].licence}", help=SAMPLES[key].source)
    return sample_bytes(key), SAMPLES[key].title


class _ResultStore:
    """Explanations and trust reports shared by every session, keyed on (model, image digest, method, target,
    layer, parameters).

    Not ``st.cache_data``: a slow computation shows its own progress bar and cancel button while it runs, and a
    cancelled one must store nothing. Bounded; thread-safe.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self._entries: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, key: tuple) -> Any:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
            return self._entries.get(key)

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


@st.cache_resource(show_spinner=False)
def _results() -> _ResultStore:
    return _ResultStore()
