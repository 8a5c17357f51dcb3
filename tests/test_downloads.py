"""Downloads written once (cnn_explorer.downloads): offline switch, atomic write, checksums, progress, plain reasons.

Nothing downloads: the files are served from ``file://`` URLs or a replaced ``urlopen``.
"""

import errno
import hashlib
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cnn_explorer import downloads
from cnn_explorer.downloads import DownloadError, Offline, download, plain_reason
from cnn_explorer.progress import Cancelled


def _served_file(tmp_path: Path, content: bytes, hash_prefix: str) -> tuple[str, Path]:
    source = tmp_path / "served" / f"weights-{hash_prefix}.pth"
    source.parent.mkdir()
    source.write_bytes(content)
    return source.as_uri(), tmp_path / "cache" / source.name


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNN_EXPLORER_OFFLINE", raising=False)


def test_download_reports_progress_and_checks_the_hash(tmp_path: Path) -> None:
    content = b"x" * (3 * (1 << 20) + 5)
    sha256 = hashlib.sha256(content).hexdigest()
    url, target = _served_file(tmp_path, content, sha256[:8])
    calls = []
    download(url, target, lambda done, total: calls.append((done, total)), sha256_prefix=sha256[:8])
    assert target.read_bytes() == content
    assert calls[-1] == (len(content), len(content))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_download_with_wrong_hash_leaves_nothing(tmp_path: Path) -> None:
    url, target = _served_file(tmp_path, b"tampered", "deadbeef")
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(url, target, None, sha256_prefix="deadbeef")
    assert not target.parent.exists() or not any(target.parent.iterdir())


def test_md5_is_checked_against_the_whole_file(tmp_path: Path) -> None:
    content = b"a dataset archive"
    url, target = _served_file(tmp_path, content, "0")
    with pytest.raises(DownloadError, match=r"^the file arrived damaged: checksum mismatch$"):
        download(url, target, md5=hashlib.md5(b"another file").hexdigest())
    assert not any(target.parent.iterdir())
    download(url, target, md5=hashlib.md5(content).hexdigest())
    assert target.read_bytes() == content


def test_offline_refuses_without_trying(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNN_EXPLORER_OFFLINE", "1")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("tried the network"))
    assert downloads.is_offline()
    with pytest.raises(Offline) as raised:
        download("https://example.invalid/file", tmp_path / "file")
    assert raised.value.reason == "the app is set to work offline"
    assert not (tmp_path / "file").exists()


def test_a_cancel_from_the_progress_callback_leaves_no_partial_file(tmp_path: Path) -> None:
    """Whatever the callback raises ends the download and reaches the caller (before, the zoo's downloader left its
    temporary file behind for anything but a network error)."""
    url, target = _served_file(tmp_path, b"y" * (3 << 20), "0")

    def cancel(done: int, total: int | None) -> None:
        raise Cancelled("Stopped before training began.")

    with pytest.raises(Cancelled):
        download(url, target, cancel)
    assert not any(target.parent.iterdir())


def test_one_timeout_for_every_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []

    def urlopen(url: str, timeout: float) -> None:
        asked.append(timeout)
        raise urllib.error.URLError(TimeoutError("timed out"))

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(DownloadError, match=r"^the download timed out$"):
        download("https://example.invalid/file", tmp_path / "file")
    assert asked == [downloads.TIMEOUT_S]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")), "no internet connection"),
        (urllib.error.URLError(OSError(errno.ENETUNREACH, "Network is unreachable")), "no internet connection"),
        (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "no internet connection"),
        (urllib.error.URLError("no route to host"), "no internet connection"),
        (urllib.error.URLError(TimeoutError("timed out")), "the download timed out"),
        (TimeoutError("The read operation timed out"), "the download timed out"),
        (urllib.error.HTTPError("https://x", 404, "Not Found", {}, None), "the server answered 404 Not Found"),
        (OSError(errno.ENOSPC, "No space left on device"), "it could not be saved: no space left on device"),
        (urllib.error.URLError(ssl.SSLError(1, "certificate verify failed")), "the connection failed"),
    ],
)
def test_a_failure_is_said_in_words(error: Exception, reason: str) -> None:
    assert plain_reason(error) == reason
