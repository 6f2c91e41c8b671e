"""The review loop closes: reviewed cells are archived once, exported, adapted on; the Adapt page and the log.

Models are the tiny hand-built dashboard fixture model (it always predicts TINY_MODEL_CLASS), so
nothing here trains (``train`` on a few images can crash inside oneDNN) and nothing needs real data.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from bloodcell_core.cli import main
from bloodcell_core.data.images import content_hash, decode_image
from bloodcell_core.errors import BloodcellError
from bloodcell_core.inference.predictor import Prediction
from bloodcell_core.reporting.batch import ClassifiedImage
from bloodcell_core.reporting.decisions import CLASSIFY_DATASET, record_review
from bloodcell_core.review.archive import archive_reviewed, archived_cells
from bloodcell_core.review.store import ReviewStore
from tests.helpers_dashboard import TINY_MODEL_CLASS, open_app, png_bytes, sign_in
from tests.helpers_images import synthetic_cell

OTHER_CLASS = "monocyte"


def cell(index: int, label: str) -> tuple[bytes, np.ndarray]:
    """(PNG bytes, pixels) of a distinct generated cell: classes differ in nucleus size and colour."""
    big = label == OTHER_CLASS
    pixels = synthetic_cell(64, radius=64 * (0.2 if big else 0.11), seed=100 * big + index,
                            nucleus_colour=(150, 60, 60) if big else (60, 40, 110))
    return png_bytes(pixels), pixels


def classified(index: int, label: str) -> ClassifiedImage:
    data, pixels = cell(index, label)
    prediction = Prediction(TINY_MODEL_CLASS, 0.9, {TINY_MODEL_CLASS: 0.9, OTHER_CLASS: 0.1}, False)
    return ClassifiedImage(f"cell-{label}-{index}.png", content_hash(data), prediction, pixels=pixels)


def review_cells(store: ReviewStore, per_class: int, source: str = "Lab A", reviewer: str = "alice") -> None:
    """Accept ``per_class`` cells and correct ``per_class`` others to OTHER_CLASS."""
    for i in range(per_class):
        record_review(store, classified(i, TINY_MODEL_CLASS), TINY_MODEL_CLASS, reviewer, "tiny", source=source)
        record_review(store, classified(i, OTHER_CLASS), OTHER_CLASS, reviewer, "tiny", source=source)


# -- the archive (core) ----------------------------------------------------------------------------

def test_a_reviewed_cell_is_archived_once_and_its_latest_decision_labels_it(review_store):
    image = classified(0, TINY_MODEL_CLASS)
    assert record_review(review_store, image, TINY_MODEL_CLASS, "alice", "tiny", source="  Lab   A ")
    assert not record_review(review_store, image, TINY_MODEL_CLASS, "alice", "tiny", source="Lab A")  # a rerun
    assert len(review_store.archived()) == 1
    assert record_review(review_store, image, OTHER_CLASS, "bob", "tiny", source="Lab B")  # a later correction
    [archived] = archived_cells(review_store, with_images=True)
    assert (archived.source, archived.label, archived.reviewer) == ("Lab A", OTHER_CLASS, "alice")
    assert archived.image_hash == image.image_hash and archived.media_type == "image/png"
    assert np.array_equal(decode_image(archived.image), image.pixels)  # lossless: what the model saw


def test_nothing_is_archived_without_a_reviewer_or_a_source(review_store):
    image = classified(0, TINY_MODEL_CLASS)
    with pytest.raises(BloodcellError, match="sign in"):
        record_review(review_store, image, TINY_MODEL_CLASS, None, "tiny", source="Lab A")
    with pytest.raises(BloodcellError, match="sign in"):
        archive_reviewed(review_store, image.pixels, image.image_hash, "Lab A", "", CLASSIFY_DATASET)
    assert record_review(review_store, image, TINY_MODEL_CLASS, "alice", "tiny", source=None)
    assert review_store.archived() == [] and review_store.count() == 1


def test_upload_bytes_are_archived_as_they_are(review_store):
    data, _ = cell(3, TINY_MODEL_CLASS)
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(jpeg, format="JPEG")
    assert archive_reviewed(review_store, jpeg.getvalue(), content_hash(jpeg.getvalue()), "Lab A", "alice",
                            CLASSIFY_DATASET)
    [row] = review_store.archived(with_images=True)
    assert row["image"] == jpeg.getvalue() and row["media_type"] == "image/jpeg"
    with pytest.raises(BloodcellError, match="not an image"):
        archive_reviewed(review_store, b"not an image", "h" * 64, "Lab A", "alice", CLASSIFY_DATASET)


def test_the_exported_archive_adapts_a_model_through_the_cli(monkeypatch, tmp_path, tiny_model_dir, capsys):
    monkeypatch.setenv("BLOODCELL_DB", str(tmp_path / "review.sqlite"))
    monkeypatch.setenv("BLOODCELL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("BLOODCELL_DB_URL", raising=False)
    with ReviewStore() as store:
        review_cells(store, per_class=4)
        review_cells(store, per_class=1, source="Lab B")  # the same cells: already archived under Lab A
        record_review(store, classified(9, OTHER_CLASS), OTHER_CLASS, "alice", "tiny", source="Lab B")
    out = tmp_path / "export"
    assert main(["archive-export", "--out", str(out), "--source", "Lab A"]) == 0
    assert {p.name: len(list(p.iterdir())) for p in out.iterdir()} == {TINY_MODEL_CLASS: 4, OTHER_CLASS: 4}
    assert all(len(p.stem) == 64 and p.suffix == ".png" for p in out.rglob("*.png"))
    assert main(["archive-export", "--out", str(out)]) == 2  # never into a non-empty folder
    assert main(["archive-export", "--out", str(tmp_path / "none"), "--source", "Lab C"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: no reviewed cells archived from source 'Lab C'")
    adapted = tmp_path / "adapted"
    assert main(["adapt", str(out), "--model", str(tiny_model_dir), "--out", str(adapted)]) == 0
    data = json.loads((adapted / "card.json").read_text())["adaptation"]["data"]
    assert data["class_counts"] == {TINY_MODEL_CLASS: 4, OTHER_CLASS: 4} and data["n_images"] == 8


# -- the app ---------------------------------------------------------------------------------------

def open_signed_in(secrets: dict, page: str):
    app = sign_in(open_app(secrets))
    app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def clicked(app, key: str):
    app.button(key=key).click().run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def picked(app) -> tuple[str, str]:
    """(the picked model folder, the last option label) of the sidebar picker, drawn by app.py on Home."""
    app.switch_page("app.py").run()  # AppTest runs a switched-to page alone, without app.py's sidebar
    picker = app.sidebar.selectbox(key="app_model_picker")
    return picker.value, picker.options[-1]


def test_classify_archives_an_accepted_upload_under_the_session_source(dashboard_env, reviewer_secrets):
    app = open_signed_in(reviewer_secrets, "pages/classify.py")
    app.sidebar.text_input(key="classify_lab_source").input("Lab A").run()
    data, _ = cell(0, TINY_MODEL_CLASS)
    app.file_uploader(key="classify_uploads").set_value([("cell.png", data, "image/png")]).run()
    accept = next(b for b in app.button if b.key and b.key.startswith("classify_accept_"))
    accept.click().run()
    app.run()
    with ReviewStore(f"sqlite:///{dashboard_env / 'review.sqlite'}") as store:
        assert [(c.image_hash, c.source, c.label) for c in archived_cells(store)] == [
            (content_hash(data), "Lab A", TINY_MODEL_CLASS)]


def test_adapt_page_adapts_the_picked_model_lists_it_and_switches_back(dashboard_env, reviewer_secrets,
                                                                        tiny_model_dir):
    with ReviewStore(f"sqlite:///{dashboard_env / 'review.sqlite'}") as store:
        review_cells(store, per_class=4)
    app = open_signed_in(reviewer_secrets, "pages/adapt.py")
    counts = app.dataframe[0].value
    assert counts.loc[TINY_MODEL_CLASS, "Lab A"] == 4 and counts.loc[OTHER_CLASS, "Lab A"] == 4
    app.text_input(key="adapt_model_name").input("tiny for lab A")
    clicked(app, "adapt_run")
    new_folder = dashboard_env / "models" / "tiny-for-lab-A"
    assert (new_folder / "model.keras").is_file()
    assert any("tiny for lab A" in s.value for s in app.success)
    recall = app.dataframe[1].value.set_index("class")
    assert recall.loc[OTHER_CLASS, "cells"] == 4 and recall.loc[OTHER_CLASS, "recall before"] == 0.0
    assert picked(app) == (str(tiny_model_dir.resolve()), "tiny for lab A (tiny-for-lab-A)")  # listed, not picked
    clicked(app.switch_page("pages/adapt.py").run(), "adapt_use_new")
    assert picked(app)[0] == str(new_folder.resolve())
    clicked(app.switch_page("pages/adapt.py").run(), "adapt_switch_back")  # one click back to the parent
    assert picked(app)[0] == str(tiny_model_dir.resolve())
    saved = (new_folder / "model.keras").stat().st_mtime_ns
    app.switch_page("pages/adapt.py").run().text_input(key="adapt_model_name").input("tiny for lab A")
    clicked(app, "adapt_run")  # a taken name: one line, no server path, nothing overwritten
    assert [e.value.replace("\\", "") for e in app.error] == [
        "a model folder 'tiny-for-lab-A' exists already: choose another name"]
    assert (new_folder / "model.keras").stat().st_mtime_ns == saved
    app.switch_page("pages/review_log.py").run()
    runs = app.dataframe[0].value
    assert runs.iloc[0]["reviewer"] == "alice" and runs.iloc[0]["model"] == "tiny for lab A"
    assert runs.iloc[0]["from"].startswith("source Lab A: 8 cells") and "cross-validated" in runs.iloc[0]["result"]


def test_adapt_page_shows_the_archive_but_no_button_without_sign_in(dashboard_env, reviewer_secrets):
    with ReviewStore(f"sqlite:///{dashboard_env / 'review.sqlite'}") as store:
        review_cells(store, per_class=1)
    app = open_app({**reviewer_secrets, "access": {"read_only_open": True}}, "pages/adapt.py")
    assert app.dataframe[0].value.loc[OTHER_CLASS, "Lab A"] == 1
    assert not [b for b in app.button if b.key == "adapt_run"]
    assert any("Sign in" in i.value for i in app.info)
