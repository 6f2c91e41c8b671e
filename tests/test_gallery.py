"""The Classify page's cell gallery (AppTest, real page code) and its pieces in bloodcell_core.

A colour model tells three disc colours apart, so a generated batch falls into several classes;
one blank image (no stained cell) is flagged and sits in the "needs review" group.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bloodcell_core.reporting.gallery import NEEDS_REVIEW, crop_thumbnail, gallery_groups
from tests.helpers_dashboard import colour_cell, open_app, png_bytes, recorded, sign_in, tiny_model_card, upload

BATCH = {"lymphocyte": 4, "neutrophil": 4, "eosinophil": 3}


@pytest.fixture(scope="module")
def colour_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bloodcell_core.models.store import save_model
    from tests.helpers_dashboard import build_colour_model

    folder = tmp_path_factory.mktemp("colour") / "colour"
    return save_model(build_colour_model(), tiny_model_card("colour-test"), folder)


@pytest.fixture
def gallery_env(dashboard_env: Path, colour_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BLOODCELL_MODEL", str(colour_model_dir))
    monkeypatch.setenv("BLOODCELL_MODELS_DIR", str(colour_model_dir.parent))
    return dashboard_env


def batch_files() -> list[tuple[str, bytes]]:
    files = [(f"{label}-{i}.png", png_bytes(colour_cell(label, seed=20 + i)))
             for label, n in BATCH.items() for i in range(n)]
    blank = png_bytes(np.full((64, 64, 3), (236, 200, 210), np.uint8))  # no stained cell: flagged
    return [*files, ("blank.png", blank)]


def group_titles(app) -> list[str]:
    return [m.value.split("**")[1] for m in app.markdown if m.value.count("**") == 2 and ": " in m.value]


def counts(app) -> dict[str, int]:
    return app.dataframe[0].value.set_index("class")["count"].to_dict()


def select(app, group: str, cells: list[tuple[int, int]]):
    generations = app.session_state["classify_gallery_generations"] if "classify_gallery_generations" in \
        app.session_state else {}
    key = f"classify_gallery_{group.replace(' ', '-')}_{generations.get(group, 0)}"
    app.session_state[key] = {"selection": {"rows": [], "columns": [], "cells": [[r, f"c{c}"] for r, c in cells]}}
    return app.run()


def test_a_batch_is_grouped_by_class_with_needs_review_first(gallery_env):
    app = upload(open_app(page="pages/classify.py"), batch_files())
    assert group_titles(app) == ["needs review: 1 (8%)", "eosinophil: 3 (25%)", "lymphocyte: 4 (33%)",
                                 "neutrophil: 4 (33%)"]
    assert "classify_explanations" not in app.session_state  # no heatmap until a cell is opened
    select(app, "neutrophil", [(0, 1)])
    assert not app.exception
    assert "neutrophil-1.png" in [t.value for t in app.text]  # the opened cell's detail card
    assert len(app.session_state["classify_explanations"]) == 1


def test_confirming_a_group_writes_one_decision_per_cell_once(gallery_env, reviewer_secrets):
    app = upload(sign_in(open_app(reviewer_secrets, page="pages/classify.py")), batch_files())
    app.button(key="classify_confirm_lymphocyte").click().run()
    assert not app.exception
    assert recorded(gallery_env) == [("confirm-prediction", "lymphocyte", "lymphocyte", "alice")] * 4
    assert "lymphocyte: 4 (33%) · confirmed" in group_titles(app)
    assert not [b for b in app.button if b.key == "classify_confirm_lymphocyte"]  # nothing left to confirm
    app.run()
    app.run()
    assert len(recorded(gallery_env)) == 4  # reruns write nothing
    app.button(key="classify_confirm_neutrophil").click().run()
    assert len(recorded(gallery_env)) == 8


def test_reclassifying_cells_moves_them_and_updates_the_count(gallery_env, reviewer_secrets):
    app = upload(sign_in(open_app(reviewer_secrets, page="pages/classify.py")), batch_files())
    assert counts(app)["neutrophil"] == 4 and counts(app)["monocyte"] == 0
    select(app, "neutrophil", [(0, 0)])
    app.button(key="classify_move_monocyte").click().run()  # select, pick the class: two actions
    assert not app.exception
    assert recorded(gallery_env) == [("correct-prediction", "neutrophil", "monocyte", "alice")]
    assert counts(app)["neutrophil"] == 3 and counts(app)["monocyte"] == 1
    assert "monocyte: 1 (8%) · confirmed" in group_titles(app) and "neutrophil: 3 (25%)" in group_titles(app)
    select(app, "eosinophil", [(0, 0), (0, 2)])  # several at once
    app.button(key="classify_move_basophil").click().run()
    assert counts(app)["eosinophil"] == 1 and counts(app)["basophil"] == 2
    assert len(recorded(gallery_env)) == 3
    select(app, NEEDS_REVIEW, [(0, 0)])  # the flagged cell, accepted as predicted: counted from now on
    app.button(key="classify_accept_selected").click().run()
    assert not any(t.startswith(NEEDS_REVIEW) for t in group_titles(app))
    assert sum(counts(app).values()) == 12


def test_groups_and_thumbnails_in_core():
    from bloodcell_core.inference.predictor import Prediction
    from bloodcell_core.reporting.batch import ClassifiedImage

    def item(label: str, flagged: bool = False) -> ClassifiedImage:
        return ClassifiedImage(f"{label}.png", label + str(flagged), Prediction(label, 0.9, {label: 0.9}, flagged))

    groups = gallery_groups([item("monocyte"), item("ig", True), item("zzz")], ["ig", "monocyte"])
    assert [(g.key, g.count) for g in groups] == [(NEEDS_REVIEW, 1), ("monocyte", 1), ("zzz", 1)]
    uri = crop_thumbnail(colour_cell("lymphocyte"), (-8, -8, 40, 40), "57%")
    assert uri.startswith("data:image/jpeg;base64,")


def test_thumbnail_shows_the_models_crop_with_black_padding_painted():
    """A cell cut near its field's edge (black bars, as 48 of LISC's are): the thumbnail is the
    model's input, bars painted with the slide background, not the raw black."""
    import base64
    import io

    from PIL import Image

    from bloodcell_core.preprocess.localise import localise_and_crop

    cell = colour_cell("lymphocyte", side=96)[:, 30:]  # the cell sits near the cut
    padded = np.zeros((96, 106, 3), np.uint8)
    padded[:, 40:] = cell
    model_input, where = localise_and_crop(padded, 96)
    uri = crop_thumbnail(padded, where.box)
    thumbnail = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))
    assert thumbnail.shape == model_input.shape
    assert thumbnail.max(axis=-1).min() > 60  # no black bar left
    assert np.abs(thumbnail.astype(int) - model_input.astype(int)).mean() < 4  # JPEG of the same crop


