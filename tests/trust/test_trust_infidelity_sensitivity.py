"""trust.infidelity_sensitivity: infidelity and max-sensitivity equal captum.metrics called directly."""

import math

import pytest
import torch
from captum.attr import Saliency
from captum.metrics import infidelity as captum_infidelity
from captum.metrics import sensitivity_max as captum_sensitivity_max

from cnn_explorer import explain
from cnn_explorer.trust import (
    infidelity,
    sensitivity,
)


@pytest.mark.parametrize("method", ["saliency", "gradcam"])
def test_infidelity_equals_captum_called_directly(tinyvgg, shape_input, method):
    explanation = explain(tinyvgg, shape_input, method, target=2)
    value = infidelity(tinyvgg, shape_input, explanation, noise=0.1, samples=6, batch=4, seed=11)
    # Pixel methods keep their raw [C, H, W] attribution; a CAM's heatmap is repeated over the channels.
    attribution = explanation.attribution if method == "saliency" else explanation.heatmap.expand(3, 64, 64)
    stdev = 0.1 * float(shape_input.max() - shape_input.min())
    generator = torch.Generator().manual_seed(11)

    def perturb(inputs):
        noise = torch.randn(inputs.shape, generator=generator) * stdev
        return noise, inputs - noise

    expected = captum_infidelity(
        tinyvgg.module,
        perturb,
        shape_input,
        attribution[None],
        target=2,
        n_perturb_samples=6,
        max_examples_per_batch=4,
        normalize=True,
    )
    assert value == pytest.approx(float(expected), rel=1e-5)
    assert value == infidelity(tinyvgg, shape_input, explanation, noise=0.1, samples=6, batch=4, seed=11)
    assert value != infidelity(tinyvgg, shape_input, explanation, noise=0.1, samples=6, batch=4, seed=12)


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients:UserWarning")
def test_sensitivity_equals_captum_called_directly(tinyvgg, shape_input):
    explanation = explain(tinyvgg, shape_input, "saliency", target=4)
    value = sensitivity(tinyvgg, shape_input, explanation, radius=0.05, samples=5, batch=2, seed=9)
    half_width = 0.05 * float(shape_input.max() - shape_input.min())
    generator = torch.Generator().manual_seed(9)

    def perturb(inputs, radius):
        return inputs + torch.empty(inputs.shape).uniform_(-radius, radius, generator=generator)

    def saliency_heatmap(inputs, target):  # captum's Saliency, reduced as the page shows it
        attribution = Saliency(tinyvgg.module).attribute(inputs, target=target, abs=True)
        if isinstance(inputs, tuple):  # captum's first call passes and expects tuples
            return (attribution[0].amax(dim=1),)
        return attribution.amax(dim=1)

    expected = captum_sensitivity_max(
        saliency_heatmap,
        shape_input,
        perturb_func=perturb,
        perturb_radius=half_width,
        n_perturb_samples=5,
        max_examples_per_batch=2,
        target=4,
    )
    assert value == pytest.approx(float(expected), rel=1e-4)
    assert value == sensitivity(tinyvgg, shape_input, explanation, radius=0.05, samples=5, batch=2, seed=9)
    assert value != sensitivity(tinyvgg, shape_input, explanation, radius=0.05, samples=5, batch=2, seed=10)


def test_sensitivity_of_a_cam_is_finite_and_needs_no_grad_outside(tinyvgg, shape_input, gradcam):
    with torch.no_grad():  # captum calls the explanation under no_grad; CAMs need autograd inside
        value = sensitivity(tinyvgg, shape_input, gradcam, samples=2)
    assert math.isfinite(value) and value >= 0


@pytest.mark.parametrize(
    ("function", "kwargs", "message"),
    [
        (infidelity, {"noise": 0.0}, "noise must be"),
        (infidelity, {"noise": math.nan}, "noise must be"),
        (infidelity, {"samples": 0}, "samples must be"),
        (sensitivity, {"radius": -1.0}, "radius must be"),
        (sensitivity, {"batch": True}, "batch must be"),
    ],
)
def test_metric_arguments_are_checked(tinyvgg, shape_input, gradcam, function, kwargs, message):
    with pytest.raises(ValueError, match=message):
        function(tinyvgg, shape_input, gradcam, **kwargs)
