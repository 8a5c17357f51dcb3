"""data.folders: a folder of class folders is read with its classes, resized, and refused when unusable."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from data_samples import folder_dataset as _folder_dataset
from data_samples import items as _items

from cnn_explorer.data import (
    DatasetError,
    prepare,
)
from cnn_explorer.images import load_image
from cnn_explorer.runspec import DataSpec

# --- folders ----------------------------------------------------------------------------------------------------


def test_folder_dataset_reads_every_image_with_its_class(tmp_path: Path) -> None:
    written = _folder_dataset(tmp_path / "set", {"dogs": 6, "cats": 9, "birds": 5})
    (tmp_path / "set" / "cats" / "notes.txt").write_text("not an image")
    (tmp_path / "set" / "cats" / ".hidden.png").write_bytes(b"junk")
    (tmp_path / "set" / ".git").mkdir()
    prepared = prepare(DataSpec("folder", path=str(tmp_path / "set"), size=12, val_split=0.34), seed=0)
    assert prepared.class_names == ("birds", "cats", "dogs")  # sorted folder names
    assert (len(prepared.train), len(prepared.val)) == (13, 7)
    assert prepared.counts == {"birds": 3, "cats": 6, "dogs": 4}
    seen = {}
    for dataset in (prepared.train, prepared.val):
        for i in range(len(dataset)):
            pixels = dataset.pixels(i).permute(1, 2, 0).numpy().tobytes()  # 12×12: no resampling
            seen[pixels] = prepared.class_names[dataset[i][1]]
    assert seen == written
    assert prepared.preprocess.mean is not None and not prepared.preprocess.invert_light_background


def test_folder_images_are_resized_as_the_model_preprocesses_them(tmp_path: Path) -> None:
    _folder_dataset(tmp_path / "set", {"a": 3, "b": 3}, side=40)
    prepared = prepare(DataSpec("folder", path=str(tmp_path / "set"), size=16, grayscale=True), seed=0)
    inputs = [x for dataset in (prepared.train, prepared.val) for x, _ in _items(dataset)]
    for path in sorted((tmp_path / "set").rglob("*.png")):
        x = prepared.preprocess(load_image(path))[0]
        assert x.shape == (1, 16, 16)
        assert sum(torch.equal(x, y) for y in inputs) == 1


def test_folder_with_one_class_or_missing_is_refused(tmp_path: Path) -> None:
    _folder_dataset(tmp_path / "one", {"only": 4})
    with pytest.raises(DatasetError, match=r"1 class folder\(s\) with images \(only\); training needs at least two"):
        prepare(DataSpec("folder", path=str(tmp_path / "one")), 0)
    with pytest.raises(DatasetError, match="is not a folder"):
        prepare(DataSpec("folder", path=str(tmp_path / "nowhere")), 0)


def test_a_damaged_image_in_a_folder_names_the_file(tmp_path: Path) -> None:
    _folder_dataset(tmp_path / "set", {"a": 3, "b": 3})
    (tmp_path / "set" / "b" / "000.png").write_bytes(b"this is not a PNG")
    # read while measuring the normalization (every image of a small set), else when the item is read
    with pytest.raises(DatasetError, match=r"b/000\.png: This file is not an image .* delete the file"):
        prepared = prepare(DataSpec("folder", path=str(tmp_path / "set"), size=12, val_split=0.5), 0)
        for dataset in (prepared.train, prepared.val):
            _items(dataset)
