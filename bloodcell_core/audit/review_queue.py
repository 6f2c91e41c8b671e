"""Review queues of the data-review pages (Duplicates, Outliers, Label issues).

The audit report lists findings by path; the review store records decisions by image
content hash (SHA-256 of the file bytes, or of the array for .npz items).  This module
joins the two: it turns report entries into queue entries carrying each image's hash,
says which entries are decided (every image in them has a latest decision for this
dataset), counts progress, and builds the :class:`Decision` rows an action writes.

Byte-identical copies share one hash, so one decision covers all of them: "keep one" in a
group of byte-identical files records one ``keep`` (a content-hash store can't tell the
copies apart), and only members with other content get ``drop``.

Idempotency: each decision's ``request_id`` is derived from (page, reviewer, dataset, queue
entry, image, action, new label) and the request id of the image's current latest decision.
The same click replayed (a Streamlit rerun, a double submit) maps to the same id and is
inserted once; a decision identical to the image's current one from the same reviewer is
not built at all.  A genuinely new decision after someone else's gets a new id.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bloodcell_core.data.datasets import Dataset
from bloodcell_core.data.images import content_hash, read_bytes
from bloodcell_core.errors import BloodcellError, UnreadableImageError
from bloodcell_core.review.auth import guarded_record
from bloodcell_core.review.store import Decision, ReviewAction, ReviewStore, make_request_id

DUPLICATES_PAGE = "duplicates"
OUTLIERS_PAGE = "outliers"
LABEL_ISSUES_PAGE = "label_issues"
# What a reviewer may do to a duplicate group; KEEP_ONE_COPY: keep the chosen image, drop the others
# (recorded per image as keep / keep-one-copy / drop, see group_decisions).
GROUP_ACTIONS = (ReviewAction.KEEP_ONE_COPY, ReviewAction.DROP, ReviewAction.RELABEL, ReviewAction.NOT_DUPLICATE)
ITEM_ACTIONS = (ReviewAction.KEEP, ReviewAction.DROP, ReviewAction.RELABEL)
MATCH_TEXT = {"bytes": "identical bytes", "pixels": "identical pixels, different files"}


@dataclass(frozen=True)
class ReviewImage:
    """One image of a queue entry: where it is, its given label, its content hash (None if unreadable)."""

    path: str
    label: str
    image_hash: str | None
    problem: str | None = None  # why the image couldn't be hashed

    @property
    def name(self) -> str:
        """The file name (``file.npz::train[3]`` for array items), for display."""
        return Path(self.path).name


@dataclass(frozen=True)
class DuplicateGroup:
    """A group of exact or near duplicates from the audit report."""

    key: str  # stable identity: a hash of the sorted member paths
    kind: str  # "exact" or "near"
    distance: int  # largest perceptual-hash distance in bits (0 for exact duplicates)
    detail: str  # "identical bytes", "hash distance up to 2 bits", ...
    images: tuple[ReviewImage, ...]

    @property
    def conflicting(self) -> bool:
        """The images carry different labels (shown first)."""
        return len({image.label for image in self.images}) > 1

    @property
    def hashes(self) -> list[str]:
        """Distinct content hashes of the readable images, in group order."""
        return list(dict.fromkeys(image.image_hash for image in self.images if image.image_hash))


@dataclass(frozen=True)
class FlaggedImage:
    """One outlier or likely label error, with its rank and score from the report."""

    rank: int  # 1 = most unusual / most likely mislabelled
    image: ReviewImage
    score: float
    suggested_label: str | None = None  # label issues: the class the out-of-fold model prefers

    @property
    def key(self) -> str:
        return group_key([self.image.path])

    @property
    def hashes(self) -> list[str]:
        return [self.image.image_hash] if self.image.image_hash else []


@dataclass(frozen=True)
class LeakedImage:
    """An image of this dataset that also occurs in the second dataset (``audit --against``'s leakage)."""

    image: ReviewImage  # in this dataset: the one a decision is about
    other_path: str
    other_label: str
    detail: str  # "identical bytes", "perceptual-hash distance 3 bits", ...

    @property
    def key(self) -> str:
        return group_key([self.image.path, self.other_path])

    @property
    def hashes(self) -> list[str]:
        return [self.image.image_hash] if self.image.image_hash else []


@dataclass(frozen=True)
class QueueProgress:
    decided: int
    total: int

    @property
    def fraction(self) -> float:
        return self.decided / self.total if self.total else 1.0

    def describe(self, noun: str) -> str:
        return f"{self.decided} of {self.total} {noun} reviewed"


# -- hashing ---------------------------------------------------------------------------------

def item_hash(dataset: Dataset, path: str, index: int | None = None) -> tuple[str | None, str | None]:
    """``(content hash, None)`` of one dataset item, or ``(None, reason)`` when it can't be read.

    Files: SHA-256 of the bytes (as the review store and the export expect).  .npz items: of
    the array bytes (as :mod:`bloodcell_core.audit.hashing` computes them).
    """
    try:
        if dataset.arrays is not None:
            if index is None:
                raise UnreadableImageError(f"{path}: not an item of {dataset.source}")
            return content_hash(np.ascontiguousarray(dataset.arrays[index]).tobytes()), None
        return content_hash(read_bytes(path)), None
    except UnreadableImageError as error:
        return None, str(error)


def hash_paths(dataset: Dataset, paths: Iterable[str]) -> dict[str, tuple[str | None, str | None]]:
    """``path -> (hash, problem)`` for report paths (each file read once)."""
    positions = {item: i for i, item in enumerate(dataset.items)} if dataset.arrays is not None else {}
    hashes: dict[str, tuple[str | None, str | None]] = {}
    for path in paths:
        if path not in hashes:
            hashes[path] = item_hash(dataset, path, positions.get(path))
    return hashes


def report_paths(report: Mapping[str, Any]) -> list[str]:
    """Every path the review pages show from ``report`` (duplicate groups, outliers, label issues)."""
    paths: list[str] = []
    for key in ("exact_duplicates", "near_duplicates"):
        for group in report.get(key, []):
            paths += group["paths"]
    paths += [entry["path"] for key in ("outliers", "label_issues") for entry in report.get(key, [])]
    leakage = report.get("leakage") or {}
    paths += [entry["path"] for key in ("exact", "near") for entry in leakage.get(key, [])]
    return list(dict.fromkeys(paths))


def _image(path: str, label: str, hashes: Mapping[str, tuple[str | None, str | None]]) -> ReviewImage:
    image_hash, problem = hashes.get(path, (None, "not hashed"))
    return ReviewImage(path, label, image_hash, problem)


# -- queues from the report -------------------------------------------------------------------

def group_key(paths: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(paths)).encode("utf-8")).hexdigest()[:16]


