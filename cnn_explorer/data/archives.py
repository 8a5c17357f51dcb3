"""Uploaded archives: a zip of class folders, checked before and while it is extracted (:func:`extract_zip`).

The extracted folder is a dataset of the ``folder`` kind (:mod:`~cnn_explorer.data.folders`, whose rule for what
counts as an image this shares).
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tempfile
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from cnn_explorer.data.errors import DatasetError
from cnn_explorer.data.folders import _is_image_name
from cnn_explorer.images import MAX_PIXELS

__all__ = ["MAX_ZIP_BYTES", "MAX_ZIP_FILES", "ZipReport", "extract_zip"]

MAX_ZIP_FILES = 20_000
"""Most images one uploaded archive may hold."""
MAX_ZIP_BYTES = 500 * 2**20
"""Most bytes an uploaded archive may hold once extracted (500 MB)."""


@dataclass(frozen=True)
class ZipReport:
    """What :func:`extract_zip` extracted.

    Attributes:
        folder: The dataset folder (one subfolder per class): a ``DataSpec.path`` for ``kind="folder"``.
        classes: The class names (folder names), sorted.
        counts: Images per class.
        skipped: Entries not extracted: files that are not images (by name or content), hidden files and
            ``__MACOSX`` metadata, images outside a class folder, repeated names.
    """

    folder: Path
    classes: tuple[str, ...]
    counts: dict[str, int]
    skipped: int


def extract_zip(
    data: bytes | str | os.PathLike | BinaryIO,
    target: str | os.PathLike,
    max_files: int = MAX_ZIP_FILES,
    max_bytes: int = MAX_ZIP_BYTES,
) -> ZipReport:
    """Check an uploaded zip of class folders and extract its images into ``target``.

    The archive holds one folder per class, optionally wrapped in one top-level folder. Before anything is written,
    every name is checked (no absolute path, no ``..``, no link, no encrypted entry) and the image count and
    declared total size are capped; while extracting, the bytes actually decompressed are counted against the same
    cap (an archive can lie about its sizes). Everything is extracted into a temporary folder beside ``target`` and
    renamed into place only when it all succeeded: a refused archive leaves nothing behind.

    Args:
        data: The archive: its bytes, a path, or a binary file object.
        target: The folder to create; it must not exist yet (or be empty).
        max_files: Most images extracted.
        max_bytes: Most bytes extracted.

    Returns:
        What was extracted (see :class:`ZipReport`).

    Raises:
        DatasetError: The archive is refused; the message says why and what to do.
    """
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DatasetError(f"{target} already exists. Choose another name for the dataset, or delete the old one.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes | bytearray) else data)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as err:
        raise DatasetError(
            "This file is not a zip archive (or is damaged). Put one folder of images per class into a zip file "
            "and upload that."
        ) from err
    except OSError as err:
        raise DatasetError(f"The archive cannot be read ({err}).") from err
    with archive:
        entries, skipped = _plan_extraction(archive.infolist(), max_files, max_bytes)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            counts, rejected = _extract(archive, entries, staging, max_bytes)
            classes = tuple(sorted(c for c, n in counts.items() if n > 0))
            if len(classes) < 2:
                raise DatasetError(_too_few_classes(classes))
            if target.exists():
                target.rmdir()
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return ZipReport(target, classes, {c: counts[c] for c in classes}, skipped + rejected)


def _too_few_classes(classes: Sequence[str]) -> str:
    found = f"one class folder with images ({classes[0]})" if classes else "no class folder with images"
    return (
        f"The archive has {found}; training needs at least two. Put each class's images in its own folder "
        "(cats/…, dogs/…) and zip those folders together."
    )


@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    label: str  # class folder
    parts: tuple[str, ...]  # path under the dataset folder, starting with the class folder


def _plan_extraction(infos: Sequence[zipfile.ZipInfo], max_files: int, max_bytes: int) -> tuple[list[_Entry], int]:
    """The image entries to extract and the count of skipped ones; refuses unsafe or oversized archives."""
    candidates, skipped = [], 0
    for info in infos:
        name = info.filename.replace("\\", "/")
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            raise DatasetError(f"The archive holds an absolute path ({info.filename!r}); it is refused. {_REZIP}")
        parts = tuple(p for p in name.split("/") if p not in ("", "."))
        if ".." in parts:
            raise DatasetError(
                f"The archive holds a path leading outside it ({info.filename!r}); it is refused. {_REZIP}"
            )
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise DatasetError(f"The archive holds a link ({info.filename!r}); links are refused. {_REZIP}")
        if info.is_dir() or not parts:
            continue
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no type recorded (zipfile.writestr, Windows tools)
            raise DatasetError(f"The archive holds a special file ({info.filename!r}); it is refused. {_REZIP}")
        if info.flag_bits & 0x1:
            raise DatasetError(
                f"The archive is password-protected ({info.filename!r}). Zip the folders without a password."
            )
        if _is_image_name(parts):
            candidates.append((info, parts))
        else:
            skipped += 1
    # One top-level folder around the class folders is unwrapped (images lying in it directly then sit in no class).
    tops = {parts[0] for _, parts in candidates}
    if len(tops) == 1 and any(len(parts) >= 3 for _, parts in candidates):
        candidates = [(info, parts[1:]) for info, parts in candidates]
    entries = [_Entry(info, parts[0], parts) for info, parts in candidates if len(parts) >= 2]
    skipped += len(candidates) - len(entries)  # images lying outside any class folder
    if len(entries) > max_files:
        raise DatasetError(
            f"The archive holds {len(entries):,} images; at most {max_files:,} are accepted. Use fewer images "
            "per class."
        )
    declared = sum(entry.info.file_size for entry in entries)
    if declared > max_bytes:
        raise DatasetError(_too_big(declared, max_bytes))
    classes = sorted({entry.label for entry in entries})
    if len(classes) < 2:
        raise DatasetError(_too_few_classes(classes))
    return entries, skipped


_REZIP = "Zip the class folders themselves (no links, no paths outside the folder) and upload again."


def _too_big(size: int, max_bytes: int) -> str:
    return (
        f"The archive's images take {size / 2**20:,.0f} MB once extracted; at most {max_bytes / 2**20:,.0f} MB "
        "are accepted. Use fewer or smaller images (resizing photos to about 256 pixels loses nothing a small "
        "network can use)."
    )


def _extract(
    archive: zipfile.ZipFile, entries: Sequence[_Entry], staging: Path, max_bytes: int
) -> tuple[Counter[str], int]:
    """Extract ``entries`` under ``staging``, counting bytes as they decompress; drop files that are no images."""
    counts: Counter[str] = Counter()
    rejected, written, root = 0, 0, staging.resolve()
    for entry in entries:
        destination = staging.joinpath(*entry.parts)
        if not destination.resolve().is_relative_to(root):
            raise DatasetError(f"The archive holds a path leading outside it ({entry.info.filename!r}). {_REZIP}")
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(entry.info) as source, open(destination, "xb") as out:
                while chunk := source.read(1 << 20):
                    written += len(chunk)
                    if written > max_bytes:
                        raise DatasetError(_too_big(written, max_bytes))
                    out.write(chunk)
        except FileExistsError:
            rejected += 1  # the same name twice: the first one stands
            continue
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise DatasetError(
                f"The archive is damaged or its sizes are forged ({entry.info.filename!r}: {err}). Create the zip "
                "again and upload it."
            ) from err
        except NotImplementedError as err:
            raise DatasetError(
                f"The archive uses a compression method that cannot be read ({err}). Create it again with the "
                "standard (deflate) compression."
            ) from err
        except OSError as err:
            raise DatasetError(f"{entry.info.filename!r} could not be extracted ({err}).") from err
        if _looks_like_image(destination):
            counts[entry.label] += 1
        else:
            destination.unlink()
            rejected += 1
    return counts, rejected


def _looks_like_image(path: Path) -> bool:
    """The header names an image format and a size :func:`load_image` accepts (the pixels are not decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.width * image.height <= MAX_PIXELS
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return False
