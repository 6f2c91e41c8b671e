"""Re-estimate BatchNorm statistics after training ("precise BN").

During training each BatchNormalization layer keeps an exponential moving average of batch
statistics over *augmented* batches (colour jitter, MixUp, corrupted variants), and the last
few hundred steps dominate it.  Served images are not augmented, so that average can sit
off the statistics the network meets at inference, which shows up as a validation accuracy
that jumps from epoch to epoch.  Averaging the statistics exactly over a fixed set of
training batches, as they are served (clean crops and the shifted/corrupted variants,
without online augmentation), removes the mismatch without touching any learned weight.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def batchnorm_layers(model: Any) -> list[Any]:
    import keras

    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]


def recalibrate_batchnorm(model: Any, batches: Iterable[np.ndarray]) -> int:
    """Set every trainable BatchNorm layer's moving mean/variance to the average over ``batches``.

    Runs the model in training mode eagerly with momentum (k-1)/k at the k-th batch, which
    makes each moving statistic the plain mean over all batches.  Only BatchNorm statistics
    change.  Returns the number of batches used (0: nothing to recalibrate).
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    used = 0
    try:
        for used, batch in enumerate(batches, start=1):
            for layer in layers:
                layer.momentum = (used - 1) / used
            model(np.asarray(batch, np.float32), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return used
