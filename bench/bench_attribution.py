"""Time every explanation method against captum or TorchCAM called directly on the same input.

Usage: ``python bench/bench_attribution.py [--rounds N] [--threads N] [--clock cpu] [--full] [--models NAME …]
[--methods KEY …]``. For every method of ``METHODS`` on ``tinyvgg-shapes`` (64×64) and ``resnet18`` (seeded random
weights placed in a temporary hub cache, 224×224), on the model's default sample image, it prints the median
seconds of

- ``ours``: :func:`cnn_explorer.attribution.explain`, given the predicted class as ``target`` (as the page does),
- ``direct``: the library call it wraps, written as a user of captum or TorchCAM would write it, on the module as
  loaded (in-place ReLUs left on), with the same target, layer, steps, samples, noise, window and batch,

then our overhead (goal: ≤ 10 %), whether the two maps are equal (``same``; Grad-CAM++ is not, by design: TorchCAM's
pixel weights are corrected to the paper's) and, for the cheap methods, ``pred``: ``explain`` with ``target=None``,
which costs one more forward pass to find the predicted class. Last, occlusion with our default batch of
perturbations per forward pass against captum's default of one per pass (goal: ≥ 1.5× faster). Under
``python -m bench`` it records, per model, the median and the largest overhead, and the speed-up (``summary.py``).

The calls being compared alternate, so background load slows them alike; on a busy machine ``--threads 1`` keeps
torch's threads from waiting on each other and ``--clock cpu`` counts this process's CPU seconds only. ResNet-18 runs
fewer IG steps and SmoothGrad samples, a larger occlusion window and Score-CAM at a 64-channel layer (one forward
pass per channel; the last conv has 512), to keep the whole run near two minutes on two cores; ``--full`` takes every
default instead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run as a script (`python bench/bench_attribution.py`), Python puts bench/ on the path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop, IntegratedGradients, NoiseTunnel, Occlusion, Saliency
from torch import Tensor, nn
from torchcam.methods import GradCAM, GradCAMpp, LayerCAM, ScoreCAM

from bench.summary import record
from cnn_explorer.attribution import METHODS, Explanation, default_cam_layer, explain
from cnn_explorer.images import default_sample, load_sample
from cnn_explorer.zoo import LoadedModel, load_model

OVERHEAD_GOAL = 0.10
SPEED_UP_GOAL = 1.5
MIN_ROUNDS = 5  # a median of three let one slow outlier among two calls of a second each show as +48 %
# CPU time of this process leaves out the time other processes take the cores away: steadier on a busy machine, and
# with one torch thread close to the wall time on an idle one.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}

# Per model, the parameters (and CAM layers) that differ from the methods' defaults, to keep the run short.
# The setting of the issue's measured facts (ResNet-18 on 2 cores: 21.9 s with one perturbation per pass, 14.2 s
# with 32): 15×15 windows with a stride of 8 on 224×224, 729 windows.
ISSUE_OCCLUSION = {"window": 15 / 224, "stride": 8 / 15}

MODERATE: dict[str, dict[str, dict[str, Any]]] = {
    "tinyvgg-shapes": {},
    "resnet18": {
        "integrated_gradients": {"steps": 16, "batch": 16},
        "smoothgrad": {"samples": 8, "batch": 8},
        "occlusion": {"window": 0.25},
        "scorecam": {"layer": "layer1.1.conv2"},
    },
}


@dataclass(frozen=True)
class Row:
    """One method on one model: median seconds of ``explain`` and of the direct library call."""

    model: str
    method: str
    settings: str
    ours_s: float
    direct_s: float
    same: bool
    predicted_s: float | None = None

    @property
    def overhead(self) -> float:
        return self.ours_s / self.direct_s - 1

    def line(self) -> str:
        predicted = f"{self.predicted_s:8.4f}" if self.predicted_s is not None else " " * 8
        verdict = "ok" if self.overhead <= OVERHEAD_GOAL else f"above {OVERHEAD_GOAL:.0%}"
        return (
            f"{self.model:<15} {self.method:<21} {self.ours_s:8.4f} {self.direct_s:8.4f} {self.overhead:+8.1%} "
            f"{verdict:<9} {'yes' if self.same else 'no':<4} {predicted}  {self.settings}"
        )


@dataclass(frozen=True)
class SpeedUp:
    """Occlusion on one model: ``explain`` (our batch of perturbations per pass) against captum's one per pass."""

    model: str
    settings: str
    batched_s: float
    one_per_pass_s: float

    @property
    def factor(self) -> float:
        return self.one_per_pass_s / self.batched_s

    def line(self) -> str:
        verdict = "ok" if self.factor >= SPEED_UP_GOAL else f"below {SPEED_UP_GOAL:g}×"
        return (
            f"{self.model:<15} {self.batched_s:8.3f} {self.one_per_pass_s:8.3f} {self.factor:7.2f}× {verdict:<9} "
            f"{self.settings}"
        )


