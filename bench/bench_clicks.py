"""Click to idle in a real browser: how long each everyday interaction takes, beside a bare Streamlit rerun.

Usage: ``python bench/bench_clicks.py [--repeats N] [--model NAME]`` (``bench_app.py`` calls :func:`main` too).

``streamlit run app.py`` and ``streamlit run`` of a trivial one-button script are served side by side and driven in
headless Chromium (Playwright, /usr/bin/chromium). Each interaction is timed in the page itself, from the last
pointer-down or key-down that started the rerun (the moment a person acts) until the server has answered, the script
is idle, every image has loaded and the main area has stopped changing (see ``_ARM``). The trivial page's rerun is
the floor: the ratio says how much of a click is ours. Beside it, the server-side time of each interaction's rerun
under AppTest (no network, no browser), and the cold start.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script, Python puts bench/ on the path, not the repository root

from bench.apptest import CHROMIUM, CHROMIUM_ARGS, IDLE, served_app  # noqa: E402
from bench.bench_app import cold_start  # noqa: E402
from bench.summary import record  # noqa: E402

BARE = "bare Streamlit rerun (trivial page)"
BARE_DEFAULTS = "bare Streamlit rerun, Streamlit's default runner settings (trivial page)"
GOAL_MS = 300
GOAL_RATIO = 2.0
GOAL_SERVER_MS = 150
TRIVIAL = textwrap.dedent(
    """
    import streamlit as st
    st.title("Trivial")
    st.button("Rerun")
    st.session_state.runs = st.session_state.get("runs", 0) + 1
    st.container(key="runs").markdown(f"run {st.session_state.runs}")
    """
)

# Installed in the page before it loads: counts the messages the server sends (a fragment's run can be shorter than a
# frame and never show its "running" state, so the state alone cannot tell that a run happened), and notes the time
# of the last message, image loaded or change of the main area, and of the frame drawn after it.
_WATCH = """(() => {
  const watch = window.__watch = {messages: 0, last: 0, painted: 0};
  watch.touch = () => {
    watch.last = performance.now();
    requestAnimationFrame(() => { watch.painted = performance.now(); });
  };
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", () => { watch.messages += 1; watch.touch(); });
    }
  };
  document.addEventListener("load", event => { if (event.target instanceof HTMLImageElement) watch.touch(); }, true);
})()"""

# Installed before each action: remembers the last pointer-down or key-down before the server answered (the moment a
# person acts), then resolves once the server has answered, the app is idle, every image has loaded and nothing has
# arrived or changed in the main area for QUIET ms: with the time of the frame drawn after the last of those (NaN
# after 20 s without an answer).
QUIET_MS = 150
_ARM = """(quiet) => {
  const app = document.querySelector("[data-testid='stApp']");
  const main = document.querySelector("[data-testid='stMain']") || app;
  const watch = window.__watch, heard = watch.messages;
  let start = performance.now();
  const answered = () => watch.messages > heard;
  const mark = () => { if (!answered()) start = performance.now(); };
  document.addEventListener("pointerdown", mark, true);
  document.addEventListener("keydown", mark, true);
  const observer = new MutationObserver(() => { if (answered()) watch.touch(); });
  observer.observe(main, {subtree: true, childList: true, attributes: true, characterData: true});
  window.__clickDone = new Promise(resolve => {
    const done = value => {
      observer.disconnect();
      document.removeEventListener("pointerdown", mark, true);
      document.removeEventListener("keydown", mark, true);
      resolve(value);
    };
    const check = () => {
      const now = performance.now();
      if (now - start > 20000) return done(NaN);
      const idle = app.getAttribute("data-test-script-state") === "notRunning";
      const loaded = Array.from(document.images).every(image => image.complete);
      if (answered() && idle && loaded && now - watch.last > quiet && watch.painted >= watch.last) {
        return done(watch.painted - start);
      }
      setTimeout(check, 10);
    };
    check();
  });
}"""


@contextlib.contextmanager
def serve(script: Path, home: Path, port: int, *options: str) -> Iterator[tuple[str, float]]:
    """``streamlit run script [options]`` offline, its store under ``home``; yields its URL and seconds to its health
    check. Either script reads the app's ``.streamlit/config.toml`` (the server runs in the repository)."""
    env = {
        **os.environ,
        "CNN_EXPLORER_OFFLINE": "1",
        "CNN_EXPLORER_HOME": str(home / "home"),
        "TORCH_HOME": str(home / "torch"),
    }
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
        *options,
    ]
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as answer:
                if answer.status == 200:
                    break
            if process.poll() is not None or time.perf_counter() - started > 180:
                raise RuntimeError(f"streamlit run {script.name} did not start")
            time.sleep(0.1)
        yield url, time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def idle(page) -> None:
    page.wait_for_timeout(150)
    page.wait_for_selector(IDLE, state="attached")


