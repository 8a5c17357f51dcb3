"""report.pdf: the PDF printed by Chromium on A4, or a ReportError saying how to install it, what a failing
Chromium said, or that it was stopped at the timeout (its helper processes too)."""

import re
import time
from pathlib import Path

import pytest

from cnn_explorer.report import ReportError, find_chromium, to_pdf

needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="no Chromium on PATH to print the PDF")


@needs_chromium
def test_the_pdf_is_printed_by_chromium(report) -> None:
    pdf = to_pdf(report.html)
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) >= 1
    boxes = re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf)
    assert boxes
    for width, height in boxes:  # A4 in points (210 × 297 mm), from the page's @page rule
        assert (float(width), float(height)) == pytest.approx((595.28, 841.89), abs=0.5)


def test_without_chromium_a_report_error_says_how_to_install_it(
    report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    assert find_chromium() is None
    with pytest.raises(ReportError, match=r"apt-get install chromium.*download the HTML report"):
        to_pdf(report.html)


def _fake_chromium(folder: Path, script: str) -> None:
    path = folder / "chromium"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def test_a_failing_chromium_is_reported_with_what_it_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_chromium(tmp_path, "echo 'cannot open display' >&2\nexit 3")
    monkeypatch.setenv("PATH", f"{tmp_path}:/bin:/usr/bin")
    assert find_chromium() == str(tmp_path / "chromium")
    with pytest.raises(ReportError, match=r"exit code 3.*cannot open display"):
        to_pdf("<html></html>")


def _running(pid: int) -> bool:
    """True while ``pid`` runs (a killed orphan may linger as a zombie until it is reaped: that counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_hanging_chromium_is_stopped_at_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper = tmp_path / "helper.pid"
    # Like Chromium, it starts a helper process: the helper must not outlive the timeout either.
    _fake_chromium(tmp_path, f"sleep 60 &\necho $! > {helper}\nwait")
    monkeypatch.setenv("PATH", f"{tmp_path}:/bin:/usr/bin")
    started = time.monotonic()
    with pytest.raises(ReportError, match="did not finish printing the PDF within 1 s"):
        to_pdf("<html></html>", timeout=1)
    assert time.monotonic() - started < 10
    pid = int(helper.read_text())
    deadline = time.monotonic() + 5
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid)