def duplicate_groups(report: Mapping[str, Any],
                     hashes: Mapping[str, tuple[str | None, str | None]]) -> list[DuplicateGroup]:
    """Exact then near-duplicate groups, those with conflicting labels first (stable otherwise)."""
    groups = []
    for entry in report.get("exact_duplicates", []):
        groups.append(DuplicateGroup(
            group_key(entry["paths"]), "exact", 0, MATCH_TEXT.get(entry.get("match"), "identical"),
            tuple(_image(p, label, hashes) for p, label in zip(entry["paths"], entry["labels"]))))
    for entry in report.get("near_duplicates", []):
        distance = int(entry.get("max_distance", 0))
        groups.append(DuplicateGroup(
            group_key(entry["paths"]), "near", distance, f"perceptual-hash distance up to {distance} bits",
            tuple(_image(p, label, hashes) for p, label in zip(entry["paths"], entry["labels"]))))
    return sorted(groups, key=lambda group: not group.conflicting)


def outlier_queue(report: Mapping[str, Any],
                  hashes: Mapping[str, tuple[str | None, str | None]]) -> list[FlaggedImage]:
    """The report's outliers, most unusual first."""
    return [FlaggedImage(rank, _image(entry["path"], entry["label"], hashes), float(entry["score"]))
            for rank, entry in enumerate(report.get("outliers", []), start=1)]


