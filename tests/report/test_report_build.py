"""report.build: the layers and methods chosen, a CAM that does not apply, checks that cannot run, a constant map
written on, and progress from zero to one."""

import functools
from dataclasses import replace

import pytest
from PIL import Image
from report_pages import MODEL
from report_pages import Page as _Page
from report_pages import tiny_model as _tiny_model
from torch import nn

from cnn_explorer import list_layers
from cnn_explorer.images import load_sample
from cnn_explorer.report import build as report_build
from cnn_explorer.report import build_report, default_layers
from cnn_explorer.zoo import LoadedModel


def test_chosen_layers_and_methods_without_trust(model: LoadedModel, image: Image.Image) -> None:
    report = build_report(model, image, layers=["relu_1_1", "output"], methods=["integrated_gradients"], trust=False)
    page = _Page(report.html)
    assert "relu_1_1 · ReLU" in page.plain
    assert "The 10 values of output" in page.plain  # a vector is drawn as bars, not as a map
    assert "Integrated gradients" in page.plain
    assert "Grad-CAM" not in page.plain
    assert "Can these maps be trusted" not in page.plain
    assert not [attrs for attrs in page.all("td") if attrs.get("data-metric")]
    assert report.title == f"CNN Explorer report: {MODEL} on the image"


def test_a_cam_that_does_not_apply_gets_a_note(image: Image.Image) -> None:
    tiny = _tiny_model()
    page = _Page(build_report(tiny, image, methods=["gradcam", "saliency"]).html)
    assert "Not computed: tiny has no convolutional layer with a spatial output" in page.plain
    assert "No layer was chosen." in page.plain
    assert [attrs["data-method"] for attrs in page.all("tr") if attrs.get("data-method")] == ["saliency"]


def test_a_map_whose_checks_cannot_run_is_shown_with_the_reason(image: Image.Image) -> None:
    pooled = replace(  # no weights: nothing for the randomization check to randomize
        _tiny_model(), module=nn.Sequential(nn.AvgPool2d(4), nn.Flatten()).eval(), class_names=("a", "b", "c", "d")
    )
    assert default_layers(list_layers(pooled)) == ["0"]  # no convolution: the layers with maps
    page = _Page(build_report(pooled, image, methods=["saliency"]).html)
    assert "Saliency (vanilla gradient): the checks cannot run — " in page.plain
    assert "no convolutional or linear layers to randomize" in page.plain
    assert any(attrs["alt"] == "Saliency (vanilla gradient) over the image" for attrs in page.all("img"))
    assert "0 · AvgPool2d" in page.plain


def test_progress_runs_from_zero_to_one(model: LoadedModel, image: Image.Image) -> None:
    seen: list[tuple[float, str]] = []
    build_report(model, image, methods=["saliency"], trust=False, progress=lambda f, what: seen.append((f, what)))
    fractions = [fraction for fraction, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)


def test_a_constant_map_is_written_on_and_not_scored(monkeypatch: pytest.MonkeyPatch, model: LoadedModel) -> None:
    """Score-CAM of the circle at conv_2_2, before its ReLU, is zero everywhere (issue 14)."""
    real = report_build.trust_report

    @functools.wraps(real)  # the report reads trust_report's settings from its signature
    def at_conv_2_2(model, x, method, **kwargs):
        return real(model, x, method, **({"layer": "conv_2_2"} if method == "scorecam" else {}), **kwargs)

    monkeypatch.setattr(report_build, "trust_report", at_conv_2_2)
    monkeypatch.setattr(
        report_build,
        "explain",
        lambda model, x, method, **kwargs: pytest.fail("every map comes from its trust report here"),
    )
    circle = load_sample("shape-circle")
    html = build_report(model, circle, layers=[], methods=["scorecam", "gradcam"], trust_settings=_FAST).html
    shown = _Page(html)
    note = "No region raises circle at conv_2_2 (the map is zero everywhere); try Grad-CAM or LayerCAM."
    assert f"no colour scale: {note}" in shown.plain
    assert f"Score-CAM: Not scored: {note}" in shown.plain
    rows = [attrs for attrs in shown.all("tr") if attrs.get("data-constant")]
    assert [attrs["data-method"] for attrs in rows] == ["scorecam"]
    assert "constant map: not scored" in shown.plain and "✓ changes" not in shown.plain.split("Grad-CAM")[0]


_FAST = {"steps": 4, "max_steps": 2, "sensitivity_samples": 1, "infidelity_samples": 4}
