"""Explanation methods: exact values against autograd, captum and TorchCAM called directly, and the paper formulas;
one contract over every method × model; the module left as found; threads sharing one model."""

import dataclasses
import threading
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
import torchvision.models
from captum.attr import GuidedBackprop, IntegratedGradients, NoiseTunnel, Occlusion, Saliency
from module_state import assert_unchanged, snapshot
from torch import nn
from torchcam.methods import GradCAM, GradCAMpp, LayerCAM, ScoreCAM

from cnn_explorer import METHODS, explain, load_model
from cnn_explorer.attribution import (
    Cancelled,
    _inference_copy,
    cam_layers,
    default_cam_layer,
    explain_batch,
    gradcam_steps,
    resolve_target,
)
from cnn_explorer.images import load_sample, samples_for
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.zoo import LoadedModel

MODELS = ("tinyvgg-shapes", "lenet5-digits", "resnet18")


@pytest.fixture(scope="module")
def tinyvgg() -> LoadedModel:
    return load_model("tinyvgg-shapes")


@pytest.fixture(scope="module")
def shape_input(tinyvgg) -> torch.Tensor:
    return tinyvgg.preprocess(load_sample(samples_for("tinyvgg-shapes", made_for_it=True)[0]))


def _input_for(model: LoadedModel) -> torch.Tensor:
    sample = samples_for(model.name, made_for_it=True) or samples_for(model.name)
    return model.preprocess(load_sample(sample[0]))


