"""When the model should not decide alone: low confidence or out-of-distribution input.

Both thresholds are fitted on calibration data only (the PBC held-out validation images, at
training time or by ``calibrate``; an adapted model adds its laboratory's cells) and stored
in the card:
- confidence: the lowest threshold whose accepted validation images reach the target
  accuracy, capped so that at most ``MAX_CLEAN_FLAG_RATE`` of clean images are flagged;
- out-of-distribution: class-conditional Mahalanobis distance of the pooled features
  (:mod:`bloodcell_core.inference.feature_density`), thresholded at a high cross-fitted
  quantile; the same flag, counted over a batch, drives the batch-shift warning.
  (Cards written before it carry cosine distance to class centroids; still honoured.)
A failed localisation (no stained cell found) is always flagged.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


from bloodcell_core.inference.feature_density import (BATCH_SIZE, BATCH_TRIALS, MIN_BATCH,
                                                       MIN_CALIBRATION_IMAGES, OOD_QUANTILE, Density,
                                                       batch_threshold, cross_fitted_distances, fit_density)
from bloodcell_core.models.card import ReviewPolicy

TARGET_ACCEPTED_ACCURACY = 0.995
MAX_CLEAN_FLAG_RATE = 0.06
CLEAN_FLAG_BUDGET = 0.095  # both rules together flag at most this share of clean calibration images (target 10%)


def _normalise(features: np.ndarray) -> np.ndarray:
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-8)


def ood_distance(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """1 - max cosine similarity to any class centroid (0 = typical, 2 = opposite); older cards."""
    return 1.0 - (_normalise(features) @ _normalise(centroids).T).max(axis=1)


def ood_threshold_within_budget(distances: np.ndarray, accepted: np.ndarray,
                                budget: float = CLEAN_FLAG_BUDGET) -> float:
    """The lowest distance threshold (at most the ``OOD_QUANTILE`` quantile) that keeps the clean calibration
    images flagged by either rule at or under ``budget``: the review budget a laboratory accepts on its own
    images is spent on catching unfamiliar ones.  Decided on the calibration images alone."""
    ceiling = float(np.quantile(distances, OOD_QUANTILE))
    for quantile in np.arange(0.80, OOD_QUANTILE, 0.005):
        threshold = float(np.quantile(distances, quantile))
        if (~accepted | (distances > threshold)).mean() <= budget:
            return threshold
    return ceiling


def fit_review_policy(probabilities: np.ndarray, labels: np.ndarray, features: np.ndarray,
                      n_classes: int) -> dict[str, Any]:
    """Choose thresholds on calibration outputs; returns the card's ``review`` section."""
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
    accepted = confidence >= threshold
    if len(labels) < MIN_CALIBRATION_IMAGES:
        return {"confidence_threshold": round(float(threshold), 4), "n_calibration_images": int(len(labels)),
                "validation_coverage": float(accepted.mean()) if len(accepted) else None,
                "rule": f"needs review when confidence < threshold; no out-of-distribution rule (fewer than "
                        f"{MIN_CALIBRATION_IMAGES} calibration images)"}
    distances = cross_fitted_distances(features, labels, n_classes)
    ood_threshold = ood_threshold_within_budget(distances, accepted)
    unlike = distances > ood_threshold
    flagged = ~accepted | unlike
    return {
        "confidence_threshold": round(float(threshold), 4),
        "ood_score": "mahalanobis",
        "ood_threshold": round(ood_threshold, 4),
        "ood_density": fit_density(features, labels, n_classes),
        "batch_shift": batch_threshold(unlike),
        "n_calibration_images": int(len(labels)),
        "validation_coverage": float(accepted.mean()),
        "validation_accuracy_accepted": float(correct[accepted].mean()) if accepted.any() else None,
        "validation_flagged_by_ood": float(unlike.mean()),
        "validation_flagged": float(flagged.mean()),
        "validation_confident_error_rate": float((~correct & ~flagged).mean()),
        "rule": (f"needs review when confidence < threshold (chosen for >= {TARGET_ACCEPTED_ACCURACY:.1%} "
                 f"accuracy on accepted validation images, flagging at most {MAX_CLEAN_FLAG_RATE:.0%}), when "
                 f"the Mahalanobis distance of the features to the nearest class exceeds its "
                 f"cross-fitted threshold (the lowest that keeps {CLEAN_FLAG_BUDGET:.1%} of clean calibration images "
                 f"flagged, at most the {OOD_QUANTILE:.0%} quantile), or when no cell was found; a batch of "
                 f">= {MIN_BATCH} images is warned about when its share of such unlike images exceeds what "
                 f"{BATCH_TRIALS} random clean {BATCH_SIZE}-image batches give"),
    }


def ood_scorer(policy: ReviewPolicy) -> Callable[[np.ndarray], np.ndarray] | None:
    """features (N, F) -> distance (N,) under the card's out-of-distribution rule, or None."""
    if policy.ood_density:
        return Density(policy.ood_density).distance
    if policy.ood_centroids:
        centroids = np.asarray(policy.ood_centroids, dtype=np.float32)
        return lambda features: ood_distance(features, centroids)
    return None


def review_reasons(confidence: float, distance: float | None, localised: bool,
                   policy: ReviewPolicy) -> list[str]:
    reasons = []
    if not localised:
        reasons.append("no stained cell found: the whole image was classified")
    threshold = policy.confidence_threshold
    if threshold is not None and confidence < threshold:
        reasons.append(f"low confidence ({confidence:.2f} < {threshold:.2f})")
    ood_threshold = policy.ood_threshold
    if distance is not None and ood_threshold is not None and distance > ood_threshold:
        reasons.append(f"unlike the training images (feature distance {distance:.2f} > {ood_threshold:.2f})")
    return reasons
