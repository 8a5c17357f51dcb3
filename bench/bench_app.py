"""The app as a user meets it: cold start to the first page, each page's rerun time, memory over 200 interactions.

Usage: ``python bench/bench_app.py [--reruns N] [--interactions N]``.

- Cold start: ``streamlit run app.py`` in a fresh process until the first page has finished its first run in
  headless Chromium (when Playwright and Chromium are installed; otherwise until the server answers its health check).
- Rerun time per page: Streamlit's AppTest runs the real scripts in this process; after a warm-up, the median time
  of one interaction's rerun on each page (the work the server does after a click, without the network).
- Memory: resident set size before and after ``--interactions`` interactions cycling over the pages (step a layer,
  change a display setting, change a kernel …), after a warm-up; it should stay flat.
- Click to idle in Chromium for each everyday interaction, beside a bare Streamlit rerun: ``bench/bench_clicks.py``
  (run here too with ``--clicks``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script, Python puts bench/ on the path, not the repository root

from bench.apptest import CHROMIUM, CHROMIUM_ARGS, IDLE, served_app  # noqa: E402
from bench.summary import record  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cold_start(home: Path) -> tuple[float, float | None]:
    """Seconds from launching ``streamlit run`` to its health check, and to the first page rendered in Chromium.

    The browser is started first, as a person's is already open: the clock starts at ``streamlit run``.
    """
    port = _free_port()
    env = {**os.environ, "CNN_EXPLORER_OFFLINE": "1", "CNN_EXPLORER_HOME": str(home / "home"),
           "TORCH_HOME": str(home / "torch")}  # fmt: skip
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address",
               "127.0.0.1", "--server.headless=true", "--browser.gatherUsageStats=false"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        page = None
        try:
            from playwright.sync_api import sync_playwright

            if CHROMIUM.exists():
                playwright = stack.enter_context(sync_playwright())
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                stack.callback(browser.close)
                page = browser.new_page()
                page.set_default_timeout(180_000)
                page.goto("about:blank")
        except ImportError:
            pass
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(process.wait, timeout=30)
        stack.callback(process.terminate)
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
            if process.poll() is not None or time.perf_counter() - started > 180:
                raise RuntimeError("streamlit did not start")
        healthy = time.perf_counter() - started
        if page is None:
            return healthy, None
        page.goto(url)
        page.wait_for_selector("h1")
        page.wait_for_selector(IDLE, state="attached")
        return healthy, time.perf_counter() - started


def _timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def _interactions(at) -> dict[str, Callable[[], object]]:
    """One real interaction per page (what a user clicks most there), each followed by its rerun."""

    def home() -> object:
        return at.run()

    def layers() -> object:
        return at.button(key="layer_step_next").click().run()

    def explain() -> object:
        sign = at.segmented_control(key="explain_sign")
        return sign.set_value("absolute" if sign.value == "positive" else "positive").run()

    def playground() -> object:
        stride = at.slider(key="conv_stride")
        return stride.set_value(2 if stride.value == 1 else 1).run()

    def train() -> object:
        return at.run()

    return {
        "pages/home.py": home,
        "pages/layers.py": layers,
        "pages/explain.py": explain,
        "pages/playground.py": playground,
        "pages/train.py": train,
    }


def rerun_times(at, reruns: int) -> dict[str, float]:
    times = {}
    for page, interact in _interactions(at).items():
        at.switch_page(page).run()
        interact()  # warm-up: caches filled, first-run costs paid
        samples = [_timed(interact) for _ in range(reruns)]
        if at.exception:
            raise RuntimeError(f"{page}: {[e.value for e in at.exception]}")
        times[page] = statistics.median(samples)
    return times


def memory_over(at, interactions: int) -> tuple[float, float]:
    steps = list(_interactions(at).items())
    for page, interact in steps:  # warm-up over every page
        at.switch_page(page).run()
        interact()
    before = rss_mib()
    for i in range(interactions):
        page, interact = steps[(i // 10) % len(steps)]  # ten interactions on a page, then the next page
        if i % 10 == 0:
            at.switch_page(page).run()
        interact()
    return before, rss_mib()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reruns", type=int, default=7)
    parser.add_argument("--interactions", type=int, default=200)
    parser.add_argument("--clicks", action="store_true", help="also time clicks in Chromium (bench/bench_clicks.py)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        home = Path(work)
        healthy, first_page = cold_start(home)
        shown = f"{first_page:.1f} s" if first_page is not None else "n/a (no Chromium)"
        print(f"cold start: server healthy after {healthy:.1f} s, first page rendered after {shown}")
        record("app", "cold start: `streamlit run` to the first page rendered in Chromium", shown)
        at = served_app(home / "apptest")  # apart from the cold start's store
        times = rerun_times(at, args.reruns)
        for page, seconds in times.items():
            print(f"rerun after an interaction, {page:<20} {seconds * 1e3:8.0f} ms (median of {args.reruns})")
            record("app", f"rerun after an interaction: {Path(page).stem} page", f"{seconds * 1e3:.0f} ms")
        before, after = memory_over(at, args.interactions)
        print(f"RSS over {args.interactions} interactions: {before:.0f} → {after:.0f} MiB ({after - before:+.0f} MiB)")
        record(
            "app",
            f"resident memory over {args.interactions} interactions across pages",
            f"{before:.0f} → {after:.0f} MiB ({after - before:+.0f})",
        )
    if args.clicks:
        from bench.bench_clicks import main as clicks

        clicks([])


if __name__ == "__main__":
    main()