def test_thumbnail_labels_name_the_class_and_fit_the_thumbnail():
    from PIL import Image, ImageDraw

    from bloodcell_core.classes import CANONICAL_CLASSES
    from bloodcell_core.reporting.gallery import THUMBNAIL_SIDE, thumbnail_label

    assert thumbnail_label("lymphocyte", 0.971) == "lymph 97%"
    assert thumbnail_label("ig", 0.5) == "IG 50%"
    assert thumbnail_label("reticulocyte", 0.5) == "reticu 50%"  # no abbreviation: cut short
    draw = ImageDraw.Draw(Image.new("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE)))
    for name in [*CANONICAL_CLASSES, "reticulocyte"]:
        left, _, right, _ = draw.textbbox((3, 0), thumbnail_label(name, 1.0))
        assert right <= THUMBNAIL_SIDE - 2, name


def test_gif_and_webp_are_classified_and_other_types_counted_as_not_readable(gallery_env):
    import io

    from PIL import Image

    def encoded(kind: str) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(colour_cell("neutrophil", seed=3)).save(buffer, format=kind)
        return buffer.getvalue()

    app = upload(open_app(page="pages/classify.py"), [
        ("cell.gif", encoded("GIF")), ("cell.webp", encoded("WEBP")), ("notes.pdf", b"%PDF-1.4")])
    metrics = {m.label: m.value for m in app.metric}
    assert (metrics["Images analysed"], metrics["Not readable"]) == ("2", "1")
    assert any(t.value.startswith("notes.pdf: file type .pdf not accepted") for t in app.text)
    assert app.file_uploader(key="classify_uploads").proto.type == []  # the browser refuses nothing itself


def test_the_batch_is_kept_across_a_page_switch_until_the_uploader_is_emptied(gallery_env):
    app = upload(open_app(page="pages/classify.py"), batch_files())
    app.switch_page("pages/home.py").run()
    app.switch_page("pages/classify.py").run()
    assert not app.exception
    assert any("batch of 12 image(s) kept" in i.value for i in app.info)
    assert {m.label: m.value for m in app.metric}["Images analysed"] == "12"
    upload(app, batch_files()[:2])  # a new upload replaces the kept batch
    upload(app, [])  # the reviewer removes every file: the kept batch goes too
    assert any("Upload one or more images" in i.value for i in app.info)
    assert not list((gallery_env / "batches").iterdir())
