"""ImageNet weights in torch's hub cache: the download reports progress, checks the hash and leaves nothing behind
when it fails (the offline and failure messages are checked through the zoo in tests/test_zoo.py)."""

import hashlib
from pathlib import Path

import pytest

from cnn_explorer import hub
from cnn_explorer.model import ModelUnavailable


def _served_file(tmp_path: Path, content: bytes, hash_prefix: str) -> tuple[str, Path]:
    source = tmp_path / "served" / f"weights-{hash_prefix}.pth"
    source.parent.mkdir()
    source.write_bytes(content)
    return source.as_uri(), tmp_path / "cache" / source.name


def test_download_reports_progress_and_checks_the_hash(tmp_path, monkeypatch):
    monkeypatch.delenv("CNN_EXPLORER_OFFLINE", raising=False)
    content = b"x" * (3 * (1 << 20) + 5)
    url, target = _served_file(tmp_path, content, hashlib.sha256(content).hexdigest()[:8])
    calls = []
    hub._download(url, target, lambda done, total: calls.append((done, total)))
    assert target.read_bytes() == content
    assert calls[-1] == (len(content), len(content))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_download_with_wrong_hash_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("CNN_EXPLORER_OFFLINE", raising=False)
    url, target = _served_file(tmp_path, b"tampered", "deadbeef")
    with pytest.raises(ModelUnavailable, match="arrived damaged: checksum mismatch"):
        hub._download(url, target, None)
    assert not target.parent.exists() or not any(target.parent.iterdir())
