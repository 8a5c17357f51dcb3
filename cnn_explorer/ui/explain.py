"""Widgets and views of the Explain page: method settings, overlays, the Grad-CAM walkthrough, the trust panel."""

from __future__ import annotations

import dataclasses
import hashlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import streamlit as st
import torch
from PIL import Image
from torch import Tensor, nn

from cnn_explorer import render
from cnn_explorer.attribution import (
    METHODS,
    Explanation,
    GradCamSteps,
    MethodSpec,
    explain,
    gradcam_steps,
)
from cnn_explorer.model import LoadedModel, Prediction
from cnn_explorer.trust import METRICS, TrustReport, trust_report
from cnn_explorer.ui.core import (
    cached_cam_layers,
    context_of,
    figure_png,
    follow_default,
    png_on_click,
    shown_image,
    sized_png,
)
from cnn_explorer.ui.long_task import computed, request_button, results
from cnn_explorer.ui.own_model import unavailable


def chips_wrap(key: str) -> None:
    """Let the multiselect with ``key`` grow onto as many lines as its chosen options need: by default it keeps one
    line and scrolls sideways, so with many methods chosen only the last few were visible."""
    container = f".st-key-{key} [data-testid='stMultiSelectTagsContainer']"
    st.html(
        f"<style>{container} {{ flex-wrap: wrap; overflow-x: visible; height: auto; row-gap: 4px; padding: 2px 0; }}"
        f" .st-key-{key} [role='group']:has(> {container.split(' ')[1]}) {{ height: auto; max-height: none; }}"
        "</style>"
    )


def method_params(spec: MethodSpec) -> dict[str, int | float | str]:
    """Widgets for a method's parameters, built from ``spec.params``; returns the chosen values."""
    values: dict[str, int | float | str] = {}
    for param in spec.params:
        key = f"explain_{spec.key}_{param.name}"
        if param.choices:
            values[param.name] = st.selectbox(param.label, param.choices, key=key, help=param.help or None)
        elif isinstance(param.default, int):
            values[param.name] = st.slider(
                param.label, int(param.low), int(param.high), int(param.default), key=key, help=param.help or None
            )
        else:
            values[param.name] = st.slider(
                param.label,
                float(param.low),
                float(param.high),
                float(param.default),
                step=0.01,
                key=key,
                help=param.help or None,
            )
    return values


def explanation(
    model: LoadedModel,
    x: Tensor,
    digest: str,
    method: str,
    target: int,
    layer: str | None,
    params: dict[str, int | float | str],
) -> Explanation | None:
    """The explanation from the shared store, or computed now.

    A slow method runs with a progress bar, its elapsed time and a Cancel button: clicking it makes Streamlit stop
    this run at the next progress update (the library restores the model on the way out), and the method then waits
    for a click on Compute. Returns None while it waits; a bad parameter shows an error.
    """
    spec = METHODS[method]
    result = computed(
        _result_key("explanation", model, digest, method, target, layer, params),
        spec.name,
        lambda progress: explain(model, x, method, target=target, layer=layer, progress=progress, **params),
        f"explain_{method}",
        slow=spec.slow,
    )
    return None if result is None else _labelled(result, model)


@dataclass(frozen=True)
class HeatDisplay:
    """How the page draws every heatmap (chosen once, applied to all methods)."""

    cmap: str
    alpha: float
    sign: str
    normalized: bool


def heat_display_controls() -> HeatDisplay:
    """Colour map, opacity, sign and scale widgets in one row."""
    cmap_col, alpha_col, sign_col, scale_col = st.columns([1, 1, 1.6, 1])
    cmap = cmap_col.selectbox("Colour map", render.HEAT_CMAPS, key="explain_cmap")
    alpha = alpha_col.slider("Opacity", 0.0, 1.0, 0.6, 0.05, key="explain_alpha")
    sign = sign_col.segmented_control(
        "Sign", list(render.SIGNS), default="positive", key="explain_sign", help="\n\n".join(render.SIGNS.values())
    )
    scale = scale_col.segmented_control("Scale", ["normalized", "raw"], default="normalized", key="explain_scale")
    return HeatDisplay(
        cmap=cmap, alpha=alpha, sign=sign or "positive", normalized=(scale or "normalized") == "normalized"
    )


