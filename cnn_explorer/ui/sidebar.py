"""The shared sidebar: the model picker (with "Add your own model") and the image picker."""

from __future__ import annotations

import streamlit as st

from cnn_explorer.images import (
    ImageError,
    image_digest,
)
from cnn_explorer.ui.core import _SOURCES, DEFAULT_MODEL, Selection, _decoded, _image_bytes, _load, _model_label
from cnn_explorer.ui.own_model import own_model_panel
from cnn_explorer.zoo import available_models


def sidebar() -> Selection:
    """Draw the shared sidebar (model and image pickers) and remember the selection for the pages."""
    with st.sidebar:
        st.markdown("### Model")
        names = available_models()
        # The default goes through session state, not index=: "Open in Layers" and "Add your own model" set the key,
        # and a widget given a default too makes Streamlit log a warning with a stack trace.
        if st.session_state.get("model_name") not in names:
            st.session_state["model_name"] = DEFAULT_MODEL if DEFAULT_MODEL in names else names[0]
        name = st.selectbox(
            "Model",
            names,
            format_func=_model_label,
            key="model_name",
            label_visibility="collapsed",
        )
        model, model_note = _load(name)
        if model is not None:
            st.caption(model.summary)
        own_model_panel(name)
        st.markdown("### Image")
        source = st.segmented_control("Source", _SOURCES, default="Sample", key="image_source") or "Sample"
        data, label = _image_bytes(source, name)
        image, image_note, digest = None, None, None
        if data is not None:
            digest = image_digest(data)
            try:
                image = _decoded(digest, data)
            except ImageError as err:
                image_note = str(err)  # shown once, in the page (require_selection)
    chosen = Selection(model, model_note, image, image_note, digest, label)
    st.session_state["selection"] = chosen
    return chosen
