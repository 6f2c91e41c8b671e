"""When the model should not decide alone: low confidence or out-of-distribution input.

Both thresholds are fitted on validation data at training time and stored in the card:
- confidence: the lowest threshold whose accepted validation images reach the target
  accuracy, capped so that at most ``MAX_CLEAN_FLAG_RATE`` of clean images are flagged;
- out-of-distribution: cosine distance of the penultimate features to the nearest class
  centroid, thresholded at a high validation quantile.
A failed localisation (no stained cell found) is always flagged.
"""
from __future__ import annotations

from typing import Any

import numpy as np

TARGET_ACCEPTED_ACCURACY = 0.995
MAX_CLEAN_FLAG_RATE = 0.06
OOD_QUANTILE = 0.99


def _normalise(features: np.ndarray) -> np.ndarray:
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-8)


def ood_distance(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """1 - max cosine similarity to any class centroid (0 = typical, 2 = opposite)."""
    return 1.0 - (_normalise(features) @ _normalise(centroids).T).max(axis=1)


def fit_review_policy(probabilities: np.ndarray, labels: np.ndarray, features: np.ndarray,
                      n_classes: int) -> dict[str, Any]:
    """Choose thresholds on validation outputs; returns the card's ``review`` section."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    cap = float(np.quantile(confidence, MAX_CLEAN_FLAG_RATE))
    threshold = cap
    for candidate in np.sort(np.unique(confidence)):
        if candidate > cap:
            break
        accepted = confidence >= candidate
        if correct[accepted].mean() >= TARGET_ACCEPTED_ACCURACY:
            threshold = float(candidate)
            break
    centroids = np.stack([_normalise(features[labels == c]).mean(axis=0) if (labels == c).any()
                          else np.zeros(features.shape[1]) for c in range(n_classes)])
    distances = ood_distance(features, centroids)
    ood_threshold = float(np.quantile(distances, OOD_QUANTILE))
    accepted = confidence >= threshold
    return {
        "confidence_threshold": round(float(threshold), 4),
        "ood_threshold": round(ood_threshold, 4),
        "ood_centroids": np.round(centroids, 5).tolist(),
        "validation_coverage": float(accepted.mean()),
        "validation_accuracy_accepted": float(correct[accepted].mean()) if accepted.any() else None,
        "validation_flagged_by_ood": float((distances > ood_threshold).mean()),
        "rule": (f"needs review when confidence < threshold (chosen for >= {TARGET_ACCEPTED_ACCURACY:.1%} "
                 f"accuracy on accepted validation images, flagging at most {MAX_CLEAN_FLAG_RATE:.0%}), when "
                 f"the cosine distance to the nearest class centroid exceeds its {OOD_QUANTILE:.0%} "
                 "validation quantile, or when no cell was found"),
    }


def review_reasons(confidence: float, distance: float | None, localised: bool,
                   policy: dict[str, Any]) -> list[str]:
    reasons = []
    if not localised:
        reasons.append("no stained cell found: the whole image was classified")
    threshold = policy.get("confidence_threshold")
    if threshold is not None and confidence < threshold:
        reasons.append(f"low confidence ({confidence:.2f} < {threshold:.2f})")
    ood_threshold = policy.get("ood_threshold")
    if distance is not None and ood_threshold is not None and distance > ood_threshold:
        reasons.append(f"unlike the training images (distance {distance:.2f} > {ood_threshold:.2f})")
    return reasons
