"""Time ``feature_grid`` against the naive page: one matplotlib subplot per feature map, rendered to PNG.

Usage: ``python bench/bench_render.py [--repeats N] [--baseline-repeats N]``. For TinyVGG-like maps (10×62×62)
and ResNet-like maps (64×56×56, 512×7×7) it prints the median milliseconds of

- ``grid``: ``feature_grid`` alone (the PIL image a page hands to ``st.image``),
- ``grid+png``: ``feature_grid`` and PNG encoding (``to_png_bytes``, zlib level 1), the like-for-like comparison,
- ``grid+png6``: the same at PIL's default level 6, the level matplotlib's ``savefig`` uses,
- ``subplots``: a ``Figure`` with C subplots, ``imshow`` per map, ``savefig`` to PNG (no per-case warm-up, and
  no further runs once one case has taken 5 s: 512 subplots take seconds each),

and the speed-up of ``grid+png`` over ``subplots`` (goal: ≥ 7×). The maps are ReLU'd Gaussian noise, the worst
case for PNG compression; real activations encode faster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import torch
from matplotlib.figure import Figure

# Run as a script (`python bench/bench_render.py`), Python puts bench/ on the path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.summary import record
from cnn_explorer.render import feature_grid, to_png_bytes

CASES = {
    "TinyVGG conv 10×62×62": (10, 62, 62),
    "ResNet layer1 64×56×56": (64, 56, 56),
    "ResNet layer4 512×7×7": (512, 7, 7),
}
GOAL = 7.0


def subplot_baseline(maps: torch.Tensor, cmap: str = "viridis") -> bytes:
    """The naive page: one subplot per map on the layer's range, the figure saved as PNG."""
    count = maps.shape[0]
    columns = min(16, -(-count // int(count**0.5)))
    rows = -(-count // columns)
    vmin, vmax = float(maps.min()), float(maps.max())
    fig = Figure(figsize=(columns, rows), dpi=100)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, channel in zip(axes, maps.numpy(), strict=False):
        ax.imshow(channel, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    for ax in axes:
        ax.set_axis_off()
    buffer = BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def median_ms(work: Callable[[], object], repeats: int, warm_up: bool = True, budget_s: float = 5.0) -> float:
    """Median wall time of ``work`` in milliseconds over up to ``repeats`` runs, stopping once ``budget_s`` is
    spent, after one untimed warm-up call unless told otherwise."""
    if warm_up:
        work()
    times: list[float] = []
    while len(times) < repeats and sum(times) < budget_s:
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    """Print the timings of every case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of feature_grid per case")
    parser.add_argument("--baseline-repeats", type=int, default=3, help="timed runs of the subplot baseline")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    subplot_baseline(torch.rand(2, 4, 4))  # load fonts and the Agg backend once, outside the timings
    print(f"{'case':<24} {'grid':>9} {'grid+png':>10} {'grid+png6':>10} {'subplots':>10} {'speed-up':>9}")
    for name, shape in CASES.items():
        maps = torch.randn(shape).relu()
        grid_ms = median_ms(lambda maps=maps: feature_grid(maps, scope="layer"), args.repeats)
        png_ms = median_ms(lambda maps=maps: to_png_bytes(feature_grid(maps, scope="layer").image), args.repeats)
        png6_ms = median_ms(lambda maps=maps: to_png_bytes(feature_grid(maps).image, 6), args.repeats)
        baseline_ms = median_ms(lambda maps=maps: subplot_baseline(maps), args.baseline_repeats, warm_up=False)
        speed_up = baseline_ms / png_ms
        verdict = "ok" if speed_up >= GOAL else f"below {GOAL:g}×"
        print(
            f"{name:<24} {grid_ms:>7.1f}ms {png_ms:>8.1f}ms {png6_ms:>8.1f}ms {baseline_ms:>8.0f}ms "
            f"{speed_up:>8.0f}× {verdict}"
        )
        record(
            "layers",
            f"feature grid + PNG vs one matplotlib subplot per map, {name}",
            f"{png_ms:.0f} vs {baseline_ms:,.0f} ms ({speed_up:.0f}×)",
            f"≥ {GOAL:g}×",
            speed_up >= GOAL,
        )


if __name__ == "__main__":
    main()
