"""AppTest for the Explain page: methods side by side, the target class and CAM layer, display settings, every
method at once, the Grad-CAM walkthrough checked against the method, other models (LeNet-5, ResNet-18).

What the page says is compared with the library called directly for the same model, image and class.
"""

import io

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from cnn_explorer import METHODS, explain
from cnn_explorer.attribution import default_cam_layer
from cnn_explorer.images import load_image, load_sample, sample_bytes
from cnn_explorer.trust import trust_report
from cnn_explorer.zoo import load_model

PAGE = "pages/explain.py"


def _assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    texts = [*at.markdown, *at.caption, *at.error, *at.warning, *at.info, *at.success]
    assert "Traceback" not in "\n".join(str(element.value) for element in texts)
    assert not at.error, [e.value for e in at.error]


def _open(at: AppTest) -> AppTest:
    at.switch_page(PAGE).run()
    _assert_clean(at)
    return at


def _headings(at: AppTest) -> list[str]:
    return [str(m.value).removeprefix("##### ") for m in at.markdown if str(m.value).startswith("##### ")]


def _scale_top(heatmap: torch.Tensor) -> float:
    """Where the page's colour scale tops out for a positive-only view: the 99th percentile of the positive part."""
    return float(np.percentile(heatmap.clamp_min(0).numpy(), 99))


def _page_input(at: AppTest):
    model = load_model(at.sidebar.selectbox(key="model_name").value)
    image = load_image(sample_bytes(at.sidebar.selectbox(key="sample").value))
    return model, model.preprocess(image)


def test_the_default_methods_explain_the_predicted_class(app: AppTest, expected) -> None:
    at = _open(app)
    model, x = _page_input(at)
    best, probability = expected.default_top()
    assert [str(t.value) for t in at.title] == [f"Why {best}?"]
    assert f"probability {probability:.1%}" in str(at.caption[0].value)
    assert _headings(at) == [METHODS[m].name for m in ("gradcam", "saliency", "integrated_gradients")]
    layer = default_cam_layer(model)
    assert at.selectbox(key=f"explain_target_{model.name}").value == model.class_names.index(best)
    assert at.selectbox(key=f"explain_layer_{model.name}").value == layer
    gradcam = explain(model, x, "gradcam")
    peak = _scale_top(gradcam.heatmap)
    captions = [str(c.value) for c in at.caption]
    assert any(c.startswith(f"{best} at `{layer}` · 0 … 1 (of the largest)") for c in captions), captions
    assert not any(f"0 … {peak:.3g} (raw units)" in c for c in captions)

    at.segmented_control(key="explain_scale").set_value("raw").run()
    _assert_clean(at)
    assert any(f"{best} at `{layer}` · 0 … {peak:.3g} (raw units)" in str(c.value) for c in at.caption)


def test_another_class_and_layer_change_what_is_explained(app: AppTest) -> None:
    at = _open(app)
    model, x = _page_input(at)
    other = 1 if int(model.module(x).argmax()) != 1 else 2
    at.selectbox(key=f"explain_target_{model.name}").select(other)
    at.selectbox(key=f"explain_layer_{model.name}").select("conv_1_2").run()
    _assert_clean(at)
    name = model.class_names[other]
    assert [str(t.value) for t in at.title] == [f"Why {model.class_names[int(model.module(x).argmax())]}?"]
    assert any(str(c.value).startswith(f"{name} at `conv_1_2`") for c in at.caption)
    assert any(str(c.value).startswith(f"{name} · ") for c in at.caption)  # saliency: no layer


def test_every_method_at_once_with_each_sign(app: AppTest) -> None:
    at = _open(app)
    at.multiselect(key="explain_methods").set_value(list(METHODS)).run()
    _assert_clean(at)
    assert _headings(at) == [spec.name for spec in METHODS.values()]
    assert len(at.get("download_button")) == len(METHODS)
    for sign in ("absolute", "all"):
        at.segmented_control(key="explain_sign").set_value(sign).run()
        _assert_clean(at)
    assert any("-1 … 1" in str(c.value) for c in at.caption)  # signed maps on a symmetric scale


