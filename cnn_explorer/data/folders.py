"""A user's folder of class folders: which files count as images, and the ``folder`` kind's loader.

Uploaded archives (:mod:`~cnn_explorer.data.archives`) use the same rule for what is an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnn_explorer.data.errors import DatasetError
from cnn_explorer.data.sources import _Files
from cnn_explorer.data.splits import _Split, _split_pool
from cnn_explorer.progress import ByteProgress
from cnn_explorer.runspec import DataSpec

__all__ = ["IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
"""File name endings read as images in folders and archives (the formats :func:`load_image` accepts)."""


def _load_folder(spec: DataSpec, seed: int, progress: ByteProgress | None) -> _Split:
    if not spec.path:
        raise DatasetError("A folder dataset needs a path: the folder that holds one subfolder per class.")
    root = Path(spec.path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder. Give the folder that holds one subfolder per class.")
    paths, labels, classes = [], [], []
    for folder in sorted(d for d in root.iterdir() if d.is_dir() and not _hidden(d.name)):
        files = sorted(
            (p for p in folder.rglob("*") if _is_image_name(p.relative_to(folder).parts) and p.is_file()),
            key=lambda p: p.relative_to(folder).as_posix(),
        )
        if files:
            labels += [len(classes)] * len(files)
            paths += files
            classes.append(folder.name)
    if len(classes) < 2:
        raise DatasetError(
            f"{root} has {len(classes)} class folder(s) with images ({', '.join(classes) or 'none'}); training "
            "needs at least two. Put each class's images in its own subfolder."
        )
    return _split_pool(_Files(paths), np.asarray(labels, dtype=np.int64), classes, spec, seed)


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _is_image_name(parts: Sequence[str]) -> bool:
    return bool(parts) and not any(_hidden(p) for p in parts) and Path(parts[-1]).suffix.lower() in IMAGE_EXTENSIONS
