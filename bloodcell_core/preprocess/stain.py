"""Reinhard stain normalisation: match each crop's Lab mean/std to a reference.

Optional: a model uses it when its card's ``preprocessing.stain_normalisation`` holds the
reference statistics.  Measured against stain augmentation alone (see the README); the
shipped model's card says whether it is on.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from skimage.color import lab2rgb, rgb2lab


def lab_statistics(images: np.ndarray) -> dict[str, list[float]]:
    """Mean of per-image Lab means and stds over a stack of RGB uint8 crops."""
    means, stds = [], []
    for image in images:
        lab = rgb2lab(image).reshape(-1, 3)
        means.append(lab.mean(axis=0))
        stds.append(lab.std(axis=0))
    return {"mean": np.mean(means, axis=0).round(4).tolist(), "std": np.mean(stds, axis=0).round(4).tolist()}


def reinhard(image: np.ndarray, reference: dict[str, Any]) -> np.ndarray:
    """Shift and scale each Lab channel of ``image`` to the reference mean and std."""
    lab = rgb2lab(image)
    flat = lab.reshape(-1, 3)
    mean, std = flat.mean(axis=0), np.maximum(flat.std(axis=0), 1e-6)
    target_mean, target_std = np.asarray(reference["mean"]), np.asarray(reference["std"])
    normalised = (lab - mean) / std * target_std + target_mean
    return (np.clip(lab2rgb(normalised), 0, 1) * 255).round().astype(np.uint8)
