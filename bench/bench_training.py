"""Training: our loop's speed against a plain PyTorch loop, and the seconds the TinyVGG preset takes to 95 %.

Usage: ``python bench/bench_training.py [--images N] [--rounds R] [--threads T] [--target A]
[--target-threads T …] [--skip-loop] [--skip-target]``.

Loop speed: images per second of ``training.fit`` with the worker's callbacks against a plain loop. Both train the
TinyVGG preset's network on the same pre-drawn 64×64 shapes (tensors in memory, so only the loops differ), with the
same batch size, shuffling and optimizer, on the worker's thread count (all cores but one) unless told otherwise. Ours
also runs what the worker adds: the learning-rate schedule, the divergence check, the stop check and the throttled
progress file. Epochs alternate between the two loops (ABBA, so drift cancels) and each side's median over ``R``
epochs is compared, in wall time and in CPU time (the latter barely moves when other processes share the machine).
Goal: ours ≥ 0.9× the plain loop.

Time to 95 %: the ``tinyvgg-shapes`` preset as a run trains it (``data.prepare`` with its data spec, seed and
augmentation, ``architectures.build_model``, ``runner.train_config`` of its settings, ``fit`` with validation after
every epoch), stopped after the first epoch whose validation accuracy reaches ``--target``. The clock starts before
the data is prepared (drawing the images, in every core's process as a run does, is part of the time) and stops
when that epoch's validation ends; the run's own files (progress, checkpoints, time-lapse) are
not written. The validation images are drawn with their own seed, never trained on. It runs with every core
(``--target-threads`` for other counts). Goal: ≤ 60 s on 2 cores.

Time to 95 % in the worker: the same preset submitted as the Train page's Start button does (``jobs.submit``, in a
store of its own), timed from the submission to the end of the first epoch whose validation accuracy reaches the
target, as the run's metrics record it: the worker process's start, its files (progress, checkpoints, time-lapse)
and its share of the cores (``jobs.CoreShare``: every core while nothing else runs) included. ``--skip-worker``
leaves it out.
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

from bench.summary import record
from cnn_explorer import architectures, data, jobs, runs
from cnn_explorer.runner import _StopCheck, train_config
from cnn_explorer.runspec import preset
from cnn_explorer.training import EpochResult, TrainConfig, fit, native_bfloat16

GOAL = 0.9
TARGET = 0.95
TARGET_GOAL_S = 60.0


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


def time_to_accuracy(name: str, target: float) -> tuple[float | None, list[EpochResult], float]:
    """Train preset ``name`` as a run does until an epoch's validation accuracy reaches ``target``.

    Returns:
        Seconds from the start to the end of that epoch's validation (None: never reached), every epoch's result,
        and the seconds of the whole attempt.
    """
    spec = preset(name)
    settings = spec.settings
    started = time.perf_counter()
    prepared = data.prepare(spec.data, settings.seed, settings.augmentation)
    # as runner.execute reads them: at once, in every core's process
    data.load_all([prepared.train, prepared.val], processes=os.cpu_count() or 1)
    print(f"  images read {time.perf_counter() - started:6.1f} s", flush=True)
    torch.manual_seed(settings.seed)
    module = architectures.build_model(
        spec.model, prepared.input_size[0], prepared.input_size[1], len(prepared.class_names), settings.dropout
    )
    reached: list[float] = []

    def on_epoch(result: EpochResult) -> bool:
        seconds = time.perf_counter() - started
        print(f"  epoch {result.epoch:2d}  {seconds:6.1f} s  val accuracy {result.val_accuracy:.2%}", flush=True)
        if result.val_accuracy is not None and result.val_accuracy >= target:
            reached.append(seconds)
            return True
        return False

    result = fit(
        module,
        prepared.train_for_epoch,
        train_config(settings),
        prepared.val,
        on_epoch=on_epoch,
        train_mode=architectures.train_mode,
    )
    return (reached[0] if reached else None), result.history, time.perf_counter() - started


def time_to_accuracy_in_worker(name: str, target: float) -> tuple[float | None, list[dict], float]:
    """Submit preset ``name`` to a worker as the app does; stop it once an epoch reaches ``target``.

    Returns:
        Seconds from the submission to the end of that epoch (None: never reached), every epoch's metrics, and the
        seconds of the whole attempt.
    """
    with tempfile.TemporaryDirectory() as home:
        previous = os.environ.get("CNN_EXPLORER_HOME")
        os.environ["CNN_EXPLORER_HOME"] = home
        try:
            submitted = time.time()
            run_id = jobs.submit(preset(name))
            reached, metrics = None, []
            while reached is None:
                time.sleep(0.2)
                jobs.poll()
                metrics = runs.read_metrics(run_id)
                for m in metrics:
                    if reached is None and m["val_accuracy"] is not None and m["val_accuracy"] >= target:
                        reached = m["time"] - submitted
                if runs.get_run(run_id).status != "running":
                    break
            jobs.stop(run_id)
            if reached is not None:  # the epochs up to the one that reached it, not those logged before the stop
                metrics = metrics[: next(i for i, m in enumerate(metrics) if m["time"] - submitted >= reached) + 1]
            for m in metrics:
                print(f"  epoch {m['epoch']:2d}  {m['time'] - submitted:6.1f} s  val accuracy {m['val_accuracy']:.2%}")
            return reached, metrics, time.time() - submitted
        finally:
            if previous is None:
                os.environ.pop("CNN_EXPLORER_HOME", None)
            else:
                os.environ["CNN_EXPLORER_HOME"] = previous


def report_time_in_worker(target: float) -> None:
    print(f"TinyVGG preset to {target:.0%} validation accuracy in the worker (submitted as the Train page does)")
    seconds, metrics, total = time_to_accuracy_in_worker("tinyvgg-shapes", target)
    accuracies = [m["val_accuracy"] or 0.0 for m in metrics]
    _report(target, seconds, accuracies, total, "in the worker (the app's path)")


def report_time_to_accuracy(target: float, threads: int) -> None:
    spec = preset("tinyvgg-shapes")
    s, d = spec.settings, spec.data
    pool = "drawn fresh every epoch" if d.fresh else "drawn once"
    print(
        f"TinyVGG preset to {target:.0%} validation accuracy: {d.count} training images {pool}, "
        f"{round(d.count * d.val_split)} validation images, batch {s.batch_size}, {s.optimizer} lr {s.lr:g} "
        f"β2 {s.beta2:g} weight decay {s.weight_decay:g} (warm-up {s.warmup:.0%}, cosine over {s.epochs} epochs), "
        f"{s.precision}"
        f"{' (native)' if s.precision == 'bfloat16' and native_bfloat16() else ''}, {threads} torch thread(s), "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    seconds, history, total = time_to_accuracy("tinyvgg-shapes", target)
    _report(target, seconds, [r.val_accuracy or 0.0 for r in history], total, f"{threads} thread(s)")


def _report(target: float, seconds: float | None, accuracies: list[float], total: float, where: str) -> None:
    """Print and record one time to the target: ``accuracies`` are the epochs' validation accuracies."""
    epochs = len(accuracies)
    if seconds is None:
        print(f"{target:.0%} NOT reached in {epochs} epochs ({total:.1f} s; best {max(accuracies, default=0):.2%})")
    else:
        met = seconds <= TARGET_GOAL_S
        print(
            f"{target:.0%} reached after {epochs} epochs in {seconds:.1f} s "
            f"(goal ≤ {TARGET_GOAL_S:g} s): {'met' if met else 'NOT met'}"
        )
    record(
        "training",
        f"TinyVGG preset to {target:.0%} validation accuracy on the shapes, {where}",
        f"{seconds:.1f} s ({epochs} epochs)"
        if seconds is not None
        else f"not reached ({max(accuracies, default=0):.1%})",
        f"≤ {TARGET_GOAL_S:g} s",
        seconds is not None and seconds <= TARGET_GOAL_S,
    )


