"""Evaluate a Predictor on a labelled dataset (the evaluate command and the performance page)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bloodcell_core.data.datasets import Dataset
from bloodcell_core.errors import DatasetError
from bloodcell_core.evaluation.metrics import (classification_report, coverage_curve, most_confused_pairs,
                                               reliability_curve)
from bloodcell_core.inference.predictor import Prediction, Predictor
from bloodcell_core.progress import ProgressFn

CHUNK = 256


@dataclass
class Evaluation:
    report: dict[str, Any]
    items: list[str] = field(default_factory=list)  # known-class, readable images, in report order
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # indices into predictor.classes
    predictions: list[Prediction] = field(default_factory=list)

    @property
    def probabilities(self) -> np.ndarray:
        return np.array([[p.probabilities[c] for c in self.report["classes"]] for p in self.predictions])


def predict_dataset(dataset: Dataset, predictor: Predictor, progress: ProgressFn | None = None
                    ) -> tuple[list[int], list[Prediction], list[dict[str, str]]]:
    """Predictions for every readable image (indices into dataset), plus unreadable ones."""
    indices: list[int] = []
    predictions: list[Prediction] = []
    unreadable = list(dataset.unreadable)
    pending_idx: list[int] = []
    pending_img: list[np.ndarray] = []

    def flush() -> None:
        predictions.extend(predictor.predict_images(pending_img))
        indices.extend(pending_idx)
        pending_idx.clear()
        pending_img.clear()

    for i, image, reason in dataset.iter_images(progress, "Evaluating"):
        if image is None:
            unreadable.append({"path": dataset.items[i], "reason": reason or "unreadable"})
            continue
        pending_idx.append(i)
        pending_img.append(image)
        if len(pending_img) >= CHUNK:
            flush()
    if pending_img:
        flush()
    return indices, predictions, unreadable


def evaluate(dataset: Dataset, predictor: Predictor, progress: ProgressFn | None = None) -> Evaluation:
    """Metrics over images whose class the model knows; others are reported apart, not as errors."""
    model_index = {c: i for i, c in enumerate(predictor.classes)}
    indices, predictions, unreadable = predict_dataset(dataset, predictor, progress)
    known = [(i, p) for i, p in zip(indices, predictions) if dataset.classes[dataset.labels[i]] in model_index]
    unknown = [(i, p) for i, p in zip(indices, predictions) if dataset.classes[dataset.labels[i]] not in model_index]
    if not known:  # nothing to score: a user error, not an empty-array crash in the metrics
        raise DatasetError(f"{dataset.source}: no readable image of a class the model knows "
                           f"({len(unreadable)} unreadable, {len(unknown)} of other classes)")
    labels = np.array([model_index[dataset.classes[dataset.labels[i]]] for i, _ in known], dtype=np.int64)
    probabilities = np.array([[p.probabilities[c] for c in predictor.classes] for _, p in known]).reshape(
        -1, len(predictor.classes))
    report = classification_report(probabilities, labels, predictor.classes)
    correct = probabilities.argmax(axis=1) == labels if len(labels) else np.zeros(0, bool)
    flagged = np.array([p.needs_review for _, p in known], dtype=bool)
    report.update({
        "model": predictor.name,
        "dataset": dataset.source,
        "dataset_fingerprint": dataset.fingerprint(),
        "most_confused": most_confused_pairs(report["confusion_matrix"], predictor.classes),
        "reliability": reliability_curve(probabilities, labels) if len(labels) else {},
        "coverage_curve": coverage_curve(probabilities.max(axis=1), correct) if len(labels) else {},
        "needs_review": {"fraction_flagged": float(flagged.mean()) if len(flagged) else 0.0,
                         "accuracy_unflagged": float(correct[~flagged].mean()) if (~flagged).any() else None,
                         "errors_flagged": float(flagged[~correct].mean()) if (~correct).any() else None},
        "unknown_class_images": _unknown_summary(dataset, unknown),
        "unreadable": unreadable,
    })
    return Evaluation(report, [dataset.items[i] for i, _ in known], labels, [p for _, p in known])


def _unknown_summary(dataset: Dataset, unknown: list[tuple[int, Prediction]]) -> dict[str, Any]:
    by_class: dict[str, dict[str, int]] = {}
    for i, prediction in unknown:
        counts = by_class.setdefault(dataset.classes[dataset.labels[i]], {})
        counts[prediction.predicted] = counts.get(prediction.predicted, 0) + 1
    return {"n_images": len(unknown), "predicted_as": by_class}