def test_method_settings_reach_the_method(app: AppTest) -> None:
    at = _open(app)
    model, x = _page_input(at)
    at.slider(key="explain_integrated_gradients_steps").set_value(8).run()  # the fewest: far from 50's integral
    _assert_clean(at)
    expected = explain(model, x, "integrated_gradients", steps=8)
    default = explain(model, x, "integrated_gradients")
    assert _scale_top(expected.heatmap) != pytest.approx(_scale_top(default.heatmap), rel=1e-3)
    at.segmented_control(key="explain_scale").set_value("raw").run()
    captions = [str(c.value) for c in at.caption]
    assert any(f"0 … {_scale_top(expected.heatmap):.3g} (raw units)" in c for c in captions), captions


def test_the_gradcam_walkthrough_equals_the_method(app: AppTest) -> None:
    at = _open(app)
    assert any(str(s.value) == "Grad-CAM, step by step" for s in at.subheader)
    checks = [str(s.value) for s in at.success]
    assert len(checks) == 1 and "the same map" in checks[0], checks


@pytest.mark.parametrize("name", ["lenet5-digits", "resnet18"])
def test_other_models(cached_hub, app: AppTest, name: str) -> None:
    app.sidebar.selectbox(key="model_name").select(name).run()
    at = _open(app)
    model, x = _page_input(at)
    assert at.selectbox(key=f"explain_layer_{name}").value == default_cam_layer(model)
    at.multiselect(key="explain_methods").set_value(["gradcam", "layercam", "guided_backprop"]).run()
    _assert_clean(at)
    assert len(_headings(at)) == 3
    with torch.no_grad():
        best = model.class_names[int(model.module(x).argmax())]
    assert [str(t.value) for t in at.title] == [f"Why {best}?"]


def test_the_trust_panel_runs_on_demand_and_shows_the_library_figures(app: AppTest) -> None:
    at = _open(app)
    model, x = _page_input(at)
    at.multiselect(key="explain_methods").set_value(["gradcam", "guided_backprop"]).run()
    assert not at.table  # nothing is computed before the click
    at.button(key="trust_run").click().run()
    _assert_clean(at)
    table = at.table[0].value.reset_index()
    assert list(table["method"]) == [METHODS["gradcam"].name, METHODS["guided_backprop"].name]
    for row, method in enumerate(["gradcam", "guided_backprop"]):
        report = trust_report(model, x, method)
        curves = report.faithfulness
        worse_deletion = " ✗ worse than random" if curves.worse_on_deletion else ""
        worse_insertion = " ✗ worse than random" if curves.worse_on_insertion else ""
        deletion = f"{curves.deletion.auc:.3f} (random {curves.random_deletion.auc:.3f}){worse_deletion}"
        insertion = f"{curves.insertion.auc:.3f} (random {curves.random_insertion.auc:.3f}){worse_insertion}"
        assert table["deletion AUC ↓"][row] == deletion
        assert table["insertion AUC ↑"][row] == insertion
        for sentence in curves.warnings:
            assert f"{METHODS[method].name}: {sentence}" in [str(w.value) for w in at.warning]
        assert table["ρ after randomization ↓"][row] == f"{report.randomization.correlation:.2f}"
        assert table["infidelity ↓"][row] == f"{report.infidelity:.3g}"
        assert table["sanity check"][row] == ("⚠ barely changes" if report.randomization.flagged else "✓ changes")
    assert not [b for b in at.button if b.key == "trust_run"]  # nothing left to run


def _pick_sample(at: AppTest, key: str) -> AppTest:
    at.sidebar.selectbox(key="sample").select(key).run()
    _assert_clean(at)
    return at


