"""A classified batch: per-image rows, the differential count and the predictions CSV."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from bloodcell_core.inference.predictor import Prediction
from bloodcell_core.review.store import Decision

CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ClassifiedImage:
    """One uploaded image with the model's prediction and the latest review decision, if any."""

    name: str  # the uploaded file name: untrusted text
    image_hash: str
    prediction: Prediction
    decision: Decision | None = None

    @property
    def reviewed_label(self) -> str | None:
        """The label a reviewer gave (confirmed or corrected), None if not reviewed."""
        if self.decision is None:
            return None
        return self.decision.new_label or self.decision.old_label

    @property
    def final_label(self) -> str:
        return self.reviewed_label or self.prediction.predicted

    @property
    def awaiting_review(self) -> bool:
        """Flagged by the model and not yet decided by a reviewer."""
        return self.prediction.needs_review and self.decision is None


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


def _safe_cell(value: object) -> object:
    """Neutralise spreadsheet formulas in text cells (CSV injection through file names)."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_PREFIXES):
        return "'" + value
    return value


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
            "final_label": image.final_label, "localised": prediction.localised,
            "crop_left": box[0], "crop_top": box[1], "crop_right": box[2], "crop_bottom": box[3],
        }
        row.update({f"p_{name}": round(prediction.probabilities.get(name, 0.0), 4) for name in classes})
        rows.append(row)
    return pd.DataFrame(rows)


def predictions_csv(images: Sequence[ClassifiedImage], classes: Sequence[str]) -> bytes:
    """:func:`predictions_frame` as UTF-8 CSV, text cells guarded against formula injection."""
    frame = predictions_frame(images, classes)
    if not frame.empty:
        frame = frame.map(_safe_cell)
    return frame.to_csv(index=False).encode("utf-8")
