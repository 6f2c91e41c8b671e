"""bloodcell_core.reporting: uploads, differential count, CSV, summary, decisions, performance helpers."""
from __future__ import annotations

import csv
import io
import struct
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from bloodcell_core.data.images import content_hash
from bloodcell_core.data.sampling import stratified_sample as stratified_indices
from bloodcell_core.errors import BloodcellError
from bloodcell_core.inference.predictor import Prediction
from bloodcell_core.reporting.batch import ClassifiedImage, differential_count, predictions_csv, predictions_frame
from bloodcell_core.reporting.decisions import CLASSIFY_DATASET, record_review, record_reviews, review_decision
from bloodcell_core.reporting.images import draw_crop_box
from bloodcell_core.reporting.performance import card_overview, compare_frame, format_metric, misclassified, threshold_point
from bloodcell_core.reporting.summary import summary_html
from bloodcell_core.reporting.uploads import MB, UPLOAD_TYPES, decode_uploads, upload_types_label
from bloodcell_core.review.store import Decision, ReviewStore
from tests.helpers_dashboard import png_bytes, synthetic_cell

CLASSES = ["lymphocyte", "monocyte", "neutrophil"]


def prediction(label: str, confidence: float = 0.9, flagged: bool = False) -> Prediction:
    rest = (1 - confidence) / (len(CLASSES) - 1)
    probabilities = {c: (confidence if c == label else rest) for c in CLASSES}
    return Prediction(label, confidence, probabilities, flagged, ["low confidence (0.40 < 0.50)"] if flagged else [],
                      (2, 3, 50, 51), True)


def image(name: str, label: str, flagged: bool = False, decision: Decision | None = None) -> ClassifiedImage:
    return ClassifiedImage(name, content_hash(name.encode()), prediction(label, 0.4 if flagged else 0.9, flagged),
                           decision)


def decision_for(item: ClassifiedImage, new_label: str, reviewer: str = "alice") -> Decision:
    made = review_decision(item, new_label, reviewer, "m")
    made.time = datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)
    return made


# -- uploads -------------------------------------------------------------------------------------

