"""``make test`` sets up the browser its tests drive, or stops at once with one line that says what to run.

The Makefile's Chromium path and the way it becomes root are variables, so each path is tried here without touching
the machine's Chromium: a path that does not exist, ``AS_ROOT=none`` for a user without root or sudo, and a fake
``apt-get`` first on ``PATH`` for the install.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ONE_LINE = "make test needs Chromium: run `sudo apt-get install -y chromium`"


def _make(folder: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "DEBIAN_FRONTEND"}  # the recipe's own shows
    env["PATH"] = path or os.environ["PATH"]
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(folder), *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The Makefile alone in a folder: anything ``make`` would build there shows."""
    folder = tmp_path / "checkout"
    folder.mkdir()
    shutil.copy(REPO / "Makefile", folder)
    return folder


def _fake_apt_get(tmp_path: Path, creates: Path | None) -> tuple[str, Path]:
    """A ``PATH`` whose ``apt-get`` logs its arguments and environment; ``install`` creates ``creates``."""
    bin_dir, log = tmp_path / "bin", tmp_path / "apt.log"
    bin_dir.mkdir()
    make_it = f'[ "$1" = install ] && printf "#!/bin/sh\\n" > {creates} && chmod +x {creates}\n' if creates else ""
    script = bin_dir / "apt-get"
    script.write_text(f'#!/bin/sh\necho "$DEBIAN_FRONTEND $*" >> {log}\n{make_it}exit 0\n')
    script.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}", log


def test_without_chromium_or_root_make_test_stops_at_once_with_the_command_to_run(checkout: Path, tmp_path: Path):
    result = _make(checkout, "test", f"CHROMIUM={tmp_path / 'missing' / 'chromium'}", "AS_ROOT=none")
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and ONE_LINE in lines[0], result.stderr
    assert sorted(p.name for p in checkout.iterdir()) == ["Makefile"]  # stopped before the virtual environment


def test_as_root_make_test_installs_chromium_first(checkout: Path, tmp_path: Path):
    chromium = tmp_path / "chromium"
    path, log = _fake_apt_get(tmp_path, creates=chromium)
    result = _make(checkout, str(chromium), f"CHROMIUM={chromium}", "AS_ROOT=", path=path)
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [" update -q", "noninteractive install -y chromium -q"]
    assert os.access(chromium, os.X_OK)


def test_an_install_that_leaves_no_chromium_says_so(checkout: Path, tmp_path: Path):
    chromium = tmp_path / "chromium"
    path, _ = _fake_apt_get(tmp_path, creates=None)
    result = _make(checkout, str(chromium), f"CHROMIUM={chromium}", "AS_ROOT=", path=path)
    assert result.returncode != 0
    assert f"make test needs Chromium at {chromium}: installing it did not put it there" in result.stderr


def test_with_chromium_present_make_test_installs_nothing_and_hands_its_path_to_the_tests(tmp_path: Path):
    chromium = tmp_path / "chromium"
    chromium.touch(mode=0o755)
    result = _make(REPO, "-n", "test", f"CHROMIUM={chromium}", "AS_ROOT=none")
    assert result.returncode == 0, result.stderr
    assert "apt-get" not in result.stdout
    assert f"CNN_EXPLORER_CHROMIUM={chromium} .venv/bin/python -m pytest" in result.stdout


def test_the_browser_tests_without_chromium_stop_in_one_line_not_one_error_each():
    env = {**os.environ, "CNN_EXPLORER_CHROMIUM": "/nonexistent/chromium"}
    tests = ["tests/e2e/test_e2e_explain.py", "tests/e2e/test_e2e_home.py"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    expected = "The browser tests need Chromium at /nonexistent/chromium: run `sudo apt-get install -y chromium`."
    assert expected in result.stdout
    assert "error" not in result.stdout.lower() and "passed" not in result.stdout
