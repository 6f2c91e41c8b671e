"""Precise-BN recalibration: statistics become the exact average; weights don't move."""
from __future__ import annotations

import numpy as np

from bloodcell_core.training.batchnorm import batchnorm_layers, recalibrate_batchnorm


def test_moving_statistics_become_the_mean_over_the_batches():
    import keras

    inputs = keras.Input((4, 4, 2))
    conv = keras.layers.Conv2D(3, 1, name="conv")(inputs)
    normed = keras.layers.BatchNormalization(name="bn")(conv)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(normed))
    rng = np.random.default_rng(0)
    batches = [rng.normal(k, 1 + k, (8, 4, 4, 2)).astype(np.float32) for k in range(3)]
    conv_weights = [w.copy() for w in model.get_layer("conv").get_weights()]

    assert recalibrate_batchnorm(model, batches) == 3

    bn = model.get_layer("bn")
    features = [model.get_layer("conv")(b).numpy().reshape(-1, 3) for b in batches]
    expected_mean = np.mean([f.mean(axis=0) for f in features], axis=0)
    expected_var = np.mean([f.var(axis=0) for f in features], axis=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), expected_mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), expected_var, rtol=1e-3, atol=1e-4)
    assert bn.momentum == 0.99  # restored
    for before, after in zip(conv_weights, model.get_layer("conv").get_weights()):
        np.testing.assert_array_equal(before, after)


def test_frozen_batchnorm_and_models_without_it_are_left_alone():
    import keras

    inputs = keras.Input((4, 4, 2))
    bn = keras.layers.BatchNormalization(name="bn")
    model = keras.Model(inputs, bn(inputs))
    bn.trainable = False
    assert batchnorm_layers(model) == []
    assert recalibrate_batchnorm(model, [np.ones((2, 4, 4, 2))]) == 0
    np.testing.assert_array_equal(bn.moving_mean.numpy(), np.zeros(2))