class _Trap(nn.Module):
    """A VGG-like net with torchvision's traps: an in-place ReLU right after the CAM layer and a reused ReLU."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.features = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(3, 6, 3, padding=1),
                relu1=nn.ReLU(inplace=True),
                pool=nn.MaxPool2d(2),
                conv2=nn.Conv2d(6, 8, 3, padding=1),
                relu2=nn.ReLU(inplace=True),
            )
        )
        self.fc = nn.Linear(8 * 8 * 8, 16)
        self.shared_relu = nn.ReLU(inplace=True)
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        h = self.shared_relu(self.fc(torch.flatten(self.features(x), 1)))
        return self.out(self.shared_relu(h))  # reused, as torchvision's ResNet blocks reuse theirs


@pytest.fixture
def trap() -> LoadedModel:
    return LoadedModel(
        name="trap",
        module=_Trap().eval(),
        input_size=(3, 16, 16),
        class_names=("a", "b", "c", "d"),
        preprocess=Preprocess(resize=16, crop=16),
        summary="",
        card="",
    )


def _hand_gradcam(module: nn.Module, layer: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """ReLU(Σ_k mean(∂y/∂A_k) · A_k), with A captured as a clone (no in-place op can rewrite it)."""
    kept = {}
    handle = layer.register_forward_hook(lambda m, i, o: kept.setdefault("A", o))
    try:
        score = module(x.clone().requires_grad_(True))[0, target]
    finally:
        handle.remove()
    (gradient,) = torch.autograd.grad(score, kept["A"])
    weights = gradient[0].mean(dim=(1, 2))
    return torch.relu((weights[:, None, None] * kept["A"][0].detach()).sum(dim=0))


# ── exact values ────────────────────────────────────────────────────────────────────────────────────────────────


def test_gradcam_equals_the_formula_by_hand(tinyvgg, shape_input):
    result = explain(tinyvgg, shape_input, "gradcam")
    expected = _hand_gradcam(tinyvgg.module, tinyvgg.module.get_submodule(result.layer), shape_input, result.target)
    torch.testing.assert_close(result.attribution, expected, rtol=1e-5, atol=1e-6)
    upsampled = F.interpolate(expected[None, None], size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(result.heatmap, upsampled, rtol=1e-5, atol=1e-6)
    assert result.attribution.max() > 0  # a real map, not all zeros


def test_gradcam_sees_the_activation_before_an_inplace_relu(trap):
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    inplace_free = _Trap().eval()
    for m in inplace_free.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    for target in range(4):
        result = explain(trap, x, "gradcam", target=target, layer="features.conv2")
        expected = _hand_gradcam(inplace_free, inplace_free.features.conv2, x, target)
        torch.testing.assert_close(result.attribution, expected, rtol=1e-5, atol=1e-6)
    assert all(m.inplace for m in trap.module.modules() if isinstance(m, nn.ReLU))


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_gives_on_inplace_relus_the_map_of_an_inplace_free_copy(trap, method):
    """Methods that hook modules switch in-place ReLUs off; the others leave them on, which must not change a map."""
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    inplace_free = _Trap().eval()
    for m in inplace_free.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    reference = LoadedModel(**{**trap.__dict__, "module": inplace_free})
    layer = "features.conv2" if METHODS[method].uses_layer else None
    params = {"samples": 4} if method == "smoothgrad" else {}
    ours = explain(trap, x, method, target=1, layer=layer, **params)
    expected = explain(reference, x, method, target=1, layer=layer, **params)
    torch.testing.assert_close(ours.attribution, expected.attribution, rtol=1e-5, atol=1e-6)
    assert all(m.inplace for m in trap.module.modules() if isinstance(m, nn.ReLU))


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


def test_saliency_is_the_absolute_input_gradient(tinyvgg, shape_input):
    result = explain(tinyvgg, shape_input, "saliency", target=2)
    x = shape_input.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(tinyvgg.module(x)[0, 2], x)
    torch.testing.assert_close(result.attribution, gradient[0].abs())
    torch.testing.assert_close(result.heatmap, gradient[0].abs().amax(dim=0))


def test_integrated_gradients_are_complete(tinyvgg, shape_input):
    result = explain(tinyvgg, shape_input, "integrated_gradients", steps=200)
    with torch.no_grad():
        gap = (
            tinyvgg.module(shape_input)[0, result.target]
            - tinyvgg.module(torch.zeros_like(shape_input))[0, result.target]
        )
    assert float(result.attribution.sum()) == pytest.approx(float(gap), rel=0.02)
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
    # float32 rounding of a sum of ten channels that cancel: a millionth of the map's range, well under any bug's size
    torch.testing.assert_close(result.attribution.double(), expected, rtol=1e-4, atol=1e-5 * float(expected.max()))
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


# ── contract over every method × model ─────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def zoo_models(hub_cache) -> dict[str, LoadedModel]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(hub_cache))
        return {name: load_model(name) for name in MODELS}


# The contract (shapes, finite values, the module left as found, determinism) does not need the costly defaults.
CHEAP = {"integrated_gradients": {"steps": 8}, "smoothgrad": {"samples": 4}}
CHEAP_ON_RESNET = {
    "occlusion": {"window": 0.25, "stride": 1.0},  # 16 windows at 224×224 instead of 225
    "scorecam": {"layer": "layer1.0.conv1"},  # 64 masked passes instead of 512
}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_on_every_model(zoo_models, name, method):
    model = zoo_models[name]
    x = _input_for(model)
    before = snapshot(model.module)
    params = dict(CHEAP.get(method, {}), **(CHEAP_ON_RESNET.get(method, {}) if name == "resnet18" else {}))
    first = explain(model, x, method, **params)
    second = explain(model, x, method, **params)
    assert_unchanged(before, snapshot(model.module))
    assert first.heatmap.shape == x.shape[-2:]
    assert torch.isfinite(first.heatmap).all() and torch.isfinite(first.attribution).all()
    layer = params.get("layer", default_cam_layer(model))
    assert first.layer == (layer if METHODS[method].uses_layer else None)
    if METHODS[method].reduction == "upsample":  # a CAM, at the layer's resolution
        assert first.attribution.shape == cam_layers(model)[first.layer]
    else:
        assert first.attribution.shape == x.shape[1:]
    assert first.target == int(model.module(x).argmax())
    assert torch.equal(first.attribution, second.attribution)  # deterministic


@pytest.mark.parametrize("name", MODELS)
def test_the_inference_copy_computes_the_models_function(zoo_models, name):
    model = zoo_models[name]
    x = _input_for(model)
    before = snapshot(model.module)
    copied = _inference_copy(model.module)
    with torch.no_grad():
        expected, got = model.module(x), copied(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))
    assert_unchanged(before, snapshot(model.module))
    assert all(p.is_contiguous() for p in model.module.parameters())  # the shared weights keep their layout
    if name == "resnet18":  # every BatchNorm folded into its conv
        assert not any(isinstance(m, nn.BatchNorm2d) for m in copied.modules())
        assert any(isinstance(m, nn.BatchNorm2d) for m in model.module.modules())


class _Branching(nn.Module):
    """Control flow that depends on the data: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        if y.mean() > 0:
            y = y.relu()
        return self.head(y.mean(dim=(2, 3)))


