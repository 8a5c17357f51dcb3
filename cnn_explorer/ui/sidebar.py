"""The shared sidebar: the model picker (with "Add your own model") and the image picker (sample, upload, camera,
drawing)."""

from __future__ import annotations

import streamlit as st

from cnn_explorer.images import (
    SAMPLES,
    ImageError,
    default_sample,
    image_digest,
    sample_bytes,
    samples_for,
)
from cnn_explorer.ui.core import (
    ACCEPTED_IMAGES,
    DEFAULT_MODEL,
    UPLOAD_MB,
    Selection,
    cached_image,
    model_label,
    model_or_why,
)
from cnn_explorer.ui.draw import draw_source
from cnn_explorer.ui.own_model import own_model_panel
from cnn_explorer.zoo import available_models, model_entry

_SOURCES = ("Sample", "Upload", "Camera", "Draw")  # Draw: ui/draw.py
_URL_READ = "_sidebar_from_url"  # set once the session's first run has read the URL


def sidebar() -> Selection:
    """Draw the shared sidebar (model and image pickers) and remember the selection for the pages.

    The model and sample live in the URL too (``?model=…&sample=…``): a refresh or a shared link opens them again.
    """
    names = available_models()
    _from_url(names)
    with st.sidebar:
        st.markdown("### Model")
        # The default goes through session state, not index=: "Open in Layers" and "Add your own model" set the key,
        # and a widget given a default too makes Streamlit log a warning with a stack trace.
        if st.session_state.get("model_name") not in names:  # first run, or a model removed meanwhile
            st.session_state["model_name"] = DEFAULT_MODEL if DEFAULT_MODEL in names else names[0]
        name = st.selectbox("Model", names, format_func=model_label, key="model_name", label_visibility="collapsed")
        model, model_note = model_or_why(name)
        entry = model_entry(name)
        if model is not None:
            st.caption(f"{entry.family} · {model.summary}")
        else:  # the page says why and what to do, once
            st.caption(f"{entry.family} · not available here: see the page for how to get it.")
        own_model_panel(name)
        st.markdown("### Image")
        source = st.segmented_control("Source", _SOURCES, default="Sample", key="image_source") or "Sample"
        data, label = draw_source(name, model) if source == "Draw" else _image_bytes(source, name)
        image, image_note, digest = None, None, None
        if data is not None:
            digest = image_digest(data)
            try:
                image = cached_image(digest, data)
            except ImageError as err:
                image_note = str(err)  # shown once, in the page (require_selection)
    _to_url(name, st.session_state.get("sample") if source == "Sample" else None)
    chosen = Selection(model, model_note, image, image_note, digest, label)
    st.session_state["selection"] = chosen
    return chosen


def _from_url(names: list[str]) -> None:
    """On a session's first run, take the model and sample from the URL; an unknown one is ignored (the default)."""
    if st.session_state.get(_URL_READ):
        return
    st.session_state[_URL_READ] = True
    model = st.query_params.get("model")
    if model not in names:
        return
    st.session_state["model_name"] = model
    sample = st.query_params.get("sample")
    if sample in samples_for(model):
        st.session_state["sample"] = sample
        st.session_state["sample_model"] = model  # a sample chosen for this model: kept (see _image_bytes)


def _to_url(model: str, sample: str | None) -> None:
    """Write the choice into the URL, only what changed (each write is a message to the browser)."""
    for key, value in {"model": model, "sample": sample}.items():
        if value is None:
            st.query_params.pop(key, None)
        elif st.query_params.get(key) != value:
            st.query_params[key] = value


def _image_bytes(source: str, model_name: str) -> tuple[bytes | None, str]:
    if source == "Upload":
        upload = st.file_uploader(
            "Upload an image",
            key="upload",
            max_upload_size=UPLOAD_MB,
            help=f"{ACCEPTED_IMAGES}. The real format is checked, not the file name.",
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
