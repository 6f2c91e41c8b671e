"""Carry a trained compact CNN's weights into the same network on another crop size or width.

The compact CNN is fully convolutional (global pooling before the head), so its weights fit
any crop size unchanged.  A wider copy gets the old weights in its first channels and starts
its new channels silent: each BatchNorm scale (gamma) of a new channel is 0, so the new
channels output 0 and the head's weights on them are 0.  The wider network therefore starts
as exactly the trained one (function-preserving widening, as in Net2Net) and training brings
the new channels in through their BatchNorm scales.
"""
from __future__ import annotations

import keras
import numpy as np

from bloodcell_core.errors import BloodcellError


def _weighted_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if layer.weights]  # variables: no copy to test


def _silent_batchnorm(old: list[np.ndarray], new: list[np.ndarray]) -> list[np.ndarray]:
    gamma, beta, mean, variance = (np.zeros_like(new[0]), np.zeros_like(new[1]),
                                   np.zeros_like(new[2]), np.ones_like(new[3]))
    kept = len(old[0])
    for target, source in zip((gamma, beta, mean, variance), old):
        target[:kept] = source
    return [gamma, beta, mean, variance]


def _embedded(old: np.ndarray, new: np.ndarray, zero_rest: bool) -> np.ndarray:
    """``old`` in the leading corner of ``new`` (the new part random, or 0 for the head)."""
    merged = np.zeros_like(new) if zero_rest else new.copy()
    merged[tuple(slice(0, side) for side in old.shape)] = old
    return merged


def carry_weights(source: keras.Model, target: keras.Model) -> keras.Model:
    """Copy ``source``'s weights into ``target`` (the same compact CNN, at least as wide)."""
    old_layers, new_layers = _weighted_layers(source), _weighted_layers(target)
    if len(old_layers) != len(new_layers):
        raise BloodcellError("the two networks differ in depth: weights cannot be carried over")
    for old, new in zip(old_layers, new_layers):
        old_weights, new_weights = old.get_weights(), new.get_weights()
        if type(old) is not type(new) or any(o.ndim != n.ndim or any(a > b for a, b in zip(o.shape, n.shape))
                                             for o, n in zip(old_weights, new_weights)):
            raise BloodcellError(f"layer {new.name} does not fit {old.name}: weights cannot be carried over")
        if isinstance(new, keras.layers.BatchNormalization):
            new.set_weights(_silent_batchnorm(old_weights, new_weights))
        else:
            is_head = isinstance(new, keras.layers.Dense)
            new.set_weights([_embedded(o, n, zero_rest=is_head) for o, n in zip(old_weights, new_weights)])
    return target
