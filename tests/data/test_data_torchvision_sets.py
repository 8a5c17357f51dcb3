"""data.torchvision_sets: torchvision's on-disk layouts read back what was written, downloads report progress,
and failures say where to put the files."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
from data_samples import items as _items
from PIL import Image

from cnn_explorer import data
from cnn_explorer.data import (
    DatasetError,
    DatasetUnavailable,
    prepare,
)
from cnn_explorer.runspec import DataSpec

# --- torchvision datasets, from files in torchvision's on-disk layout -------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    """An IDX file (MNIST's format): magic 0x0000 08 (uint8) ndim, big-endian dimensions, then the bytes."""
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _mnist_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)  # a dark border, like MNIST: light ink on black
    images[:, 4:24, 4:24] = rng.integers(0, 256, (n, 20, 20), dtype=np.uint8)
    return images, (np.arange(n) % 10).astype(np.uint8)


def _mnist_files(n: int, seed: int = 0) -> tuple[dict[str, bytes], np.ndarray, np.ndarray]:
    images, labels = _mnist_arrays(n, seed)
    test_images, test_labels = _mnist_arrays(10, seed + 1)
    files = {
        "train-images-idx3-ubyte": _idx(images),
        "train-labels-idx1-ubyte": _idx(labels),
        "t10k-images-idx3-ubyte": _idx(test_images),
        "t10k-labels-idx1-ubyte": _idx(test_labels),
    }
    return files, images, labels


