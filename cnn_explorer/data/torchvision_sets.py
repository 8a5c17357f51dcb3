"""torchvision's datasets (MNIST, Fashion-MNIST, CIFAR-10): their on-disk layouts, downloads, and loaders.

A dataset is read from ``DataSpec.path`` or :func:`datasets_home` in torchvision's layout; missing files are
downloaded through :mod:`cnn_explorer.downloads` (mirrors tried in turn, bytes reported across files), or the
message says where to put them. CIFAR's pickles are read allowing only arrays, lists and strings.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnn_explorer import downloads
from cnn_explorer.data.errors import DatasetError, DatasetUnavailable
from cnn_explorer.data.sources import _Arrays
from cnn_explorer.data.splits import _Split, _split_pool
from cnn_explorer.progress import ByteProgress
from cnn_explorer.runspec import DataSpec

__all__ = ["datasets_home"]


def datasets_home() -> Path:
    """Where torchvision datasets live unless a spec names a folder: ``$CNN_EXPLORER_HOME/datasets``."""
    return Path(os.environ.get("CNN_EXPLORER_HOME") or "~/.cnn_explorer").expanduser() / "datasets"


def _dataset_root(spec: DataSpec) -> Path:
    return Path(spec.path).expanduser() if spec.path else datasets_home()


def _load_mnist_like(class_name: str, title: str) -> Callable[[DataSpec, int, ByteProgress | None], _Split]:
    """A loader for torchvision's ``MNIST`` or ``FashionMNIST``: its training split, read from ``ROOT/NAME/raw``."""

    def load(spec: DataSpec, seed: int, progress: ByteProgress | None) -> _Split:
        import torchvision.datasets

        cls = getattr(torchvision.datasets, class_name)
        root = _dataset_root(spec)
        raw = root / class_name / "raw"  # torchvision's layout: the class name, then raw/
        archives = [name for name, _ in cls.resources]
        missing = [name for name in archives if not (raw / name.removesuffix(".gz")).exists()]
        for name in [m for m in missing if (raw / m).exists()]:  # compressed files put there by hand
            _gunzip(raw / name)
        missing = [name for name in missing if not (raw / name.removesuffix(".gz")).exists()]
        if missing:
            where = (
                f"Put the files {', '.join(archives)} (from {cls.mirrors[0]}), compressed or not, in {raw}, "
                "or run again with internet access."
            )
            md5s = dict(cls.resources)
            files = [([mirror + name for mirror in cls.mirrors], raw / name, md5s[name]) for name in missing]
            _download_all(title, files, progress, where)
            for name in missing:
                _gunzip(raw / name)
        try:
            dataset = cls(str(root), train=True, download=False)
            pixels, labels = dataset.data.numpy(), dataset.targets.numpy().astype(np.int64)
        except Exception as err:  # torchvision asserts on a malformed file; anything here means a damaged one
            raise DatasetError(f"The {title} files in {raw} are damaged ({err!r}). Delete them and try again.") from err
        if pixels.ndim != 3 or len(pixels) != len(labels) or labels.min() < 0 or labels.max() >= len(cls.classes):
            raise DatasetError(
                f"The {title} files in {raw} do not match (images {pixels.shape}, labels {labels.shape}). "
                "Delete them and try again."
            )
        return _split_pool(_Arrays(pixels), labels, cls.classes, spec, seed)

    return load


