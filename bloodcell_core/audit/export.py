"""Export a dataset with the reviewers' decisions applied, as a ``path,label`` CSV manifest.

Decisions are matched to images by content hash (SHA-256 of the file bytes), so a
decision follows the image whatever its path, and applies to every byte-identical copy.
Per image, its latest decision counts:

- ``drop``: left out of the manifest;
- ``relabel`` / ``correct-prediction``: label set to the decision's ``new_label``;
- ``keep`` / ``not-duplicate`` / ``confirm-prediction``: given label kept;
- ``keep-one-copy`` (a duplicate group of byte-identical files, one kept): the file the reviewer
  kept is written and its byte-identical copies are left out (if that file is no longer in the
  dataset, the first copy in dataset order stands in for it).

The manifest also carries ``original_label``, ``decision`` and ``reviewer`` so every
changed row can be traced; :func:`bloodcell_core.data.datasets.load_dataset` reads it.
Only datasets of image files (folders, CSV manifests) can be exported: an .npz has no
files for a manifest to point at.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bloodcell_core.classes import normalise_class_name
from bloodcell_core.data.datasets import Dataset, load_dataset
from bloodcell_core.data.images import content_hash, read_bytes
from bloodcell_core.errors import DatasetError, UnreadableImageError
from bloodcell_core.outputs import write_csv
from bloodcell_core.progress import ProgressFn, track
from bloodcell_core.review.store import ReviewAction

if TYPE_CHECKING:
    from bloodcell_core.review.store import Decision

MANIFEST_COLUMNS = ("path", "label", "original_label", "decision", "reviewer")
DROP_ACTIONS = (ReviewAction.DROP,)
RELABEL_ACTIONS = (ReviewAction.RELABEL, ReviewAction.CORRECT_PREDICTION)
KEEP_ACTIONS = (ReviewAction.KEEP, ReviewAction.KEEP_ONE_COPY, ReviewAction.NOT_DUPLICATE,
                ReviewAction.CONFIRM_PREDICTION)


@dataclass
class ExportSummary:
    out: Path
    n_written: int = 0
    n_dropped: int = 0
    n_relabelled: int = 0
    actions: Counter = field(default_factory=Counter)  # decisions applied, per action
    problems: list[str] = field(default_factory=list)  # images or decisions that couldn't be applied

    def describe(self) -> str:
        applied = ", ".join(f"{n} {a}" for a, n in sorted(self.actions.items())) or "none"
        return (f"{self.out}: {self.n_written} images written, {self.n_dropped} dropped, "
                f"{self.n_relabelled} relabelled (decisions applied: {applied})")


def _row(path: str, label: str, decision: Decision | None, summary: ExportSummary) -> dict[str, str] | None:
    """One manifest row for an image with its latest decision; None when it is dropped."""
    row = {"path": str(Path(path).resolve()), "label": label, "original_label": label,
           "decision": "", "reviewer": ""}
    if decision is None:
        return row
    action = decision.action
    row.update(decision=action, reviewer=decision.reviewer)
    if action in DROP_ACTIONS:
        summary.actions[action] += 1
        summary.n_dropped += 1
        return None
    if action in RELABEL_ACTIONS:
        if not decision.new_label:
            summary.problems.append(f"{path}: '{action}' decision without a new label, given label kept")
            return row
        row["label"] = normalise_class_name(decision.new_label)
        summary.n_relabelled += row["label"] != label
    elif action not in KEEP_ACTIONS:
        summary.problems.append(f"{path}: unknown decision '{action}', given label kept")
        return row
    summary.actions[action] += 1
    return row


def export_manifest(dataset: Dataset, decisions: Mapping[str, Decision], out: str | Path,
                    progress: ProgressFn | None = None) -> ExportSummary:
    """Write ``out`` (CSV) with ``decisions`` (image hash -> latest decision) applied."""
    if dataset.arrays is not None:
        raise DatasetError(f"{dataset.source}: export needs a folder or CSV dataset of image files; "
                           "an .npz holds arrays, not files a manifest could list")
    out = Path(out)
    summary = ExportSummary(out)
    hashes = _content_hashes(dataset, summary, progress)
    kept_copy = _kept_copies(dataset, hashes, decisions)
    rows = []
    labels = dataset.label_names
    for index, image_hash in hashes.items():
        path = dataset.items[index]
        decision = decisions.get(image_hash)
        if kept_copy.get(image_hash, index) != index:
            summary.n_dropped += 1
            summary.actions["byte-identical copy left out"] += 1
            continue
        row = _row(path, labels[index], decision, summary)
        if row is not None:
            rows.append(row)
    write_csv(out, rows, MANIFEST_COLUMNS)
    summary.n_written = len(rows)
    return summary


def _content_hashes(dataset: Dataset, summary: ExportSummary, progress: ProgressFn | None) -> dict[int, str]:
    """Item index -> SHA-256 of its bytes, for the readable items (the others go to ``problems``)."""
    hashes: dict[int, str] = {}
    for index in track(range(len(dataset)), len(dataset), "Applying decisions", progress, every=256):
        try:
            hashes[index] = content_hash(read_bytes(dataset.items[index]))
        except UnreadableImageError as exc:
            summary.problems.append(f"{exc} (left out)")
    return hashes


def _kept_copies(dataset: Dataset, hashes: dict[int, str], decisions: Mapping[str, Decision]) -> dict[str, int]:
    """Content hash -> the one item index to write, for hashes whose decision is keep-one-copy."""
    chosen: dict[str, int] = {}
    for index, image_hash in hashes.items():
        decision = decisions.get(image_hash)
        if decision is None or decision.action != ReviewAction.KEEP_ONE_COPY:
            continue
        if image_hash not in chosen or (_is_kept_path(dataset, index, decision)
                                        and not _is_kept_path(dataset, chosen[image_hash], decision)):
            chosen[image_hash] = index
    return chosen


def _is_kept_path(dataset: Dataset, index: int, decision: Decision) -> bool:
    return Path(dataset.items[index]).resolve() == Path(decision.path).resolve()


def export_reviewed(data: str | Path, out: str | Path, db_url: str | None = None,
                    dataset_name: str | None = None, progress: ProgressFn | None = None) -> ExportSummary:
    """Load DATA, read the latest decisions from the review store and write the manifest.

    ``dataset_name`` restricts decisions to those recorded for that dataset; by default
    every decision about an image (by content hash) applies.
    """
    from bloodcell_core.review.store import ReviewStore

    dataset = load_dataset(data)
    if dataset.arrays is not None:  # fail before touching the database
        return export_manifest(dataset, {}, out)
    store = ReviewStore(db_url)
    try:
        decisions = store.latest(dataset_name)
    finally:
        store.close()
    return export_manifest(dataset, decisions, out, progress)
