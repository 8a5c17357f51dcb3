"""data.archives: uploaded archives are extracted as class folders and refused for every unsafe shape."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from data_samples import png as _png

from cnn_explorer.data import (
    DatasetError,
    extract_zip,
    prepare,
)
from cnn_explorer.data.archives import _extract, _plan_extraction
from cnn_explorer.runspec import DataSpec

# --- uploaded archives ------------------------------------------------------------------------------------------

PNG = _png(np.full((6, 6, 3), 200, dtype=np.uint8))


def _zip(entries: dict[str, bytes], **infos: zipfile.ZipInfo) -> bytes:
    """A zip of ``name → content`` entries, plus entries with hand-made headers."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
        for content_name, info in infos.items():
            archive.writestr(info, content_name.encode())
    return buffer.getvalue()


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_extract_zip_unwraps_one_top_folder_and_skips_what_is_not_an_image(tmp_path: Path) -> None:
    archive = _zip(
        {
            "pets/": b"",
            "pets/cats/a.png": PNG,
            "pets/cats/b.PNG": PNG,
            "pets/cats/kittens/c.png": PNG,  # nested below a class folder: still that class
            "pets/dogs/d.png": PNG,
            "pets/dogs/notes.txt": b"skipped: not an image name",
            "pets/dogs/fake.jpg": b"skipped: named like an image, is not one",
            "pets/loose.png": PNG,  # skipped: in no class folder
            "pets/.DS_Store": b"skipped: hidden",
            "__MACOSX/pets/cats/._a.png": b"skipped: macOS metadata",
        }
    )
    report = extract_zip(archive, tmp_path / "data" / "pets")
    assert report.folder == tmp_path / "data" / "pets"
    assert report.classes == ("cats", "dogs")
    assert report.counts == {"cats": 3, "dogs": 1}
    assert report.skipped == 5
    assert _listing(report.folder) == ["cats", "cats/a.png", "cats/b.PNG", "cats/kittens", "cats/kittens/c.png",
                                       "dogs", "dogs/d.png"]  # fmt: skip
    assert (report.folder / "cats" / "a.png").read_bytes() == PNG
    assert _listing(tmp_path / "data") == ["pets", *(f"pets/{p}" for p in _listing(report.folder))]  # no leftovers


def test_extracted_folder_is_a_dataset(tmp_path: Path) -> None:
    images = {f"{c}/{i}.png": _png(np.full((8, 8, 3), 40 * i, dtype=np.uint8)) for c in "ab" for i in range(5)}
    report = extract_zip(_zip(images), tmp_path / "set")  # no wrapper folder
    prepared = prepare(DataSpec("folder", path=str(report.folder), size=8), seed=0)
    assert prepared.class_names == report.classes == ("a", "b")
    assert sum(prepared.counts.values()) + len(prepared.val) == 10


def test_extract_zip_reads_paths_and_file_objects(tmp_path: Path) -> None:
    archive = _zip({"a/1.png": PNG, "b/1.png": PNG})
    (tmp_path / "upload.zip").write_bytes(archive)
    assert extract_zip(tmp_path / "upload.zip", tmp_path / "x").counts == {"a": 1, "b": 1}
    assert extract_zip(io.BytesIO(archive), tmp_path / "y").counts == {"a": 1, "b": 1}


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix, where the mode bits below mean something
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


# Where zip headers keep an entry's flags and uncompressed size: (format, offset) in the local header and in the
# central directory record; the name follows at offset 30 and 46, its length at 26 and 28.
_HEADERS = {b"PK\x03\x04": {"flags": ("<H", 6), "size": ("<I", 22), "name": 30, "name_length": 26},
            b"PK\x01\x02": {"flags": ("<H", 8), "size": ("<I", 24), "name": 46, "name_length": 28}}  # fmt: skip


def _forged(archive: bytes, name: str, field: str, value: int) -> bytes:
    """``archive`` with ``field`` of entry ``name`` set to ``value`` in both of its headers."""
    forged = bytearray(archive)
    for signature, layout in _HEADERS.items():
        start = 0
        while (start := forged.find(signature, start)) != -1:
            length = struct.unpack_from("<H", forged, start + layout["name_length"])[0]
            if forged[start + layout["name"] : start + layout["name"] + length] == name.encode():
                fmt, offset = layout[field]
                struct.pack_into(fmt, forged, start + offset, value)
            start += 4
    return bytes(forged)


def _lying_bomb(real_size: int, declared: int) -> bytes:
    """A zip whose b/bomb.png decompresses to ``real_size`` zero bytes while its headers declare ``declared``."""
    honest = _zip({"a/ok.png": PNG, "b/ok.png": PNG, "b/bomb.png": bytes(real_size)})
    return _forged(honest, "b/bomb.png", "size", declared)


def _encrypted() -> bytes:
    return _forged(_zip({"a/1.png": PNG, "b/1.png": PNG}), "b/1.png", "flags", 0x1)


