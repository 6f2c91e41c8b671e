"""What every audit check shares: settings, the context of computed inputs, the check base class.

The shape follows cleanlab's Datalab: one small class per issue type, all run over one
context that computes each expensive input (hashes, duplicate groups, embeddings,
out-of-fold probabilities) once, lazily, only when some check asks for it.
"""
from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from functools import cached_property
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from bloodcell_core.audit.hashing import (HashTable, NearDuplicates, find_exact_duplicates,
                                          find_near_duplicates, hash_dataset)
from bloodcell_core.data.datasets import Dataset
from bloodcell_core.data.duplicates import NEAR_DUPLICATE_HAMMING
from bloodcell_core.errors import BloodcellError
from bloodcell_core.progress import ProgressFn

if TYPE_CHECKING:
    from bloodcell_core.inference.predictor import Predictor

# Features of a dataset's readable items, computed elsewhere (the app embeds a sample once for the audit
# and its map): () -> (item indices, features (N, F)), as Predictor.embed_dataset gives them.
FeatureSource = Callable[[], tuple[np.ndarray, np.ndarray]]
DEFAULT_HAMMING = NEAR_DUPLICATE_HAMMING  # the one threshold, shared with the training split
# The outlier scores the audit offers (bloodcell_core.audit.outliers): name -> what it measures.
OUTLIER_METHODS: dict[str, str] = {"knn": "Distance to nearest neighbours", "isolation_forest": "Isolation forest"}


@dataclass(frozen=True)
class AuditSettings:
    """Thresholds of the checks; written into the report under ``settings``."""

    hamming: int = DEFAULT_HAMMING  # near duplicates: max Hamming distance of 64-bit perceptual hashes
    outlier_method: str = "knn"  # one of OUTLIER_METHODS: "knn" (mean distance to k nearest neighbours), ...
    outlier_k: int = 10
    outlier_fraction: float = 0.01  # share of images reported as outliers (at least one)
    cv_folds: int = 5  # out-of-fold probabilities for the label-issue check
    hash_workers: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.hamming <= 64:
            raise BloodcellError(f"hamming threshold must be 0-64 bits, got {self.hamming}")
        if self.outlier_method not in OUTLIER_METHODS:
            raise BloodcellError(f"outlier method must be one of {', '.join(OUTLIER_METHODS)}, "
                                 f"got {self.outlier_method!r}")
        if self.outlier_k < 1:
            raise BloodcellError(f"outlier k must be at least 1, got {self.outlier_k}")
        if not 0 < self.outlier_fraction <= 1:
            raise BloodcellError(f"outlier fraction must be in (0, 1], got {self.outlier_fraction}")
        if self.cv_folds < 2:
            raise BloodcellError(f"cross-validation needs at least 2 folds, got {self.cv_folds}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditContext:
    """The dataset plus lazily computed, shared inputs of the checks."""

    def __init__(self, dataset: Dataset, settings: AuditSettings, predictor: Predictor | None = None,
                 against: Dataset | None = None, progress: ProgressFn | None = None,
                 no_model_reason: str | None = None, features: FeatureSource | None = None) -> None:
        self.dataset = dataset
        self.features = features
        self.settings = settings
        self.predictor = predictor
        self.against = against
        self.progress = progress
        self.no_model_reason = no_model_reason or "no model given"

    @cached_property
    def hashes(self) -> HashTable:
        return hash_dataset(self.dataset, self.progress, self.settings.hash_workers)

    @cached_property
    def against_hashes(self) -> HashTable | None:
        if self.against is None:
            return None
        return hash_dataset(self.against, self.progress, self.settings.hash_workers)

    @cached_property
    def exact_groups(self) -> list[tuple[np.ndarray, str]]:
        """``(indices, "bytes" | "pixels")`` per group of identical images."""
        return find_exact_duplicates(self.hashes)

    @cached_property
    def near_duplicates(self) -> NearDuplicates:
        return find_near_duplicates(self.hashes, self.settings.hamming)

    @cached_property
    def exact_group_id(self) -> np.ndarray:
        """Per item: its exact group's number, or -1."""
        ids = np.full(len(self.dataset), -1, dtype=np.int64)
        for number, (members, _) in enumerate(self.exact_groups):
            ids[members] = number
        return ids

    @cached_property
    def embedded(self) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, embeddings)``: penultimate-layer features of every decodable image."""
        if self.predictor is None:
            raise BloodcellError(f"embeddings need a model ({self.no_model_reason})")
        if self.features is not None:
            readable, features = self.features()
            keep = np.isin(readable, self.hashes.valid_indices)
            readable, features = readable[keep], features[keep]
        else:
            readable, features, _unreadable = self.predictor.embed_dataset(
                self.dataset, self.hashes.valid_indices, self.progress)
        if not np.isfinite(features).all():
            raise BloodcellError("the model's features contain NaN or infinite values (a broken model?)")
        return readable, features

    @cached_property
    def out_of_fold_probs(self) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """``(indices, probs, classes)``: cross-validated probabilities from the embeddings.

        cleanlab's recipe for pretrained features: a logistic regression on the model's
        embeddings, ``cross_val_predict(..., method="predict_proba")``, so no image is
        scored by a classifier that saw its label.  Columns follow ``classes`` (the label
        indices present).
        """
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from threadpoolctl import threadpool_limits

        indices, features = self.embedded
        labels = self.dataset.labels[indices]
        classes, dense_labels, counts = np.unique(labels, return_inverse=True, return_counts=True)
        folds = min(self.settings.cv_folds, int(counts.min()) if len(counts) else 0)
        if len(classes) < 2 or folds < 2:
            raise BloodcellError("needs at least 2 classes with at least 2 readable images each")
        if self.progress is not None:
            self.progress(0, 1, "Cross-validating label probabilities")
        # 300 iterations bound the cost on features that don't separate the classes (a weak
        # model); an unconverged fit still gives usable probabilities, so its warning is muted.
        # One BLAS thread: on a busy 2-core box OpenBLAS threads spin against each other
        # (measured: 400 images x 384 features, 19 s with 2 threads, 0.2 s with one).
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            probs = cross_val_predict(model, features, dense_labels, method="predict_proba",
                                      cv=StratifiedKFold(folds, shuffle=True, random_state=0))
        if self.progress is not None:
            self.progress(1, 1, "Cross-validating label probabilities")
        return indices, probs, [int(c) for c in classes]

    # -- report helpers ------------------------------------------------------------------------

    def path(self, index: int) -> str:
        return self.dataset.items[int(index)]

    def label(self, index: int) -> str:
        return self.dataset.classes[int(self.dataset.labels[int(index)])]

    def describe_group(self, members: np.ndarray) -> dict[str, Any]:
        return {"paths": [self.path(i) for i in members], "labels": [self.label(i) for i in members]}


class AuditCheck(ABC):
    """One issue type: ``run(context)`` returns the report keys it owns."""

    name: ClassVar[str]
    requires_model: ClassVar[bool] = False

    def skip_reason(self, context: AuditContext) -> str | None:
        """Why this check can't run on ``context`` (None: it can)."""
        if self.requires_model and context.predictor is None:
            return context.no_model_reason
        return None

    @abstractmethod
    def run(self, context: AuditContext) -> dict[str, Any]:
        """The check's findings as JSON-ready report entries."""