def test_another_sample_explains_its_own_prediction(app: AppTest, expected) -> None:
    # As a person clicks: Explain on the default sample, then another sample in the sidebar.
    at = _open(app)
    model_name = expected.default_model()
    sample, best = expected.sample_predicted_otherwise(model_name)
    _pick_sample(at, sample)

    model, _ = _page_input(at)
    assert [str(t.value) for t in at.title] == [f"Why {best}?"]
    assert at.selectbox(key=f"explain_target_{model_name}").value == model.class_names.index(best)
    assert any(str(c.value).startswith(f"{best} at `") for c in at.caption), "the Grad-CAM map explains the new class"


def test_a_class_chosen_for_an_image_stays_until_the_image_changes(app: AppTest, expected) -> None:
    at = _open(app)
    model, x = _page_input(at)
    first_best = int(model.module(x).argmax())
    other = 1 if first_best != 1 else 2
    at.selectbox(key=f"explain_target_{model.name}").select(other).run()
    at.segmented_control(key="explain_scale").set_value("raw").run()  # another widget: the choice stays
    _assert_clean(at)
    assert at.selectbox(key=f"explain_target_{model.name}").value == other

    sample, best = expected.sample_predicted_otherwise(model.name)
    _pick_sample(at, sample)
    assert at.selectbox(key=f"explain_target_{model.name}").value == model.class_names.index(best)
    _pick_sample(at, expected.first_sample(model.name))  # back: the default again, not the old choice
    assert at.selectbox(key=f"explain_target_{model.name}").value == first_best


def test_a_blank_map_says_so_on_the_map_and_is_not_scored(app: AppTest) -> None:
    """issue 14: Score-CAM of the circle at conv_2_2 (before its ReLU) is zero everywhere; the page showed the bare
    image with "0 … 1 (of the largest)" and the trust table passed it."""
    app.sidebar.selectbox(key="sample").select("shape-circle").run()
    at = _open(app)
    model, x = _page_input(at)
    assert at.selectbox(key=f"explain_layer_{model.name}").value == "relu_2_2"
    at.multiselect(key="explain_methods").set_value(["scorecam", "gradcam"]).run()
    at.selectbox(key=f"explain_layer_{model.name}").select("conv_2_2").run()
    _assert_clean(at)
    assert explain(model, x, "scorecam", layer="conv_2_2").is_constant
    note = "No region raises circle at conv_2_2 (the map is zero everywhere); try relu_2_2 or Grad-CAM or LayerCAM."
    captions = [str(c.value) for c in at.caption]
    assert f"circle at `conv_2_2` · no colour scale: {note}" in "\n".join(captions), captions
    assert sum("(of the largest)" in c for c in captions) == 1  # Grad-CAM's, not Score-CAM's
    at.button(key="trust_run").click().run()
    _assert_clean(at)
    table = at.table[0].value.reset_index()
    scorecam = table[table["method"] == METHODS["scorecam"].name].iloc[0]
    assert scorecam["sanity check"] == "constant map: not scored"
    assert scorecam["deletion AUC ↓"] == scorecam["ρ after randomization ↓"] == "—"
    assert f"Score-CAM: Not scored: {note}" in [str(w.value) for w in at.warning]
    assert "✓" not in scorecam["sanity check"]


