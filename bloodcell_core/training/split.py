"""Validation split stratified by class and grouped by duplicates.

Exact and near-duplicate images (perceptual-hash Hamming distance <= threshold) form
one group, and a group is never split between train and validation, so validation
scores aren't inflated by images the model has effectively seen.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold

from bloodcell_core.errors import DatasetError

GROUPING_HAMMING = 4


def near_duplicate_pairs(hashes: np.ndarray, threshold: int, block: int = 1024) -> np.ndarray:
    """All pairs (i < j) of 64-bit hashes within ``threshold`` bits, vectorised in blocks."""
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    pairs = []
    for start in range(0, len(hashes), block):
        chunk = hashes[start:start + block]
        distance = np.bitwise_count(chunk[:, None] ^ hashes[None, :])
        rows, cols = np.nonzero(distance <= threshold)
        rows = rows + start
        keep = rows < cols
        pairs.append(np.stack([rows[keep], cols[keep]], axis=1))
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)


def duplicate_groups(hashes: np.ndarray, threshold: int = GROUPING_HAMMING) -> np.ndarray:
    """A group id per image: connected components of the near-duplicate graph."""
    n = len(hashes)
    pairs = near_duplicate_pairs(hashes, threshold)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


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
