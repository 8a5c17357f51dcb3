"""data.labelled: images in memory as a dataset, the pixel store filled at once (in processes), and prepared
datasets travelling to DataLoader workers."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from data_samples import folder_dataset as _folder_dataset
from data_samples import items as _items
from data_samples import same_items as _same_items

from cnn_explorer import data
from cnn_explorer.data import (
    DIGIT_CLASSES,
    DatasetError,
    ImageListDataset,
    digit_images,
    prepare,
)
from cnn_explorer.data.labelled import _LOAD_IN_PROCESSES_FROM
from cnn_explorer.runspec import Augmentation, DataSpec


def test_image_list_dataset_returns_transformed_images_and_int_labels() -> None:
    images, labels = digit_images()
    dataset = ImageListDataset(images[:5], labels[:5], transform=lambda image: image.size, classes=DIGIT_CLASSES)
    assert len(dataset) == 5
    size, label = dataset[4]
    assert size == (8, 8)
    assert type(label) is int and label == labels[4]
    assert dataset.classes == list(DIGIT_CLASSES)
    plain = ImageListDataset(images[:2], [0, 1])
    assert plain[0][0] is images[0] and plain.classes is None
    with pytest.raises(ValueError, match="one label per image"):
        ImageListDataset(images[:3], labels[:2])


@pytest.mark.parametrize("processes", [1, 2])
def test_loading_all_images_at_once_fills_the_cache_as_reading_them_would(processes: int) -> None:
    spec = DataSpec("shapes", size=16, count=2400, fresh=False)
    loaded, lazy = prepare(spec, 0).train, prepare(spec, 0).train
    lazy.pixels(5)  # one read already: the rest is loaded around it
    loaded.pixels(5)
    reports = []
    loaded.load_all(processes, progress=lambda done, total: reports.append((done, total)))
    assert loaded.cache.filled.all()
    assert reports[-1] == (2399, 2399) and [d for d, _ in reports] == sorted(d for d, _ in reports)
    for i in (0, 5, 1234, 2399):
        assert torch.equal(loaded.cache.pixels[i], lazy.pixels(i))
        assert torch.equal(loaded.cache.statistics[i], lazy.cache.statistics[i])
    again = []
    loaded.load_all(processes, progress=lambda done, total: again.append(done))
    assert again == []  # nothing left to read
    fresh = prepare(DataSpec("shapes", size=16, count=2400), 0).train
    fresh.load_all(processes)  # drawn anew every epoch: no cache, nothing to load
    assert fresh.cache is None


def test_a_runs_training_and_validation_images_are_read_in_one_pool() -> None:
    spec = DataSpec("shapes", size=16, count=2400, val_split=0.25, fresh=False)
    prepared, lazy = prepare(spec, 0), prepare(spec, 0)
    assert len(prepared.val) < _LOAD_IN_PROCESSES_FROM  # too few to start processes for on its own
    reports = []
    data.load_all([prepared.train, prepared.val], 2, progress=lambda done, total: reports.append((done, total)))
    total = len(prepared.train) + len(prepared.val)
    assert reports[-1] == (total, total) and len({t for _, t in reports}) == 1
    for loaded, reference in ((prepared.train, lazy.train), (prepared.val, lazy.val)):
        assert loaded.cache.filled.all()
        for i in (0, 7, len(loaded) - 1):
            assert torch.equal(loaded.cache.pixels[i], reference.pixels(i))
            assert torch.equal(loaded.cache.statistics[i], reference.cache.statistics[i])


def test_loading_in_processes_reports_a_damaged_file_and_can_be_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "cnn_explorer.data.prepared._STATS_SAMPLE", 10
    )  # prepare reads 10 images to measure the normalization
    _folder_dataset(tmp_path / "set", {"a": 1100, "b": 1100}, side=4)
    prepared = prepare(DataSpec("folder", path=str(tmp_path / "set"), size=8, val_split=0.01), 0)
    (tmp_path / "set" / "b" / "999.png").write_bytes(b"this is not a PNG")  # damaged after the listing

    class Stop(Exception):
        pass

    def stop_after_first_chunk(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        prepared.train.load_all(2, progress=stop_after_first_chunk)
    assert 0 < prepared.train.cache.filled.sum() < len(prepared.train)
    with pytest.raises(DatasetError, match=r"b/999\.png: This file is not an image"):
        prepared.train.load_all(2)


# --- datasets travel to DataLoader workers ----------------------------------------------------------------------


def test_prepared_datasets_pickle_and_batch(tmp_path: Path) -> None:
    _folder_dataset(tmp_path / "set", {"a": 4, "b": 4}, side=20)
    for spec in (DataSpec("shapes", size=16, count=12), DataSpec("folder", path=str(tmp_path / "set"), size=16)):
        prepared = prepare(spec, 0, Augmentation(flip=True, rotation=10))
        for dataset in (prepared.train, prepared.val, prepared.train_for_epoch(3)):
            copy = pickle.loads(pickle.dumps(dataset))  # what a spawned worker receives
            assert _same_items(_items(copy), _items(dataset))
        inputs, labels = next(iter(torch.utils.data.DataLoader(prepared.train, batch_size=4)))
        assert inputs.shape == (4, 3, 16, 16) and inputs.dtype == torch.float32 and labels.dtype == torch.int64
