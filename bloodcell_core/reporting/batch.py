"""A classified batch: per-image rows, review status, the differential count and the predictions CSV."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bloodcell_core.inference.predictor import Prediction
from bloodcell_core.outputs import frame_csv
from bloodcell_core.review.store import Decision

CONFIRMED, CORRECTED, AWAITING_REVIEW, AUTO = "confirmed", "corrected", "awaiting review", "auto"
STATUSES = (CONFIRMED, CORRECTED, AWAITING_REVIEW, AUTO)


def reviewed_label_of(decision: Decision | None) -> str | None:
    """The label a reviewer gave (confirmed or corrected), None if not reviewed."""
    if decision is None:
        return None
    return decision.new_label or decision.old_label


def review_status(prediction: Prediction, decision: Decision | None = None) -> str:
    """Where one image stands: the one rule the predictions CSV, the HTML summary and ``predict`` share.

    ``confirmed`` / ``corrected``: a reviewer kept / changed the model's label; ``awaiting review``:
    flagged needs review and nobody has decided yet; ``auto``: not flagged, not reviewed, so the
    model's label stands on its own.
    """
    reviewed = reviewed_label_of(decision)
    if reviewed is not None:
        return CONFIRMED if reviewed == prediction.predicted else CORRECTED
    return AWAITING_REVIEW if prediction.needs_review else AUTO


def final_label_of(prediction: Prediction, decision: Decision | None = None) -> str:
    """The label to use: the reviewer's, else the model's when not flagged; empty while awaiting review."""
    status = review_status(prediction, decision)
    if status == AWAITING_REVIEW:
        return ""
    return reviewed_label_of(decision) or prediction.predicted


@dataclass
class ClassifiedImage:
    """One uploaded image with the model's prediction and the latest review decision, if any."""

    name: str  # the uploaded file name: untrusted text
    image_hash: str
    prediction: Prediction
    decision: Decision | None = None
    pixels: np.ndarray | None = field(default=None, repr=False)  # the decoded upload: what a review archives

    @property
    def reviewed_label(self) -> str | None:
        """The label a reviewer gave (confirmed or corrected), None if not reviewed."""
        return reviewed_label_of(self.decision)

    @property
    def status(self) -> str:
        """:func:`review_status`: confirmed, corrected, awaiting review or auto."""
        return review_status(self.prediction, self.decision)

    @property
    def final_label(self) -> str:
        """:func:`final_label_of`: empty while the image awaits review."""
        return final_label_of(self.prediction, self.decision)

    @property
    def awaiting_review(self) -> bool:
        """Flagged by the model and not yet decided by a reviewer."""
        return self.status == AWAITING_REVIEW


@dataclass
class DifferentialCount:
    """Cells per class: those counted (accepted or reviewed) and, apart, those awaiting review."""

    classes: list[str]
    counted: dict[str, int]  # by final label
    awaiting: dict[str, int]  # flagged, not reviewed, by predicted class

    @property
    def n_counted(self) -> int:
        return sum(self.counted.values())

    @property
    def n_awaiting(self) -> int:
        return sum(self.awaiting.values())

    def table(self) -> pd.DataFrame:
        """One row per class: count, percent of counted cells, and flagged images awaiting review."""
        total = self.n_counted
        rows = [{"class": name, "count": self.counted.get(name, 0),
                 "percent": round(100.0 * self.counted.get(name, 0) / total, 1) if total else 0.0,
                 "needs review": self.awaiting.get(name, 0)} for name in self.classes]
        return pd.DataFrame(rows, columns=["class", "count", "percent", "needs review"])


def differential_count(images: Sequence[ClassifiedImage], classes: Sequence[str]) -> DifferentialCount:
    """Count per class; images flagged **needs review** and not yet reviewed are kept apart.

    A reviewed image counts under the reviewer's label, so a corrected prediction moves the count.
    Labels outside ``classes`` (e.g. a correction to a class the model lacks) get rows of their own.
    """
    counted = Counter(image.final_label for image in images if not image.awaiting_review)
    awaiting = Counter(image.prediction.predicted for image in images if image.awaiting_review)
    extra = sorted((set(counted) | set(awaiting)) - set(classes))
    return DifferentialCount([*classes, *extra], dict(counted), dict(awaiting))


def predictions_frame(images: Sequence[ClassifiedImage], classes: Sequence[str]) -> pd.DataFrame:
    """One row per image: prediction, review flags and reasons, decision, crop box, probabilities."""
    rows = []
    for image in images:
        prediction = image.prediction
        box = prediction.crop_box or (None, None, None, None)
        decision = image.decision
        row = {
            "file": image.name, "sha256": image.image_hash, "predicted": prediction.predicted,
            "confidence": round(prediction.confidence, 4), "needs_review": prediction.needs_review,
            "review_reasons": "; ".join(prediction.review_reasons),
            "reviewed_label": image.reviewed_label or "",
            "review_action": decision.action if decision else "",
            "reviewer": decision.reviewer if decision else "",
            "reviewed_at": decision.time.isoformat() if decision and decision.time else "",
            "status": image.status, "final_label": image.final_label, "localised": prediction.localised,
            "crop_left": box[0], "crop_top": box[1], "crop_right": box[2], "crop_bottom": box[3],
        }
        row.update({f"p_{name}": round(prediction.probabilities.get(name, 0.0), 4) for name in classes})
        rows.append(row)
    return pd.DataFrame(rows)


def predictions_csv(images: Sequence[ClassifiedImage], classes: Sequence[str]) -> bytes:
    """:func:`predictions_frame` as UTF-8 CSV, text cells guarded against formula injection."""
    return frame_csv(predictions_frame(images, classes)).encode("utf-8")
