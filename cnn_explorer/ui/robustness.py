"""Widgets and views of the Fool-the-model page: the attack's settings, its result beside the original, Grad-CAM
before and after, and the search for the smallest ε that flips the prediction.

Attacks and searches go through :func:`~cnn_explorer.ui.long_task.computed` (stored, or run with progress and Cancel).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from torch import Tensor

from cnn_explorer import render
from cnn_explorer.attribution import default_cam_layer
from cnn_explorer.model import LoadedModel
from cnn_explorer.pixels import normalize
from cnn_explorer.robustness import ATTACKS, DEFAULT_TOLERANCE, AttackResult, FlipSearch, attack, smallest_flip
from cnn_explorer.ui.explain import explanation
from cnn_explorer.ui.long_task import computed, request_button
from cnn_explorer.ui.own_model import unavailable


def attack_settings() -> tuple[str, float, int]:
    """The attack, its ε (a fraction of the pixel range) and PGD's steps, with a line on the chosen attack."""
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
    return method, levels / 255, steps


def attack_view(model: LoadedModel, digest: str, pixels: Tensor, method: str, epsilon: float, steps: int) -> None:
    """The attack's result (stored, or run now), then Grad-CAM of the original and the adversarial image."""
    result = attack_result(model, digest, pixels, method, epsilon, steps)
    if result is None:
        return
    attack_panels(result, model)
    st.subheader("Where the model looks, before and after")
    st.caption(
        "Grad-CAM of each image for the class the model predicts on it: the evidence it uses can move or change "
        "although the two images look the same to us."
    )
    if not unavailable(model, "feature_maps"):
        gradcam_pair(model, digest, result, f"{method}/{epsilon:.8f}/{steps}")


def flip_search_view(model: LoadedModel, digest: str, pixels: Tensor, method: str, steps: int) -> None:
    """The largest ε to search up to, the search's result (after a click) and the ε it tried."""
    spec = ATTACKS[method]
    max_col, note_col = st.columns([1, 2])
    largest = max_col.slider("Search up to ε (grey levels)", 1, 64, 32, key="attack_max_epsilon")
    note_col.caption(
        f"Bisection: try the largest ε; if it flips the prediction, halve the interval between an ε that does not "
        f"flip and one that does until it is {DEFAULT_TOLERANCE * 255:.2f}/255 wide. It assumes a larger ε keeps the "
        "prediction flipped; the ε reported was tried and did flip it."
    )
    search = flip_search_result(model, digest, pixels, method, largest / 255, steps)
    if search is None:
        return
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


def attack_result(model: LoadedModel, digest: str, pixels: Tensor, method: str, epsilon: float, steps: int):
    """The attack from the shared store, or run now (PGD with progress and Cancel)."""
    key = ("attack", model.name, digest, method, round(epsilon, 8), steps if ATTACKS[method].iterative else 1)
    return computed(
        key,
        f"{ATTACKS[method].name} attack",
        lambda progress: attack(model, pixels, method, epsilon, steps=steps, progress=progress),
        f"attack_{method}",
    )


def attack_panels(result: AttackResult, model: LoadedModel) -> None:
    """Original, amplified perturbation and adversarial image side by side, then the top classes before and after."""
    original, perturbation, adversarial = st.columns(3)
    changed = float((result.perturbation.abs() > 0).float().mean())
    linf = float(result.perturbation.abs().max())
    original.image(render.for_display(render.pixels_image(result.pixels), 280), width="stretch")
    original.caption(f"Original: **{model.class_names[result.label]}** ({result.before.top[0][2]:.1%})")
    shown = render.perturbation_image(result.perturbation, result.epsilon)
    perturbation.image(render.framed(render.for_display(shown.image, 280)), width="stretch")
    perturbation.caption(
        f"Perturbation, amplified ×{0.5 / result.epsilon:.0f} (mid-grey: no change, white: +ε, black: −ε, per colour): "
        f"largest change {linf * 255:.2f}/255 "
        f"= {linf:.4f}, {changed:.1%} of the pixel values moved"
        if result.epsilon > 0
        else "No perturbation at ε = 0"
    )
    best, _, probability = result.after.top[0]
    adversarial.image(render.for_display(render.pixels_image(result.adversarial), 280), width="stretch")
    verdict = "the prediction flipped" if result.flipped else "still the same prediction"
    adversarial.caption(f"Adversarial: **{model.class_names[best]}** ({probability:.1%}) — {verdict}")
    before, after = result.before, result.after
    rows = [
        {
            "rank": rank + 1,
            "before": f"{b[1]} · {b[2]:.2%}",
            "after": f"{a[1]} · {a[2]:.2%}",
        }
        for rank, (b, a) in enumerate(zip(before.top, after.top, strict=True))
    ]
    label = model.class_names[result.label]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(
        f"p({label}) fell from {float(before.probabilities[result.label]):.2%} to "
        f"{float(after.probabilities[result.label]):.2%} · {ATTACKS[result.method].name}, ε = "
        f"{result.epsilon * 255:.2f}/255, {result.steps} step(s) of {result.step_size * 255:.2f}/255 · "
        f"{result.seconds:.2f} s"
    )


def gradcam_pair(model: LoadedModel, digest: str, result: AttackResult, attack_key: str) -> None:
    """Grad-CAM of the original image's prediction beside Grad-CAM of the adversarial image's prediction."""
    try:
        layer = default_cam_layer(model)
    except ValueError:
        st.info(f"{model.name} has no convolution layer with a spatial map for Grad-CAM.")
        return
    original, _, adversarial = st.columns(3)  # under the original and the adversarial image above
    pairs = (
        (result.pixels, digest, result.label, "Original"),
        (result.adversarial, f"{digest}/{attack_key}", result.after.top[0][0], "Adversarial"),
    )
    for column, (pixels, key, target, title) in zip((original, adversarial), pairs, strict=True):
        with column:
            x = normalize(model, pixels[None])
            found = explanation(model, x, key, "gradcam", target, layer, {})
            if found is not None:
                picture = render.pixels_image(pixels).convert("RGB")
                shown = render.heat_overlay(picture, found.heatmap)
                st.image(render.for_display(shown.image, 280), width="stretch")
                st.caption(f"{title}: Grad-CAM for **{found.target_name}** at `{layer}`")


def flip_search_result(
    model: LoadedModel, digest: str, pixels: Tensor, method: str, max_epsilon: float, steps: int
) -> FlipSearch | None:
    """The smallest flipping ε from the shared store, or searched after a click (with progress and Cancel)."""
    key = ("flip", model.name, digest, method, round(max_epsilon, 8), steps if ATTACKS[method].iterative else 1)
    request_button(
        f"Find the smallest ε for {ATTACKS[method].name}",
        [key],
        "flip_run",
        icon=":material/search:",
        help="Bisection: about ten attacks.",
    )
    return computed(
        key,
        "Bisecting ε",
        lambda progress: smallest_flip(model, pixels, method, max_epsilon=max_epsilon, steps=steps, progress=progress),
        "flip",
        on_request=True,
    )