def test_a_model_fx_cannot_trace_is_occluded_on_a_plain_copy():
    module = _Branching().eval()
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    copied = _inference_copy(module)
    assert any(isinstance(m, nn.BatchNorm2d) for m in copied.modules())  # not fused, still a copy
    assert copied is not module and all(p.is_contiguous() for p in module.parameters())
    with torch.no_grad():
        torch.testing.assert_close(copied(x), module(x))
    model = LoadedModel(
        name="branching",
        module=module,
        input_size=(3, 16, 16),
        class_names=("a", "b"),
        preprocess=Preprocess(resize=16, crop=16),
        summary="",
        card="",
    )
    result = explain(model, x, "occlusion", target=1, window=0.25, stride=0.5)
    direct = Occlusion(module).attribute(x, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2), target=1)
    torch.testing.assert_close(result.attribution, direct[0], rtol=1e-4, atol=1e-6)


def test_occlusion_on_resnet_equals_captum_on_the_model_itself(zoo_models):
    model = zoo_models["resnet18"]
    x = _input_for(model)
    result = explain(model, x, "occlusion", target=7, window=0.25, stride=1.0)  # 16 windows of 56×56
    direct = Occlusion(model.module).attribute(x, sliding_window_shapes=(3, 56, 56), strides=(3, 56, 56), target=7)
    torch.testing.assert_close(result.attribution, direct[0], rtol=1e-4, atol=1e-5 * float(direct.abs().max()))
    assert result.attribution.abs().max() > 0


def test_default_cam_layer_is_the_last_spatial_map_after_its_activation(zoo_models):
    # CAMs are defined on rectified maps: the last spatial conv's output taken after its activation (issue 14: at
    # TinyVGG's conv_2_2, before its ReLU, Score-CAM was zero everywhere on 2 of the 10 shape samples).
    assert default_cam_layer(zoo_models["tinyvgg-shapes"]) == "relu_2_2"
    assert default_cam_layer(zoo_models["lenet5-digits"]) == "tanh3"  # c5 is 1×1
    assert default_cam_layer(zoo_models["resnet18"]) == "layer4.1"  # the block ends in its ReLU
    assert "layer1.0.downsample.0" not in cam_layers(zoo_models["resnet18"])  # layer1 has no downsample
    assert "layer2.0.downsample.0" in cam_layers(zoo_models["resnet18"])
    assert "layer4.1.relu" not in cam_layers(zoo_models["resnet18"])  # one module called twice per forward


def test_cam_layers_lists_every_conv_and_every_activated_map_in_order(tinyvgg):
    assert cam_layers(tinyvgg) == {
        "conv_1_1": (62, 62),
        "relu_1_1": (62, 62),
        "conv_1_2": (60, 60),
        "relu_1_2": (60, 60),
        "conv_2_1": (28, 28),
        "relu_2_1": (28, 28),
        "conv_2_2": (26, 26),
        "relu_2_2": (26, 26),
    }


