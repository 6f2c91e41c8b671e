"""The review-queue logic behind the data-review pages, and the 2-D feature map helper."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bloodcell_core.audit import AuditSettings, run_audit
from bloodcell_core.audit.embedding_map import embedding_map, project_2d
from bloodcell_core.audit.hashing import hash_dataset
from bloodcell_core.audit.review_queue import (LABEL_ISSUES_PAGE, OUTLIERS_PAGE, duplicate_groups,
                                               group_decisions, hash_paths, is_decided, item_decision,
                                               label_issue_queue, outlier_queue, pending_first, queue_progress,
                                               record_decisions, report_paths)
from bloodcell_core.data.datasets import load_dataset
from bloodcell_core.data.images import content_hash
from bloodcell_core.errors import BloodcellError
from bloodcell_core.inference.predictor import Predictor
from bloodcell_core.review.store import ReviewAction, ReviewStore
from tests.helpers_images import synthetic_cell, write_class_folders

DATASET = "cells"


@pytest.fixture
def duplicate_folder(tmp_path: Path) -> Path:
    """3 classes x 4 images, a byte copy filed under another class and a JPEG re-encode (near duplicate)."""
    root = write_class_folders(tmp_path / "cells", ["lymphocyte", "monocyte", "neutrophil"], per_class=4)
    shutil.copy(root / "lymphocyte" / "lymphocyte_0.png", root / "monocyte" / "copy.png")
    Image.open(root / "neutrophil" / "neutrophil_1.png").save(root / "neutrophil" / "again.jpg", quality=95)
    return root


@pytest.fixture
def store(tmp_path: Path) -> ReviewStore:
    with ReviewStore(f"sqlite:///{tmp_path / 'review.sqlite'}") as opened:
        yield opened


def groups_of(root: Path):
    dataset = load_dataset(root)
    report = run_audit(dataset, settings=AuditSettings(hash_workers=1))
    return duplicate_groups(report, hash_paths(dataset, report_paths(report)))


def test_groups_carry_hashes_and_conflicting_labels_come_first(duplicate_folder):
    groups = groups_of(duplicate_folder)
    assert [(g.kind, g.conflicting) for g in groups] == [("exact", True), ("near", False)]
    exact, near = groups
    assert exact.detail == "identical bytes" and exact.distance == 0
    assert [image.label for image in exact.images] == ["lymphocyte", "monocyte"]
    expected = content_hash((duplicate_folder / "monocyte" / "copy.png").read_bytes())
    assert exact.hashes == [expected]  # byte-identical copies share one hash
    assert len(near.hashes) == 2 and near.detail.startswith("perceptual-hash distance up to")
    assert {image.name for image in near.images} == {"neutrophil_1.png", "again.jpg"}


def test_keep_one_keeps_the_choice_and_drops_the_other_content(duplicate_folder):
    exact, near = groups_of(duplicate_folder)
    kept = next(image for image in near.images if image.name == "again.jpg")
    decisions = group_decisions(near, ReviewAction.KEEP_ONE_COPY, "alice", DATASET, {}, keep_path=kept.path,
                                note="  blurry  copy ")
    assert [(d.path, d.action, d.old_label, d.new_label) for d in decisions] == [
        (kept.path, "keep", "neutrophil", None),
        (next(i.path for i in near.images if i is not kept), "drop", "neutrophil", None)]
    assert all(d.note.endswith("kept again.jpg; blurry copy") and d.dataset == DATASET for d in decisions)
    assert len({d.request_id for d in decisions}) == 2
    # byte-identical copies: one decision covers both files (a content hash can't tell them apart)
    identical = group_decisions(exact, ReviewAction.KEEP_ONE_COPY, "alice", DATASET, {}, keep_path=exact.images[1].path)
    assert [(d.action, d.path) for d in identical] == [("keep-one-copy", exact.images[1].path)]


@pytest.mark.parametrize("action, new_label, expected", [
    ("drop", None, ("drop", None)), ("not-duplicate", None, ("not-duplicate", None)),
    ("relabel", "monocyte", ("relabel", "monocyte"))])
def test_group_actions_cover_every_distinct_image(duplicate_folder, action, new_label, expected):
    _, near = groups_of(duplicate_folder)
    decisions = group_decisions(near, action, "alice", DATASET, {}, new_label=new_label)
    assert [(d.action, d.new_label) for d in decisions] == [expected, expected]
    assert {d.image_hash for d in decisions} == set(near.hashes)


def test_bad_group_requests_are_refused_with_a_message(duplicate_folder):
    _, near = groups_of(duplicate_folder)
    with pytest.raises(BloodcellError, match="pick the new label"):
        group_decisions(near, "relabel", "alice", DATASET, {})
    with pytest.raises(BloodcellError, match="pick the image to keep"):
        group_decisions(near, ReviewAction.KEEP_ONE_COPY, "alice", DATASET, {}, keep_path="/not/in/the/group.png")
    with pytest.raises(BloodcellError, match="unknown duplicate-group action"):
        group_decisions(near, "keep", "alice", DATASET, {})


def test_a_click_is_recorded_once_and_then_the_group_counts_as_decided(duplicate_folder, store):
    groups = groups_of(duplicate_folder)
    exact, near = groups
    assert queue_progress(groups, store.latest(DATASET)).describe("groups") == "0 of 2 groups reviewed"
    decisions = group_decisions(near, "not-duplicate", "alice", DATASET, store.latest(DATASET))
    assert record_decisions(store, decisions, "alice") == 2
    assert record_decisions(store, decisions, "alice") == 0  # the same click replayed: same request ids
    latest = store.latest(DATASET)
    assert group_decisions(near, "not-duplicate", "alice", DATASET, latest) == []  # repeats the current decision
    assert is_decided(near, latest) and not is_decided(exact, latest)
    assert queue_progress(groups, latest).describe("groups") == "1 of 2 groups reviewed"
    assert pending_first(groups, latest, show_decided=False) == [exact]
    assert pending_first(groups, latest, show_decided=True) == [exact, near]
    # a different decision later (here by another reviewer) is new and recorded
    changed = group_decisions(near, "drop", "bob", DATASET, latest)
    assert record_decisions(store, changed, "bob") == 2 and store.count(DATASET) == 4
    assert {d.action for d in store.latest(DATASET).values()} == {"drop"}


def test_recording_needs_a_signed_in_reviewer(duplicate_folder, store):
    _, near = groups_of(duplicate_folder)
    with pytest.raises(BloodcellError, match="sign in"):
        record_decisions(store, group_decisions(near, "drop", "alice", DATASET, {}), None)
    assert store.count() == 0


def test_outlier_and_label_issue_queues_and_their_decisions(duplicate_folder, tmp_path):
    dataset = load_dataset(duplicate_folder)
    path = dataset.items[2]
    report = {"outliers": [{"path": path, "label": "lymphocyte", "score": 0.9}],
              "label_issues": [{"path": path, "given_label": "lymphocyte", "suggested_label": "monocyte",
                                "score": 0.05},
                               {"path": str(tmp_path / "gone.png"), "given_label": "monocyte",
                                "suggested_label": "ig", "score": 0.1}]}
    hashes = hash_paths(dataset, report_paths(report))
    outliers, issues = outlier_queue(report, hashes), label_issue_queue(report, hashes)
    assert [(f.rank, f.image.label, f.score) for f in outliers] == [(1, "lymphocyte", 0.9)]
    assert [(f.rank, f.suggested_label) for f in issues] == [(1, "monocyte"), (2, "ig")]
    assert issues[1].image.image_hash is None and "gone.png" in issues[1].image.problem
    relabel = item_decision(LABEL_ISSUES_PAGE, issues[0], "relabel", "alice", DATASET, {}, new_label="monocyte")
    assert (relabel.action, relabel.old_label, relabel.new_label) == ("relabel", "lymphocyte", "monocyte")
    assert relabel.note.startswith("label issue #1: given lymphocyte, suggested monocyte")
    drop = item_decision(OUTLIERS_PAGE, outliers[0], "drop", "alice", DATASET, {})
    assert drop.note.startswith("outlier #1") and drop.request_id != relabel.request_id
    with pytest.raises(BloodcellError, match="can't be read"):
        item_decision(LABEL_ISSUES_PAGE, issues[1], "keep", "alice", DATASET, {})
    with pytest.raises(BloodcellError, match="unknown review action"):
        item_decision(OUTLIERS_PAGE, outliers[0], "not-duplicate", "alice", DATASET, {})
    assert not is_decided(issues[1], {})  # an unreadable image is never counted as reviewed


def test_npz_items_are_hashed_as_the_audit_hashes_them(tmp_path):
    images = np.stack([synthetic_cell(32, seed=i) for i in range(3)])
    np.savez(tmp_path / "cells.npz", images=images, labels=np.array([0, 1, 1]))
    dataset = load_dataset(tmp_path / "cells.npz")
    hashes = hash_paths(dataset, dataset.items)
    assert [hashes[item][0] for item in dataset.items] == hash_dataset(dataset, workers=1).content


class FakeEmbedder:
    """Features: mean colour per channel plus the label-independent image brightness."""

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        return np.array([[*image.reshape(-1, 3).mean(axis=0), image.std()] for image in images])

    embed_dataset = Predictor.embed_dataset  # the real chunked loop over a dataset, around this embed


def test_embedding_map_projects_readable_images_and_lists_the_rest(duplicate_folder):
    (duplicate_folder / "monocyte" / "broken.png").write_bytes(b"not an image")
    dataset = load_dataset(duplicate_folder)
    mapped = embedding_map(dataset, FakeEmbedder())
    assert mapped.xy.shape == (len(dataset) - 1, 2) and np.isfinite(mapped.xy).all()
    assert [entry["path"] for entry in mapped.unreadable] == [str(duplicate_folder / "monocyte" / "broken.png")]
    assert len(mapped.explained_variance) == 2 and sum(mapped.explained_variance) <= 1.0 + 1e-9
    assert mapped.labels.count("monocyte") == 5 and len(mapped.paths) == len(mapped.labels)


def test_projections_and_their_errors():
    features = np.random.default_rng(0).normal(size=(40, 6))
    xy, explained = project_2d(features, "t-SNE")
    assert xy.shape == (40, 2) and explained is None
    with pytest.raises(BloodcellError, match="at least 3 images"):
        project_2d(features[:2])
    with pytest.raises(BloodcellError, match="NaN"):
        project_2d(np.full((5, 3), np.nan))
    with pytest.raises(BloodcellError, match="unknown projection"):
        project_2d(features, "umap")