def _load_cifar10(spec: DataSpec, seed: int, progress: ByteProgress | None) -> _Split:
    from torchvision.datasets import CIFAR10

    root = _dataset_root(spec)
    folder = root / CIFAR10.base_folder
    needed = [name for name, _ in CIFAR10.train_list] + [CIFAR10.meta["filename"]]
    if not all((folder / name).exists() for name in needed):
        archive = root / CIFAR10.filename
        if not archive.exists():
            where = (
                f"Put {CIFAR10.filename} (from {CIFAR10.url}) or its extracted folder {CIFAR10.base_folder} in "
                f"{root}, or run again with internet access."
            )
            _download_all("CIFAR-10", [([CIFAR10.url], archive, CIFAR10.tgz_md5)], progress, where)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")
    # torchvision's CIFAR10 class insists on the md5 of every original file and unpickles without restriction; the
    # batches are read here instead, allowing only numpy arrays, lists and strings.
    try:
        batches = [_unpickle_arrays(folder / name) for name, _ in CIFAR10.train_list]
        pixels = np.concatenate([np.asarray(b["data"], dtype=np.uint8).reshape(-1, 3, 32, 32) for b in batches])
        labels = np.concatenate([np.asarray(b["labels"], dtype=np.int64) for b in batches])
        classes = [
            n.decode() if isinstance(n, bytes) else str(n)
            for n in _unpickle_arrays(folder / CIFAR10.meta["filename"])[CIFAR10.meta["key"]]
        ]
    except Exception as err:  # a truncated, foreign or hostile pickle raises anything from KeyError to EOFError
        raise DatasetError(f"The CIFAR-10 files in {folder} are damaged ({err!r}). Delete them and try again.") from err
    if len(pixels) != len(labels) or labels.min() < 0 or labels.max() >= len(classes):
        raise DatasetError(f"The CIFAR-10 files in {folder} do not match ({len(pixels)} images, {len(labels)} labels).")
    return _split_pool(_Arrays(pixels.transpose(0, 2, 3, 1).copy()), labels, classes, spec, seed)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays, lists and strings; anything else (code) is refused."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a dataset file")
        return super().find_class(module, name)


def _unpickle_arrays(path: Path) -> dict:
    with open(path, "rb") as f:
        value = _ArrayUnpickler(f, encoding="latin1").load()  # the batches were pickled by Python 2
    if not isinstance(value, dict):
        raise DatasetError(f"{path} does not hold a CIFAR batch.")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in value.items()}


def _gunzip(path: Path) -> None:
    """Decompress ``NAME.gz`` next to itself as ``NAME``, atomically."""
    target = path.with_suffix("")
    with gzip.open(path, "rb") as src, tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
        try:
            shutil.copyfileobj(src, tmp)
        except BaseException:
            tmp.close()
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, target)


def _download_all(
    title: str, files: Sequence[tuple[Sequence[str], Path, str]], progress: ByteProgress | None, where: str
) -> None:
    """Download each ``(mirror urls, destination, md5)``, reporting bytes across all files; explain failures."""
    tally = _Tally(progress)
    for urls, destination, md5 in files:
        errors = []
        for url in urls:
            try:
                downloads.download(url, destination, tally.file(), md5=md5)
                break
            except downloads.Offline as err:
                raise DatasetUnavailable(
                    f"{title} is not downloaded yet and {downloads.OFFLINE_VARIABLE} is set. {where}"
                ) from err
            except downloads.DownloadError as err:
                errors.append(f"{url}: {err.reason}")
        else:
            raise DatasetUnavailable(f"{title} could not be downloaded ({'; '.join(errors)}). {where}")
        tally.finish_file()


class _Tally:
    """Bytes done across several downloads; the total is the sum of the sizes announced so far (None if one was not)."""

    def __init__(self, progress: ByteProgress | None) -> None:
        self.progress, self.done, self.total = progress, 0, 0
        self.file_done, self.file_total = 0, 0

    def file(self) -> ByteProgress:
        """The progress callback for the next file (or the next mirror's try of it)."""
        self.file_done, self.file_total = 0, 0
        return self._report

    def _report(self, done: int, total: int | None) -> None:
        self.file_done, self.file_total = done, total
        if self.progress is not None:
            self.progress(self.done + done, None if total is None or self.total is None else self.total + total)

    def finish_file(self) -> None:
        self.done += self.file_done
        self.total = None if self.file_total is None or self.total is None else self.total + self.file_total
