"""Classification metrics shared by evaluate, training reports, robustness and the app."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

ECE_BINS = 15


def confidence_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(confidence, correct, edges, bin of each image)``: equal-width bins of top-class confidence,
    right-closed (a confidence of exactly 1/15 falls in the first bin)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    return confidence, correct, edges, which


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE with equal-width confidence bins (15 by default)."""
    confidence, correct, _edges, which = confidence_bins(probabilities, labels, bins)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total)


def reliability_curve(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[str, list]:
    """Per-bin mean confidence, accuracy and count, for the reliability diagram."""
    confidence, correct, edges, which = confidence_bins(probabilities, labels, bins)
    rows: dict[str, list] = {"bin_lower": [], "bin_upper": [], "confidence": [], "accuracy": [], "count": []}
    for b in range(bins):
        in_bin = which == b
        rows["bin_lower"].append(float(edges[b]))
        rows["bin_upper"].append(float(edges[b + 1]))
        rows["count"].append(int(in_bin.sum()))
        rows["confidence"].append(float(confidence[in_bin].mean()) if in_bin.any() else None)
        rows["accuracy"].append(float(correct[in_bin].mean()) if in_bin.any() else None)
    return rows


def coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> dict[str, list[float]]:
    """Accuracy of the accepted images versus coverage as the needs-review threshold rises."""
    thresholds = np.unique(np.concatenate([[0.0], np.quantile(confidence, np.linspace(0, 0.5, 51))]))
    rows: dict[str, list[float]] = {"threshold": [], "coverage": [], "accuracy": []}
    for threshold in thresholds:
        accepted = confidence >= threshold
        rows["threshold"].append(float(threshold))
        rows["coverage"].append(float(accepted.mean()))
        rows["accuracy"].append(float(correct[accepted].mean()) if accepted.any() else 1.0)
    return rows


def _macro_auc(probabilities: np.ndarray, labels: np.ndarray, n_classes: int) -> float | None:
    present = np.unique(labels)
    if len(present) < 2:
        return None
    aucs = [roc_auc_score(labels == c, probabilities[:, c]) for c in present]
    return float(np.mean(aucs))


def _pair_rate(matrix: np.ndarray, classes: list[str], true: str, predicted: str) -> float | None:
    if true not in classes or predicted not in classes:
        return None
    row = matrix[classes.index(true)]
    return float(row[classes.index(predicted)] / row.sum()) if row.sum() else None


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present in ``labels`` (0.0 for no images)."""
    if len(labels) == 0:
        return 0.0
    with warnings.catch_warnings():  # another lab's set lacks classes the model predicts: expected, not news
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")  # one class: recall of that class
        return float(balanced_accuracy_score(labels, predicted))


def per_class_scores(matrix: np.ndarray, labels: np.ndarray, predicted: np.ndarray,
                     classes: list[str]) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 (0 where undefined), specificity and support of every class."""
    n_classes = len(classes)
    if len(labels):
        precision, recall, f1, support = precision_recall_fscore_support(
            labels, predicted, labels=np.arange(n_classes), zero_division=0)
    else:
        precision = recall = f1 = support = np.zeros(n_classes)
    predicted_as = matrix.sum(axis=0)
    negatives = matrix.sum() - matrix.sum(axis=1)  # images of the other classes
    false_positives = predicted_as - np.diag(matrix)
    return {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "specificity": float((negatives[i] - false_positives[i]) / negatives[i]) if negatives[i] else 0.0,
                   "support": int(support[i])}
            for i, name in enumerate(classes)}


def classification_report(probabilities: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """The evaluate report's metric keys (see the evaluate command) for known-class images."""
    n_classes = len(classes)
    predicted = probabilities.argmax(axis=1)
    matrix = (confusion_matrix(labels, predicted, labels=np.arange(n_classes)) if len(labels)
              else np.zeros((n_classes, n_classes), dtype=np.int64))  # nothing readable: callers say so
    return {
        "classes": list(classes),
        "n_images": int(len(labels)),
        "accuracy": float((predicted == labels).mean()) if len(labels) else 0.0,
        "balanced_accuracy": balanced_accuracy(labels, predicted),
        "macro_auc": _macro_auc(probabilities, labels, n_classes),
        "ece": expected_calibration_error(probabilities, labels) if len(labels) else 0.0,
        "per_class": per_class_scores(matrix, labels, predicted, classes),
        "confusion_matrix": matrix.astype(int).tolist(),
        "ig_to_monocyte": _pair_rate(matrix, classes, "ig", "monocyte"),
        "monocyte_to_ig": _pair_rate(matrix, classes, "monocyte", "ig"),
    }


def most_confused_pairs(matrix: np.ndarray | list, classes: list[str], top: int = 5) -> list[dict[str, Any]]:
    """Off-diagonal cells with the highest row-normalised rate."""
    counts = np.asarray(matrix, dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    np.fill_diagonal(rates, 0)
    order = np.dstack(np.unravel_index(np.argsort(-rates, axis=None), rates.shape))[0]
    return [{"true": classes[i], "predicted": classes[j], "rate": float(rates[i, j]), "count": int(counts[i, j])}
            for i, j in order[:top] if counts[i, j] > 0]
