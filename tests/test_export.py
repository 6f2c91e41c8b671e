"""Audit -> review decisions -> export: the manifest has drops excluded and relabels applied."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bloodcell_core.audit import run_audit
from bloodcell_core.audit.export import MANIFEST_COLUMNS, export_manifest
from bloodcell_core.cli import main
from bloodcell_core.data.datasets import load_dataset
from bloodcell_core.data.images import content_hash
from bloodcell_core.errors import DatasetError
from bloodcell_core.review.store import Decision, ReviewStore
from tests.helpers_images import write_class_folders

CLASSES = ["basophil", "lymphocyte", "neutrophil"]


def decide(store: ReviewStore, path: Path, action: str, old: str, new: str | None = None) -> None:
    store.record(Decision(image_hash=content_hash(path.read_bytes()), dataset="smears", path=str(path),
                          action=action, old_label=old, new_label=new, reviewer="dr-a"))


def read_manifest(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and list(rows[0]) == list(MANIFEST_COLUMNS)
    return {Path(row["path"]).name: row for row in rows}


@pytest.fixture
def reviewed(tmp_path: Path) -> tuple[Path, str]:
    """A generated set with a cross-class duplicate, and decisions from its audit in a SQLite store."""
    root = write_class_folders(tmp_path / "smears", CLASSES, per_class=6, size=48)
    shutil.copy(root / "basophil" / "basophil_0.png", root / "neutrophil" / "copy_of_b0.png")
    report = run_audit(load_dataset(root))
    conflict = report["conflicting_label_groups"][0]
    assert sorted(Path(p).name for p in conflict["paths"]) == ["basophil_0.png", "copy_of_b0.png"]

    url = f"sqlite:///{tmp_path / 'db'}"
    with ReviewStore(url) as store:
        decide(store, Path(conflict["paths"][1]), "relabel", "neutrophil", "Basophils")  # both copies
        decide(store, root / "lymphocyte" / "lymphocyte_2.png", "drop", "lymphocyte")
        decide(store, root / "basophil" / "basophil_3.png", "drop", "basophil")
        decide(store, root / "basophil" / "basophil_3.png", "keep", "basophil")  # latest decision wins
        decide(store, root / "lymphocyte" / "lymphocyte_4.png", "correct-prediction", "lymphocyte", "neutrophil")
        decide(store, root / "neutrophil" / "neutrophil_1.png", "confirm-prediction", "neutrophil")
    return root, url


def test_export_applies_decisions_and_loads_as_dataset(reviewed, tmp_path: Path, capsys) -> None:
    root, url = reviewed
    manifest = tmp_path / "out" / "manifest.csv"
    assert main(["export", str(root), "--out", str(manifest), "--db", url]) == 0
    assert "18 images written, 1 dropped, 2 relabelled" in capsys.readouterr().out

    exported = load_dataset(manifest)
    labels = {Path(item).name: label for item, label in zip(exported.items, exported.label_names)}
    assert "lymphocyte_2.png" not in labels and len(labels) == 18
    assert labels["basophil_0.png"] == labels["copy_of_b0.png"] == "basophil"
    assert labels["lymphocyte_4.png"] == "neutrophil"
    assert labels["basophil_3.png"] == "basophil" and labels["neutrophil_1.png"] == "neutrophil"
    assert all(Path(item).is_absolute() for item in exported.items)
    assert np.bincount(exported.labels).tolist() == [7, 4, 7]  # basophil 6+1, lymphocyte 6-2, neutrophil 7-1+1

    rows = read_manifest(manifest)
    assert rows["copy_of_b0.png"] == {**rows["copy_of_b0.png"], "label": "basophil",
                                      "original_label": "neutrophil", "decision": "relabel", "reviewer": "dr-a"}
    assert rows["basophil_3.png"]["decision"] == "keep"
    assert rows["basophil_1.png"]["decision"] == "" and rows["basophil_1.png"]["reviewer"] == ""


def test_export_of_an_exported_manifest_and_dataset_filter(reviewed, tmp_path: Path) -> None:
    root, url = reviewed
    first = tmp_path / "first.csv"
    main(["export", str(root), "--out", str(first), "--db", url])
    second = tmp_path / "second.csv"  # CSV source: decisions still match by content
    assert main(["export", str(first), "--out", str(second), "--db", url]) == 0
    assert {k: v["label"] for k, v in read_manifest(second).items()} == {
        k: v["label"] for k, v in read_manifest(first).items()}
    untouched = tmp_path / "untouched.csv"
    assert main(["export", str(root), "--out", str(untouched), "--db", url, "--dataset-name", "other"]) == 0
    assert len(read_manifest(untouched)) == 19
    assert {row["decision"] for row in read_manifest(untouched).values()} == {""}


def test_export_refuses_npz_with_one_line(tmp_path: Path, capsys) -> None:
    np.savez(tmp_path / "set.npz", images=np.zeros((2, 16, 16, 3), np.uint8), labels=np.array([0, 1]))
    assert main(["export", str(tmp_path / "set.npz"), "--out", str(tmp_path / "m.csv"),
                 "--db", f"sqlite:///{tmp_path / 'db'}"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "folder or CSV" in error and "\n" not in error
    with pytest.raises(DatasetError):
        export_manifest(load_dataset(tmp_path / "set.npz"), {}, tmp_path / "m.csv")


def test_audit_decisions_export_then_train_on_the_manifest(reviewed, tmp_path: Path, monkeypatch) -> None:
    """The whole reviewer loop: audit -> decisions -> export -> train uses the cleaned labels."""
    monkeypatch.setenv("BLOODCELL_DATA_DIR", str(tmp_path / "appdata"))
    root, url = reviewed
    manifest = tmp_path / "clean.csv"
    assert main(["export", str(root), "--out", str(manifest), "--db", url]) == 0
    model_dir = tmp_path / "retrained"
    assert main(["train", str(manifest), "--out", str(model_dir), "--input-size", "32", "--epochs", "1",
                 "--batch-size", "8", "--workers", "1", "--width", "0.25", "--domain-variants", "0",
                 "--corruption-variants", "0"]) == 0
    card = json.loads((model_dir / "card.json").read_text())
    assert card["data"]["source"] == str(manifest)
    assert card["data"]["n_images"] == 18
    assert card["data"]["class_counts"] == {"basophil": 7, "lymphocyte": 4, "neutrophil": 7}


def test_keep_one_copy_writes_the_kept_file_and_leaves_its_identical_copies_out(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "smears", CLASSES, per_class=3, size=48)
    shutil.copy(root / "lymphocyte" / "lymphocyte_0.png", root / "lymphocyte" / "again.png")
    shutil.copy(root / "lymphocyte" / "lymphocyte_0.png", root / "lymphocyte" / "zz_third.png")
    kept = root / "lymphocyte" / "again.png"
    decisions = {content_hash(kept.read_bytes()): Decision(
        image_hash=content_hash(kept.read_bytes()), dataset="smears", path=str(kept), action="keep-one-copy",
        old_label="lymphocyte", new_label=None, reviewer="dr-a")}
    summary = export_manifest(load_dataset(root), decisions, tmp_path / "m.csv")
    rows = read_manifest(tmp_path / "m.csv")
    assert "again.png" in rows and "lymphocyte_0.png" not in rows and "zz_third.png" not in rows
    assert rows["again.png"]["decision"] == "keep-one-copy" and summary.n_written == 9 and summary.n_dropped == 2
    assert "2 byte-identical copy left out" in summary.describe()

    kept.unlink()  # the chosen file has gone: the first remaining copy stands in for it
    export_manifest(load_dataset(root), decisions, tmp_path / "m2.csv")
    rows = read_manifest(tmp_path / "m2.csv")
    assert "lymphocyte_0.png" in rows and "zz_third.png" not in rows
