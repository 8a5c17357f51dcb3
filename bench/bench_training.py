"""Images per second of our training loop (``training.fit`` with the worker's callbacks) against a plain PyTorch loop.

Usage: ``python bench/bench_training.py [--images N] [--rounds R] [--threads T]``. Both loops train the TinyVGG
preset's network on the same pre-drawn 64×64 shapes (tensors in memory, so only the loops differ), with the same
batch size, shuffling and optimizer, on the worker's thread count (all cores but one) unless told otherwise. Ours
also runs what the worker adds: the learning-rate schedule, the divergence check, the stop check and the throttled
progress file. Epochs alternate between the two loops (ABBA, so drift cancels) and each side's median over ``R``
epochs is compared, in wall time and in CPU time (the latter barely moves when other processes share the machine).
Goal: ours ≥ 0.9× the plain loop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# Run as a script (`python bench/bench_training.py`), Python puts bench/ on the path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnn_explorer import architectures, data, runs
from cnn_explorer.runner import _StopCheck
from cnn_explorer.runspec import preset
from cnn_explorer.training import TrainConfig, fit

GOAL = 0.9


def plain_epoch(module: nn.Module, dataset: TensorDataset, batch_size: int, generator: torch.Generator) -> None:
    """One epoch of the textbook loop."""
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    module.train()
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator):
        loss = nn.functional.cross_entropy(module(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def our_epoch(module: nn.Module, dataset: TensorDataset, batch_size: int, run_id: str) -> None:
    """One epoch of ``fit`` with the worker's stop check and progress file."""
    fit(
        module,
        lambda epoch: dataset,
        TrainConfig(epochs=1, batch_size=batch_size, lr=1e-3),
        on_batch=lambda progress: runs.write_progress(run_id, {"phase": "training", "batch": progress.batch}),
        should_stop=_StopCheck(run_id, None),
        progress_every=0.5,
    )


def timed(epoch: Callable[[], None], images: int) -> tuple[float, float]:
    """Images per second of one epoch in wall time and in CPU time (everything the loop does counts)."""
    wall, cpu = time.perf_counter(), time.process_time()
    epoch()
    return images / (time.perf_counter() - wall), images / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="training images per epoch")
    parser.add_argument("--rounds", type=int, default=8, help="epochs timed per loop")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 1) - 1), help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    spec = preset("tinyvgg-shapes")
    prepared = data.prepare(data.DataSpec(kind="shapes", size=64, count=args.images), seed=0)
    train = prepared.train
    dataset = TensorDataset(
        torch.stack([train[i][0] for i in range(len(train))]), torch.tensor([train[i][1] for i in range(len(train))])
    )
    batch = spec.settings.batch_size
    torch.manual_seed(0)
    ours_module = architectures.build_model(spec.model, 3, 64, len(prepared.class_names))
    plain_module = architectures.build_model(spec.model, 3, 64, len(prepared.class_names))
    plain_module.load_state_dict(ours_module.state_dict())

    with tempfile.TemporaryDirectory() as home:
        os.environ["CNN_EXPLORER_HOME"] = home
        run_id = runs.create_run(spec).id
        generator = torch.Generator().manual_seed(0)
        loops = {
            "plain PyTorch loop": lambda: plain_epoch(plain_module, dataset, batch, generator),
            "training.fit": lambda: our_epoch(ours_module, dataset, batch, run_id),
        }
        for loop in loops.values():  # warm-up: allocator, kernels
            loop()
        timings: dict[str, list[tuple[float, float]]] = {name: [] for name in loops}
        for round_ in range(args.rounds):
            order = list(loops) if round_ % 2 == 0 else list(reversed(loops))
            for name in order:
                timings[name].append(timed(loops[name], len(dataset)))

    print(f"TinyVGG, {len(dataset)} images of 64×64 per epoch, batch {batch}, {args.threads} torch thread(s)")
    medians = {}
    for name, values in timings.items():
        wall, cpu = statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)
        medians[name] = (wall, cpu)
        print(f"{name:20s} {wall:7.1f} images/s wall  {cpu:7.1f} images/s CPU  ({args.rounds} epochs, median)")
    (plain_wall, plain_cpu), (ours_wall, ours_cpu) = medians.values()
    for what, ratio in (("wall", ours_wall / plain_wall), ("CPU", ours_cpu / plain_cpu)):
        print(f"ratio ({what} time) {ratio:.3f} (goal ≥ {GOAL}): {'met' if ratio >= GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
