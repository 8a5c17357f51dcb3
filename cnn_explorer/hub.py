"""ImageNet weights in torch's hub cache: where a torchvision checkpoint is kept, and its download (through
:mod:`cnn_explorer.downloads`, hash checked as torch.hub does, every failure said in words). The ImageNet source
(:mod:`cnn_explorer.sources.imagenet`) builds on :func:`_checkpoint_path` and :func:`_download`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch

from cnn_explorer import downloads
from cnn_explorer.model import ModelUnavailable
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.progress import ByteProgress

if TYPE_CHECKING:
    import torchvision.models

# torch.hub's convention: a checkpoint file name ends with the first digits of its SHA-256.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")


def weights_preprocess(weights: torchvision.models.WeightsEnum) -> Preprocess:
    """The preprocessing torchvision's ``weights`` were trained with (their resize, crop, mean and std)."""
    transforms = weights.transforms()
    return Preprocess(
        resize=transforms.resize_size[0],
        crop=transforms.crop_size[0],
        mean=tuple(transforms.mean),
        std=tuple(transforms.std),
    )


def _checkpoint_path(weights: torchvision.models.WeightsEnum) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` keeps these weights (honours ``TORCH_HOME``)."""
    return checkpoint_file(os.path.basename(urlparse(weights.url).path))


def checkpoint_file(name: str) -> Path:
    """Where torch's hub cache keeps the checkpoint file ``name`` (honours ``TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _download(url: str, path: Path, progress: ByteProgress | None, name: str | None = None) -> None:
    """Download ``url`` to ``path`` (:func:`~cnn_explorer.downloads.download`), checking the hash prefix in the file
    name as torch.hub does; a failure is a :class:`ModelUnavailable` that says why and what to do.

    Args:
        name: The model the weights are for, named in the messages (default: the file's name).
    """
    match = _HASH_IN_NAME.search(path.name)
    try:
        downloads.download(url, path, progress, sha256_prefix=match.group(1) if match else None)
    except downloads.DownloadError as err:
        what = f"{name}'s weights" if name else f"The weights {path.name}"
        fix = (
            f"start the app online without {downloads.OFFLINE_VARIABLE} set"
            if isinstance(err, downloads.Offline)
            else "connect to the internet and choose it again"
        )
        raise ModelUnavailable(
            f"{what} are not on this computer and could not be downloaded ({err.reason}). To use it: {fix}, or put "
            f"the file {path.name} (from {url}) in {path.parent}."
        ) from err
