"""Page rerun time while a run trains in the background, against the same page with the machine idle.

Usage: ``python bench/bench_pages.py [--reruns N] [--pages PAGE …]``. Streamlit's AppTest runs the real page scripts
in this process (through ``app.py``'s navigation, as a served app does), with an empty run store of its own. Each
page is rerun ``N`` times with no run at all (idle), then ``N`` times while a worker process (``jobs.submit``, as the
Start button does) trains the TinyVGG preset, timed once the worker reports training batches, then, the run stopped
and deleted, ``N`` times idle again (idle before and after, so a drift in the machine's load does not pass for the
worker's cost). Printed: each page's median rerun idle and while training, and their ratio. Goal: ≤ 2× for every
page.

The Train page shows more while a run trains (the live monitor instead of an empty store), so its ratio counts that
work as well as the worker's competition for the CPU; the Predict page does not change, so its ratio is the
competition alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script, Python puts bench/ on the path, not the repository root

from bench.apptest import served_app  # noqa: E402
from bench.summary import record  # noqa: E402

GOAL = 2.0
PAGES = ("pages/home.py", "pages/train.py")
WORKER_START_TIMEOUT_S = 120  # data drawn, model built, first batches reported, on a busy 2-core machine


def reruns_of(at, page: str, reruns: int) -> list[float]:
    """Seconds of ``reruns`` plain reruns of ``page``, after one warm-up rerun (caches filled)."""
    at.switch_page(page).run()
    at.run()
    samples = []
    for _ in range(reruns):
        started = time.perf_counter()
        at.run()
        samples.append(time.perf_counter() - started)
    if at.exception:
        raise RuntimeError(f"{page}: {[e.value for e in at.exception]}")
    return samples


def wait_until_training(run_id: str) -> None:
    """Return once the worker reports training batches; fail if the run ended or never got there."""
    from cnn_explorer import runs

    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        run = runs.get_run(run_id)
        if run.status in runs.FINISHED:
            raise RuntimeError(f"run {run_id} ended before the timing: {run.status} {run.message}")
        if (runs.read_progress(run_id) or {}).get("phase") == "training":
            return
        time.sleep(0.2)
    raise RuntimeError(f"run {run_id} did not start training within {WORKER_START_TIMEOUT_S} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reruns", type=int, default=7, help="timed reruns per page and state (median)")
    parser.add_argument("--pages", nargs="+", default=list(PAGES), help="page scripts to time")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as work:
        at = served_app(Path(work))
        from cnn_explorer import jobs, runs
        from cnn_explorer.runspec import preset

        idle = {page: reruns_of(at, page, args.reruns) for page in args.pages}
        # Enough epochs to outlast the timing by far; the run is stopped when the timing is done.
        run_id = jobs.submit(preset("tinyvgg-shapes", epochs=60))
        try:
            wait_until_training(run_id)
            busy = {page: statistics.median(reruns_of(at, page, args.reruns)) for page in args.pages}
            progress = runs.read_progress(run_id) or {}
            if runs.get_run(run_id).status != "running":
                raise RuntimeError(f"run {run_id} ended during the timing: {runs.get_run(run_id).message}")
        finally:
            jobs.stop(run_id)
        runs.delete_run(run_id)  # the store empty again: the pages as in the first idle timing
        idle = {page: statistics.median(idle[page] + reruns_of(at, page, args.reruns)) for page in args.pages}

    print(
        f"{os.cpu_count()} cores, load average {load:.1f} at the start; medians of {args.reruns} reruns while "
        f"training, {2 * args.reruns} idle (before and after)"
    )
    print(f"the worker trained at {progress.get('images_per_second', 0):.0f} images/s (its last progress report)")
    print(f"{'page':<18} {'idle':>9} {'training':>9} {'ratio':>6}")
    for page in args.pages:
        ratio = busy[page] / idle[page]
        print(f"{page:<18} {idle[page] * 1e3:7.0f} ms {busy[page] * 1e3:6.0f} ms {ratio:5.2f}×")
        record(
            "training",
            f"{Path(page).stem} page rerun while a run trains, against idle",
            f"{busy[page] * 1e3:.0f} ms vs {idle[page] * 1e3:.0f} ms ({ratio:.2f}×)",
            f"≤ {GOAL:g}×",
            ratio <= GOAL,
        )
    worst = max(busy[page] / idle[page] for page in args.pages)
    print(f"worst ratio {worst:.2f}× (goal ≤ {GOAL:g}×): {'met' if worst <= GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
