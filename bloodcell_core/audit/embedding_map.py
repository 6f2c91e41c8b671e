"""2-D maps of a model's image features, for looking at where unusual images sit.

Features are the model's penultimate layer (:meth:`Predictor.embed_dataset
<bloodcell_core.inference.predictor.Predictor.embed_dataset>`, the same features the outlier
check scores).  PCA is the default projection: linear, fast (well under a second
for thousands of images) and stable between runs.  t-SNE (scikit-learn) separates clusters
better but takes longer (about 11 s for 2,000 images on one core) and its distances between
clusters mean little; it is offered as the alternative.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bloodcell_core.data.datasets import Dataset
from bloodcell_core.errors import BloodcellError
from bloodcell_core.progress import ProgressFn

PROJECTIONS = ("PCA", "t-SNE")


@dataclass(frozen=True)
class EmbeddingMap:
    """Per readable image: its item id, label and 2-D position."""

    paths: list[str]
    labels: list[str]
    xy: np.ndarray  # (N, 2) float
    projection: str
    explained_variance: list[float] | None  # PCA: share of variance on each axis
    unreadable: list[dict[str, str]]


def project_2d(features: np.ndarray, projection: str = "PCA", seed: int = 0) -> tuple[np.ndarray, list[float] | None]:
    """``(xy, explained variance ratios or None)`` for ``features`` of shape (N, D)."""
    from threadpoolctl import threadpool_limits

    features = np.asarray(features, dtype=np.float64)
    if projection not in PROJECTIONS:
        raise BloodcellError(f"unknown projection {projection!r}; choose one of {', '.join(PROJECTIONS)}")
    if features.ndim != 2 or len(features) < 3:
        raise BloodcellError(f"a 2-D map needs at least 3 images with features, got {len(features)}")
    if not np.isfinite(features).all():
        raise BloodcellError("the model's features contain NaN or infinite values (a broken model?)")
    # One thread for BLAS and OpenMP: on a busy 2-core box their threads spin against each other
    # (measured: t-SNE of 40 points 3.3 s with the default threads, 0.07 s with one; 2,000 x 384 in 11 s).
    with threadpool_limits(limits=1):
        if projection == "PCA":
            from sklearn.decomposition import PCA

            n_components = min(2, features.shape[1])
            pca = PCA(n_components=n_components, random_state=seed).fit(features)
            xy = pca.transform(features)
            if n_components == 1:
                xy = np.column_stack([xy[:, 0], np.zeros(len(xy))])
            return xy, [float(v) for v in pca.explained_variance_ratio_]
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(1.0, (len(features) - 1) / 3)))
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)
        return np.asarray(xy), None


def embedding_map(dataset: Dataset, predictor: Any, projection: str = "PCA", seed: int = 0,
                  progress: ProgressFn | None = None) -> EmbeddingMap:
    """Embed every readable image of ``dataset`` with ``predictor`` and project the features to 2-D."""
    if projection not in PROJECTIONS:
        raise BloodcellError(f"unknown projection {projection!r}; choose one of {', '.join(PROJECTIONS)}")
    return map_features(dataset, *predictor.embed_dataset(dataset, progress=progress), projection, seed)


def map_features(dataset: Dataset, indices: np.ndarray, features: np.ndarray, unreadable: list[dict[str, str]],
                 projection: str = "PCA", seed: int = 0) -> EmbeddingMap:
    """The map of features already computed (``Predictor.embed_dataset``'s result for ``dataset``)."""
    xy, explained = project_2d(features, projection, seed)
    names = dataset.label_names
    return EmbeddingMap([dataset.items[i] for i in indices], [names[i] for i in indices],
                        xy, projection, explained, unreadable)