# ── the direct calls: what a user of captum or TorchCAM writes ─────────────────────────────────────────────────


def direct_saliency(module: nn.Module, x: Tensor, target: int, layer: str | None, values: dict) -> Tensor:
    return Saliency(module).attribute(x, target=target, abs=True)


def direct_integrated_gradients(module: nn.Module, x: Tensor, target: int, layer: str | None, values: dict) -> Tensor:
    return IntegratedGradients(module).attribute(
        x, baselines=torch.zeros_like(x), target=target, n_steps=values["steps"], internal_batch_size=values["batch"]
    )


def direct_smoothgrad(module: nn.Module, x: Tensor, target: int, layer: str | None, values: dict) -> Tensor:
    torch.manual_seed(0)  # explain's default seed
    return NoiseTunnel(Saliency(module)).attribute(
        x,
        nt_type="smoothgrad",
        nt_samples=values["samples"],
        nt_samples_batch_size=values["batch"],
        stdevs=values["noise"] * float(x.max() - x.min()),
        target=target,
        abs=False,
    )


def direct_guided_backprop(module: nn.Module, x: Tensor, target: int, layer: str | None, values: dict) -> Tensor:
    return GuidedBackprop(module).attribute(x, target=target)


def direct_occlusion(
    module: nn.Module, x: Tensor, target: int, layer: str | None, values: dict, per_pass: int | None = None
) -> Tensor:
    """Captum's occlusion with the window and stride in pixels, rounded from explain's fractions as it rounds them."""
    window = max(1, round(x.shape[-1] * values["window"]))
    stride = max(1, round(window * values["stride"]))
    channels = x.shape[1]
    return Occlusion(module).attribute(
        x,
        sliding_window_shapes=(channels, window, window),
        strides=(channels, stride, stride),
        baselines=0.0,
        target=target,
        perturbations_per_eval=per_pass or values["batch"],
    )


def _torchcam(extractor: type, module: nn.Module, x: Tensor, target: int, layer: str, **options: Any) -> Tensor:
    with extractor(module, target_layer=layer, **options) as cam_extractor:
        if extractor is ScoreCAM:
            with torch.no_grad():
                scores = module(x)
        else:
            scores = module(x.clone().requires_grad_(True))  # the layer's output needs a graph to the score
        (cam,) = cam_extractor(class_idx=target, scores=scores, normalized=False)
    return cam


def direct_cam(extractor: type) -> Callable[..., Tensor]:
    def call(module: nn.Module, x: Tensor, target: int, layer: str | None, values: dict) -> Tensor:
        options = {"batch_size": values["batch"]} if extractor is ScoreCAM else {}
        return _torchcam(extractor, module, x, target, layer, **options)

    return call


def direct_guided_gradcam(module: nn.Module, x: Tensor, target: int, layer: str | None, values: dict) -> Tensor:
    cam = _torchcam(GradCAM, module, x, target, layer)
    upsampled = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)
    return GuidedBackprop(module).attribute(x, target=target) * upsampled


