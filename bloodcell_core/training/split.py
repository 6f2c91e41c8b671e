"""Validation split stratified by class and grouped by duplicates.

Exact and near-duplicate images (perceptual-hash Hamming distance <= threshold, the
audit's definition: :func:`bloodcell_core.data.duplicates.duplicate_groups`) form one
group, and a group is never split between train and validation, so validation scores
aren't inflated by images the model has effectively seen.
"""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from bloodcell_core.errors import DatasetError


def grouped_split(labels: np.ndarray, groups: np.ndarray, val_fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices). Small classes lower the number of folds."""
    smallest = int(np.bincount(labels)[np.unique(labels)].min())
    if smallest < 2:
        raise DatasetError("every class needs at least 2 readable images to hold one out for validation")
    n_splits = max(2, min(round(1 / val_fraction), smallest))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_idx, val_idx = next(splitter.split(np.zeros(len(labels)), labels, groups))
    return np.sort(train_idx), np.sort(val_idx)