def bomb_png(side: int = 50_000) -> bytes:
    """A PNG header that declares side x side pixels (a decompression bomb) without the pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_bad_uploads_get_one_message_each_and_good_ones_decode():
    good = png_bytes(synthetic_cell(64))
    files = [("good.png", good), ("empty.png", b""), ("truncated.png", good[: len(good) // 2]),
             ("notes.png", b"this is not an image at all"), ("bomb.png", bomb_png()),
             ("dot.png", png_bytes(np.zeros((1, 1, 3), np.uint8))), ("big.png", good)]
    results = decode_uploads(files[:-1]) + decode_uploads(files[-1:], max_bytes=len(good) - 1)
    by_name = {r.name: r for r in results}
    assert [r.name for r in results] == [name for name, _ in files]
    assert by_name["good.png"].ok and by_name["good.png"].image.shape == (64, 64, 3)
    assert by_name["good.png"].image_hash == content_hash(good)
    expected = {"empty.png": "empty file", "truncated.png": "truncated", "notes.png": "not an image",
                "bomb.png": "too large", "dot.png": "too small", "big.png": "file too large"}
    for name, phrase in expected.items():
        error = by_name[name].error
        assert not by_name[name].ok and error.startswith(name) and phrase in error and "\n" not in error


def test_uploads_take_the_same_types_as_the_cli_and_refuse_others_with_a_reason():
    from PIL import Image

    from bloodcell_core.data.images import IMAGE_EXTENSIONS

    assert [f".{t}" for t in UPLOAD_TYPES] == list(IMAGE_EXTENSIONS)
    assert upload_types_label() == "JPEG, PNG, BMP, TIFF, GIF, WEBP"
    files = []
    for kind in ("GIF", "WEBP"):
        buffer = io.BytesIO()
        Image.fromarray(synthetic_cell(64)).save(buffer, format=kind)
        files.append((f"cell.{kind.lower()}", buffer.getvalue()))
    files += [("report.pdf", b"%PDF-1.4"), ("no-extension", png_bytes(synthetic_cell(64)))]
    gif, webp, pdf, bare = decode_uploads(files)
    assert gif.ok and webp.ok and gif.image.shape == (64, 64, 3)
    assert pdf.error == "report.pdf: file type .pdf not accepted; use jpg, jpeg, png, bmp, tif, tiff, gif, webp"
    assert bare.error.startswith("no-extension: file type (none) not accepted")


def test_upload_limit_is_counted_in_streamlit_megabytes():
    result = decode_uploads([("x.png", b"\0" * (MB + 1))], max_bytes=MB)[0]
    assert result.error == "x.png: file too large (1.0 MB; the limit is 1 MB)"


# -- differential count, CSV ----------------------------------------------------------------------

def test_differential_counts_accepted_and_keeps_flagged_apart_until_reviewed():
    flagged = image("f.png", "monocyte", flagged=True)
    corrected = image("c.png", "lymphocyte")
    corrected.decision = decision_for(corrected, "neutrophil")
    images = [image("a.png", "lymphocyte"), image("b.png", "lymphocyte"), flagged, corrected]
    count = differential_count(images, CLASSES)
    table = count.table().set_index("class")
    assert table["count"].to_dict() == {"lymphocyte": 2, "monocyte": 0, "neutrophil": 1}
    assert table["needs review"].to_dict() == {"lymphocyte": 0, "monocyte": 1, "neutrophil": 0}
    assert table["percent"].to_dict() == {"lymphocyte": 66.7, "monocyte": 0.0, "neutrophil": 33.3}
    assert (count.n_counted, count.n_awaiting) == (3, 1)
    flagged.decision = decision_for(flagged, "monocyte")  # a reviewed flagged image is counted
    assert differential_count(images, CLASSES).table().set_index("class").loc["monocyte", "count"] == 1


def test_differential_of_nothing_and_unknown_labels():
    assert differential_count([], CLASSES).table()["percent"].tolist() == [0.0, 0.0, 0.0]
    odd = image("o.png", "lymphocyte")
    odd.decision = decision_for(odd, "smudge cell")
    assert differential_count([odd], CLASSES).classes == [*CLASSES, "smudge cell"]


def test_predictions_csv_has_every_image_and_defuses_formulas():
    reviewed = image("=HYPERLINK(evil).png", "monocyte")
    reviewed.decision = decision_for(reviewed, "monocyte")
    rows = list(csv.DictReader(io.StringIO(predictions_csv([reviewed, image("b.png", "lymphocyte", True)],
                                                           CLASSES).decode())))
    assert [r["file"] for r in rows] == ["'=HYPERLINK(evil).png", "b.png"]
    assert rows[0]["reviewed_label"] == "monocyte" and rows[0]["review_action"] == "confirm-prediction"
    assert rows[0]["reviewed_at"].startswith("2026-01-02T03:04")
    assert rows[1]["needs_review"] == "True" and "low confidence" in rows[1]["review_reasons"]
    assert float(rows[1]["p_lymphocyte"]) == pytest.approx(0.4)
    assert {"sha256", "crop_left", "crop_bottom", "final_label", "localised"} <= set(rows[0])


def status_images() -> list[ClassifiedImage]:
    """One image per status: confirmed, corrected, awaiting review (flagged, unreviewed), auto."""
    confirmed, corrected = image("c.png", "monocyte", True), image("x.png", "monocyte")
    confirmed.decision, corrected.decision = decision_for(confirmed, "monocyte"), decision_for(corrected, "neutrophil")
    return [confirmed, corrected, image("w.png", "monocyte", True), image("a.png", "lymphocyte")]


def test_one_status_rule_for_the_csv_and_the_summary():
    images = status_images()
    assert [i.status for i in images] == ["confirmed", "corrected", "awaiting review", "auto"]
    rows = list(csv.DictReader(io.StringIO(predictions_csv(images, CLASSES).decode())))
    assert [(r["status"], r["final_label"]) for r in rows] == [
        ("confirmed", "monocyte"), ("corrected", "neutrophil"), ("awaiting review", ""), ("auto", "lymphocyte")]
    page = summary_html(images, CLASSES, {}, "alice")
    for row in rows:  # the summary's image rows say the same status and final label
        assert f"<td>{row['status']}</td><td>{row['final_label']}</td>" in page


def test_predictions_frame_of_no_images_is_empty():
    assert predictions_frame([], CLASSES).empty
    assert predictions_csv([], CLASSES) == b"\n"


# -- summary -------------------------------------------------------------------------------------

def test_summary_has_date_model_reviewer_counts_and_escapes_names():
    hostile = image("<script>alert(1)</script>.png", "lymphocyte")
    card = {"name": "pbc <b>model</b>", "architecture": "compact", "created": "2026-01-01"}
    page = summary_html([hostile, image("f.png", "monocyte", True)], CLASSES, card, "alice",
                        errors=["bad.png: empty file (0 bytes)"],
                        when=datetime(2026, 5, 6, 7, 8, tzinfo=timezone.utc))
    assert "2026-05-06 07:08 UTC" in page and "alice" in page and "compact" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;.png" in page
    assert "pbc &lt;b&gt;model&lt;/b&gt;" in page
    assert "1 cells counted; 1 flagged image(s) awaiting review" in page
    assert "bad.png: empty file (0 bytes)" in page and "awaiting review" in page
    assert summary_html([], CLASSES, {}, None).count("not signed in") == 1


# -- decisions -----------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path):
    with ReviewStore(f"sqlite:///{tmp_path / 'review.sqlite'}") as opened:
        yield opened


def test_review_is_recorded_once_per_click_and_chains_new_decisions(store):
    item = image("cell.png", "lymphocyte")
    assert record_review(store, item, "lymphocyte", "alice", "m") is True
    assert record_review(store, item, "lymphocyte", "alice", "m") is False  # a rerun of the same click
    assert record_review(store, item, "monocyte", "alice", "m") is True
    assert record_review(store, item, "lymphocyte", "alice", "m") is True  # confirm again after correcting
    assert record_review(store, item, "lymphocyte", "bob", "m") is True  # a second reviewer's opinion
    history = store.history(dataset=CLASSIFY_DATASET)
    assert list(history["action"])[::-1] == ["confirm-prediction", "correct-prediction", "confirm-prediction",
                                             "confirm-prediction"]
    assert list(history["reviewer"])[::-1] == ["alice", "alice", "alice", "bob"]
    assert set(history["image_hash"]) == {item.image_hash} and set(history["old_label"]) == {"lymphocyte"}


def test_same_request_twice_is_stored_once(store):
    item = image("cell.png", "lymphocyte")
    decision = review_decision(item, "monocyte", "alice", "m")
    assert store.record(decision) and not store.record(review_decision(item, "monocyte", "alice", "m"))
    assert store.count() == 1


def test_bulk_review_writes_one_row_per_image_in_one_go_and_once(store):
    items = [image(f"cell{i}.png", "lymphocyte") for i in range(5)]
    changes = [(item, "lymphocyte") for item in items] + [(items[0], "lymphocyte")]  # a duplicate is one
    assert record_reviews(store, changes, "alice", "m") == 5
    assert record_reviews(store, changes, "alice", "m") == 0  # a rerun of the bulk click
    assert record_reviews(store, [(items[1], "monocyte"), (items[2], "lymphocyte")], "alice", "m") == 1
    history = store.history(dataset=CLASSIFY_DATASET)
    assert list(history["action"]).count("confirm-prediction") == 5 and store.count() == 6


def test_a_bulk_write_is_all_or_nothing(store):
    from bloodcell_core.review.store import ReviewStoreError

    good = review_decision(image("a.png", "lymphocyte"), "lymphocyte", "alice", "m")
    bad = Decision("", CLASSIFY_DATASET, "b.png", "confirm-prediction", "x", "x", "alice")
    with pytest.raises(ReviewStoreError):
        store.record_many([good, bad])
    assert store.count() == 0
    assert store.record_many([good, good]) == 1


def test_review_needs_a_signed_in_reviewer(store):
    with pytest.raises(BloodcellError, match="sign in"):
        record_review(store, image("cell.png", "lymphocyte"), "lymphocyte", None, "m")
    assert store.count() == 0


# -- images, performance helpers -----------------------------------------------------------------

def test_crop_box_is_drawn_inside_the_image_and_clipped():
    canvas = np.zeros((40, 40, 3), np.uint8)
    drawn = draw_crop_box(canvas, (-5, 10, 30, 60), colour=(255, 0, 0), width=1)
    assert drawn.shape == canvas.shape and canvas.max() == 0  # a copy
    assert (drawn[10, 0:30, 0] == 255).all() and (drawn[10:40, 29, 0] == 255).all()
    assert drawn[20, 15].max() == 0 and (draw_crop_box(canvas, None) == canvas).all()


@pytest.mark.parametrize("n", [1, 3, 7, 20, 59])
def test_stratified_sample_keeps_shares_and_every_class(n):
    labels = np.array([0] * 40 + [1] * 15 + [2] * 5)
    chosen = stratified_indices(labels, n, seed=1)
    assert len(chosen) == n == len(set(chosen.tolist()))
    counts = np.bincount(labels[chosen], minlength=3)
    if n >= 3:
        assert (counts >= 1).all()
    assert np.abs(counts - n * np.array([40, 15, 5]) / 60).max() <= 1.5
    assert (stratified_indices(labels, None) == np.arange(60)).all()


def test_misclassified_threshold_point_and_metric_formatting():
    from bloodcell_core.evaluation.evaluate import Evaluation

    predictions = [prediction("lymphocyte", 0.9), prediction("monocyte", 0.8), prediction("monocyte", 0.3),
                   prediction("neutrophil", 0.95)]
    evaluation = Evaluation({"classes": CLASSES}, ["a", "b", "c", "d"], np.array([0, 0, 1, 1]), predictions)
    wrong = misclassified(evaluation)
    assert [(m.item, m.true, m.predicted) for m in wrong] == [("d", "monocyte", "neutrophil"),
                                                              ("b", "lymphocyte", "monocyte")]
    assert [m.item for m in misclassified(evaluation, ("lymphocyte", "monocyte"))] == ["b"]
    assert threshold_point(evaluation, 0.5) == (0.75, pytest.approx(1 / 3))
    assert threshold_point(evaluation, None) is None
    assert (format_metric("ECE", 0.0312), format_metric("Accuracy", 0.9876), format_metric("x", None)) == (
        "0.031", "98.8%", "n/a")


def test_card_overview_and_comparison_table():
    card = {"name": "m", "architecture": "compact", "classes": CLASSES, "input_size": 96, "crop_size": 96,
            "data": {"source": "pbc", "n_images": 13520}, "review": {"confidence_threshold": 0.61,
                                                                   "validation_coverage": 0.95,
                                                                   "validation_accuracy_accepted": 0.995}}
    overview = card_overview(card)
    assert overview["Trained on"] == "pbc (13,520 images)" and overview["Input size"].startswith("96 px")
    assert "0.610" in overview["Needs-review threshold"] and "99.5%" in overview["Needs-review threshold"]
    assert card_overview({})["Name"] == "unnamed model"
    assert card_overview({})["Prediction"] == "one pass" and "Corruption robustness" not in card_overview({})


def test_card_overview_states_test_time_views_and_stress_results():
    card = {"inference": {"tta": ["identity", "rot180"]}, "calibration": {"temperature": 0.55},
            "robustness": {"mean_corrupted_balanced_accuracy": 0.948, "clean_balanced_accuracy": 0.963,
                           "n_images": 1000},
            "shift_bench": {"conditions": {"clean": {"accuracy": 0.97}, "zoom_in": {"accuracy": 0.95},
                                           "jpeg_lowres": {"accuracy": 0.874}}}}
    overview = card_overview(card)
    assert overview["Prediction"] == "averaged over 2 views (identity, rot180); temperature 0.550"
    assert overview["Corruption robustness"].startswith("mean balanced accuracy 94.8%")
    assert overview["Synthetic shifts"] == "accuracy 97.0% clean; worst jpeg lowres 87.4%"
    card["inference"].update(tta_extra=["rot90", "rot270"], tta_extra_below=0.7)
    assert card_overview(card)["Prediction"] == ("averaged over 2 views (identity, rot180), plus rot90, rot270 where "
                                                 "the top probability over those is below 0.70; temperature 0.550")


def test_card_overview_lists_every_source_and_each_other_laboratory():
    card = {"data": {"source": "a + b", "sources": [{"source": "/data/pbc-dev", "n_images": 13520},
                                                    {"source": "/data/bionet", "n_images": 359}]},
            "crosslab": {"datasets": {"lisc": {"accuracy": 0.71, "balanced_accuracy": 0.7, "n_images": 259,
                                               "seen_in_training": False, "confident_error_rate": 0.02}}}}
    overview = card_overview(card)
    assert overview["Trained on"] == "pbc-dev (13,520 images) + bionet (359 images)"
    assert overview["Other laboratory: lisc"] == ("accuracy 71.0%, balanced 70.0% (259 images, never seen in "
                                                  "training); confident errors 2.0%")
    card["adaptation_curve"] = {"laboratories": {"lisc": {"draws": 5, "curve": {
        "10": {"parent": {"mean": 0.8, "std": 0.0}, "adapted": {"mean": 0.89, "std": 0.03}}}}}}
    assert card_overview(card)["Adapting to lisc"] == ("accuracy 80.0% unadapted, 89.0% after 10 labelled cells "
                                                       "per class (mean of 5 draws)")
    frame = compare_frame({"a": {"accuracy": 0.9}, "b": {"accuracy": 0.8, "ece": 0.05}})
    assert frame.loc["Accuracy"].tolist() == [0.9, 0.8] and frame.loc["ECE", "b"] == 0.05
