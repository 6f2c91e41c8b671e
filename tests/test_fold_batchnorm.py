"""BatchNorm folded into the convolution before it: same outputs, fewer layers, only where exact."""
from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from bloodcell_core.inference.predictor import Predictor  # noqa: E402
from bloodcell_core.models.fold_batchnorm import fold_batchnorm  # noqa: E402


def _batchnorms(model) -> list[str]:
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def _mixed_model() -> keras.Model:
    """Foldable pairs (conv/depthwise -> BN) and three that are not (activation inside the conv,
    BN after an Add, a conv feeding two layers); BatchNorm statistics far from the identity."""
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("relu")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    y = keras.layers.BatchNormalization(name="dw_bn")(y)
    y = keras.layers.Conv2D(8, 1, activation="relu", name="relu_conv")(y)  # non-linear: not foldable
    y = keras.layers.BatchNormalization(name="after_relu_bn")(y)
    shared = keras.layers.Conv2D(8, 1, name="shared")(x)  # two consumers: not foldable
    branch = keras.layers.BatchNormalization(name="shared_bn")(shared)
    x = keras.layers.Add()([y, branch, shared])
    x = keras.layers.BatchNormalization(name="add_bn")(x)  # after an Add: not foldable
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2.0, channels), rng.normal(0, 0.5, channels),
                               rng.normal(0, 0.5, channels), rng.uniform(0.2, 3.0, channels)])
    return model


def test_folding_keeps_the_function_and_removes_only_the_exact_pairs():
    model = _mixed_model()
    folded = fold_batchnorm(model)
    assert sorted(_batchnorms(folded)) == ["add_bn", "after_relu_bn", "shared_bn"]
    assert len(_batchnorms(model)) == 5  # the original is untouched
    assert {"stem", "dw", "features", "probabilities"} <= {layer.name for layer in folded.layers}
    batch = np.random.default_rng(1).uniform(0, 255, (6, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(folded.predict_on_batch(batch), model.predict_on_batch(batch), atol=1e-5)


def test_a_model_with_nothing_to_fold_is_returned_as_it_is():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    plain = keras.Model(inputs, outputs)
    assert fold_batchnorm(plain) is plain
    sequential = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
                                   keras.layers.BatchNormalization()])
    assert fold_batchnorm(sequential) is sequential  # not a functional config: left alone


def test_the_predictor_serves_the_folded_graph_and_keeps_the_original_model():
    model = _mixed_model()
    predictor = Predictor.from_model(model, ["a", "b", "c"])
    assert predictor.model is model and len(_batchnorms(model)) == 5
    assert len(_batchnorms(predictor._outputs_and_features)) == 3
    crops = np.random.default_rng(2).uniform(0, 255, (5, 16, 16, 3)).astype(np.float32)
    probabilities, features = predictor.run_prepared(crops)
    np.testing.assert_allclose(probabilities, model.predict_on_batch(crops), atol=1e-5)
    unfolded_features = keras.Model(model.inputs, model.get_layer("features").output).predict_on_batch(crops)
    np.testing.assert_allclose(features, unfolded_features, atol=1e-4)
