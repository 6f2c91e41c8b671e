"""How typical an image's features are of the training laboratory: class-conditional Mahalanobis.

The softmax confidence of a CNN stays high on another laboratory's cells (it was 0.9+ on
many wrong LISC and Bio-Net answers).  The pooled features move much more: measured on the
shipped model, Mahalanobis distance to the nearest class mean separated LISC and Bio-Net
images from PBC held-out images with AUROC 0.999 and 0.998, against 0.89 / 0.95 for
confidence.  So the distance drives the per-image "unlike the training images" flag and
the batch warning.

Features are projected on their first ``DIMS`` principal components (so the fitted
statistics fit in the model card), class means and one shared Ledoit-Wolf shrinkage
covariance are fitted there.  Everything is fitted on the calibration images only (PBC
held-out validation; an adapted model adds its laboratory's cells), and thresholds come
from cross-fitted scores so an image never scores against statistics it helped fit.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.covariance import LedoitWolf

from bloodcell_core.models.card import ReviewPolicy

DIMS = 64
OOD_QUANTILE = 0.97  # ceiling of the per-image threshold: at least 3% of clean calibration images flagged as unlike
BATCH_SIZE = 50  # random clean batches used to set the batch threshold
BATCH_TRIALS = 100
BATCH_QUANTILE = 0.99  # a clean batch's flagged share exceeds the threshold ~1% of the time
MIN_BATCH = 20  # smaller uploads get no batch verdict
MIN_CALIBRATION_IMAGES = 10  # fewer calibration images fit no density (no "unlike the training images" flag)


def fit_density(features: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, Any]:
    """PCA basis, class means and shared shrinkage precision of ``features`` (N, F)."""
    features = np.asarray(features, np.float64)
    mean = features.mean(axis=0)
    _, _, components = np.linalg.svd(features - mean, full_matrices=False)
    basis = components[:min(DIMS, features.shape[1], len(features) - 1)].T
    projected = (features - mean) @ basis
    class_means = np.stack([projected[labels == c].mean(axis=0) if (labels == c).any()
                            else np.full(basis.shape[1], np.nan) for c in range(n_classes)])
    residuals = projected - np.nan_to_num(class_means)[labels]
    precision = LedoitWolf().fit(residuals).precision_
    return {"mean": mean.tolist(), "basis": basis.tolist(), "class_means": class_means.tolist(),
            "precision": precision.tolist()}


class Density:
    """Fitted statistics as arrays, ready to score batches."""

    def __init__(self, fitted: dict[str, Any]):
        self.mean = np.asarray(fitted["mean"], np.float32)
        self.basis = np.asarray(fitted["basis"], np.float32)
        means = np.asarray(fitted["class_means"], np.float32)
        self.class_means = means[~np.isnan(means).any(axis=1)]
        self.precision = np.asarray(fitted["precision"], np.float32)

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance (N,) to the nearest class mean."""
        projected = (np.asarray(features, np.float32) - self.mean) @ self.basis
        diff = projected[:, None, :] - self.class_means[None]
        squared = np.einsum("nkd,de,nke->nk", diff, self.precision, diff)
        return np.sqrt(np.maximum(squared.min(axis=1), 0.0))


def cross_fitted_distances(features: np.ndarray, labels: np.ndarray, n_classes: int,
                           seed: int = 0) -> np.ndarray:
    """Each image's distance under statistics fitted on the other half of the images."""
    order = np.random.default_rng(seed).permutation(len(features))
    halves = np.array_split(order, 2)
    distances = np.zeros(len(features))
    for scored, fitted in ((halves[0], halves[1]), (halves[1], halves[0])):
        density = Density(fit_density(features[fitted], labels[fitted], n_classes))
        distances[scored] = density.distance(features[scored])
    return distances


def batch_threshold(flagged: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """The flagged share above which a batch looks unlike the calibration laboratory.

    Set on ``BATCH_TRIALS`` random ``BATCH_SIZE``-image batches of clean calibration images.
    """
    rng = np.random.default_rng(seed)
    size = min(BATCH_SIZE, len(flagged))
    shares = np.array([flagged[rng.choice(len(flagged), size, replace=False)].mean()
                       for _ in range(BATCH_TRIALS)])
    threshold = float(np.quantile(shares, BATCH_QUANTILE))
    return {"threshold": round(threshold, 4), "clean_trigger_rate": float((shares > threshold).mean()),
            "clean_mean_share": round(float(shares.mean()), 4), "n_batches": BATCH_TRIALS, "batch_size": size,
            "score": "share of the batch's images flagged as unlike the training images"}


def batch_shift(unlike: list[bool], policy: ReviewPolicy) -> dict[str, Any] | None:
    """``{"detected", "score", "threshold"}`` for a batch, or None (too small / no threshold)."""
    fitted = policy.batch_shift
    if fitted is None or len(unlike) < MIN_BATCH:
        return None
    score = float(np.mean(unlike))
    return {"detected": bool(score > fitted["threshold"]), "score": round(score, 4),
            "threshold": float(fitted["threshold"])}


def batch_warning_text(n_images: int, n_flagged: int, shift: dict[str, Any]) -> str:
    """The one sentence said, once per batch, when a batch looks unlike the training laboratory's images."""
    return (f"These {n_images} images look unlike the training laboratory's ({shift['score']:.0%} unlike the "
            f"training images, against at most {shift['threshold']:.0%} in clean batches; {n_flagged / max(n_images, 1):.0%} "
            "flagged for review): predictions on them are unreliable until the model is adapted to this "
            "laboratory (Adapt to your lab page, or the adapt command).")