REFUSALS = {
    "parent": (lambda: _zip({"a/1.png": PNG, "b/1.png": PNG, "../evil.png": PNG}), {}, r"leading outside it"),
    "nested parent": (lambda: _zip({"a/1.png": PNG, "b/../../evil.png": PNG}), {}, r"leading outside it"),
    "absolute": (lambda: _zip({"a/1.png": PNG, "b/1.png": PNG, "/abs.png": PNG}), {}, r"an absolute path"),
    "drive": (lambda: _zip({"a/1.png": PNG, "C:/evil.png": PNG}), {}, r"an absolute path"),
    "backslash": (lambda: _zip({"a/1.png": PNG, "b\\..\\..\\evil.png": PNG}), {}, r"leading outside it"),
    "symlink": (lambda: _zip({"a/1.png": PNG, "b/1.png": PNG}, **{"/etc/passwd": _symlink("b/link.png")}), {}, "link"),
    "encrypted": (_encrypted, {}, "password-protected"),
    "one class": (lambda: _zip({"cats/1.png": PNG, "cats/2.png": PNG}), {}, r"one class folder with images \(cats\)"),
    "no class": (lambda: _zip({"1.png": PNG, "notes.txt": b"x"}), {}, "no class folder with images"),
    "only fakes": (lambda: _zip({"a/1.png": PNG, "b/1.png": b"not a png"}), {}, r"one class folder with images \(a\)"),
    "too many files": (
        lambda: _zip({f"{c}/{i}.png": PNG for c in "ab" for i in range(2)}),
        {"max_files": 3},
        r"holds 4 images; at most 3 are accepted",
    ),
    "too big declared": (
        lambda: _zip({"a/1.png": PNG, "b/big.png": bytes(3 * 2**20)}),
        {"max_bytes": 2**20},
        r"take 3 MB once extracted; at most 1 MB",
    ),
    "lying bomb": (lambda: _lying_bomb(20 * 2**20, 1000), {"max_bytes": 2**20}, r"damaged or its sizes are forged"),
    "not a zip": (lambda: b"%PDF-1.4 not a zip at all", {}, "not a zip archive"),
    "empty": (lambda: b"", {}, "not a zip archive"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_unsafe_or_unusable_archives_are_refused_and_leave_nothing_behind(tmp_path: Path, case: str) -> None:
    make, limits, message = REFUSALS[case]
    parent = tmp_path / "datasets"
    parent.mkdir()
    (parent / "earlier").mkdir()  # an existing dataset stays untouched
    with pytest.raises(DatasetError, match=message):
        extract_zip(make(), parent / "new", **limits)
    assert _listing(tmp_path) == ["datasets", "datasets/earlier"]  # no target, no staging folder, nothing outside
    assert not (tmp_path / "evil.png").exists() and not Path("/abs.png").exists()


def test_the_bomb_really_lies_and_an_honest_one_is_refused_before_extraction(tmp_path: Path) -> None:
    bomb = zipfile.ZipFile(io.BytesIO(_lying_bomb(20 * 2**20, 1000)))
    assert bomb.getinfo("b/bomb.png").file_size == 1000 and bomb.getinfo("b/bomb.png").compress_size < 2**20
    honest = _zip({"a/1.png": PNG, "b/big.png": bytes(20 * 2**20)})
    assert len(honest) < 2**20  # small upload, 20 MB inside
    with pytest.raises(DatasetError, match="20 MB once extracted"):
        extract_zip(honest, tmp_path / "x", max_bytes=2**20)


def test_an_existing_target_is_refused_but_an_empty_one_is_used(tmp_path: Path) -> None:
    archive = _zip({"a/1.png": PNG, "b/1.png": PNG})
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="already exists"):
        extract_zip(archive, tmp_path / "full")
    assert _listing(tmp_path / "full") == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    assert extract_zip(archive, tmp_path / "empty").classes == ("a", "b")


def test_a_repeated_name_keeps_the_first_file(tmp_path: Path) -> None:
    other = _png(np.zeros((6, 6, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a/1.png", PNG)
        archive.writestr("a/1.png", other)
        archive.writestr("b/1.png", PNG)
    report = extract_zip(buffer.getvalue(), tmp_path / "x")
    assert report.counts == {"a": 1, "b": 1} and report.skipped == 1
    assert (tmp_path / "x" / "a" / "1.png").read_bytes() == PNG


def test_bytes_are_counted_while_extracting(tmp_path: Path) -> None:
    # CPython's zipfile already stops at the declared size (then fails the CRC); the running count is the guard
    # that does not depend on it, checked here below the declared-size check.
    archive = zipfile.ZipFile(io.BytesIO(_zip({"a/1.png": PNG, "b/big.png": bytes(3 * 2**20)})))
    entries, _ = _plan_extraction(archive.infolist(), max_files=10, max_bytes=2**30)
    (tmp_path / "staging").mkdir()
    with pytest.raises(DatasetError, match=r"once extracted; at most 1 MB"):
        _extract(archive, entries, tmp_path / "staging", max_bytes=2**20)
