"""Time the layer explorer's library calls and check that stepping through layers does not leak memory.

Usage: ``python bench/bench_layers.py [--repeats N] [--steps N] [--captures N]``. For TinyVGG (64×64) and ResNet-18
(random weights, 224×224) it prints the median time of:

- ``capture_activations``: one forward pass recording every layer's output, and ``capture_layers``: outputs and
  inputs in one pass (what the page caches once per model and image; the arithmetic panel reads the inputs);
- a layer step once activations are captured: the dict lookup plus ``explain_unit`` on one position, with the
  captured inputs (no forward pass) and without them (the network runs up to the layer);
- ``list_layers`` and ``effective_receptive_field`` for one unit.

Then the resident set size (VmRSS) before and after ``--captures`` captures and ``--steps`` steps, after a warm-up;
it should stay flat (no hooks, graphs or tensors kept alive between calls).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script (`python bench/bench_layers.py`), Python puts bench/ on the path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench.summary import record
from cnn_explorer.architectures import TinyVGG
from cnn_explorer.layers import capture_activations, capture_layers, explain_unit, list_layers
from cnn_explorer.layers import effective_receptive_field as erf
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.zoo import LoadedModel


def rss_mib() -> float:
    """Current resident set size in MiB (VmRSS; the peak from getrusage where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds per call over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def wrap(name: str, module: torch.nn.Module, side: int, classes: int) -> LoadedModel:
    return LoadedModel(
        name=name,
        module=module.eval(),
        input_size=(3, side, side),
        class_names=tuple(str(i) for i in range(classes)),
        preprocess=Preprocess(resize=side, crop=side),
        summary=name,
        card=name,
    )


def step_positions(model: LoadedModel) -> list[tuple[str, tuple[int, ...]]]:
    """One position per layer whose arithmetic is shown, the centre of each map (the last class for vectors)."""
    positions = []
    for info in list_layers(model):
        index = (info.output_shape[0] - 1,) if len(info.output_shape) == 1 else tuple(s // 2 for s in info.output_shape)
        positions.append((info.name, index))
    return positions


def bench(model: LoadedModel, args: argparse.Namespace) -> None:
    x = torch.randn(1, *model.input_size, generator=torch.Generator().manual_seed(0))
    print(f"\n{model.name} ({'×'.join(map(str, model.input_size))}), {torch.get_num_threads()} torch threads")

    layers_s = median_time(lambda: list_layers(model), max(1, args.repeats // 4))
    print(f"  list_layers                          {layers_s * 1e3:9.2f} ms")
    capture_s = median_time(lambda: capture_activations(model, x), args.repeats)
    print(f"  capture_activations (forward+copy)   {capture_s * 1e3:9.2f} ms")
    with torch.no_grad():
        forward_s = median_time(lambda: model.module(x), args.repeats)
    print(f"  plain forward, for comparison        {forward_s * 1e3:9.2f} ms")
    both_s = median_time(lambda: capture_layers(model, x), args.repeats)
    print(f"  capture_layers (outputs and inputs)  {both_s * 1e3:9.2f} ms")

    activations, inputs = capture_layers(model, x)
    positions = [(name, index) for name, index in step_positions(model)]
    explained = [p for p in positions if _explainable(model, activations, inputs, x, *p)]
    cycle = itertools.cycle(explained)

    def step(with_inputs: bool = True) -> None:
        name, index = next(cycle)
        _ = activations[name]  # the maps the page draws
        explain_unit(model, activations, x, name, index, inputs=inputs if with_inputs else None)

    step_s = median_time(step, max(args.repeats, len(explained)))
    print(f"  layer step (lookup + explain_unit)   {step_s * 1e3:9.3f} ms  ({len(explained)} layers cycled)")
    record("layers", f"capture every layer, {model.name}", f"{capture_s * 1e3:.1f} ms")
    record("layers", f"one layer step once captured (lookup + arithmetic), {model.name}", f"{step_s * 1e3:.2f} ms")
    cold_s = median_time(lambda: step(with_inputs=False), max(args.repeats // 2, 5))
    print(f"  layer step without captured inputs   {cold_s * 1e3:9.2f} ms  (runs the network up to the layer)")
    last_conv = [name for name, _ in positions if name.endswith(("conv2", "conv_2_2"))][-1]
    unit = dict(positions)[last_conv]
    erf_s = median_time(lambda: erf(model, x, last_conv, unit), max(args.repeats // 4, 3))
    print(f"  effective_receptive_field {last_conv:<10} {erf_s * 1e3:9.2f} ms")

    # Memory: warm up, then capture and step; activations are replaced each time, as the page's cache does.
    for _ in range(3):
        activations, inputs = capture_layers(model, x)
        step()
    gc.collect()
    rounds = max(args.steps, args.captures)
    readings = [rss_mib()]
    for i in range(rounds):
        if i < args.captures:
            activations, inputs = capture_layers(model, x)
        step()
        if (i + 1) % (rounds // 4 or 1) == 0:
            gc.collect()
            readings.append(rss_mib())
    trail = " → ".join(f"{r:.1f}" for r in readings)
    print(f"  RSS over {args.captures} captures + {args.steps} steps, every quarter: {trail} MiB")
    settled, total = readings[-1] - readings[1], readings[-1] - readings[0]
    print(f"    Δ first quarter → end {settled:+.1f} MiB, start → end {total:+.1f} MiB")
    record(
        "layers",
        f"resident memory over {args.captures} captures + {args.steps} layer steps, {model.name}",
        f"{readings[0]:.0f} → {readings[-1]:.0f} MiB ({total:+.0f})",
    )


def _explainable(model: LoadedModel, activations: dict, inputs: dict, x: torch.Tensor, name: str, index: tuple) -> bool:
    try:
        explain_unit(model, activations, x, name, index, inputs=inputs)
    except ValueError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per figure")
    parser.add_argument("--steps", type=int, default=200, help="layer steps in the memory check")
    parser.add_argument("--captures", type=int, default=200, help="captures in the memory check")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    bench(wrap("TinyVGG", TinyVGG(), 64, 10), args)
    import torchvision.models  # after cnn_explorer: its import guard must run before torchvision loads

    torch.manual_seed(0)
    bench(wrap("ResNet-18", torchvision.models.resnet18(), 224, 1000), args)


if __name__ == "__main__":
    main()