def test_adding_a_model_keeps_the_explanations_already_computed(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    """issue 14: with every method chosen, adding your own copy of the shipped model re-ran all 10 (18.9 s). The
    results are keyed on what the model computes, so the same weights under a new name are not computed again.
    (The shape samples are offered only with the shipped model, so there the image itself changes: see the cat.)"""
    import cnn_explorer.ui.explain as views

    computed: list[tuple[str, str]] = []
    real = views.explain

    def counting(model, x, method, **kwargs):
        computed.append((model.name, method))
        return real(model, x, method, **kwargs)

    monkeypatch.setattr(views, "explain", counting)
    app.sidebar.selectbox(key="sample").select("cat").run()  # a sample offered with every model
    at = _open(app)
    at.multiselect(key="explain_methods").set_value(list(METHODS)).run()
    _assert_clean(at)
    before = _map_scales(at)
    assert len(before) == len(METHODS)
    buffer = io.BytesIO()
    torch.save(load_model("tinyvgg-shapes").module.state_dict(), buffer)
    at.sidebar.segmented_control(key="own_kind").set_value("state_dict").run()
    at.sidebar.file_uploader(key="own_file_0").upload("shapes.pt", buffer.getvalue()).run()
    at.sidebar.selectbox(key="own_architecture").select("TinyVGG")
    at.sidebar.number_input(key="own_classes").set_value(10)
    at.sidebar.checkbox(key="own_standardize").check()  # the shipped model's normalization
    at.sidebar.text_input(key="own_name").input("Shapes again")
    computed.clear()
    at.sidebar.button(key="own_add").click().run()
    _assert_clean(at)
    assert at.sidebar.selectbox(key="model_name").value == "my-shapes-again"
    assert at.sidebar.selectbox(key="sample").value == "cat"  # the same image: only the model's name is new
    assert _headings(at) == [spec.name for spec in METHODS.values()]
    assert computed == [("my-shapes-again", "gradcam")]  # the walkthrough's own check only, no method re-run
    assert _map_scales(at) == before  # the same maps on the same scales (only the class's name is the new model's)
    shapes = load_model("tinyvgg-shapes")
    with torch.no_grad():  # the class explained: the model's top class for the cat; the own model names it by number
        top = int(shapes.module(shapes.preprocess(load_sample("cat"))).argmax())
    assert any(str(c.value).startswith(f"class {top} at `relu_2_2` · ") for c in at.caption)


def _map_scales(at: AppTest) -> list[str]:
    """Each map caption's colour range (the class name and the time cut off)."""
    return [str(c.value).split(" · ")[1] for c in at.caption if "(of the largest)" in str(c.value)]


def test_the_walkthrough_is_computed_once_per_class(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Changing the colour map or the methods, or going back to a class seen before, redoes none of Grad-CAM's steps
    and shows the same walkthrough."""
    import cnn_explorer.ui.explain as views
    from cnn_explorer import render

    computed: list[int] = []
    real = views.gradcam_steps

    def counting(model, x, target=None, layer=None):
        computed.append(target)
        return real(model, x, target=target, layer=layer)

    monkeypatch.setattr(views, "gradcam_steps", counting)
    at = _open(app)
    target = next(box.key for box in at.selectbox if box.key and box.key.startswith("explain_target_"))
    first = at.selectbox(key=target).value
    checked = [str(s.value) for s in at.success]
    at.selectbox(key=target).select_index(1 if first != 1 else 0).run()
    other = at.selectbox(key=target).value
    at.selectbox(key=target).set_value(first).run()
    at.selectbox(key="explain_cmap").select(render.HEAT_CMAPS[1]).run()
    at.multiselect(key="explain_methods").unselect("saliency").run()

    _assert_clean(at)
    assert computed == [first, other]
    assert [str(s.value) for s in at.success] == checked and "the same map" in checked[0]


def test_an_overlay_seen_before_is_not_drawn_again(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    from cnn_explorer import render

    drawn: list[str] = []
    real = render.heat_overlay

    def counting(picture, heatmap, *args, **kwargs):
        drawn.append(kwargs.get("cmap"))
        return real(picture, heatmap, *args, **kwargs)

    monkeypatch.setattr(render, "heat_overlay", counting)
    at = _open(app)
    methods = len(at.multiselect(key="explain_methods").value)
    captions = [str(c.value) for c in at.caption]
    first, second = render.HEAT_CMAPS[0], render.HEAT_CMAPS[1]
    at.selectbox(key="explain_cmap").select(second).run()
    at.selectbox(key="explain_cmap").select(first).run()

    _assert_clean(at)
    overlays = [cmap for cmap in drawn if cmap in (first, second)]  # the walkthrough draws one of its own
    assert sorted(overlays) == sorted([first] * methods + [second] * methods)
    assert [str(c.value) for c in at.caption] == captions
