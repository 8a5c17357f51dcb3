"""Heavy work in the app while a run trains: each side's speed against its speed alone, side by side in one run.

Usage: ``python bench/bench_contention.py [--window S]``.

The app's side: Score-CAM then occlusion (default settings) on ResNet-18 with seeded random weights placed where
torch's hub cache keeps the real ones (nothing downloads), in this process, on the torch threads a page's rerun
sets (``cores.share_with_training``, as ``app.py`` calls it). The training side: the ``tinyvgg-shapes`` preset
submitted as the Train page's Start button does (``jobs.submit``, a worker process, in a store of its own), its
images per second read from the run's progress (batches done × batch size over the time between two looks).

In order: the heavy work alone; the run started and, once it trains, its speed alone over ``--window`` seconds; the
heavy work again while it trains, the run's speed measured over exactly that time; the run stopped.
Goals (issue 14): the heavy work takes ≤ 2× its time alone, and training keeps ≥ 50 % of its speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

# Run as a script (`python bench/bench_contention.py`), Python puts bench/ on the path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_attribution import resnet18_offline
from bench.summary import record
from cnn_explorer import LoadedModel, cores, explain, images, jobs, runs
from cnn_explorer.runspec import preset

SLOWDOWN_GOAL = 2.0
TRAINING_GOAL = 0.5
METHODS = ("scorecam", "occlusion")
PRESET = "tinyvgg-shapes"


def heavy(model: LoadedModel, x: torch.Tensor) -> tuple[float, int]:
    """Seconds of Score-CAM then occlusion, on the threads a page's rerun would set now; and that thread count."""
    threads = cores.share_with_training()
    started = time.perf_counter()
    for method in METHODS:
        explain(model, x, method)
    return time.perf_counter() - started, threads


def trained_images(run_id: str, batch_size: int) -> int:
    """Training images the run has gone through so far (whole batches), from its progress file."""
    progress = runs.read_progress(run_id) or {}
    if progress.get("phase") != "training":
        return 0
    return ((progress["epoch"] - 1) * progress["batches"] + progress["batch"]) * batch_size


def wait_training(run_id: str, batch_size: int, timeout_s: float = 900.0) -> None:
    """Until the run has trained a few batches (its images read and its first batches done)."""
    deadline = time.monotonic() + timeout_s
    while trained_images(run_id, batch_size) < 4 * batch_size:
        if time.monotonic() > deadline or runs.get_run(run_id).status != "running":
            raise RuntimeError(f"run {run_id} did not start training: {runs.get_run(run_id).message}")
        time.sleep(0.2)
        jobs.poll()


def speed_over(run_id: str, batch_size: int, work) -> tuple[float, object]:
    """Images per second the run trains while ``work()`` runs, and what ``work`` returned."""
    started, before = time.perf_counter(), trained_images(run_id, batch_size)
    result = work()
    return (trained_images(run_id, batch_size) - before) / (time.perf_counter() - started), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=20.0, help="seconds the run's speed alone is measured over")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        os.environ["CNN_EXPLORER_HOME"] = str(Path(work) / "home")
        model = resnet18_offline(Path(work) / "torch")
        x = model.preprocess(images.load_sample(images.default_sample(model.name)))
        explain(model, x, "gradcam")  # warm-up: the model's inference copy, allocator
        print(f"{cores.machine_cores()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)

        alone, threads_alone = heavy(model, x)
        print(f"Score-CAM + occlusion on ResNet-18 alone: {alone:.1f} s ({threads_alone} torch threads)", flush=True)

        batch_size = preset(PRESET).settings.batch_size
        run_id = jobs.submit(preset(PRESET, epochs=500))  # far more epochs than the bench lasts
        try:
            wait_training(run_id, batch_size)
            pid = runs.get_run(run_id).pid
            group = Path(f"/proc/{pid}/autogroup")
            print(f"worker {pid}: {group.read_text().strip() if group.exists() else 'no autogroup'}", flush=True)
            speed_alone, _ = speed_over(run_id, batch_size, lambda: time.sleep(args.window))
            print(f"training alone: {speed_alone:.0f} images/s over {args.window:g} s", flush=True)
            app_cpu, worker_cpu = time.process_time(), jobs._process_cpu_seconds(pid)
            speed_busy, (busy, threads_busy) = speed_over(run_id, batch_size, lambda: heavy(model, x))
            app_cpu, worker_cpu = time.process_time() - app_cpu, jobs._process_cpu_seconds(pid) - worker_cpu
            # CPU time, unlike wall time, shows how the two shared the cores even on a machine busy with more
            print(f"meanwhile, CPU seconds: the app {app_cpu:.1f}, the worker {worker_cpu:.1f}", flush=True)
        finally:
            jobs.stop(run_id)
        log = (runs.run_dir(run_id) / "worker.log").read_text(errors="replace")
        changes = [line for line in log.splitlines() if line.startswith("torch threads")]
        print("worker's thread changes:", "; ".join(changes[-6:]) or "none", flush=True)

    slowdown, kept = busy / alone, speed_busy / speed_alone
    print(
        f"Score-CAM + occlusion while the run trains: {busy:.1f} s ({threads_busy} torch threads), "
        f"{slowdown:.2f}× alone (goal ≤ {SLOWDOWN_GOAL:g}×): {'met' if slowdown <= SLOWDOWN_GOAL else 'NOT met'}"
    )
    print(
        f"training meanwhile: {speed_busy:.0f} images/s, {kept:.0%} of its speed alone "
        f"(goal ≥ {TRAINING_GOAL:.0%}): {'met' if kept >= TRAINING_GOAL else 'NOT met'}"
    )
    record(
        "contention",
        "Score-CAM + occlusion on ResNet-18 in the app while a run trains (tinyvgg-shapes preset, worker), "
        "against alone",
        f"{busy:.1f} vs {alone:.1f} s ({slowdown:.2f}×)",
        f"≤ {SLOWDOWN_GOAL:g}×",
        slowdown <= SLOWDOWN_GOAL,
    )
    record(
        "contention",
        "training images/s while the app runs Score-CAM + occlusion on ResNet-18, against alone",
        f"{speed_busy:.0f} vs {speed_alone:.0f} ({kept:.0%})",
        f"≥ {TRAINING_GOAL:.0%}",
        kept >= TRAINING_GOAL,
    )


if __name__ == "__main__":
    main()