def compare_loops(images: int, rounds: int, threads: int) -> None:
    spec = preset("tinyvgg-shapes")
    prepared = data.prepare(data.DataSpec(kind="shapes", size=64, count=images), seed=0)
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
        for round_ in range(rounds):
            order = list(loops) if round_ % 2 == 0 else list(reversed(loops))
            for name in order:
                timings[name].append(timed(loops[name], len(dataset)))

    print(f"TinyVGG, {len(dataset)} images of 64×64 per epoch, batch {batch}, {threads} torch thread(s)")
    medians = {}
    for name, values in timings.items():
        wall, cpu = statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)
        medians[name] = (wall, cpu)
        print(f"{name:20s} {wall:7.1f} images/s wall  {cpu:7.1f} images/s CPU  ({rounds} epochs, median)")
    (plain_wall, plain_cpu), (ours_wall, ours_cpu) = medians.values()
    for what, ratio in (("wall", ours_wall / plain_wall), ("CPU", ours_cpu / plain_cpu)):
        print(f"ratio ({what} time) {ratio:.3f} (goal ≥ {GOAL}): {'met' if ratio >= GOAL else 'NOT met'}")
    ratio = ours_cpu / plain_cpu
    record(
        "training",
        f"training.fit against a plain PyTorch loop, images/s in CPU time, {threads} thread(s)",
        f"{ratio:.2f}×",
        f"≥ {GOAL}×",
        ratio >= GOAL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="training images per epoch of the loop-speed part")
    parser.add_argument("--rounds", type=int, default=8, help="epochs timed per loop")
    worker_threads = max(1, (os.cpu_count() or 1) - 1)  # the worker's count while the app uses a core
    parser.add_argument("--threads", type=int, default=worker_threads, help="torch threads of the loop-speed part")
    parser.add_argument("--target", type=float, default=TARGET, help="validation accuracy to reach")
    parser.add_argument(
        "--target-threads",
        type=int,
        nargs="+",
        default=[os.cpu_count() or 1],
        help="torch threads of the time to the target, one attempt each (default: all cores)",
    )
    parser.add_argument("--skip-loop", action="store_true", help="leave out the loop-speed comparison")
    parser.add_argument("--skip-target", action="store_true", help="leave out the time to the target accuracy")
    parser.add_argument("--skip-worker", action="store_true", help="leave out the time to the target in the worker")
    args = parser.parse_args()
    if not args.skip_loop:
        torch.set_num_threads(args.threads)
        compare_loops(args.images, args.rounds, args.threads)
    if not args.skip_target:
        for threads in args.target_threads:
            torch.set_num_threads(threads)
            report_time_to_accuracy(args.target, threads)
    if not args.skip_worker:
        report_time_in_worker(args.target)


if __name__ == "__main__":
    main()
