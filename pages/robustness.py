"""Fooling the model: FGSM and PGD on the sidebar's image with an ε slider — the perturbation, the adversarial
image, the new top classes, Grad-CAM before and after, and the smallest ε that flips the prediction."""

import streamlit as st

from cnn_explorer import ui
from cnn_explorer.robustness import ATTACKS, DEFAULT_TOLERANCE

model, image, digest = ui.require_selection()
pixels = ui.cached_pixels(model.name, digest, model, image)

st.title("Fooling the model")
st.caption(
    "An adversarial example changes every pixel by a tiny amount ε, chosen with the model's own gradient so that the "
    "loss of its answer rises as fast as possible. The change can be invisible and still flip the prediction: the "
    "model does not see the way we do."
)

method_col, epsilon_col, steps_col = st.columns([1, 2, 1.4])
method = method_col.segmented_control(
    "Attack", list(ATTACKS), default="fgsm", format_func=lambda key: ATTACKS[key].name, key="attack_method"
)
method = method or "fgsm"
spec = ATTACKS[method]
levels = epsilon_col.slider(
    "ε, in grey levels (of 255) per pixel",
    0.0,
    32.0,
    4.0,
    0.5,
    key="attack_epsilon",
    help="Largest change of any pixel",
)
steps = steps_col.slider("PGD steps", 1, 50, 10, key="attack_steps", disabled=not spec.iterative)
st.markdown(f"**[{spec.name}]({spec.url})** — {spec.summary} *{spec.paper}; via `captum.robust.{spec.name}`.*")

epsilon = levels / 255
result = ui.attack_result(model, digest, pixels, method, epsilon, steps)
if result is not None:
    ui.attack_panels(result, model)
    st.subheader("Where the model looks, before and after")
    st.caption(
        "Grad-CAM of each image for the class the model predicts on it: the evidence it uses can move or change "
        "although the two images look the same to us."
    )
    if not ui.unavailable(model, "feature_maps"):
        ui.gradcam_pair(model, digest, result, f"{method}/{epsilon:.8f}/{steps}")

st.subheader("The smallest ε that flips the prediction")
max_col, note_col = st.columns([1, 2])
largest = max_col.slider("Search up to ε (grey levels)", 1, 64, 32, key="attack_max_epsilon")
note_col.caption(
    f"Bisection: try the largest ε; if it flips the prediction, halve the interval between an ε that does not flip "
    f"and one that does until it is {DEFAULT_TOLERANCE * 255:.2f}/255 wide. It assumes a larger ε keeps the prediction "
    "flipped; the ε reported was tried and did flip it."
)
search = ui.flip_search_result(model, digest, pixels, method, largest / 255, steps)
if search is not None:
    label = model.class_names[search.label]
    if search.epsilon is None:
        st.info(f"Up to ε = {largest}/255, {spec.name} does not change the prediction ({label}).")
    else:
        st.success(
            f"{spec.name} flips **{label}** to **{model.class_names[search.new_class]}** at ε = "
            f"{search.epsilon * 255:.2f}/255 ({search.epsilon:.5f}); at {search.below * 255:.2f}/255 it is still "
            f"{label}. {len(search.probes)} attacks, {search.seconds:.1f} s."
        )
    probes = [
        {"ε (of 255)": round(eps * 255, 3), "prediction": model.class_names[chosen], "flipped": chosen != search.label}
        for eps, chosen in search.probes
    ]
    st.dataframe(probes, hide_index=True)
