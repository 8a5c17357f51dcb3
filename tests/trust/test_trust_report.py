"""trust.report: the report gathers every check with the method's target, layer and parameters, can be cancelled,
leaves a torchvision network as found, and marks a constant map instead of scoring it."""

import dataclasses
import math

import pytest
import torch
import torchvision.models
from module_state import assert_unchanged, snapshot
from trust_models import loaded as _loaded

from cnn_explorer.attribution import Cancelled
from cnn_explorer.images import load_sample
from cnn_explorer.trust import (
    METRICS,
    deletion_insertion,
    infidelity,
    randomization_order,
    sensitivity,
    trust_report,
)
from cnn_explorer.trust import report as report_module


def test_trust_report_gathers_every_check(tinyvgg, shape_input, gradcam):
    before = snapshot(tinyvgg.module)
    seen: list[float] = []
    report = trust_report(
        tinyvgg, shape_input, "gradcam", steps=4, max_steps=3, sensitivity_samples=2, progress=seen.append
    )
    assert_unchanged(before, snapshot(tinyvgg.module))
    assert torch.equal(report.explanation.heatmap, gradcam.heatmap)
    assert report.faithfulness.target == report.randomization.target == gradcam.target
    expected_curves = deletion_insertion(tinyvgg, shape_input, gradcam.heatmap, steps=4)
    torch.testing.assert_close(report.faithfulness.insertion.probabilities, expected_curves.insertion.probabilities)
    assert len(report.randomization.steps) == 3
    assert report.infidelity == infidelity(tinyvgg, shape_input, gradcam)
    assert report.sensitivity == sensitivity(tinyvgg, shape_input, gradcam, samples=2, batch=2)
    assert report.values.keys() == METRICS.keys()
    assert all(math.isfinite(v) for v in report.values.values())
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert all(m.better in ("lower", "higher") and m.reading.endswith(".") and m.url for m in METRICS.values())


def test_trust_report_passes_target_layer_and_params(tinyvgg, shape_input):
    report = trust_report(
        tinyvgg,
        shape_input,
        "scorecam",
        target="star",
        layer="conv_2_1",  # not the default layer (at conv_1_x this model's Score-CAM for star is zero everywhere)
        params={"batch": 5},
        steps=2,
        max_steps=1,
        sensitivity_samples=1,
    )
    assert report.explanation.target == tinyvgg.class_names.index("star") == report.faithfulness.target
    assert report.randomization.layer == "conv_2_1" and report.explanation.params == {"batch": 5}


def test_trust_report_can_be_cancelled_and_checks_its_arguments(tinyvgg, shape_input):
    calls = iter(range(1000))
    with pytest.raises(Cancelled):
        trust_report(tinyvgg, shape_input, "saliency", steps=4, should_stop=lambda: next(calls) > 8)
    with pytest.raises(ValueError, match="Unknown method"):
        trust_report(tinyvgg, shape_input, "lrp")
    with pytest.raises(ValueError, match="has no parameter"):
        trust_report(tinyvgg, shape_input, "saliency", params={"steps": 3})


def test_resnet18_with_inplace_relus_is_left_as_found():
    """A real torchvision network (random weights, nothing downloaded): reused in-place ReLUs, downsample paths.
    At 64×64 (its adaptive pooling takes any size) to keep the test fast; the last conv still has a 2×2 map."""
    torch.manual_seed(0)
    model = _loaded(torchvision.models.resnet18(weights=None), (3, 64, 64), 1000, name="resnet18")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    order = randomization_order(model)
    assert order[:4] == ["fc", "layer4.1.conv2", "layer4.1.conv1", "layer4.0.downsample.0"] and order[-1] == "conv1"
    assert len(order) == 21
    before = snapshot(model.module)
    report = trust_report(model, x, "gradcam", steps=2, max_steps=2, infidelity_samples=2, sensitivity_samples=1)
    assert_unchanged(before, snapshot(model.module))
    assert [len(step.layers) for step in report.randomization.steps] == [11, 10]
    assert report.randomization.decisive == 0  # 11 of 21 is already half
    assert all(math.isfinite(v) for v in report.values.values())


def test_a_constant_map_is_marked_and_not_scored(tinyvgg, shape_input, monkeypatch):
    real_explain = report_module.explain

    def blank(model, x, method, **kwargs):
        found = real_explain(model, x, method, **kwargs)
        return dataclasses.replace(found, attribution=torch.zeros_like(found.attribution))

    monkeypatch.setattr(report_module, "explain", blank)
    monkeypatch.setattr(report_module, "deletion_insertion", lambda *a, **k: pytest.fail("a constant map was scored"))
    seen: list[float] = []
    report = trust_report(tinyvgg, shape_input, "gradcam++", progress=seen.append)
    assert report.constant and report.faithfulness is None and report.randomization is None
    assert report.values.keys() == METRICS.keys() and all(math.isnan(v) for v in report.values.values())
    assert seen[-1] == 1.0
    assert report.warnings("relu_2_2") == (
        f"Not scored: No region raises {report.explanation.target_name} at relu_2_2 (the map is zero everywhere); "
        "try Grad-CAM or LayerCAM.",
    )


def test_score_cam_on_the_circle_sample_at_conv_2_2_is_constant_and_not_scored(tinyvgg):
    """The issue's case, not a hand-made one: at conv_2_2, before its ReLU, Score-CAM of the circle is zero."""
    x = tinyvgg.preprocess(load_sample("shape-circle"))
    report = trust_report(tinyvgg, x, "scorecam", layer="conv_2_2")
    assert report.constant
    assert report.warnings("relu_2_2") == (
        "Not scored: No region raises circle at conv_2_2 (the map is zero everywhere); try relu_2_2 or Grad-CAM or "
        "LayerCAM.",
    )
