"""Printing the report to PDF: :func:`to_pdf` runs headless Chromium on the page and stops it at a timeout.

The HTML report (:func:`~cnn_explorer.report.build.build_report`) is complete without it; a :class:`ReportError`
says why no PDF could be printed and what to do instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

__all__ = ["CHROMIUM_NAMES", "PDF_TIMEOUT_S", "ReportError", "find_chromium", "to_pdf"]


#: Executables tried, in order, to print the PDF.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PDF_TIMEOUT_S = 120.0


class ReportError(RuntimeError):
    """The PDF cannot be printed here (no Chromium, or Chromium failed); the HTML report is unaffected."""


def find_chromium() -> str | None:
    """The path of the first of :data:`CHROMIUM_NAMES` on ``PATH``, or None."""
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return None


def to_pdf(html: str, *, timeout: float = PDF_TIMEOUT_S, chromium: str | None = None) -> bytes:
    """Print an HTML page (a :attr:`Report.html`) to PDF with headless Chromium: A4, as laid out by the page's CSS.

    Args:
        html: The page. It is written to a temporary file; nothing is fetched while printing.
        timeout: Seconds before Chromium is stopped.
        chromium: The browser executable; None means :func:`find_chromium`.

    Raises:
        ReportError: No Chromium found (the message says how to install it), Chromium failed or ran out of time.
    """
    executable = chromium or find_chromium()
    if executable is None:
        raise ReportError(
            "Printing the PDF needs Chromium or Google Chrome, and none was found "
            f"(looked for {', '.join(CHROMIUM_NAMES)} on PATH). Install it — Debian/Ubuntu: "
            "`sudo apt-get install chromium`; macOS: `brew install --cask chromium`; Windows: install Google Chrome — "
            "or download the HTML report and print it to PDF from any browser."
        )
    with tempfile.TemporaryDirectory(prefix="cnn-explorer-report-") as folder:
        work = Path(folder)
        page, pdf = work / "report.html", work / "report.pdf"
        page.write_text(html, encoding="utf-8")
        command = [
            executable,
            "--headless",
            "--no-sandbox",  # containers and CI run as root, where the sandbox refuses to start
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            f"--user-data-dir={work / 'profile'}",  # a profile of its own: a running browser's is locked
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            page.as_uri(),
        ]
        log = work / "chromium.log"
        with log.open("wb") as output:
            # A session of its own so that a timeout stops Chromium's helper processes too.
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True
            )
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                raise ReportError(
                    f"Chromium ({executable}) did not finish printing the PDF within {timeout:g} s. Try again, or "
                    "download the HTML report and print it from a browser."
                ) from None
        data = pdf.read_bytes() if pdf.exists() else b""
        if code != 0 or not data.startswith(b"%PDF"):
            tail = log.read_text(errors="replace").strip()[-600:]
            raise ReportError(
                f"Chromium ({executable}) could not print the PDF (exit code {code}). Download the HTML report "
                f"and print it from a browser instead. Chromium said: {tail or 'nothing'}"
            )
        return data


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (AttributeError, ProcessLookupError, PermissionError):  # no process groups (Windows), or already gone
        process.kill()
    process.wait()
