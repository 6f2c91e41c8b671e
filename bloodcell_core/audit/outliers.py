"""Outliers: images whose model features sit far from every other image's.

Features are the model's penultimate layer (``Predictor.embed``).  The default score is
the mean distance to the k nearest neighbours (cosine distance for features of more
than 3 dimensions, as cleanlab's Datalab does); IsolationForest is the alternative.
The ``outlier_fraction`` highest-scoring images are reported, most unusual first.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from bloodcell_core.audit.base import AuditCheck, AuditContext, AuditSettings
from bloodcell_core.errors import BloodcellError


def knn_scores(features: np.ndarray, k: int) -> np.ndarray:
    """Mean distance to the ``k`` nearest other images (higher = more unusual)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(features) - 1)
    metric = "cosine" if features.shape[1] > 3 else "euclidean"
    distances, _ = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(features).kneighbors(features)
    return distances[:, 1:].mean(axis=1)  # column 0 is the image itself (or an identical copy)


def isolation_scores(features: np.ndarray) -> np.ndarray:
    """IsolationForest anomaly score, negated so that higher = more unusual."""
    from sklearn.ensemble import IsolationForest

    return -IsolationForest(random_state=0).fit(features).score_samples(features)


def outlier_scores(features: np.ndarray, settings: AuditSettings) -> np.ndarray:
    """Per-image scores; one BLAS thread, as for the label-issue fits (see ``AuditContext``)."""
    from threadpoolctl import threadpool_limits

    if len(features) < 3:
        raise BloodcellError(f"needs at least 3 readable images, got {len(features)}")
    with threadpool_limits(limits=1, user_api="blas"):
        if settings.outlier_method == "isolation_forest":
            return isolation_scores(features)
        return knn_scores(features, settings.outlier_k)


class Outliers(AuditCheck):
    name = "outliers"
    requires_model = True

    def run(self, context: AuditContext) -> dict[str, Any]:
        indices, features = context.embedded
        scores = outlier_scores(features, context.settings)
        n_report = max(1, math.ceil(context.settings.outlier_fraction * len(scores)))
        ranked = np.argsort(-scores, kind="stable")[:n_report]
        return {"outliers": [{"path": context.path(indices[r]), "label": context.label(indices[r]),
                              "score": float(f"{scores[r]:.6g}")} for r in ranked]}
