"""attribution.running: in-place ReLUs handled, one contract over every method × model, the inference copy, batches
and targets, threads sharing one model, progress, cancelling and clear errors; the module left as found."""

import threading

import pytest
import torch
from attribution_models import MODELS
from attribution_models import Trap as _Trap
from attribution_models import hand_gradcam as _hand_gradcam
from attribution_models import input_for as _input_for
from captum.attr import Occlusion
from module_state import assert_unchanged, snapshot
from torch import nn

from cnn_explorer import METHODS, explain
from cnn_explorer.attribution import (
    Cancelled,
    cam_layers,
    default_cam_layer,
    explain_batch,
    resolve_target,
)
from cnn_explorer.attribution.running import _inference_copy
from cnn_explorer.images import load_sample, samples_for
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.zoo import LoadedModel


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
        # relative to the map's range (here 8e-4 of it, where the other methods stay within 1e-6).
        scale = float(alone.attribution.abs().max()) * (2e-3 if method == "gradcam++" else 0.0)
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


def test_cams_work_under_a_callers_no_grad(tinyvgg, shape_input):
    """captum's sensitivity_max calls the explanation under torch.no_grad(); TorchCAM must still backpropagate."""
    expected = explain(tinyvgg, shape_input, "gradcam")
    with torch.no_grad():
        inside = explain(tinyvgg, shape_input, "gradcam")
    torch.testing.assert_close(inside.attribution, expected.attribution)
