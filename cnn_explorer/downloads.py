"""Downloading a file, written once: the offline switch, one timeout, atomic writes, checksums, reasons in words.

The zoo's ImageNet weights and the torchvision datasets both download through :func:`download`. It refuses at once
when ``CNN_EXPLORER_OFFLINE`` is set (:class:`Offline`), writes to a temporary file next to the destination and
renames it only when the whole file arrived with the expected checksum, so an interrupted or damaged download leaves
nothing behind. Every failure is a :class:`DownloadError` whose ``reason`` says why in plain words (never a raw
``<urlopen error …>``); the caller wraps it in its own message saying what to do.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from cnn_explorer.progress import ByteProgress

__all__ = ["OFFLINE_VARIABLE", "TIMEOUT_S", "DownloadError", "Offline", "download", "is_offline", "plain_reason"]

#: Set (to anything) to forbid every download: the app then uses only what is on disk.
OFFLINE_VARIABLE = "CNN_EXPLORER_OFFLINE"
#: Seconds a connection may stay silent (while connecting, or between two reads) before the download fails.
TIMEOUT_S = 15
_CHUNK = 1 << 20
_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH}  # no route out: no internet connection
_DISK_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT}


class DownloadError(OSError):
    """A download that failed; ``reason`` says why, in words a user can read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Offline(DownloadError):
    """The app is set to work offline (``CNN_EXPLORER_OFFLINE``): nothing was tried."""

    def __init__(self) -> None:
        super().__init__("the app is set to work offline")


def is_offline() -> bool:
    """Whether ``CNN_EXPLORER_OFFLINE`` forbids downloads."""
    return bool(os.environ.get(OFFLINE_VARIABLE))


def download(
    url: str,
    destination: Path,
    progress: ByteProgress | None = None,
    *,
    md5: str | None = None,
    sha256_prefix: str | None = None,
) -> None:
    """Download ``url`` to ``destination`` atomically, checking its checksum when one is given.

    Args:
        url: Where the file is.
        destination: Where it goes; its folder is created.
        progress: Called with (bytes done, bytes in all or None) after each chunk; whatever it raises ends the
            download (the partial file is removed) and reaches the caller.
        md5: The whole file's md5 (torchvision publishes these for its datasets).
        sha256_prefix: The first digits of the file's SHA-256 (torch.hub's checkpoint names end with them).

    Raises:
        Offline: ``CNN_EXPLORER_OFFLINE`` is set.
        DownloadError: The download failed or arrived damaged; ``reason`` says which.
    """
    if is_offline():
        raise Offline
    destination.parent.mkdir(parents=True, exist_ok=True)
    md5_digest = hashlib.md5(usedforsecurity=False)  # published checksums: they detect damage, not tampering
    sha256_digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=destination.parent, prefix=f".{destination.name}.", delete=False) as tmp:
        try:
            try:
                with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length else None
                    done = 0
                    while chunk := response.read(_CHUNK):
                        tmp.write(chunk)
                        md5_digest.update(chunk)
                        sha256_digest.update(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
            except (urllib.error.URLError, OSError, ValueError) as err:  # ValueError: not a URL urllib can open
                raise DownloadError(plain_reason(err)) from err
            damaged = (md5 is not None and md5_digest.hexdigest() != md5) or (
                sha256_prefix is not None and not sha256_digest.hexdigest().startswith(sha256_prefix)
            )
            if damaged:
                raise DownloadError("the file arrived damaged: checksum mismatch")
        except BaseException:
            tmp.close()
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, destination)


def plain_reason(err: BaseException) -> str:
    """Why a download failed, in words (never the raw ``<urlopen error …>``)."""
    if isinstance(err, DownloadError):
        return err.reason
    if isinstance(err, urllib.error.HTTPError):
        return f"the server answered {err.code} {err.reason}".rstrip()
    cause = err.reason if isinstance(err, urllib.error.URLError) else err
    if isinstance(cause, TimeoutError):
        return "the download timed out"
    if isinstance(cause, OSError) and cause.errno in _DISK_ERRNOS:
        return f"it could not be saved: {os.strerror(cause.errno).lower()}"
    if isinstance(cause, str | socket.gaierror | ConnectionError) or getattr(cause, "errno", None) in _NETWORK_ERRNOS:
        return "no internet connection"
    return "the connection failed"