@pytest.mark.parametrize(
    ("arch", "expected"),
    [("alexnet", "features.11"), ("vgg16", "features.29"), ("mobilenet_v3_small", "features.12.2")],
)
def test_default_cam_layer_of_torchvision_architectures(zoo_models, arch, expected):
    model = dataclasses.replace(
        zoo_models["resnet18"], name=arch, module=torchvision.models.get_model(arch).eval(), lock=threading.RLock()
    )
    assert default_cam_layer(model) == expected  # VGG/AlexNet: the last ReLU; MobileNetV3: its last hard-swish block
    assert METHODS["scorecam"].uses_layer and expected in cam_layers(model)


def test_a_constant_map_is_marked_constant(tinyvgg, shape_input):
    found = explain(tinyvgg, shape_input, "gradcam")
    assert not found.is_constant
    assert dataclasses.replace(found, attribution=torch.zeros(26, 26)).is_constant
    assert dataclasses.replace(found, attribution=torch.full((26, 26), 3.5)).is_constant
    almost = torch.full((26, 26), 3.5)
    almost[0, 0] = 3.5 + 1e-3  # a real (if faint) difference
    assert not dataclasses.replace(found, attribution=almost).is_constant


def test_score_cam_and_grad_cam_pp_say_something_on_every_shape_sample_at_the_default_layer(tinyvgg):
    # issue 14: at conv_2_2 Score-CAM was zero everywhere for arrow and circle, Grad-CAM++ for cross.
    # The generator's own ten (the independent renderers' samples are measured on the card, not asked about here).
    samples = [key for key in samples_for("tinyvgg-shapes", made_for_it=True) if key.startswith("shape-")]
    assert len(samples) == 10
    blank = {
        (method, sample)
        for sample in samples
        for method in ("scorecam", "gradcam++")
        if explain(tinyvgg, tinyvgg.preprocess(load_sample(sample)), method).is_constant
    }
    assert blank == set()
    at_conv = {
        (method, sample)
        for sample in samples
        for method in ("scorecam", "gradcam++")
        if explain(tinyvgg, tinyvgg.preprocess(load_sample(sample)), method, layer="conv_2_2").is_constant
    }
    assert len(at_conv) == 3  # still selectable, and still blank there: the page says so on the map


@pytest.mark.parametrize("method", list(METHODS))
def test_a_batch_gives_the_maps_of_each_input_alone(tinyvgg, method):
    samples = samples_for("tinyvgg-shapes", made_for_it=True)[:3]
    x = torch.cat([tinyvgg.preprocess(load_sample(s)) for s in samples])
    params = {"samples": 4} if method == "smoothgrad" else {}
    batched = explain_batch(tinyvgg, x, method, **params)
    for i, together in enumerate(batched):
        alone = explain(tinyvgg, x[i : i + 1], method, **params)
        assert together.target == alone.target
        # A batch convolves with other kernels than one image (oneDNN picks by shape): float rounding only. Grad-CAM++
        # divides by sums of cubed gradients that come near zero, which magnifies it, so it gets a tolerance
        # relative to the map's range (here 4e-5 of it, where the other methods stay within 1e-6).
        scale = float(alone.attribution.abs().max()) * (1e-4 if method == "gradcam++" else 0.0)
        torch.testing.assert_close(together.attribution, alone.attribution, rtol=1e-4, atol=max(1e-5, scale))


@pytest.mark.parametrize("method", ["saliency", "gradcam", "occlusion"])
def test_the_target_changes_the_map(tinyvgg, shape_input, method):
    first = explain(tinyvgg, shape_input, method, target=0)
    other = explain(tinyvgg, shape_input, method, target="heart")
    assert (first.target, other.target) == (0, tinyvgg.class_names.index("heart"))
    assert not torch.allclose(first.attribution, other.attribution)


