"""attribution.gradcam_walkthrough: each step of Grad-CAM by hand equals the next and what the method returned."""

import pytest
import torch

from cnn_explorer import explain
from cnn_explorer.attribution import (
    gradcam_steps,
)


def test_gradcam_steps_match_the_method_and_each_other(tinyvgg, shape_input):
    steps = gradcam_steps(tinyvgg, shape_input, target="star", layer="conv_1_2")
    result = explain(tinyvgg, shape_input, "gradcam", target="star", layer="conv_1_2")
    assert steps.target == tinyvgg.class_names.index("star") == result.target
    torch.testing.assert_close(steps.weights, steps.gradients.mean(dim=(1, 2)))
    torch.testing.assert_close(steps.weighted_sum, (steps.weights[:, None, None] * steps.activations).sum(0))
    torch.testing.assert_close(steps.cam, steps.weighted_sum.clamp_min(0))
    torch.testing.assert_close(steps.cam, result.attribution, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(steps.upsampled, result.heatmap, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        assert steps.score == pytest.approx(float(tinyvgg.module(shape_input)[0, steps.target]), rel=1e-5)
