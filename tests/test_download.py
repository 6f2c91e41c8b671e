"""The download command, against a local file:// source (no test touches the network)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from bloodcell_core.cli import main
from bloodcell_core.data import download as download_module
from bloodcell_core.data.datasets import load_dataset
from bloodcell_core.errors import DatasetError


@pytest.fixture
def local_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    served = tmp_path / "served" / "tiny.npz"
    served.parent.mkdir()
    rng = np.random.default_rng(0)
    np.savez(served, train_images=rng.integers(0, 255, (4, 28, 28, 3), np.uint8),
             train_labels=np.array([[0], [1], [2], [3]]))
    md5 = hashlib.md5(served.read_bytes(), usedforsecurity=False).hexdigest()
    monkeypatch.setitem(download_module.SOURCES, "tiny", download_module.Source(
        served.as_uri(), md5, "tiny.npz", "a test file"))
    return served


def test_download_verifies_and_the_file_loads_as_a_dataset(local_source, tmp_path):
    path = download_module.download("tiny", tmp_path / "out")
    assert path.read_bytes() == local_source.read_bytes()
    assert len(load_dataset(path, "train")) == 4
    assert [p.name for p in path.parent.iterdir()] == ["tiny.npz"]  # no partial file left
    assert download_module.download("tiny", tmp_path / "out") == path  # a verified copy is kept


def test_a_corrupt_download_keeps_nothing(local_source, tmp_path, monkeypatch):
    source = download_module.SOURCES["tiny"]
    monkeypatch.setitem(download_module.SOURCES, "tiny", download_module.Source(
        source.url, "0" * 32, source.filename, source.about))
    with pytest.raises(DatasetError, match="MD5 mismatch"):
        download_module.download("tiny", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(download_module.SOURCES, "gone", download_module.Source(
        (tmp_path / "missing.npz").as_uri(), "0" * 32, "gone.npz", "a missing file"))
    assert main(["download", "gone", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "download failed" in error and "\n" not in error


def test_every_published_source_has_an_md5_and_an_https_url():
    for source in download_module.SOURCES.values():
        assert source.url.startswith("https://") and len(source.md5) == 32
