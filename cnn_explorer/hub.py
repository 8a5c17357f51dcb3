"""ImageNet weights in torch's hub cache: where a torchvision checkpoint is kept, and its download (atomic, hash
checked as torch.hub does, every failure said in words). The ImageNet source (:mod:`cnn_explorer.sources.imagenet`)
builds on :func:`_checkpoint_path` and :func:`_download` (kept under the names they had in the zoo).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision.models

from cnn_explorer.model import ModelUnavailable, ProgressFn

_DOWNLOAD_TIMEOUT_S = 10
_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH}  # no route out: no internet connection
_DISK_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT}
# torch.hub's convention: a checkpoint file name ends with the first digits of its SHA-256.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")


def _checkpoint_path(weights: torchvision.models.WeightsEnum) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` keeps these weights (honours ``TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _download(url: str, path: Path, progress: ProgressFn | None, name: str | None = None) -> None:
    """Download ``url`` to ``path`` atomically, checking the hash prefix in the file name as torch.hub does.

    Args:
        name: The model the weights are for, named in the messages (default: the file's name).
    """
    what = f"{name}'s weights" if name else f"The weights {path.name}"

    def unavailable(reason: str, fix: str = "connect to the internet and choose it again") -> ModelUnavailable:
        return ModelUnavailable(
            f"{what} are not on this computer and could not be downloaded ({reason}). To use it: {fix}, or put "
            f"the file {path.name} (from {url}) in {path.parent}."
        )

    if os.environ.get("CNN_EXPLORER_OFFLINE"):
        raise unavailable("the app is set to work offline", "start the app online without CNN_EXPLORER_OFFLINE set")
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length else None
                done = 0
                while chunk := response.read(1 << 20):
                    tmp.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            tmp.close()
            os.unlink(tmp.name)
            raise unavailable(_plain_reason(err)) from err
    match = _HASH_IN_NAME.search(path.name)
    if match and not digest.hexdigest().startswith(match.group(1)):
        os.unlink(tmp.name)
        raise ModelUnavailable(f"The download of {path.name} was corrupted (hash mismatch). Choose the model again.")
    os.replace(tmp.name, path)


def _plain_reason(err: BaseException) -> str:
    """Why a download failed, in words (never the raw ``<urlopen error …>``)."""
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
