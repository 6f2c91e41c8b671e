"""Every CSV the project writes defuses spreadsheet formulas (one function: bloodcell_core.outputs.safe_cell).

The hostile name is the tester's: a file called ``=HYPERLINK("http://x","open").jpg`` accepted on
Classify must not come out as a live formula in the Review log CSV, ``review-export``, ``export`` or
``predict``.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from bloodcell_core.cli import main
from bloodcell_core.outputs import CSV_FORMULA_PREFIXES, frame_csv, safe_cell, unguard_cell
from bloodcell_core.review.store import Decision, ReviewStore
from tests.helpers_dashboard import png_bytes, synthetic_cell, write_cell_dataset

HOSTILE = '=HYPERLINK("http://x","open").jpg'  # an upload's name; "/" can't be in a file name on disk
HOSTILE_ON_DISK = '=HYPERLINK("x","open").jpg'


def live_formulas(text: str) -> list[str]:
    """Cells of a CSV text that a spreadsheet would run."""
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row if cell.startswith(CSV_FORMULA_PREFIXES)]


@pytest.mark.parametrize("prefix", list(CSV_FORMULA_PREFIXES))
def test_each_formula_prefix_is_defused_and_reads_back(prefix: str):
    cell = prefix + "1+1"
    assert safe_cell(cell) == "'" + cell and unguard_cell(safe_cell(cell)) == cell
    assert safe_cell("plain.jpg") == "plain.jpg" and safe_cell(-1.5) == -1.5  # numbers stay numbers


def hostile_decision(reviewer: str = "alice") -> Decision:
    return Decision(image_hash="a" * 64, dataset="classify-uploads", path=HOSTILE, action="correct-prediction",
                    old_label="ig", new_label="monocyte", reviewer=reviewer, note="-2+3 looked odd",
                    request_id="rid-hostile")


def test_review_log_csv_and_review_export_defuse_the_file_name(tmp_path: Path, monkeypatch, capsys):
    database = tmp_path / "review.sqlite"
    monkeypatch.setenv("BLOODCELL_DB", str(database))
    monkeypatch.delenv("BLOODCELL_DB_URL", raising=False)
    with ReviewStore() as store:
        store.record(hostile_decision())
        page_csv = store.to_csv().decode()  # what the Review log page's download button serves
    assert live_formulas(page_csv) == [] and f"'{HOSTILE}" in next(csv.reader(io.StringIO(page_csv.split("\n", 1)[1])))
    out = tmp_path / "decisions.csv"
    assert main(["review-export", "--out", str(out)]) == 0
    assert live_formulas(out.read_text()) == [] and f"'{HOSTILE}" in out.read_text().replace('""', '"')
    assert main(["review-export"]) == 0  # to stdout: the same guard
    assert live_formulas(capsys.readouterr().out) == []


def test_classify_predictions_csv_defuses_the_upload_name():
    from bloodcell_core.inference.predictor import Prediction
    from bloodcell_core.reporting.batch import ClassifiedImage, predictions_csv

    upload = ClassifiedImage(HOSTILE, "c" * 64, Prediction("ig", 0.57, {"ig": 0.57, "monocyte": 0.43}, True))
    text = predictions_csv([upload], ["ig", "monocyte"]).decode()
    assert live_formulas(text) == [] and next(csv.DictReader(io.StringIO(text)))["file"] == "'" + HOSTILE


def test_predict_csv_defuses_a_hostile_relative_path(tmp_path: Path, tiny_model_dir: Path, monkeypatch):
    (tmp_path / HOSTILE_ON_DISK).write_bytes(png_bytes(synthetic_cell(64)))
    monkeypatch.chdir(tmp_path)
    assert main(["predict", HOSTILE_ON_DISK, "--model", str(tiny_model_dir), "--out", "p.csv"]) == 0
    text = (tmp_path / "p.csv").read_text()
    assert live_formulas(text) == [] and next(csv.DictReader(io.StringIO(text)))["path"] == "'" + HOSTILE_ON_DISK


def test_export_manifest_is_guarded_and_still_trains(tmp_path: Path):
    data = tmp_path / "data"
    write_cell_dataset(data)
    from bloodcell_core.data.images import content_hash

    image = sorted(data.rglob("*.png"))[0]
    out = tmp_path / "manifest.csv"
    with ReviewStore(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        store.record(Decision(image_hash=content_hash(image.read_bytes()), dataset="x", path=str(image),
                              action="keep", old_label=None, new_label=None, reviewer="=cmd|' /C calc'!A0"))
    assert main(["export", str(data), "--out", str(out), "--db", f"sqlite:///{tmp_path / 'db.sqlite'}"]) == 0
    assert live_formulas(out.read_text()) == [] and "'=cmd|" in out.read_text()
    from bloodcell_core.data.datasets import load_dataset

    assert len(load_dataset(out)) == len(load_dataset(data))


def test_frame_csv_guards_column_names_too():
    import pandas as pd

    text = frame_csv(pd.DataFrame({"=x": ["+1", "ok"]}))
    assert live_formulas(text) == []
