"""Real-browser fixtures: ``streamlit run app.py`` on a free port, and Debian's Chromium driven by Playwright.

Never ``playwright install``: the browser is the system's /usr/bin/chromium (``CNN_EXPLORER_CHROMIUM`` names another;
``make test`` installs it where it is missing). Without it the session stops before the first test, with one line
that says what to run.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from expected import Expected  # tests/expected.py, shared by the app and browser tiers

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CNN_EXPLORER_CHROMIUM") or "/usr/bin/chromium")
MISSING_CHROMIUM = f"The browser tests need Chromium at {CHROMIUM}: run `sudo apt-get install -y chromium`."
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
STARTUP_TIMEOUT_S = 60
VIEWPORT = {"width": 1400, "height": 900}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stop the session at once, in one line, when browser tests were collected and there is no browser: not one
    error per test."""
    here = Path(__file__).resolve().parent
    if not CHROMIUM.exists() and any(here in Path(item.path).resolve().parents for item in items):
        pytest.exit(MISSING_CHROMIUM, returncode=pytest.ExitCode.USAGE_ERROR)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited with code {process.returncode} before answering.\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit did not answer {url}/_stcore/health within {STARTUP_TIMEOUT_S} s.\n{_tail(log)}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app served by ``streamlit run``, offline and with an empty torch hub cache; yields its URL."""
    work = tmp_path_factory.mktemp("e2e-server")
    torch_home = work / "torch"
    torch_home.mkdir()
    port = _free_port()
    env = {
        **os.environ,
        "CNN_EXPLORER_OFFLINE": "1",
        "TORCH_HOME": str(torch_home),
        "CNN_EXPLORER_HOME": str(work / "home"),
    }
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
    ]
    log = work / "streamlit.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(MISSING_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server: str):
    """A fresh browser session (its own Streamlit session) on the app, idle after the first run."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(90_000)  # a cold first run on a busy 2-core machine takes a while
    page.goto(server)
    wait_idle(page)
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (ignored by git)."""
    ARTIFACTS.mkdir(exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return ARTIFACTS


def wait_idle(page, settle_ms: int = 400) -> None:
    """Wait until the script run that the last action started has finished.

    The short pause first lets a rerun begin, so an app that has not yet noticed the action does not count as idle.
    """
    page.wait_for_timeout(settle_ms)
    page.wait_for_selector(_IDLE, state="attached")
    page.wait_for_function("Array.from(document.images).every(image => image.complete)")


@pytest.fixture(scope="session")
def idle():
    """:func:`wait_idle`, for the tests (call it after every action)."""
    return wait_idle


def screenshot(page, path: Path, wait: bool = True) -> None:
    """Save the whole page: the viewport grows to the app's scroll height, the sidebar's included (Streamlit scrolls
    inside its own containers, so Playwright's ``full_page`` alone would stop at the viewport), then returns to its
    size. The page is measured once its run has ended (an element still to come would be cut off); ``wait=False``
    shoots it as it is, even mid-run (a failed test's page)."""
    if wait:
        wait_idle(page, settle_ms=200)
    height = page.evaluate(
        "() => Math.max(...[document.body, ...document.querySelectorAll("
        "'[data-testid=stMain], [data-testid=stSidebarContent], section')]"
        ".map(element => element.scrollHeight))"
    )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], height)})
    try:
        if wait:
            wait_idle(page, settle_ms=200)
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(VIEWPORT)


@pytest.fixture(scope="session")
def save_screenshot(artifacts: Path):
    """``save_screenshot(page, "home.png")`` writes ``tests/e2e/artifacts/home.png``."""
    return lambda page, name: screenshot(page, artifacts / name)


@pytest.fixture(scope="session")
def expected() -> type[Expected]:
    return Expected


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the test, so a fixture's teardown knows whether the test failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture
def tour(page, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], None]]:
    """``tour("upload")`` ends a step of the tour: the page's next numbered screenshot, as
    ``tests/e2e/artifacts/tour/02-upload.png``, then no Python traceback on the page.

    The folder is emptied first, so no screenshot of an earlier run passes for this one's. Each screenshot is written
    as the tour goes, and a tour that fails adds ``NN-failed.png`` of the page as it was: a failing CI run keeps them.
    """
    folder = artifacts / "tour"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    steps = 0

    def step(name: str) -> None:
        nonlocal steps
        steps += 1
        page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] // 2)  # in the margin: no hover toolbar or outline
        screenshot(page, folder / f"{steps:02d}-{name}.png")
        assert "Traceback" not in page.inner_text("body")
        assert not page.get_by_test_id("stException").count()

    yield step
    call = request.node.stash.get(_REPORTS, {}).get("call")
    if call is not None and call.failed:
        from playwright.sync_api import Error

        with contextlib.suppress(Error):  # a page that cannot be shot any more must not hide the failure
            screenshot(page, folder / f"{steps + 1:02d}-failed.png", wait=False)