DIRECT: dict[str, Callable[..., Tensor]] = {
    "saliency": direct_saliency,
    "integrated_gradients": direct_integrated_gradients,
    "smoothgrad": direct_smoothgrad,
    "guided_backprop": direct_guided_backprop,
    "occlusion": direct_occlusion,
    "gradcam": direct_cam(GradCAM),
    "guided_gradcam": direct_guided_gradcam,
    "gradcam++": direct_cam(GradCAMpp),
    "scorecam": direct_cam(ScoreCAM),
    "layercam": direct_cam(LayerCAM),
}


# ── timing ──────────────────────────────────────────────────────────────────────────────────────────────────────


def alternating_medians(
    calls: list[Callable[[], Any]], rounds: int, budget_s: float, warm_up: bool, clock: Callable[[], float]
) -> tuple[list[float], list[Any]]:
    """Median seconds of each call, the calls timed in turn (the order rotated every round, so drift and background
    load fall on all alike), after one untimed warm-up each if asked; at least ``MIN_ROUNDS`` rounds, then up to
    ``rounds`` while the time spent stays within ``budget_s``. Also returns each call's last result."""
    if warm_up:
        for call in calls:
            call()
    times: list[list[float]] = [[] for _ in calls]
    results: list[Any] = [None] * len(calls)
    for i in range(rounds):
        first = i % len(calls)
        for which in (*range(first, len(calls)), *range(first)):
            start = clock()
            results[which] = calls[which]()
            times[which].append(clock() - start)
        if i + 1 >= min(MIN_ROUNDS, rounds) and sum(map(sum, times)) > budget_s:
            break
    return [statistics.median(t) for t in times], results


def _settings(values: dict, layer: str | None) -> str:
    shown = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    return ", ".join(part for part in (layer, shown) if part)


def _same(explanation: Explanation, direct: Tensor) -> bool:
    reference = direct.detach()[0]
    attribution = explanation.attribution
    return attribution.shape == reference.shape and torch.allclose(attribution, reference, rtol=1e-4, atol=1e-5)


def bench_model(
    model: LoadedModel,
    methods: list[str],
    overrides: dict[str, dict[str, Any]],
    rounds: int,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[Row], SpeedUp | None]:
    """Time every method on ``model`` against its direct call; occlusion also against one perturbation per pass."""
    x = model.preprocess(load_sample(default_sample(model.name)))
    module = model.module
    with torch.no_grad():
        target = int(module(x).argmax())
    rows, speed_up = [], None
    for method in methods:
        spec = METHODS[method]
        params = dict(overrides.get(method, {}))
        layer = params.pop("layer", None)
        if spec.uses_layer:
            layer = layer or default_cam_layer(model)
        values = spec.checked(params)
        calls = [
            lambda: explain(model, x, method, target=target, layer=layer, **params),  # noqa: B023
            lambda: DIRECT[method](module, x, target, layer, values),  # noqa: B023
        ]
        if method == "occlusion":
            calls.append(lambda: direct_occlusion(module, x, target, None, values, per_pass=1))  # noqa: B023
        # No warm-up for the slow methods: the cheap ones before them have warmed the code paths up.
        seconds, results = alternating_medians(calls, rounds, 2.0, not spec.slow, clock)
        predicted_s = None
        if not spec.slow:
            predicted = [lambda: explain(model, x, method, layer=layer, **params)]  # noqa: B023
            predicted_s = alternating_medians(predicted, rounds, 1.0, False, clock)[0][0]
        settings = _settings(values, layer)
        row = Row(model.name, method, settings, seconds[0], seconds[1], _same(results[0], results[1]), predicted_s)
        rows.append(row)
        print(row.line(), flush=True)
        if method == "occlusion":
            speed_up = SpeedUp(model.name, settings, seconds[0], seconds[2])
    return rows, speed_up


def occlusion_speed_up(model: LoadedModel, params: dict[str, Any], clock: Callable[[], float]) -> SpeedUp:
    """Occlusion at ``params`` once each, batched (ours) and one perturbation per pass (captum's default), the
    order alternating: at the issue's setting a single run takes 10–20 s, long enough for one to be a measure."""
    x = model.preprocess(load_sample(default_sample(model.name)))
    with torch.no_grad():
        target = int(model.module(x).argmax())
    values = METHODS["occlusion"].checked(params)
    calls = [
        lambda: explain(model, x, "occlusion", target=target, **params),
        lambda: direct_occlusion(model.module, x, target, None, values, per_pass=1),
    ]
    (batched, one_per_pass), _ = alternating_medians(calls, 1, 0.0, False, clock)
    speed_up = SpeedUp(model.name, _settings(values, None) + " (the issue's 15×15, stride 8)", batched, one_per_pass)
    print(speed_up.line(), flush=True)
    return speed_up


