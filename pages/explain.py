"""Explain: why the model decided what it did — saliency and the CAM family side by side, Grad-CAM taught step by
step, and whether each map can be trusted."""

import streamlit as st

from cnn_explorer import render, ui
from cnn_explorer.attribution import METHODS

DEFAULT_METHODS = ["gradcam", "saliency", "integrated_gradients"]

model, image, digest = ui.require_selection()
x = ui.cached_input(model.name, digest, model, image)
prediction = ui.cached_prediction(model.name, digest, model, image)
picture = ui.network_picture(model, image)
conv_layers, default_layer = ui.cached_cam_layers(model.name, model)

best_index, best_name, best_probability = prediction.top[0]
st.title(f"Why {best_name}?")
st.caption(
    f"{model.name} says **{best_name}** with probability {render.percent(best_probability)}. Each map below answers "
    "*which parts of the image made the score of the chosen class high* — each in its own way."
)
ui.ood_warning(model, x, digest)

pick, target_col, layer_col = st.columns([2.4, 1.3, 1.3])
hidden = ui.unavailable(model, "cam", "guided_backprop")  # a TorchScript model says why
offered = [key for key, spec in METHODS.items() if (default_layer or not spec.uses_layer) and key not in hidden]
methods = pick.multiselect(
    "Methods",
    offered,
    default=[m for m in DEFAULT_METHODS if m in offered],
    format_func=lambda key: METHODS[key].name,
    key="explain_methods",
)
ui.chips_wrap("explain_methods")
ranked = [index for index, _, _ in prediction.top]
ui.follow_default(f"explain_target_{model.name}", best_index, ui.context_of(model, digest))  # never another image's
target = target_col.selectbox(
    "Explain the class",
    ranked,
    format_func=lambda i: f"{model.class_names[i]} · {float(prediction.probabilities[i]):.1%}",
    key=f"explain_target_{model.name}",
)
layer = None
if default_layer:
    layer = layer_col.selectbox(
        "CAM layer",
        conv_layers,
        index=conv_layers.index(default_layer),
        key=f"explain_layer_{model.name}",
        help="The feature maps the CAM methods weigh: a convolution, or the map after its activation. CAMs are "
        "defined on rectified maps, so the default is the last convolution's map after its ReLU.",
    )
display = ui.heat_display_controls()

params = {}
with st.expander("Method settings and papers"):
    for method in methods:
        spec = METHODS[method]
        st.markdown(f"**[{spec.name}]({spec.url})** — {spec.summary} *{spec.paper}; via `{spec.implementation}`.*")
        params[method] = ui.method_params(spec)

if not methods:
    st.info("Pick one or more methods above.")
for row in range(0, len(methods), 3):
    for column, method in zip(st.columns(3), methods[row : row + 3], strict=False):
        with column:
            st.markdown(f"##### {METHODS[method].name}")
            result = ui.explanation(model, x, digest, method, target, layer, params.get(method, {}))
            if result is not None:
                ui.explanation_card(result, picture, display, default_layer)

if default_layer:
    st.subheader("Grad-CAM, step by step")
    with st.expander(f"How Grad-CAM computed its map for {model.class_names[target]} at {layer}", expanded=False):
        ui.gradcam_walkthrough(model, x, target, layer, picture)

st.subheader("Can I trust these maps?")
st.caption(
    "A map can look convincing and still not describe the model. These checks test each chosen method on this image: "
    "does removing what it highlights hurt the prediction, does it change when the model's weights are destroyed, "
    "does it predict the effect of small changes, and is it stable."
)
if not ui.unavailable(model, "trust"):
    ui.trust_panel(model, x, digest, methods, target, layer, params)
