"""Accept / correct decisions on the Classify page, written once however often the page reruns.

Each decision's ``request_id`` is derived from (page, reviewer, image, action, label) and the
request id of the same reviewer's previous decision on that image.  A rerun of one click
therefore maps to the same id (the store inserts it once), while a genuinely new click --
confirm, then correct, then confirm again -- gets a new id because the previous decision changed.
A request that repeats the reviewer's current decision records nothing at all.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from bloodcell_core.reporting.batch import ClassifiedImage
from bloodcell_core.review.archive import archive_reviewed
from bloodcell_core.review.auth import guarded_record_many
from bloodcell_core.review.store import Decision, ReviewAction, ReviewStore, make_request_id

CLASSIFY_DATASET = "classify-uploads"  # the review store's ``dataset`` for uploaded images
PAGE = "classify"


@dataclass(frozen=True)
class PreviousDecision:
    """A reviewer's latest decision on one image: what :func:`record_review` chains from."""

    request_id: str | None
    action: str
    new_label: str | None


def review_action(image: ClassifiedImage, new_label: str) -> str:
    return (ReviewAction.CONFIRM_PREDICTION if new_label == image.prediction.predicted
            else ReviewAction.CORRECT_PREDICTION).value


def review_decision(image: ClassifiedImage, new_label: str, reviewer: str, model_name: str,
                    previous: PreviousDecision | None = None) -> Decision:
    """The decision to record when ``reviewer`` sets ``image``'s label to ``new_label``."""
    action = review_action(image, new_label)
    prediction = image.prediction
    note = f"model {model_name}: {prediction.predicted} ({prediction.confidence:.3f})"
    if prediction.needs_review:
        note += "; flagged: " + "; ".join(prediction.review_reasons)
    previous_id = previous.request_id if previous is not None else None
    return Decision(
        image_hash=image.image_hash, dataset=CLASSIFY_DATASET, path=image.name, action=action,
        old_label=prediction.predicted, new_label=new_label, reviewer=reviewer, note=note,
        request_id=make_request_id(PAGE, reviewer, image.image_hash, action, new_label, previous_id))


def reviewer_latest(history: pd.DataFrame, hashes: Iterable[str]) -> dict[str, PreviousDecision]:
    """image hash -> newest decision in ``history`` (one reviewer's, newest first, as the store gives it)."""
    wanted = set(hashes)
    latest: dict[str, PreviousDecision] = {}
    for row in history.itertuples(index=False):
        if row.image_hash in wanted and row.image_hash not in latest:
            request_id = row.request_id if isinstance(row.request_id, str) else None
            new_label = row.new_label if isinstance(row.new_label, str) else None
            latest[row.image_hash] = PreviousDecision(request_id, row.action, new_label)
    return latest


def record_review(store: ReviewStore, image: ClassifiedImage, new_label: str, reviewer: str | None,
                  model_name: str, source: str | None = None) -> bool:
    """Record ``reviewer``'s accept/correct of ``image``; True when a new row was written.

    Refuses (BloodcellError) when nobody is signed in; returns False when the reviewer's current
    decision already says ``new_label`` or when this exact request was stored before.  Either way
    the reviewed cell is then archived under the laboratory/source name ``source``
    (:func:`~bloodcell_core.review.archive.archive_reviewed`: once per image, and not at all
    without ``source`` or the image's pixels).
    """
    return record_reviews(store, [(image, new_label)], reviewer, model_name, source) == 1


def record_reviews(store: ReviewStore, changes: Sequence[tuple[ClassifiedImage, str]], reviewer: str | None,
                   model_name: str, source: str | None = None) -> int:
    """Record several accept/correct decisions (one row per image) in ONE transaction; rows written.

    Every review decision of the Classify page goes through here (single clicks too, through
    :func:`record_review`), so whatever must happen to a reviewed cell has one place.  Images whose
    current decision by ``reviewer`` already says the requested label are skipped, so a rerun of a
    bulk click (or confirming a group twice) writes nothing new.  Every reviewed cell is then
    archived under the laboratory/source name ``source`` (once per image; not at all without
    ``source`` or the image's pixels), the labelled examples ``adapt`` learns a laboratory from.
    """
    if not reviewer:
        return guarded_record_many(store, [], reviewer)  # raises: nobody signed in
    history = store.history(reviewer=reviewer, dataset=CLASSIFY_DATASET)
    previous = reviewer_latest(history, [image.image_hash for image, _ in changes])
    decisions, seen = [], set()
    for image, new_label in changes:
        before = previous.get(image.image_hash)
        if image.image_hash in seen or (before is not None and before.new_label == new_label):
            continue
        seen.add(image.image_hash)
        decisions.append(review_decision(image, new_label, reviewer, model_name, before))
    written = guarded_record_many(store, decisions, reviewer) if decisions else 0
    for image, _ in changes:
        archive_reviewed(store, image.pixels, image.image_hash, source, reviewer, CLASSIFY_DATASET)
    return written