def timed(page, act: Callable[[], object]) -> float:
    """Milliseconds from the action to idle, measured in the page (see ``_ARM``)."""
    page.wait_for_selector(IDLE, state="attached")
    page.evaluate(_ARM, QUIET_MS)
    act()
    return float(page.evaluate("() => window.__clickDone"))


def choose(page, container, label: str, option: str) -> None:
    """Pick ``option`` of the selectbox ``label`` as a person does (tests/e2e/browser.py's way)."""
    container.get_by_test_id("stSelectbox").filter(has_text=label).click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option, exact=True).click()


def _nav(page, name: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
    idle(page)


def _segment(page, key: str, label: str) -> None:
    page.locator(f".st-key-{key}").get_by_text(label, exact=True).click()


def _slider_key(page, key: str, press: str) -> None:
    page.locator(f".st-key-{key}").get_by_role("slider").focus()
    page.keyboard.press(press)


def browser_clicks(
    url: str,
    trivial_url: str,
    repeats: int,
    model_name: str,
    only: str | None = None,
    default_url: str | None = None,
) -> dict[str, list[float]]:
    """Click-to-idle samples in milliseconds per interaction (the first of each, a warm-up, left out).

    ``default_url``: the trivial page served with Streamlit's own runner settings, for comparison (the app's config
    turns off the garbage collection Streamlit forces after every run, which makes the trivial page faster too)."""
    from playwright.sync_api import sync_playwright

    from cnn_explorer import METHODS, render

    samples: dict[str, list[float]] = {}

    def run(name: str, actions: list[Callable[[], object]]) -> None:
        if only and not (name.startswith(only) or name.startswith("bare")):
            return
        try:
            times = [timed(page, actions[i % len(actions)]) for i in range(repeats + 1)]
        except Exception as err:  # one interaction the page no longer offers must not lose the others' figures
            print(f"{name}: not measured ({type(err).__name__}: {str(err).splitlines()[0]})")
            page.keyboard.press("Escape")
            idle(page)
            return
        samples[name] = times[1:]
        print(f"  {name}: {', '.join(f'{t:.0f}' for t in times)} ms (the first a warm-up)", flush=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.add_init_script(_WATCH)
        page.set_default_timeout(30_000)
        page.goto(trivial_url)
        idle(page)
        run(BARE, [lambda: page.get_by_role("button", name="Rerun").click()])
        if default_url:
            page.goto(default_url)
            idle(page)
            run(BARE_DEFAULTS, [lambda: page.get_by_role("button", name="Rerun").click()])

        page.goto(url)
        idle(page)
        if model_name != page.get_by_test_id("stSidebar").get_by_role("combobox", name="Model").input_value():
            choose(page, page.get_by_test_id("stSidebar"), "Model", model_name)
            idle(page)
        _nav(page, "Layers")
        # As a lecture steps: forward through layers not seen before, then back over them.
        run("Layers: next layer", [lambda: page.get_by_role("button", name="Next").click()])
        run("Layers: previous layer", [lambda: page.get_by_role("button", name="Previous").click()])
        tiles = page.locator(f"[class*='st-key-layer_grid_'] g.{render.GRID_TILES_VIEW}_marks path")
        run("Layers: pick a channel (click a map)", [lambda: tiles.nth(1).click(), lambda: tiles.nth(0).click()])
        labels = [scale.label for scale in render.SCALES.values()]
        run(
            "Layers: colour scale",
            [lambda: _segment(page, "layer_scope", labels[1]), lambda: _segment(page, "layer_scope", labels[0])],
        )

        _nav(page, "Explain")
        main = page.get_by_test_id("stMain")
        options = main.get_by_test_id("stSelectbox").filter(has_text="Explain the class")
        options.click()
        names = page.get_by_role("option").all_inner_texts()[:2]
        page.keyboard.press("Escape")
        run(
            "Explain: class (maps computed)",
            [
                lambda: choose(page, main, "Explain the class", names[1]),
                lambda: choose(page, main, "Explain the class", names[0]),
            ],
        )
        saliency = METHODS["saliency"].name  # computed already: drop it, then add it back

        def add_method() -> None:
            main.locator(".st-key-explain_methods").get_by_role("combobox").click()
            page.keyboard.type(saliency)
            page.get_by_role("option", name=saliency, exact=True).click()
            page.keyboard.press("Escape")

        run(
            "Explain: method (maps computed)",
            [lambda: main.get_by_role("button", name=f"Remove {saliency}").click(), add_method],
        )
        run(
            "Explain: colour map",
            [
                lambda: choose(page, main, "Colour map", render.HEAT_CMAPS[1]),
                lambda: choose(page, main, "Colour map", render.HEAT_CMAPS[0]),
            ],
        )

        _nav(page, "Playground")
        main = page.get_by_test_id("stMain")
        choose(page, main, "Kernel", "Sobel x")  # tests/e2e/test_e2e_playground.py edits this kernel's table
        idle(page)
        grid = main.get_by_test_id("stDataFrame").first

        edited = []

        def weight(value: str) -> None:
            """The middle row's left weight, typed as a person does: click the cell the first time; then Enter has
            moved the selection down a row, and ArrowUp brings it back (a second click on the grid was not always
            taken as a new selection)."""
            if edited:
                page.keyboard.press("ArrowUp")
            else:
                box = grid.bounding_box()
                grid.click(position={"x": box["width"] / 6, "y": 35 + 1.5 * 35})
            page.keyboard.type(value)  # opens the grid's editor with the value: Enter commits it, the timed key
            page.locator("#portal").locator("input, textarea").first.wait_for()
            page.keyboard.press("Enter")
            edited.append(value)

        run("Playground: a kernel weight", [lambda: weight("3"), lambda: weight("4")])
        run(
            "Playground: stride",
            [
                lambda: _slider_key(page, "conv_stride", "ArrowRight"),
                lambda: _slider_key(page, "conv_stride", "ArrowLeft"),
            ],
        )
        run(
            "Playground: padding",
            [
                lambda: _slider_key(page, "conv_padding", "ArrowRight"),
                lambda: _slider_key(page, "conv_padding", "ArrowLeft"),
            ],
        )
        _segment(page, "playground_view", "Pooling")
        idle(page)
        run(
            "Playground: pooling kind",
            [lambda: _segment(page, "pool_kind", "average"), lambda: _segment(page, "pool_kind", "max")],
        )
        _segment(page, "playground_view", "Activations")
        idle(page)
        acts = _activation_names()
        run(
            "Playground: activation",
            [lambda: choose(page, main, "Activation", acts[1]), lambda: choose(page, main, "Activation", acts[0])],
        )
        browser.close()
    return samples


def _activation_names() -> list[str]:
    from cnn_explorer.playground import ACTIVATIONS

    return [spec.name for spec in ACTIVATIONS.values()]


def server_reruns(home: Path, repeats: int, only: str | None = None) -> dict[str, list[float]]:
    """Server-side milliseconds of each interaction's rerun under AppTest (after one warm-up each)."""
    from cnn_explorer import render
    from cnn_explorer.playground import ACTIVATIONS

    at = served_app(home)
    samples: dict[str, list[float]] = {}

    def run(name: str, actions: list[Callable[[], object]]) -> None:
        if only and not (name.startswith(only) or name.startswith("bare")):
            return
        times = []
        for i in range(repeats + 1):
            started = time.perf_counter()
            actions[i % len(actions)]()
            times.append((time.perf_counter() - started) * 1e3)
            if at.exception:
                raise RuntimeError(f"{name}: {[e.value for e in at.exception]}")
        samples[name] = times[1:]

    run("bare rerun of the home page", [lambda: at.run()])
    at.switch_page("pages/layers.py").run()
    run("Layers: next layer", [lambda: at.button(key="layer_step_next").click().run()])
    run("Layers: previous layer", [lambda: at.button(key="layer_step_previous").click().run()])
    run(
        "Layers: pick a channel",
        [
            lambda: at.number_input(key="layer_channel").set_value(1).run(),
            lambda: at.number_input(key="layer_channel").set_value(0).run(),
        ],
    )
    scales = list(render.SCALES)
    run(
        "Layers: colour scale",
        [
            lambda: at.segmented_control(key="layer_scope").set_value(scales[1]).run(),
            lambda: at.segmented_control(key="layer_scope").set_value(scales[0]).run(),
        ],
    )
    at.switch_page("pages/explain.py").run()
    target = next(box.key for box in at.selectbox if box.key and box.key.startswith("explain_target_"))
    run(
        "Explain: class (maps computed)",
        [
            lambda: at.selectbox(key=target).select_index(1).run(),
            lambda: at.selectbox(key=target).select_index(0).run(),
        ],
    )
    run(
        "Explain: method (maps computed)",
        [
            lambda: at.multiselect(key="explain_methods").unselect("saliency").run(),
            lambda: at.multiselect(key="explain_methods").select("saliency").run(),
        ],
    )
    cmaps = render.HEAT_CMAPS
    run(
        "Explain: colour map",
        [
            lambda: at.selectbox(key="explain_cmap").select(cmaps[1]).run(),
            lambda: at.selectbox(key="explain_cmap").select(cmaps[0]).run(),
        ],
    )
    at.switch_page("pages/playground.py").run()
    run(
        "Playground: stride",
        [
            lambda: at.slider(key="conv_stride").set_value(2).run(),
            lambda: at.slider(key="conv_stride").set_value(1).run(),
        ],
    )
    run(
        "Playground: padding",
        [
            lambda: at.slider(key="conv_padding").set_value(1).run(),
            lambda: at.slider(key="conv_padding").set_value(0).run(),
        ],
    )
    at.segmented_control(key="playground_view").set_value("pooling").run()
    run(
        "Playground: pooling kind",
        [
            lambda: at.segmented_control(key="pool_kind").set_value("average").run(),
            lambda: at.segmented_control(key="pool_kind").set_value("max").run(),
        ],
    )
    at.segmented_control(key="playground_view").set_value("activations").run()
    acts = list(ACTIVATIONS)
    run(
        "Playground: activation",
        [
            lambda: at.selectbox(key="act_apply").select(acts[1]).run(),
            lambda: at.selectbox(key="act_apply").select(acts[0]).run(),
        ],
    )
    return samples


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def table(browser: dict[str, list[float]], server: dict[str, list[float]]) -> list[str]:
    """The results as a Markdown table, against the issue's goals."""
    bare = statistics.median([v for v in browser[BARE] if not math.isnan(v)])
    lines = [
        "| interaction | click→idle median (ms) | p95 (ms) | × bare rerun | server rerun median (ms) | goal met |",
        "|---|---|---|---|---|---|",
    ]
    for name, measured in browser.items():
        values = [value for value in measured if not math.isnan(value)]  # NaN: no run within 20 s of the action
        if not values:
            lines.append(f"| {name} | no run seen | | | | ✗ |")
            continue
        if len(values) < len(measured):
            name = f"{name} ({len(measured) - len(values)} of {len(measured)} saw no run)"
        median = statistics.median(values)
        ratio = median / bare
        if name.startswith(BARE_DEFAULTS):  # a reference, not an interaction of the app
            lines.append(f"| {name} | {median:.0f} | {p95(values):.0f} | {ratio:.2f} | – | |")
            continue
        served = statistics.median(server[name.split(" (")[0]]) if name.split(" (")[0] in server else None
        met = median <= GOAL_MS and ratio <= GOAL_RATIO and (served is None or served <= GOAL_SERVER_MS)
        shown = f"{served:.0f}" if served is not None else "–"
        lines.append(f"| {name} | {median:.0f} | {p95(values):.0f} | {ratio:.2f} | {shown} | {'✓' if met else '✗'} |")
        record(
            "clicks",
            f"click to idle in Chromium: {name} (median, p95)",
            f"{median:.0f} ms, {p95(values):.0f} ms",
            f"≤ {GOAL_MS} ms, ≤ {GOAL_RATIO:g}× bare",
            met,
        )
    bare_server = server.get("bare rerun of the home page")
    if bare_server:
        lines.append(f"| (server) bare rerun of the home page | – | – | – | {statistics.median(bare_server):.0f} | |")
    return lines


def seed_imagenet_weights(torch_home: Path, name: str) -> None:
    """Put random weights for the ImageNet model ``name`` where torch's hub cache under ``torch_home`` looks for its
    default weights: the app loads it offline (the figures measure speed, which the weights' values do not change)."""
    import torch

    from cnn_explorer.torchvision_catalog import DEFAULT_WEIGHTS, models

    path = torch_home / "hub" / "checkpoints" / DEFAULT_WEIGHTS[name].file
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(models().get_model(name, weights=None).state_dict(), path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8, help="timed repeats per interaction (after one warm-up)")
    parser.add_argument("--model", default="tinyvgg-shapes")
    parser.add_argument("--no-server", action="store_true", help="skip the AppTest reruns")
    parser.add_argument("--only", help="only the interactions whose name starts with this (Layers, Explain …)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as work:
        home = Path(work)
        trivial = home / "trivial.py"
        trivial.write_text(TRIVIAL)
        from cnn_explorer.torchvision_catalog import DEFAULT_WEIGHTS

        if args.model in DEFAULT_WEIGHTS:  # offline: random weights in the app's hub cache
            seed_imagenet_weights(home / "app" / "torch", args.model)
        healthy, first_page = cold_start(home / "cold")  # alone, before the two servers below start
        if first_page is not None:
            print(f"cold start: healthy after {healthy:.1f} s, first page rendered after {first_page:.1f} s")
            record(
                "clicks",
                "cold start: `streamlit run` to the first page rendered",
                f"{first_page:.1f} s",
                "≤ 5 s",
                first_page <= 5,
            )
        with (
            serve(REPO / "app.py", home / "app", _free_port()) as (url, _),
            serve(trivial, home / "trivial", _free_port()) as (trivial_url, _),
            serve(trivial, home / "defaults", _free_port(), "--runner.postScriptGC=true") as (default_url, _),
        ):
            clicks = browser_clicks(url, trivial_url, args.repeats, args.model, args.only, default_url)
        server = {} if args.no_server else server_reruns(home / "apptest", args.repeats, args.only)
    after = os.getloadavg()
    print(f"model {args.model}, {args.repeats} timed repeats each; load average {load[0]:.1f} → {after[0]:.1f}")
    print("\n".join(table(clicks, server)))


if __name__ == "__main__":
    main()
