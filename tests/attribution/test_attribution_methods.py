"""attribution.methods: exact values against autograd, captum and TorchCAM called directly, and the paper formulas."""

import copy

import pytest
import torch
import torch.nn.functional as F
from attribution_models import hand_gradcam as _hand_gradcam
from captum.attr import GuidedBackprop, IntegratedGradients, NoiseTunnel, Occlusion, Saliency
from torchcam.methods import GradCAM, GradCAMpp, LayerCAM, ScoreCAM

from cnn_explorer import explain
from cnn_explorer.attribution import (
    gradcam_steps,
)


def test_gradcam_equals_the_formula_by_hand(tinyvgg, shape_input):
    result = explain(tinyvgg, shape_input, "gradcam")
    expected = _hand_gradcam(tinyvgg.module, tinyvgg.module.get_submodule(result.layer), shape_input, result.target)
    torch.testing.assert_close(result.attribution, expected, rtol=1e-5, atol=1e-6)
    upsampled = F.interpolate(expected[None, None], size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(result.heatmap, upsampled, rtol=1e-5, atol=1e-6)
    assert result.attribution.max() > 0  # a real map, not all zeros


def test_saliency_is_the_absolute_input_gradient(tinyvgg, shape_input):
    result = explain(tinyvgg, shape_input, "saliency", target=2)
    x = shape_input.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(tinyvgg.module(x)[0, 2], x)
    torch.testing.assert_close(result.attribution, gradient[0].abs())
    torch.testing.assert_close(result.heatmap, gradient[0].abs().amax(dim=0))


def test_integrated_gradients_are_complete(tinyvgg, shape_input):
    # Completeness: the attributions sum to f(x) - f(baseline), up to the integral's discretization. Through many
    # ReLU kinks that converges slowly (captum in float64 on the shipped model: 14 % off at 50 steps, 6 % at 200,
    # 4 % at 300, 0.03 % at 3,000), so the check is the page's largest setting against captum itself and the gap.
    result = explain(tinyvgg, shape_input, "integrated_gradients", steps=300)
    module = copy.deepcopy(tinyvgg.module).double().eval()
    reference = IntegratedGradients(module).attribute(shape_input.double(), target=result.target, n_steps=300)
    with torch.no_grad():
        gap = (
            tinyvgg.module(shape_input)[0, result.target]
            - tinyvgg.module(torch.zeros_like(shape_input))[0, result.target]
        )
    assert float(result.attribution.sum()) == pytest.approx(float(reference.sum()), rel=1e-4)
    assert float(result.attribution.sum()) == pytest.approx(float(gap), rel=0.05)
    assert float(result.heatmap.sum()) == pytest.approx(float(result.attribution.sum()), rel=1e-4)


def test_integrated_gradients_equal_captum_called_directly(tinyvgg, shape_input):
    result = explain(tinyvgg, shape_input, "integrated_gradients", target=1, steps=32)
    direct = IntegratedGradients(tinyvgg.module).attribute(shape_input, target=1, n_steps=32, baselines=0.0)
    torch.testing.assert_close(result.attribution, direct[0], rtol=1e-4, atol=1e-6)


def test_smoothgrad_scales_noise_to_the_input_range(tinyvgg, shape_input):
    result = explain(tinyvgg, shape_input, "smoothgrad", target=4, samples=8, noise=0.2, seed=7)
    torch.manual_seed(7)
    span = float(shape_input.max() - shape_input.min())
    direct = NoiseTunnel(Saliency(tinyvgg.module)).attribute(
        shape_input, nt_type="smoothgrad", nt_samples=8, stdevs=0.2 * span, target=4, abs=False
    )
    torch.testing.assert_close(result.attribution, direct[0], rtol=1e-4, atol=1e-6)
    again = explain(tinyvgg, shape_input, "smoothgrad", target=4, samples=8, noise=0.2, seed=8)
    assert not torch.allclose(again.attribution, result.attribution)  # the seed matters


def test_guided_backprop_and_guided_gradcam_follow_the_paper(tinyvgg, shape_input):
    guided = GuidedBackprop(tinyvgg.module).attribute(shape_input, target=0)[0]
    torch.testing.assert_close(explain(tinyvgg, shape_input, "guided_backprop", target=0).attribution, guided)
    cam = explain(tinyvgg, shape_input, "gradcam", target=0).heatmap
    combined = explain(tinyvgg, shape_input, "guided_gradcam", target=0)
    torch.testing.assert_close(combined.attribution, guided * cam, rtol=1e-5, atol=1e-7)


def test_batched_occlusion_equals_captum_one_perturbation_per_pass(tinyvgg, shape_input):
    result = explain(tinyvgg, shape_input, "occlusion", target=3, window=0.125, stride=0.5, batch=64)
    direct = Occlusion(tinyvgg.module).attribute(
        shape_input, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), baselines=0.0, target=3
    )
    torch.testing.assert_close(result.attribution, direct[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("method", "cam_class"), [("gradcam", GradCAM), ("layercam", LayerCAM), ("scorecam", ScoreCAM)]
)
def test_cam_methods_equal_torchcam_called_directly(tinyvgg, shape_input, method, cam_class):
    result = explain(tinyvgg, shape_input, method, target=5, layer="conv_2_1")
    with cam_class(tinyvgg.module, target_layer="conv_2_1") as extractor:
        scores = tinyvgg.module(shape_input.clone().requires_grad_(True))
        (direct,) = extractor(class_idx=5, scores=scores, normalized=False)
    torch.testing.assert_close(result.attribution, direct[0].detach(), rtol=1e-4, atol=1e-6)


def test_gradcam_plus_plus_weights_follow_the_paper(tinyvgg, shape_input):
    """Chattopadhyay et al., eq. 19 with the exponential-score closed form: α = g² / (2g² + Σ A·g³)."""
    steps = gradcam_steps(tinyvgg, shape_input, target=1, layer="conv_2_2")
    a, g = steps.activations.double(), steps.gradients.double()  # the formula in float64: a reference, not a copy
    denominator = 2 * g**2 + (a * g**3).sum(dim=(1, 2), keepdim=True)
    alpha = g**2 / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    weights = (alpha * torch.relu(g)).sum(dim=(1, 2))
    expected = torch.relu((weights[:, None, None] * a).sum(dim=0))
    result = explain(tinyvgg, shape_input, "gradcam++", target=1, layer="conv_2_2")
    # float32 rounding of a sum of sixteen channels that cancel: a ten-thousandth of the map's range (5e-5 measured),
    # well under any bug's size
    torch.testing.assert_close(result.attribution.double(), expected, rtol=1e-4, atol=1e-4 * float(expected.max()))
    # TorchCAM 0.5.0's own GradCAMpp divides a copy (alpha[mask].div_), so its α stays g²: its map is that of the
    # undivided weights, which weigh the channels differently from the paper's.
    with GradCAMpp(tinyvgg.module, target_layer="conv_2_2") as extractor:
        (torchcam_map,) = extractor(class_idx=1, scores=tinyvgg.module(shape_input.clone().requires_grad_(True)))
    undivided = (g**2 * torch.relu(g)).sum(dim=(1, 2))
    torchcam_formula = torch.relu((undivided[:, None, None] * a).sum(dim=0))
    torch.testing.assert_close(
        torchcam_map[0].detach().double(), torchcam_formula / torchcam_formula.max(), atol=1e-4, rtol=1e-4
    )
    assert not torch.allclose(undivided / undivided.norm(), weights / weights.norm(), atol=1e-3)