DEFAULT_METHODS = ("gradcam", "saliency", "integrated_gradients")


@dataclass(frozen=True)
class ExplainChoice:
    """What the Explain page's controls chose: the methods, the class to explain, the CAM layer (None without one),
    each method's parameters and how maps are drawn."""

    methods: list[str]
    target: int
    layer: str | None
    params: dict[str, dict]
    display: HeatDisplay


def explain_controls(model: LoadedModel, prediction: Prediction, digest: str) -> ExplainChoice:
    """The methods (those the model supports), the class to explain (the predicted one for each new image), the CAM
    layer, the heatmap display and each method's settings with its paper."""
    conv_layers, default_layer = cached_cam_layers(model.name, model)
    pick, target_col, layer_col = st.columns([2.4, 1.3, 1.3])
    hidden = unavailable(model, "cam", "guided_backprop")  # a TorchScript model says why
    offered = [key for key, spec in METHODS.items() if (default_layer or not spec.uses_layer) and key not in hidden]
    methods = pick.multiselect(
        "Methods",
        offered,
        default=[m for m in DEFAULT_METHODS if m in offered],
        format_func=lambda key: METHODS[key].name,
        key="explain_methods",
    )
    chips_wrap("explain_methods")
    ranked = [index for index, _, _ in prediction.top]
    key = f"explain_target_{model.name}"
    follow_default(key, prediction.top[0][0], context_of(model, digest))  # never another image's class
    target = target_col.selectbox(
        "Explain the class",
        ranked,
        format_func=lambda i: f"{model.class_names[i]} · {float(prediction.probabilities[i]):.1%}",
        key=key,
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
    display = heat_display_controls()
    params = {}
    with st.expander("Method settings and papers"):
        for method in methods:
            spec = METHODS[method]
            st.markdown(f"**[{spec.name}]({spec.url})** — {spec.summary} *{spec.paper}; via `{spec.implementation}`.*")
            params[method] = method_params(spec)
    return ExplainChoice(methods, target, layer, params, display)


def explanation_grid(model: LoadedModel, x: Tensor, digest: str, choice: ExplainChoice, picture: Image.Image) -> None:
    """Each chosen method's map (stored, or computed now), three to a row."""
    if not choice.methods:
        st.info("Pick one or more methods above.")
    default_layer = cached_cam_layers(model.name, model)[1]
    for row in range(0, len(choice.methods), 3):
        for column, method in zip(st.columns(3), choice.methods[row : row + 3], strict=False):
            with column:
                st.markdown(f"##### {METHODS[method].name}")
                params = choice.params.get(method, {})
                result = explanation(model, x, digest, method, choice.target, choice.layer, params)
                if result is not None:
                    key = _result_key("explain", model, digest, method, choice.target, choice.layer, params)
                    explanation_card(result, picture, choice.display, default_layer, key=key)


@st.cache_resource(max_entries=64, show_spinner=False)
def cached_overlay(
    key: tuple, cmap: str, alpha: float, sign: str, normalized: bool, _heatmap: Tensor, _picture: Image.Image
) -> tuple[tuple[bytes, str], bytes, float, float]:
    """A map laid over the image, drawn once per (result, display): as ``st.image`` sends it (bytes, format), as PNG
    for its download, and its colour range."""
    shown = render.heat_overlay(_picture, _heatmap, sign=sign, normalized=normalized, cmap=cmap, alpha=alpha)
    picture = shown_image(render.for_display(shown.image, 320))
    return picture, render.to_png_bytes(shown.image), shown.vmin, shown.vmax


def explanation_card(
    result: Explanation,
    picture: Image.Image,
    display: HeatDisplay,
    default_layer: str | None = None,
    key: tuple | None = None,
) -> None:
    """One method's map over the image, its colour range, what it was computed for, a PNG download. A map with
    nothing to show (constant, or nothing of the chosen sign) is the faded image with the reason written on it.

    Args:
        result: The explanation.
        picture: The image as the network sees it.
        display: How maps are drawn.
        default_layer: The model's default CAM layer, suggested when a blank CAM was computed at another one.
        key: What the result depends on (``_result_key``): its overlay is then drawn once per key and display.
    """
    at = f" at `{result.layer}`" if result.layer else ""
    note = _nothing_to_show(result, display, default_layer)
    if note is not None:
        image = render.blank_map(picture, note)
        st.image(image, width="stretch")
        st.caption(f"{result.target_name}{at} · no colour scale: {note} · {result.seconds:.2f} s")
    elif key is not None:
        heat = (display.cmap, display.alpha, display.sign, display.normalized)
        (data, data_format), image, vmin, vmax = cached_overlay(key, *heat, result.heatmap, picture)
        st.image(data, width="stretch", output_format=data_format)
        unit = "of the largest" if display.normalized else "raw units"
        st.caption(f"{result.target_name}{at} · {vmin:.3g} … {vmax:.3g} ({unit}) · {result.seconds:.2f} s")
    else:
        shown = render.heat_overlay(
            picture,
            result.heatmap,
            sign=display.sign,
            normalized=display.normalized,
            cmap=display.cmap,
            alpha=display.alpha,
        )
        image = shown.image
        st.image(render.for_display(image, 320), width="stretch")
        unit = "of the largest" if display.normalized else "raw units"
        st.caption(f"{result.target_name}{at} · {shown.vmin:.3g} … {shown.vmax:.3g} ({unit}) · {result.seconds:.2f} s")
    st.download_button(
        "PNG",
        png_on_click(image),
        file_name=f"{result.method}-{result.target_name}.png",
        mime="image/png",
        key=f"explain_download_{result.method}",
        icon=":material/download:",
    )


def _nothing_to_show(result: Explanation, display: HeatDisplay, default_layer: str | None) -> str | None:
    """Why the map would be an empty overlay, or None when it has something to show."""
    if result.is_constant:
        return result.blank_note(default_layer)
    if display.sign == "positive" and float(result.heatmap.max()) <= 0:
        return (
            f"No pixel speaks for {result.target_name} in this map (every value is zero or below); "
            "set Sign to all to see the evidence against it."
        )
    return None


@dataclass(frozen=True, eq=False)
class WalkthroughPictures:
    """Grad-CAM's steps for one (model, image, class, layer), checked against the method, with every picture the
    walkthrough shows of them as PNG. Read-only: shared.

    Attributes:
        steps: :func:`~cnn_explorer.attribution.gradcam_steps`.
        difference: Largest absolute difference of step 6 from ``explain(model, x, "gradcam")``.
        activations: The grid of the layer's maps (its ranges and colour map label it); in ``activations_png`` as
            ``st.image`` sends it (:func:`~cnn_explorer.ui.core.shown_image`: bytes, format), and the same for
            ``gradients``.
        weights_png: The bars of the weights as ``st.pyplot`` would show them.
        weighted_png: The weighted sum; ``relu_png``: after ReLU; ``upsampled_png``: laid over the image (each as
            ``st.image`` sends it).
    """

    steps: GradCamSteps
    difference: float
    activations: render.FeatureGrid
    activations_png: tuple[bytes, str]
    gradients: render.FeatureGrid
    gradients_png: tuple[bytes, str]
    weights_png: bytes
    weighted_png: tuple[bytes, str]
    relu_png: tuple[bytes, str]
    upsampled_png: tuple[bytes, str]


@st.cache_resource(max_entries=16, show_spinner=False)
def cached_walkthrough(
    model_name: str, fingerprint: str, x_digest: str, target: int, layer: str, _model, _x: Tensor, _picture
) -> WalkthroughPictures:
    """Grad-CAM step by step and its pictures, computed and drawn once per (model, input, class, layer): switching
    the method, the colour map or back to a class seen before redoes none of it."""
    steps = gradcam_steps(_model, _x, target=target, layer=layer)
    method = explain(_model, _x, "gradcam", target=target, layer=layer)
    activations = render.feature_grid(steps.activations, "layer", cell=72, max_width=900)
    gradients = render.feature_grid(steps.gradients, "layer", cmap="RdBu_r", cell=72, max_width=900)
    peak = float(steps.weighted_sum.abs().max()) or 1.0
    top = float(steps.cam.max()) or 1.0
    png = shown_image
    return WalkthroughPictures(
        steps=steps,
        difference=float((steps.upsampled - method.heatmap).abs().max()),
        activations=activations,
        activations_png=png(activations.image),
        gradients=gradients,
        gradients_png=png(gradients.image),
        weights_png=sized_png(figure_png(render.vector_figure(steps.weights, title="α_k, one per channel"))),
        weighted_png=png(render.map_image(steps.weighted_sum, -peak, peak, "RdBu_r", 240)),
        relu_png=png(render.map_image(steps.cam, 0.0, top, "jet", 240)),
        upsampled_png=png(render.for_display(render.heat_overlay(_picture, steps.upsampled).image, 240)),
    )


def _show(place, shown: tuple[bytes, str]) -> None:
    """A picture encoded by :func:`~cnn_explorer.ui.core.shown_image`, in ``place`` (``st`` or a column)."""
    place.image(shown[0], output_format=shown[1])


def gradcam_walkthrough(model: LoadedModel, x: Tensor, target: int, layer: str, picture: Image.Image) -> None:
    """Grad-CAM computed step by step, each step shown, the end checked against the method's own result."""
    x_digest = hashlib.blake2b(x.detach().cpu().contiguous().numpy().tobytes(), digest_size=16).hexdigest()
    shown = cached_walkthrough(model.name, model_fingerprint(model), x_digest, target, layer, model, x, picture)
    steps, grid, gradients = shown.steps, shown.activations, shown.gradients
    k, (h, w) = steps.activations.shape[0], steps.cam.shape
    st.markdown(
        f"**1 · Activations.** The {k} feature maps $A_k$ of `{layer}` ({h}×{w} each) for this image: what the layer "
        "detected, and where."
    )
    _show(st, shown.activations_png)
    st.caption(f"{grid.ranges[0][0]:.3g} … {grid.ranges[0][1]:.3g}, one colour scale for the layer ({grid.cmap})")
    st.markdown(
        f"**2 · Gradients.** $\\partial y / \\partial A_k$: how much the score of **{model.class_names[target]}** "
        f"(the logit $y = {steps.score:.4g}$, before softmax) rises when each activation rises. Red raises it."
    )
    _show(st, shown.gradients_png)
    st.caption(f"{gradients.ranges[0][0]:.3g} … {gradients.ranges[0][1]:.3g}, blue below zero, red above")
    st.markdown(
        "**3 · One weight per map.** $\\alpha_k$ = the mean of map $k$'s gradients over its "
        f"{h * w} positions: how important map $k$ is for the class, as a whole."
    )
    bars, _ = st.columns([3, 2])
    bars.image(shown.weights_png, width="stretch", output_format="PNG")
    st.markdown(
        "**4 · Weighted sum** $\\sum_k \\alpha_k A_k$ (blue where the weighted maps speak against the class), "
        "**5 · ReLU** keeps only the evidence for it, **6 · upsampled** bilinearly to the input's size."
    )
    weighted, relu, up = st.columns(3)
    _show(weighted, shown.weighted_png)
    weighted.caption(f"Σ α·A: {float(steps.weighted_sum.min()):.3g} … {float(steps.weighted_sum.max()):.3g}")
    top = float(steps.cam.max()) or 1.0
    _show(relu, shown.relu_png)
    relu.caption(f"ReLU: 0 … {float(steps.cam.max()):.3g}")
    _show(up, shown.upsampled_png)
    up.caption(f"Upsampled to {x.shape[-1]}×{x.shape[-2]} and laid over the image")
    verdict = "the same map" if shown.difference <= 1e-5 * max(top, 1.0) else "a different map — please report this"
    st.success(
        f"Step 6 against `explain(model, x, 'gradcam')` (TorchCAM): largest difference {shown.difference:.2g} — "
        f"{verdict}."
    )


def _result_key(
    kind: str, model: LoadedModel, digest: str, method: str, target: int, layer: str | None, params: dict
) -> tuple:
    """What a result depends on (a CAM layer only for the methods that use one). The model enters by what it
    computes, not by its name: a model added under a new name with weights already explained (your own copy of a
    shipped model) finds their results at once, and a model removed and added again under the same name with other
    weights never gets the old maps."""
    layer = layer if METHODS[method].uses_layer else None
    return (kind, model_fingerprint(model), digest, method, target, layer, tuple(sorted(params.items())))


def _labelled(result: Explanation | TrustReport, model: LoadedModel) -> Explanation | TrustReport:
    """A stored result with its class named as ``model`` names it (the same weights may come with other names)."""
    if isinstance(result, TrustReport):
        return dataclasses.replace(result, explanation=_labelled(result.explanation, model))
    name = model.class_names[result.target]
    return result if result.target_name == name else dataclasses.replace(result, target_name=name)


_FINGERPRINTS: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()


def model_fingerprint(model: LoadedModel) -> str:
    """A digest of everything an explanation of ``model`` depends on: its module's type, parameters and buffers
    (names, shapes, dtypes, values), its preprocessing, input size and number of classes (their names only label a
    result: see :func:`_labelled`). Hashed once per loaded module (a ResNet-18's 45 MB in about a tenth of a
    second)."""
    with model.lock:
        if (weights := _FINGERPRINTS.get(model.module)) is None:
            h = hashlib.blake2b(type(model.module).__qualname__.encode(), digest_size=16)
            for name, tensor in model.module.state_dict().items():
                value = tensor.detach().cpu().contiguous()
                h.update(f"{name}|{value.dtype}|{tuple(value.shape)}".encode())
                h.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
            weights = _FINGERPRINTS[model.module] = h.hexdigest()
    rest = repr((model.preprocess, tuple(model.input_size), len(model.class_names))).encode()
    return f"{weights}-{hashlib.blake2b(rest, digest_size=8).hexdigest()}"


def trust_panel(
    model: LoadedModel,
    x: Tensor,
    digest: str,
    methods: Sequence[str],
    target: int,
    layer: str | None,
    params: dict[str, dict],
) -> None:
    """ "Can I trust these maps?": deletion/insertion curves, the randomization sanity check, infidelity and
    sensitivity for each chosen method, on demand (they take many forward passes), with progress and a cancel."""
    store = results()
    keys = {m: _result_key("trust", model, digest, m, target, layer, params.get(m, {})) for m in methods}
    missing = [m for m in methods if store.get(keys[m]) is None]
    request_button(
        "Run the checks for " + ", ".join(METHODS[m].name for m in missing),
        [keys[m] for m in missing],
        "trust_run",
        icon=":material/fact_check:",
        help="Hundreds of forward passes per method: seconds on the built-in models, a minute on ImageNet ones.",
    )
    for method in missing:
        name = METHODS[method].name
        computed(
            keys[method],
            f"Checking {name}",
            lambda progress, method=method: trust_report(
                model, x, method, target=target, layer=layer, params=params.get(method, {}), progress=progress
            ),
            f"trust_{method}",
            on_request=True,
            error_prefix=f"{name}: ",
        )
    reports = {m: _labelled(store.get(keys[m]), model) for m in methods if store.get(keys[m]) is not None}
    if reports:
        _trust_results(reports, model.class_names[target], cached_cam_layers(model.name, model)[1])


def _trust_results(reports: dict[str, TrustReport], class_name: str, default_layer: str | None = None) -> None:
    st.table(trust_table(reports))
    for report in reports.values():
        for sentence in report.warnings(default_layer):
            st.warning(f"{METHODS[report.explanation.method].name}: {sentence}")
    reports = {m: r for m, r in reports.items() if not r.constant}  # a constant map has no curves
    if not reports:
        return
    first = next(iter(reports.values()))
    deletion, insertion, randomization = st.columns(3)
    with deletion:
        curves = {METHODS[m].name: r.faithfulness.deletion.probabilities for m, r in reports.items()}
        curves["random order"] = first.faithfulness.random_deletion.probabilities
        st.pyplot(
            render.curves_figure(
                first.faithfulness.deletion.fractions,
                curves,
                "Deletion",
                "share of pixels removed",
                f"p({class_name})",
                dashed=["random order"],
            ),
            width="stretch",
        )
        _metric_note("deletion")
    with insertion:
        curves = {METHODS[m].name: r.faithfulness.insertion.probabilities for m, r in reports.items()}
        curves["random order"] = first.faithfulness.random_insertion.probabilities
        st.pyplot(
            render.curves_figure(
                first.faithfulness.insertion.fractions,
                curves,
                "Insertion",
                "share of pixels revealed",
                f"p({class_name})",
                dashed=["random order"],
            ),
            width="stretch",
        )
        _metric_note("insertion")
    with randomization:
        steps = [0] + [step.randomized for step in first.randomization.steps]
        curves = {
            METHODS[m].name: [1.0] + [step.correlation for step in r.randomization.steps] for m, r in reports.items()
        }
        st.pyplot(
            render.curves_figure(
                steps, curves, "Randomizing weights from the top", "layers randomized", "Spearman ρ with the original"
            ),
            width="stretch",
        )
        _metric_note("randomization")
    for key in ("infidelity", "sensitivity"):
        _metric_note(key)


def trust_table(reports: dict[str, TrustReport]) -> pd.DataFrame:
    """The trust panel's table, one row per method: a constant map is marked, not scored; a NaN is never a pass."""
    rows = []
    for method, report in reports.items():
        curves, check = report.faithfulness, report.randomization
        if curves is None or check is None:
            rows.append(
                {"method": METHODS[method].name, **dict.fromkeys(_TRUST_COLUMNS, "—")}
                | {"sanity check": "constant map: not scored", "time (s)": f"{report.seconds:.1f}"}
            )
            continue
        rows.append(
            {
                "method": METHODS[method].name,
                "deletion AUC ↓": f"{curves.deletion.auc:.3f} (random {curves.random_deletion.auc:.3f})"
                + (" ✗ worse than random" if curves.worse_on_deletion else ""),
                "insertion AUC ↑": f"{curves.insertion.auc:.3f} (random {curves.random_insertion.auc:.3f})"
                + (" ✗ worse than random" if curves.worse_on_insertion else ""),
                "ρ after randomization ↓": f"{check.correlation:.2f}",
                "sanity check": check.outcome,
                "infidelity ↓": f"{report.infidelity:.3g}",
                "max sensitivity ↓": f"{report.sensitivity:.3g}",
                "time (s)": f"{report.seconds:.1f}",
            }
        )
    # A static table: its cells wrap to the page's width, where a data grid would hide the last columns behind a
    # scroll bar.
    return pd.DataFrame(rows).set_index("method")


_TRUST_COLUMNS = (
    "deletion AUC ↓",
    "insertion AUC ↑",
    "ρ after randomization ↓",
    "sanity check",
    "infidelity ↓",
    "max sensitivity ↓",
    "time (s)",
)


def _metric_note(key: str) -> None:
    metric = METRICS[key]
    st.caption(f"**{metric.name}** ({metric.better} is better): {metric.reading} [{metric.paper}]({metric.url})")