def resnet18_offline(home: Path) -> LoadedModel:
    """ResNet-18 through the zoo, from seeded random weights placed where torch's hub cache keeps the real ones."""
    import torchvision  # after cnn_explorer: its import guard must run before torchvision loads

    weights = torchvision.models.get_model_weights("resnet18").DEFAULT
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), checkpoints / Path(weights.url).name)
    os.environ["TORCH_HOME"] = str(home)
    return load_model("resnet18")


def run(
    models: list[str], methods: list[str], rounds: int, full: bool, clock: str = "wall"
) -> tuple[list[Row], list[SpeedUp]]:
    """Print the tables; return their rows."""
    print(f"{torch.get_num_threads()} torch threads; medians of {clock} seconds; pred: explain with target=None")
    header = f"{'model':<15} {'method':<21} {'ours':>8} {'direct':>8} {'overhead':>8} {'':<9} {'same':<4} {'pred':>8}"
    print(f"{header}  settings")
    rows, speed_ups = [], []
    with tempfile.TemporaryDirectory() as home:
        for name in models:
            model = resnet18_offline(Path(home)) if name == "resnet18" else load_model(name)
            model_rows, speed_up = bench_model(model, methods, {} if full else MODERATE[name], rounds, CLOCKS[clock])
            rows += model_rows
            speed_ups += [speed_up] if speed_up else []
            if name == "resnet18" and "occlusion" in methods and not full:
                speed_ups.append(occlusion_speed_up(model, ISSUE_OCCLUSION, CLOCKS[clock]))
    if speed_ups:
        print(f"\n{'occlusion':<15} {'batched':>8} {'1/pass':>8} {'speed-up':>8}")
        for speed_up in speed_ups:
            print(speed_up.line())
    threads = torch.get_num_threads()
    _record(rows, speed_ups, f"{threads} torch thread{'s' * (threads > 1)}, {clock} time")
    return rows, speed_ups


def _record(rows: list[Row], speed_ups: list[SpeedUp], conditions: str) -> None:
    """The headline rows for ``python -m bench``: per model, the median and the largest overhead; the speed-up."""
    for model in dict.fromkeys(row.model for row in rows):
        overheads = {row.method: row.overhead for row in rows if row.model == model}
        worst = max(overheads, key=overheads.__getitem__)
        record(
            "explanations",
            f"explain over captum / TorchCAM called directly, {model}, {len(overheads)} methods ({conditions})",
            f"median {statistics.median(overheads.values()):+.0%}, largest {overheads[worst]:+.0%} ({worst})",
            f"≤ {OVERHEAD_GOAL:.0%}",
            overheads[worst] <= OVERHEAD_GOAL,
        )
    for speed_up in speed_ups:
        record(
            "explanations",
            f"occlusion batched vs captum's one perturbation per pass, {speed_up.model}, {speed_up.settings} "
            f"({conditions})",
            f"{speed_up.batched_s:.2f} vs {speed_up.one_per_pass_s:.2f} s ({speed_up.factor:.2f}×)",
            f"≥ {SPEED_UP_GOAL:g}×",
            speed_up.factor >= SPEED_UP_GOAL,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=200, help="most timed rounds per method (at least 5, then while under 2 s)"
    )
    parser.add_argument("--full", action="store_true", help="every method at its defaults on both models")
    parser.add_argument("--models", nargs="+", default=list(MODERATE), choices=list(MODERATE))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--clock", default="wall", choices=list(CLOCKS), help="wall time or this process's CPU time")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", UserWarning)  # captum warns about reused ReLUs and hooks on ResNet
    run(args.models, args.methods, args.rounds, args.full, args.clock)


if __name__ == "__main__":
    main()
