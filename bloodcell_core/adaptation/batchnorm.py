"""Unlabelled adaptation: move BatchNorm statistics toward a laboratory's own cells.

A network's BatchNorm layers normalise with statistics of the training laboratory's images;
another laboratory's colours and contrast shift them.  Re-estimating them on the new
laboratory's cells (no labels needed) is the classic AdaBN step; blending with the parent's
statistics keeps part of what the model knew of home.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bloodcell_core.training.batchnorm import recalibrate_batchnorm

BATCH = 32


def adapt_batchnorm(model: Any, crops: np.ndarray, blend: float) -> dict[str, Any]:
    """Set each BatchNorm's statistics to (1 - blend) * parent + blend * laboratory; returns settings."""
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers or len(crops) < 2:
        return {"applied": False, "reason": "no BatchNorm layers" if not layers else "fewer than 2 images"}
    saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy(), layer.trainable) for layer in layers]
    for layer in layers:
        layer.trainable = True
    batches = [crops[start:start + BATCH] for start in range(0, len(crops), BATCH)]
    used = recalibrate_batchnorm(model, batches)
    for layer, (mean, variance, trainable) in zip(layers, saved):
        layer.moving_mean.assign((1 - blend) * mean + blend * layer.moving_mean.numpy())
        layer.moving_variance.assign((1 - blend) * variance + blend * layer.moving_variance.numpy())
        layer.trainable = trainable
    return {"applied": True, "blend": blend, "batches": used, "n_images": int(len(crops)),
            "what": "BatchNorm statistics re-estimated on the laboratory's unlabelled cells, blended with the parent's"}