def _write_mnist(raw: Path, files: dict[str, bytes], compressed: bool = False) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if compressed:
            (raw / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (raw / name).write_bytes(content)


def _read_back(prepared: data.Prepared) -> list[tuple[bytes, int]]:
    """Every (pixels, label) of the training and validation sets, in HWC byte order."""
    return sorted(
        (dataset.pixels(i).permute(1, 2, 0).numpy().tobytes(), dataset[i][1])
        for dataset in (prepared.train, prepared.val)
        for i in range(len(dataset))
    )


@pytest.mark.parametrize(("kind", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
@pytest.mark.parametrize("compressed", [False, True])
def test_mnist_layout_files_are_read_with_their_labels_and_pixels(
    tmp_path: Path, kind: str, folder: str, compressed: bool
) -> None:
    files, images, labels = _mnist_files(40)
    _write_mnist(tmp_path / folder / "raw", files, compressed)
    prepared = prepare(DataSpec(kind, path=str(tmp_path), size=28, grayscale=True, val_split=0.25), seed=0)
    assert prepared.class_names == tuple(getattr(torchvision.datasets, folder).classes)
    assert (len(prepared.train), len(prepared.val)) == (30, 10)
    assert prepared.counts == dict.fromkeys(prepared.class_names, 3)
    assert prepared.input_size == (1, 28, 28) and prepared.preprocess.invert_light_background
    assert _read_back(prepared) == sorted(
        (image.tobytes(), int(label)) for image, label in zip(images, labels, strict=True)
    )


def test_mnist_is_resized_and_coloured_per_spec(tmp_path: Path) -> None:
    files, images, _ = _mnist_files(20)
    _write_mnist(tmp_path / "MNIST" / "raw", files)
    prepared = prepare(DataSpec("mnist", path=str(tmp_path), size=32, grayscale=False, val_split=0.5), seed=0)
    assert prepared.input_size == (3, 32, 32)
    inputs = [x for dataset in (prepared.train, prepared.val) for x, _ in _items(dataset)]
    for image in images:
        x = prepared.preprocess(Image.fromarray(image, "L"))[0]
        assert x.shape == (3, 32, 32) and sum(torch.equal(x, y) for y in inputs) == 1


def _cifar_arrays(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8), [int(v) for v in rng.integers(0, 3, n)]


CIFAR_NAMES = ["airplane", "automobile", "bird"]


def _write_cifar(root: Path, per_batch: int = 4, protocol: int = 2) -> list[tuple[bytes, int]]:
    """CIFAR-10's python layout: five pickled training batches, a test batch and batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = []
    for b in range(1, 6):
        pixels, labels = _cifar_arrays(per_batch, b)
        batch = {"batch_label": f"training batch {b} of 5", "labels": labels, "data": pixels}
        (folder / f"data_batch_{b}").write_bytes(pickle.dumps(batch, protocol=protocol))
        hwc = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        written += [(image.tobytes(), label) for image, label in zip(hwc, labels, strict=True)]
    test_pixels, test_labels = _cifar_arrays(4, 0)
    (folder / "test_batch").write_bytes(pickle.dumps({"labels": test_labels, "data": test_pixels}, protocol=protocol))
    meta = {"label_names": CIFAR_NAMES, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return sorted(written)


@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL])
def test_cifar_batches_are_read_with_their_labels_and_pixels(tmp_path: Path, protocol: int) -> None:
    written = _write_cifar(tmp_path, protocol=protocol)
    prepared = prepare(DataSpec("cifar10", path=str(tmp_path), size=32, val_split=0.25), seed=0)
    assert prepared.class_names == tuple(CIFAR_NAMES)
    assert (len(prepared.train), len(prepared.val)) == (15, 5)
    assert prepared.input_size == (3, 32, 32) and len(prepared.preprocess.mean) == 3
    assert _read_back(prepared) == written


def test_cifar_archive_is_extracted_when_only_the_tarball_is_there(tmp_path: Path) -> None:
    written = _write_cifar(tmp_path / "staging")
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "staging" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    root = tmp_path / "root"
    root.mkdir()
    os.replace(tmp_path / "cifar-10-python.tar.gz", root / "cifar-10-python.tar.gz")
    prepared = prepare(DataSpec("cifar10", path=str(root), size=32), seed=0)
    assert _read_back(prepared) == written


class _Exploit:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch EXPLOITED",))


def test_a_cifar_batch_that_would_run_code_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps({"data": _Exploit()}, protocol=2))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=r"CIFAR-10 files in .* are damaged .*posix.system is not allowed"):
        prepare(DataSpec("cifar10", path=str(tmp_path), size=32), seed=0)
    assert not (tmp_path / "EXPLOITED").exists()


def test_damaged_mnist_files_are_reported(tmp_path: Path) -> None:
    files, _, _ = _mnist_files(20)
    files["train-images-idx3-ubyte"] = files["train-images-idx3-ubyte"][:100]
    _write_mnist(tmp_path / "MNIST" / "raw", files)
    with pytest.raises(DatasetError, match=r"MNIST files in .* are damaged"):
        prepare(DataSpec("mnist", path=str(tmp_path), size=28), seed=0)


def test_torchvision_datasets_default_to_the_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNN_EXPLORER_HOME", str(tmp_path / "home"))
    assert data.datasets_home() == tmp_path / "home" / "datasets"
    files, _, _ = _mnist_files(20)
    _write_mnist(tmp_path / "home" / "datasets" / "MNIST" / "raw", files)
    assert len(prepare(DataSpec("mnist", size=28, grayscale=True), seed=0).train) == 16


@pytest.mark.parametrize(
    ("kind", "where"),
    [
        ("mnist", r"Put the files train-images-idx3-ubyte.gz, .* in .*/MNIST/raw"),
        ("fashion_mnist", r"Put the files .* in .*/FashionMNIST/raw"),
        ("cifar10", r"Put cifar-10-python.tar.gz \(from https://www.cs.toronto.edu/.*\) or its extracted folder"),
    ],
)
def test_offline_says_where_to_put_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, where: str
) -> None:
    monkeypatch.setenv("CNN_EXPLORER_OFFLINE", "1")
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    with pytest.raises(
        DatasetUnavailable, match=rf"not downloaded yet and CNN_EXPLORER_OFFLINE is set\. {where}"
    ) as info:
        prepare(DataSpec(kind, path=str(tmp_path)), seed=0)
    assert str(tmp_path) in str(info.value)


def _no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError("tests never download")


class _Response(io.BytesIO):
    def __init__(self, content: bytes, announce: bool = True) -> None:
        super().__init__(content)
        self.headers = {"Content-Length": str(len(content))} if announce else {}


def _serve(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes], fail: set[str] = frozenset()) -> list[str]:
    """Replace urllib's urlopen with one serving ``files`` by URL; returns the URLs asked for."""
    asked = []

    def urlopen(url: str, timeout: float) -> _Response:
        asked.append(url)
        if url in fail or url not in files:
            raise urllib.error.URLError("no route to host")
        return _Response(files[url])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def _fake_mirrors(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> dict[str, bytes]:
    """Point torchvision's MNIST at two test mirrors with these files' md5s; returns URL → gz bytes."""
    import hashlib

    compressed = {f"{name}.gz": gzip.compress(content) for name, content in files.items()}
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://mirror-a/", "http://mirror-b/"])
    resources = [(name, hashlib.md5(content).hexdigest()) for name, content in compressed.items()]
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", resources)
    return {f"http://mirror-b/{name}": content for name, content in compressed.items()}


def test_mnist_downloads_with_progress_when_online(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNN_EXPLORER_OFFLINE", raising=False)
    files, images, labels = _mnist_files(20)
    served = _fake_mirrors(monkeypatch, files)
    asked = _serve(monkeypatch, served)  # mirror-a is down: mirror-b serves every file
    reports: list[tuple[int, int | None]] = []
    prepared = prepare(
        DataSpec("mnist", path=str(tmp_path), size=28, grayscale=True, val_split=0.5),
        seed=0,
        progress=lambda d, t: reports.append((d, t)),
    )
    assert _read_back(prepared) == sorted(
        (image.tobytes(), int(label)) for image, label in zip(images, labels, strict=True)
    )
    assert asked == [url for name in served for url in (name.replace("mirror-b", "mirror-a"), name)]
    dones = [done for done, _ in reports]
    assert dones == sorted(dones) and reports[-1] == (sum(map(len, served.values())),) * 2
    assert sorted(p.name for p in (tmp_path / "MNIST" / "raw").iterdir()) == sorted(
        [*files, *(f"{n}.gz" for n in files)]
    )


def test_a_failed_or_damaged_download_says_where_to_put_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CNN_EXPLORER_OFFLINE", raising=False)
    files, _, _ = _mnist_files(20)
    served = _fake_mirrors(monkeypatch, files)
    _serve(monkeypatch, {})
    with pytest.raises(
        DatasetUnavailable, match=r"MNIST could not be downloaded \(.*no internet connection.*\)\. Put the"
    ) as failed:
        prepare(DataSpec("mnist", path=str(tmp_path)), seed=0)
    assert "urlopen" not in str(failed.value) and "<" not in str(failed.value)  # the reason in words, as the zoo's
    damaged = {url: content[:-5] + b"xxxxx" for url, content in served.items()}
    _serve(monkeypatch, damaged)
    with pytest.raises(DatasetUnavailable, match=r"checksum mismatch"):
        prepare(DataSpec("mnist", path=str(tmp_path)), seed=0)
    assert not list((tmp_path / "MNIST" / "raw").iterdir())  # no partial download left behind
