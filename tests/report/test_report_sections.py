"""report.sections: every number shown is the library's, recomputed by calling it directly — the prediction, the
input, the feature maps' scales, the trust scores — and the out-of-distribution note sits next to the prediction."""

import pytest
import torch
from PIL import Image
from report_pages import MODEL
from report_pages import Page as _Page
from report_pages import direct_top as _direct_top

from cnn_explorer import capture_activations, list_layers, render
from cnn_explorer.images import load_sample
from cnn_explorer.report import build_report, default_layers
from cnn_explorer.trust import METRICS, trust_report
from cnn_explorer.zoo import LoadedModel


def test_the_prediction_is_the_library_s(report, page: _Page, model: LoadedModel, image: Image.Image) -> None:
    _, name, probability = _direct_top(model, image)
    assert f"says the image “circle.png” is {name} with probability {probability:.1%}." in page.plain
    first_row = next(attrs for attrs in page.all("td") if attrs.get("data-value"))
    assert float(first_row["data-value"]) == pytest.approx(probability, rel=1e-6)
    assert report.title == f"CNN Explorer report: {MODEL} on circle.png"
    assert report.file_stem == f"cnn-explorer-report-{MODEL}-circle"


def test_the_input_and_the_model_card_are_shown(page: _Page, model: LoadedModel, image: Image.Image) -> None:
    x = model.preprocess(image)
    assert f"input tensor {list(x.shape)}" in page.plain
    for step in model.preprocess.steps():
        assert step in page.plain
    for coloured, name in zip(render.channel_maps(x), ("red", "green", "blue"), strict=True):
        assert f"{name}: {coloured.vmin:+.2f} … {coloured.vmax:+.2f}" in page.plain
    assert "Model card" in page.plain
    assert "Held-out accuracy:" in page.plain  # the card's Markdown, as HTML: the ** are gone
    assert "**" not in page.plain


def test_feature_maps_are_the_captured_ones_on_their_layer_scale(
    page: _Page, model: LoadedModel, image: Image.Image
) -> None:
    layers = default_layers(list_layers(model))
    outputs = capture_activations(model, model.preprocess(image), layers)
    shown = [attrs["data-range"] for attrs in page.all("span") if attrs.get("data-range")]
    assert len(shown) == len(layers)
    for name, text in zip(layers, shown, strict=True):
        low, high = map(float, text.split())
        expected = render.feature_grid(outputs[name][0], "layer").ranges[0]
        assert (low, high) == pytest.approx(expected, rel=1e-9)
        assert f"All {outputs[name].shape[1]} feature maps" in page.plain
        assert f"{name} · Conv2d" in page.plain


def test_trust_scores_are_trust_report_s(page: _Page, model: LoadedModel, image: Image.Image) -> None:
    x = model.preprocess(image)
    target = _direct_top(model, image)[0]
    rows: dict[str, dict[str, float]] = {}
    method = None
    for tag, attrs in page.tags:
        if tag == "tr" and attrs.get("data-method"):
            method = attrs["data-method"]
            rows[method] = {}
        elif tag == "td" and attrs.get("data-metric"):
            rows[method][attrs["data-metric"]] = float(attrs["data-value"])
    assert list(rows) == ["gradcam", "saliency"]
    for method, shown in rows.items():
        expected = trust_report(model, x, method, target=target).values
        assert set(shown) == set(METRICS)
        for key, value in expected.items():
            assert shown[key] == pytest.approx(value, rel=1e-6, abs=1e-9), (method, key)
        assert f"{expected['deletion']:.3f}" in page.plain
        assert f"{expected['infidelity']:.3g}" in page.plain


def test_the_rest_of_the_classes_is_never_a_signed_zero(model: LoadedModel, image: Image.Image, page: _Page) -> None:
    # The sample's top five hold all but a sliver of the probability: 1 - Σ came out below zero, "-0.0%".
    with torch.no_grad():
        probabilities = torch.softmax(model.module(model.preprocess(image))[0], dim=0).double()
    rest = float(probabilities.sort(descending=True).values[5:].sum())
    assert f"The other {len(model.class_names) - 5} classes share {render.percent(rest)}." in page.plain
    assert "-0.0%" not in page.plain and "share -" not in page.plain


def test_a_photo_on_the_shapes_model_is_reported_as_unlike_its_training_data(page: _Page, model: LoadedModel) -> None:
    assert "looks unlike" not in page.plain  # the held-out circle is like the drawn shapes
    cat = build_report(model, load_sample("cat"), layers=[], methods=["saliency"], trust=False)
    plain = _Page(cat.html).plain
    assert "tinyvgg-shapes was trained on 10 kinds of drawn shapes; this image looks unlike them" in plain
    assert plain.index("looks unlike them") < plain.index("1 · ")  # next to the prediction, before the sections
