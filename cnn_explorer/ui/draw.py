"""The sidebar's Draw source: a canvas preset for the model, the pen, and the drawing as PNG bytes.

The canvas is streamlit-drawable-canvas (Fabric.js): it draws with a mouse, a pen or a finger, keeps undo, redo and
clear in its own toolbar, and sends the drawing back when a stroke ends, so every page follows it. The drawing is then
an image like any other: its PNG bytes go through ``load_image`` and its digest keys every cache.
"""

from __future__ import annotations

import streamlit as st

from cnn_explorer.drawing import CANVAS_SIZE, CANVASES, canvas_for
from cnn_explorer.model import LoadedModel
from cnn_explorer.ui.core import follow_default

__all__ = ["DRAWING_LABEL", "canvas_png", "draw_source"]

DRAWING_LABEL = "drawing"  # the pages say "this drawing is …"


def canvas_png(*, ink: str, paper: str, brush: int) -> bytes | None:
    """Show the canvas; the drawing as a square PNG, or None while nothing is drawn (an empty canvas, or cleared).

    The one call into the component: app tests replace it, since a component cannot render there.
    """
    from streamlit_drawable_canvas import st_canvas  # at call time: only the Draw source needs the component

    result = st_canvas(
        stroke_width=brush,
        stroke_color=ink,
        background_color=paper,  # changing it starts a new drawing (the component's rule)
        width=CANVAS_SIZE,
        height=CANVAS_SIZE,
        drawing_mode="freedraw",
        return_image_data=True,
        key="draw_canvas",
    )
    if not (result.json_data or {}).get("objects"):
        return None
    return result.image_bytes


def draw_source(model_name: str, model: LoadedModel | None) -> tuple[bytes | None, str]:
    """The canvas picker, the pen and the canvas; the drawing's PNG bytes (None while empty) and its label.

    The canvas starts as the one that suits the model (:func:`cnn_explorer.drawing.canvas_for`) and follows a new
    model; the pen's colours and width start from the canvas and stay as the person sets them.
    """
    suited = canvas_for(model_name, model.class_names if model is not None else ())
    follow_default("draw_kind", suited.key, model_name)
    kind = st.selectbox(
        "Canvas",
        list(CANVASES),
        format_func=lambda key: CANVASES[key].title + (" ✓" if key == suited.key else ""),
        key="draw_kind",
        help=f"✓ marks the canvas that looks like what {model_name} learnt from.",
    )
    preset = CANVASES[kind]
    context = (model_name, kind)
    follow_default("draw_ink", preset.ink, context)
    follow_default("draw_paper", preset.paper, context)
    follow_default("draw_brush", preset.brush, context)
    st.caption(preset.hint)
    st.space("small")  # room for the canvas's toolbar, which shows above it while the pointer is on it
    data = canvas_png(
        ink=st.session_state["draw_ink"], paper=st.session_state["draw_paper"], brush=st.session_state["draw_brush"]
    )
    if data is None:
        st.caption(
            "Draw with the mouse, a pen or a finger; the pages follow each stroke. Undo, redo and clear: the "
            "buttons above the canvas."
        )
    ink_column, paper_column = st.columns(2)
    ink_column.color_picker("Ink", key="draw_ink")
    paper_column.color_picker("Paper", key="draw_paper", help="A new paper colour starts a new drawing.")
    st.slider("Brush size", 1, 40, key="draw_brush", help="The pen's width in pixels of the square.")
    if data is not None:
        st.download_button(
            "Download the drawing",
            data,
            file_name="drawing.png",
            mime="image/png",
            on_click="ignore",
            key="draw_download",
            icon=":material/download:",
        )
    return data, DRAWING_LABEL
