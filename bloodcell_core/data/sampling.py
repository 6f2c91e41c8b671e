"""The one stratified sampler: which images a capped run (training, evaluation page, benchmarks) uses.

Per class a quota is set, then that many images are drawn from a seeded permutation of the
class (classes in label order), so a sample is reproducible from (labels, n, seed) alone.

- ``"proportional"`` quotas keep each class's share (largest remainders), with at least one
  image per class when ``n`` allows: what the evaluation and benchmarks show.
- ``"equal"`` quotas take the same number from every class (one from each in turn, classes
  in label order, until ``n``): a class-balanced training subset.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

Quotas = Literal["proportional", "equal"]


def proportional_quotas(counts: np.ndarray, n: int) -> np.ndarray:
    """Largest-remainder shares of ``n`` over ``counts``; a class left at 0 takes one from the largest."""
    exact = n * counts / counts.sum()
    quota = np.floor(exact).astype(int)
    for position in np.argsort(-(exact - quota), kind="stable")[: n - quota.sum()]:
        quota[position] += 1
    for position in np.flatnonzero(quota == 0):
        donor = int(np.argmax(quota))
        if quota[donor] > 1:
            quota[donor] -= 1
            quota[position] = 1
    return quota


def equal_quotas(counts: np.ndarray, n: int) -> np.ndarray:
    """Round robin: one image per class with images left, classes in order, until ``n`` are taken."""
    quota = np.zeros(len(counts), dtype=int)
    while quota.sum() < n:
        room = np.flatnonzero(quota < counts)[: n - quota.sum()]
        quota[room] += 1
    return quota


def stratified_sample(labels: np.ndarray, n: int | None, seed: int = 0,
                      quotas: Quotas = "proportional") -> np.ndarray:
    """Sorted indices of a stratified sample of ``n`` labels; all of them when n is None or not
    smaller than ``len(labels)``, none when n < 1."""
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    if n < 1:
        return np.zeros(0, dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    quota = (equal_quotas if quotas == "equal" else proportional_quotas)(counts, n)
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(chosen))
