"""Evaluation metrics against hand-computed values."""
from __future__ import annotations

import numpy as np

from bloodcell_core.evaluation.metrics import (classification_report, coverage_curve,
                                               expected_calibration_error, most_confused_pairs)

CLASSES = ["ig", "monocyte", "neutrophil"]


def _one_hot_probs(predicted: list[int], confidence: float = 0.9) -> np.ndarray:
    probs = np.full((len(predicted), 3), (1 - confidence) / 2)
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


def test_report_counts_and_ig_monocyte_rates() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    predicted = [0, 0, 0, 1, 1, 0, 2, 2]
    report = classification_report(_one_hot_probs(predicted), labels, CLASSES)
    assert report["accuracy"] == 6 / 8
    assert report["confusion_matrix"] == [[3, 1, 0], [1, 1, 0], [0, 0, 2]]
    assert report["ig_to_monocyte"] == 0.25 and report["monocyte_to_ig"] == 0.5
    assert report["per_class"]["ig"]["precision"] == 0.75
    assert report["per_class"]["neutrophil"]["specificity"] == 1.0
    assert abs(report["balanced_accuracy"] - (0.75 + 0.5 + 1.0) / 3) < 1e-9
    assert report["macro_auc"] is not None
    # by hand: ig 3 of 4 found, 3 of 4 ig calls right; monocyte 1 of 2 and 1 of 2; neutrophil all
    per_class = report["per_class"]
    assert [per_class[c]["recall"] for c in CLASSES] == [0.75, 0.5, 1.0]
    assert [per_class[c]["precision"] for c in CLASSES] == [0.75, 0.5, 1.0]
    assert [per_class[c]["f1"] for c in CLASSES] == [0.75, 0.5, 1.0]
    assert [per_class[c]["support"] for c in CLASSES] == [4, 2, 2]
    assert per_class["ig"]["specificity"] == 3 / 4  # 4 non-ig images, one called ig


def test_a_class_never_seen_nor_predicted_scores_zero_not_nan() -> None:
    labels = np.array([0, 0, 1])
    report = classification_report(_one_hot_probs([0, 1, 1]), labels, CLASSES)
    assert report["per_class"]["neutrophil"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                                 "specificity": 1.0, "support": 0}
    assert report["per_class"]["monocyte"]["precision"] == 0.5 and report["per_class"]["monocyte"]["f1"] == 2 / 3
    assert report["balanced_accuracy"] == (0.5 + 1.0) / 2  # over the classes present


def test_ece_of_overconfident_model() -> None:
    labels = np.array([0, 1, 0, 1])
    probs = _one_hot_probs([0, 0, 0, 0], confidence=0.9)
    assert abs(expected_calibration_error(probs, labels) - 0.4) < 1e-9


def test_coverage_curve_accuracy_rises_when_low_confidence_is_dropped() -> None:
    confidence = np.array([0.99, 0.98, 0.97, 0.4, 0.3])
    correct = np.array([True, True, True, False, False])
    curve = coverage_curve(confidence, correct)
    assert curve["accuracy"][0] == 0.6 and max(curve["accuracy"]) == 1.0


def test_most_confused_pairs_ranked_by_rate() -> None:
    pairs = most_confused_pairs([[8, 2, 0], [5, 5, 0], [0, 0, 10]], CLASSES)
    assert (pairs[0]["true"], pairs[0]["predicted"]) == ("monocyte", "ig")
