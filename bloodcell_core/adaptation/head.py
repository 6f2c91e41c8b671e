"""Refit the classifier's last layer on a laboratory's few labelled cells, staying near the parent.

Only the final Dense layer changes: the convolutional features are the parent's, so Grad-CAM,
the crop path and speed stay the same, and every class of the parent is kept.  The fit
minimises cross-entropy on the laboratory's cells (each seen in the 8 dihedral views) plus
``l2 * ||W - W_parent||^2``, so classes the laboratory did not label, and the parent's home
laboratory, keep close to the parent's answers.  Optionally ("replay") pseudo-features of
the parent's classes, sampled from the class-conditional Gaussian its card stores
(``review.ood_density``), are added to the loss as a reminder of home.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax


@dataclass(frozen=True)
class HeadSettings:
    l2: float = 1e-2  # pull toward the parent's weights, relative to the mean cross-entropy
    replay: bool = False
    replay_per_class: int = 64
    replay_weight: float = 0.5
    max_iterations: int = 200
    seed: int = 0


def replay_features(density: dict, n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-features of each home class: Gaussian samples mapped back from the card's PCA space."""
    rng = np.random.default_rng(seed)
    mean, basis = np.asarray(density["mean"]), np.asarray(density["basis"])
    covariance = np.linalg.inv(np.asarray(density["precision"]))
    features, labels = [], []
    for c, class_mean in enumerate(np.asarray(density["class_means"])):
        if np.isnan(class_mean).any():
            continue
        z = rng.multivariate_normal(class_mean, covariance, n_per_class)
        features.append(np.maximum(mean + z @ basis.T, 0.0))  # pooled features are non-negative-ish
        labels.append(np.full(n_per_class, c))
    return np.concatenate(features), np.concatenate(labels)


def _loss_and_gradient(params: np.ndarray, x: np.ndarray, y: np.ndarray, weights: np.ndarray,
                       w0: np.ndarray, b0: np.ndarray, l2: float, scale: np.ndarray) -> tuple[float, np.ndarray]:
    """Weighted cross-entropy plus l2 on the change of each feature's logit contribution.

    ``scale`` (F,) is each feature's RMS on the fitted cells: penalising ``scale * (W - W0)``
    makes ``l2`` mean the same whatever the features' magnitude."""
    n_features, n_classes = w0.shape
    w = params[:n_features * n_classes].reshape(n_features, n_classes)
    b = params[n_features * n_classes:]
    logits = x @ w + b
    log_p = log_softmax(logits, axis=1)
    squared_scale = (scale ** 2)[:, None]
    loss = -(weights * log_p[np.arange(len(y)), y]).sum() + l2 * (
        (squared_scale * (w - w0) ** 2).sum() + ((b - b0) ** 2).sum())
    delta = softmax(logits, axis=1)
    delta[np.arange(len(y)), y] -= 1.0
    delta *= weights[:, None]
    grad_w = x.T @ delta + 2 * l2 * squared_scale * (w - w0)
    grad_b = delta.sum(axis=0) + 2 * l2 * (b - b0)
    return float(loss), np.concatenate([grad_w.ravel(), grad_b])


def refit_head(w0: np.ndarray, b0: np.ndarray, features: np.ndarray, labels: np.ndarray,
               settings: HeadSettings, density: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """New (kernel, bias) of the softmax layer; ``features`` (N, F) with ``labels`` (N,) class indices."""
    x, y = np.asarray(features, np.float64), np.asarray(labels, np.int64)
    weights = np.full(len(y), 1.0 / len(y))
    if settings.replay and density is not None:
        rx, ry = replay_features(density, settings.replay_per_class, settings.seed)
        x, y = np.concatenate([x, rx]), np.concatenate([y, ry])
        weights = np.concatenate([weights, np.full(len(ry), settings.replay_weight / len(ry))])
    start = np.concatenate([w0.ravel(), b0]).astype(np.float64)
    scale = np.sqrt(np.mean(np.asarray(features, np.float64) ** 2, axis=0)) + 1e-6
    result = minimize(_loss_and_gradient, start, args=(x, y, weights, w0, b0, settings.l2, scale), jac=True,
                      method="L-BFGS-B", options={"maxiter": settings.max_iterations})
    n = w0.size
    return result.x[:n].reshape(w0.shape).astype(np.float32), result.x[n:].astype(np.float32)
