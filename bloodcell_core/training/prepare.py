"""Offline preparation of training arrays: decode once, crop, make shifted variants.

Each image yields its clean cell crop plus ``domain_variants`` crops of randomly
scanner-shifted versions and ``corruption_variants`` crops of microscopy-corrupted
versions (MedMNIST-C suite), all through the serving crop path.  Work runs in worker
processes (before TensorFlow is imported) and the result is cached on disk by dataset
fingerprint and settings, so a retrain on the same data skips it.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bloodcell_core.data.datasets import Dataset, array_to_rgb
from bloodcell_core.data.duplicates import phash64
from bloodcell_core.data.images import load_image
from bloodcell_core.errors import UnreadableImageError
from bloodcell_core.paths import data_dir
from bloodcell_core.preprocess.localise import localise_and_crop
from bloodcell_core.progress import ProgressFn
from bloodcell_core.robustness.corruptions import random_corruption
from bloodcell_core.training.domain import random_domain_shift


@dataclass
class PreparedData:
    crops: np.ndarray  # (N, S, S, 3) uint8 clean crops
    variants: np.ndarray  # (N, V, S, S, 3) uint8 shifted/corrupted crops
    localised: np.ndarray  # (N,) bool, clean crop found a cell
    phashes: np.ndarray  # (N,) uint64 perceptual hashes of the decoded image
    readable: np.ndarray  # (N,) bool
    reasons: list[str | None]


def _prepare_one(args: tuple[str | np.ndarray, int, int, int, int, int]) -> tuple:
    source, index, size, n_domain, n_corrupt, seed = args
    try:
        image = load_image(source) if isinstance(source, str) else array_to_rgb(source)
    except UnreadableImageError as exc:
        return index, None, None, False, 0, str(exc)
    rng = np.random.default_rng([seed, index])
    clean, where = localise_and_crop(image, size)
    variants = [localise_and_crop(random_domain_shift(image, rng), size)[0] for _ in range(n_domain)]
    variants += [localise_and_crop(random_corruption(image, rng, probability=1.0), size)[0]
                 for _ in range(n_corrupt)]
    phash = int(phash64(image))
    return index, clean, np.stack(variants) if variants else None, where.found, phash, None


def _cache_path(dataset: Dataset, size: int, n_domain: int, n_corrupt: int, seed: int) -> Path:
    return data_dir() / "cache" / f"prep-{dataset.fingerprint()}-{size}-{n_domain}-{n_corrupt}-{seed}.npz"


def prepare_arrays(dataset: Dataset, size: int, n_domain: int = 1, n_corrupt: int = 1, seed: int = 0,
                   workers: int | None = None, progress: ProgressFn | None = None,
                   use_cache: bool = True) -> PreparedData:
    cache = _cache_path(dataset, size, n_domain, n_corrupt, seed)
    if use_cache and cache.exists():
        with np.load(cache, allow_pickle=False) as saved:
            reasons = [r or None for r in saved["reasons"].tolist()]
            return PreparedData(saved["crops"], saved["variants"], saved["localised"], saved["phashes"],
                                saved["readable"], reasons)
    n, n_var = len(dataset), n_domain + n_corrupt
    crops = np.zeros((n, size, size, 3), np.uint8)
    variants = np.zeros((n, n_var, size, size, 3), np.uint8)
    localised, readable = np.zeros(n, bool), np.zeros(n, bool)
    phashes = np.zeros(n, np.uint64)
    reasons: list[str | None] = [None] * n
    sources = dataset.items if dataset.arrays is None else dataset.arrays
    jobs = ((sources[i], i, size, n_domain, n_corrupt, seed) for i in range(n))
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for done, (i, clean, shifted, found, phash, reason) in enumerate(
                pool.map(_prepare_one, jobs, chunksize=32), start=1):
            if clean is not None:
                crops[i], localised[i], readable[i], phashes[i] = clean, found, True, phash
                if shifted is not None:
                    variants[i] = shifted
            reasons[i] = reason
            if progress is not None and (done % 64 == 0 or done == n):
                progress(done, n, "Cropping cells and making shifted variants")
    prepared = PreparedData(crops, variants, localised, phashes, readable, reasons)
    if use_cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, crops=crops, variants=variants, localised=localised, phashes=phashes,
                 readable=readable, reasons=np.array([r or "" for r in reasons]))
        os.replace(tmp, cache)
    return prepared


def concatenate_prepared(parts: list[PreparedData]) -> PreparedData:
    """One PreparedData for several sources prepared (and cached) one by one."""
    if len(parts) == 1:
        return parts[0]
    return PreparedData(np.concatenate([p.crops for p in parts]), np.concatenate([p.variants for p in parts]),
                        np.concatenate([p.localised for p in parts]), np.concatenate([p.phashes for p in parts]),
                        np.concatenate([p.readable for p in parts]), [r for p in parts for r in p.reasons])