def label_issue_queue(report: Mapping[str, Any],
                      hashes: Mapping[str, tuple[str | None, str | None]]) -> list[FlaggedImage]:
    """The report's likely label errors, lowest self-confidence (most likely wrong) first."""
    return [FlaggedImage(rank, _image(entry["path"], entry["given_label"], hashes), float(entry["score"]),
                         entry.get("suggested_label"))
            for rank, entry in enumerate(report.get("label_issues", []), start=1)]


# -- decided and progress -----------------------------------------------------------------------

def is_decided(entry: DuplicateGroup | FlaggedImage | LeakedImage, latest: Mapping[str, Decision]) -> bool:
    """Every readable image of the entry has a decision (an entry with none readable never is)."""
    hashes = entry.hashes
    return bool(hashes) and all(h in latest for h in hashes)


def queue_progress(entries: Sequence[DuplicateGroup | FlaggedImage | LeakedImage],
                   latest: Mapping[str, Decision]) -> QueueProgress:
    return QueueProgress(sum(is_decided(entry, latest) for entry in entries), len(entries))


def pending_first(entries: Sequence[Any], latest: Mapping[str, Decision], show_decided: bool) -> list[Any]:
    """The undecided entries (queue order), followed by the decided ones when ``show_decided``."""
    pending = [entry for entry in entries if not is_decided(entry, latest)]
    if not show_decided:
        return pending
    return pending + [entry for entry in entries if is_decided(entry, latest)]


# -- building decisions ---------------------------------------------------------------------------

def leaked_images(report: Mapping[str, Any],
                  hashes: Mapping[str, tuple[str | None, str | None]]) -> list[LeakedImage]:
    """The report's leakage pairs (exact first, then near by distance), one entry per pair."""
    leakage = report.get("leakage") or {}
    leaks = [LeakedImage(_image(e["path"], e["label"], hashes), e["other_path"], e["other_label"],
                         MATCH_TEXT.get(e.get("match"), "identical")) for e in leakage.get("exact", [])]
    leaks += [LeakedImage(_image(e["path"], e["label"], hashes), e["other_path"], e["other_label"],
                          f"perceptual-hash distance {int(e.get('distance', 0))} bits")
              for e in leakage.get("near", [])]
    return leaks


def leak_decision(leak: LeakedImage, reviewer: str, dataset: str, against: str, latest: Mapping[str, Decision],
                  note: str = "") -> Decision | None:
    """``drop`` this dataset's copy of a leaked image (the export then leaves it out); None if it repeats."""
    if leak.image.image_hash is None:
        raise BloodcellError(f"this image can't be read, so no decision can be recorded: {leak.image.problem}")
    context = f"leaked: also in {against} as {Path(leak.other_path).name} ({leak.detail})"
    return _decision(DUPLICATES_PAGE, leak.key, leak.image, ReviewAction.DROP, reviewer, dataset, latest, None,
                     _with_note(context, note))


def _same_as_current(current: Decision | None, action: str, new_label: str | None, reviewer: str) -> bool:
    return (current is not None and current.action == action and current.reviewer == reviewer
            and (current.new_label or None) == (new_label or None))


def _decision(page: str, entry_key: str, image: ReviewImage, action: str, reviewer: str, dataset: str,
              latest: Mapping[str, Decision], new_label: str | None, note: str) -> Decision | None:
    """The row for one image, or None when it can't be recorded or would repeat the current decision."""
    if image.image_hash is None:
        return None
    current = latest.get(image.image_hash)
    if _same_as_current(current, action, new_label, reviewer):
        return None
    previous_id = current.request_id if current is not None else None
    return Decision(
        image_hash=image.image_hash, dataset=dataset, path=image.path, action=action, old_label=image.label,
        new_label=new_label, reviewer=reviewer, note=note,
        request_id=make_request_id(page, reviewer, dataset, entry_key, image.image_hash, action, new_label,
                                   previous_id))


def _with_note(context: str, note: str) -> str:
    note = " ".join(str(note or "").split())
    return f"{context}; {note}" if note else context