def test_threads_sharing_one_model_get_the_sequential_results(tinyvgg, shape_input):
    methods = ["gradcam", "saliency", "layercam", "guided_backprop", "gradcam++", "integrated_gradients"]
    expected = {
        m: explain(tinyvgg, shape_input, m, steps=8)
        if m == "integrated_gradients"
        else explain(tinyvgg, shape_input, m)
        for m in methods
    }
    results, errors = [], []

    def work(method: str) -> None:
        try:
            for _ in range(5):
                params = {"steps": 8} if method == "integrated_gradients" else {}
                results.append((method, explain(tinyvgg, shape_input, method, **params)))
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(m,)) for m in methods]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 5 * len(methods)
    for method, result in results:
        assert torch.equal(result.attribution, expected[method].attribution), method


# ── progress, cancelling, errors ────────────────────────────────────────────────────────────────────────────────


def test_progress_rises_to_one(tinyvgg, shape_input):
    seen: list[float] = []
    explain(tinyvgg, shape_input, "integrated_gradients", steps=40, batch=10, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 5


def test_cancelling_stops_and_leaves_the_model_as_found(tinyvgg, shape_input):
    before = snapshot(tinyvgg.module)
    passes = []

    def stop_after_two() -> bool:
        passes.append(1)
        return len(passes) > 2

    with pytest.raises(Cancelled):
        explain(tinyvgg, shape_input, "occlusion", batch=4, should_stop=stop_after_two)
    assert len(passes) == 3
    assert_unchanged(before, snapshot(tinyvgg.module))
    assert not tinyvgg.lock._is_owned()


def test_clear_errors(tinyvgg, shape_input):
    with pytest.raises(ValueError, match=r"Unknown method 'lrp'. Methods: saliency"):
        explain(tinyvgg, shape_input, "lrp")
    with pytest.raises(ValueError, match="Steps along the path must be between 8 and 300; got 3"):
        explain(tinyvgg, shape_input, "integrated_gradients", steps=3)
    with pytest.raises(ValueError, match="Baseline must be one of zero, blurred"):
        explain(tinyvgg, shape_input, "integrated_gradients", baseline="white")
    with pytest.raises(ValueError, match=r"Saliency .* has no parameter steps; its parameters: none"):
        explain(tinyvgg, shape_input, "saliency", steps=3)
    with pytest.raises(
        ValueError, match=r"'fc' is not a layer of tinyvgg-shapes a CAM can use. Its convolutions and activated maps: "
    ):
        explain(tinyvgg, shape_input, "gradcam", layer="fc")
    with pytest.raises(ValueError, match="has no class 'dog'"):
        explain(tinyvgg, shape_input, "saliency", target="dog")
    with pytest.raises(ValueError, match="use 0–9"):
        resolve_target(tinyvgg, 10)
    with pytest.raises(ValueError, match=r"takes one input \[1, C, H, W\]"):
        explain(tinyvgg, shape_input.repeat(2, 1, 1, 1), "saliency")
    with pytest.raises(ValueError, match=r"takes inputs \[N, 3, 64, 64\]"):
        explain(tinyvgg, torch.zeros(1, 1, 64, 64), "saliency")


def test_every_method_documents_itself():
    for key, spec in METHODS.items():
        assert spec.key == key and spec.url.startswith("https://") and spec.summary and spec.paper
        for param in spec.params:
            assert spec.checked({param.name: param.default})[param.name] == param.default


def test_cams_work_under_a_callers_no_grad(tinyvgg, shape_input):
    """captum's sensitivity_max calls the explanation under torch.no_grad(); TorchCAM must still backpropagate."""
    expected = explain(tinyvgg, shape_input, "gradcam")
    with torch.no_grad():
        inside = explain(tinyvgg, shape_input, "gradcam")
    torch.testing.assert_close(inside.attribution, expected.attribution)