def _check_new_label(action: str, new_label: str | None) -> str | None:
    if action == ReviewAction.RELABEL:
        if not new_label or not str(new_label).strip():
            raise BloodcellError("pick the new label first")
        return str(new_label).strip()
    return None


def group_decisions(group: DuplicateGroup, action: str, reviewer: str, dataset: str,
                    latest: Mapping[str, Decision], keep_path: str | None = None,
                    new_label: str | None = None, note: str = "") -> list[Decision]:
    """The decisions one group action records, one per distinct image content.

    - ``keep-one-copy``: ``keep`` for ``keep_path`` (``keep-one-copy`` when it has byte-identical copies
      in the group, which the export then leaves out), ``drop`` for every image with other content;
    - ``drop`` / ``not-duplicate``: that action for every image;
    - ``relabel``: every image relabelled to ``new_label``.
    """
    if action not in GROUP_ACTIONS:
        raise BloodcellError(f"unknown duplicate-group action {action!r}; expected one of {', '.join(GROUP_ACTIONS)}")
    new_label = _check_new_label(action, new_label)
    context = f"{group.kind} duplicate group of {len(group.images)} ({group.detail})"
    planned: list[tuple[ReviewImage, str]] = []
    if action == ReviewAction.KEEP_ONE_COPY:
        kept = next((image for image in group.images if image.path == keep_path), None)
        if kept is None:
            raise BloodcellError("pick the image to keep")
        if kept.image_hash is None:
            raise BloodcellError(f"the image to keep can't be read: {kept.problem}")
        context += f"; kept {kept.name}"
        copies = [image for image in group.images if image.image_hash == kept.image_hash and image is not kept]
        # byte-identical copies share one content hash, so one decision covers them all:
        # keep-one-copy tells the export to keep the chosen file and leave the copies out
        planned.append((kept, ReviewAction.KEEP_ONE_COPY if copies else ReviewAction.KEEP))
        planned += [(image, ReviewAction.DROP) for image in group.images if image.image_hash != kept.image_hash]
    else:
        planned = [(image, action) for image in group.images]
    decisions: list[Decision] = []
    seen: set[str] = set()
    for image, image_action in planned:
        if image.image_hash is None or image.image_hash in seen:
            continue  # unreadable, or a byte-identical copy already covered by this click
        seen.add(image.image_hash)
        decision = _decision(DUPLICATES_PAGE, group.key, image, image_action, reviewer, dataset, latest,
                             new_label, _with_note(context, note))
        if decision is not None:
            decisions.append(decision)
    return decisions


def item_decision(page: str, flagged: FlaggedImage, action: str, reviewer: str, dataset: str,
                  latest: Mapping[str, Decision], new_label: str | None = None, note: str = "") -> Decision | None:
    """The decision on one outlier / label issue (``keep``, ``drop`` or ``relabel``), None if it repeats."""
    if action not in ITEM_ACTIONS:
        raise BloodcellError(f"unknown review action {action!r}; expected one of {', '.join(ITEM_ACTIONS)}")
    if flagged.image.image_hash is None:
        raise BloodcellError(f"this image can't be read, so no decision can be recorded: {flagged.image.problem}")
    new_label = _check_new_label(action, new_label)
    if page == LABEL_ISSUES_PAGE:
        context = (f"label issue #{flagged.rank}: given {flagged.image.label}, suggested "
                   f"{flagged.suggested_label}, self-confidence {flagged.score:.3g}")
    else:
        context = f"outlier #{flagged.rank}: score {flagged.score:.3g}"
    return _decision(page, flagged.key, flagged.image, action, reviewer, dataset, latest, new_label,
                     _with_note(context, note))


def record_decisions(store: ReviewStore, decisions: Sequence[Decision], reviewer: str | None) -> int:
    """Write ``decisions`` as the signed-in ``reviewer``; the number of new rows (0 when all were stored)."""
    if not reviewer:
        raise BloodcellError("sign in to record decisions")
    return sum(guarded_record(store, decision, reviewer) for decision in decisions)
