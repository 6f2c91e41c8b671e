"""Test helpers for the dashboard: a tiny saved model with a card, PNG bytes, a cell dataset.

``synthetic_cell`` is :func:`tests.helpers_images.synthetic_cell`, imported here for the tests that take it from this module.
"""
from __future__ import annotations

import io

import numpy as np

from tests.helpers_images import synthetic_cell

__all__ = ["TINY_MODEL_CLASS", "build_tiny_model", "png_bytes", "synthetic_cell", "tiny_model_card", "write_cell_dataset"]

TINY_MODEL_CLASS = "lymphocyte"  # the class the tiny dashboard test model always predicts


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def build_tiny_model():
    """A flat functional 8-class model on 32 px input whose output is dominated by a bias towards
    TINY_MODEL_CLASS (so tests know the label) while its conv map still gets gradients (Grad-CAM)."""
    import keras

    from bloodcell_core.classes import CANONICAL_CLASSES

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0, name="scale")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(x)
    x = keras.layers.Activation("relu", name="last_conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    outputs = keras.layers.Dense(len(CANONICAL_CLASSES), activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="tiny_dashboard_model")
    kernel, bias = model.get_layer("probabilities").get_weights()
    bias[:] = 0.0
    target = CANONICAL_CLASSES.index(TINY_MODEL_CLASS)
    bias[target] = 5.0
    kernel = kernel * 0.1
    kernel[:, target] = np.abs(kernel[:, target]) + 0.05  # positive weights: a non-empty Grad-CAM
    model.get_layer("probabilities").set_weights([kernel, bias])
    return model


def tiny_model_card(name: str = "tiny-dashboard-test") -> dict:
    from bloodcell_core.classes import CANONICAL_CLASSES

    return {
        "name": name, "classes": list(CANONICAL_CLASSES), "input_size": 32, "crop_size": 32,
        "architecture": "tiny-test", "created": "2026-01-01T00:00:00+00:00",
        "data": {"source": "synthetic test images", "n_images": 16},
        "validation": {"accuracy": 0.5, "balanced_accuracy": 0.25, "macro_auc": 0.6, "ece": 0.1,
                       "ig_to_monocyte": 0.0, "monocyte_to_ig": 0.0},
        "review": {"confidence_threshold": 0.5, "validation_coverage": 0.9,
                   "validation_accuracy_accepted": 0.6, "rule": "needs review when confidence < 0.5"},
        "training": {"seconds": 1.0},
    }


def write_cell_dataset(root) -> None:
    """A class-folder dataset at ``root``: 3 lymphocyte and 3 monocyte synthetic PNGs."""
    for label_index, label in enumerate(("lymphocyte", "monocyte")):
        (root / label).mkdir(parents=True)
        for i in range(3):
            (root / label / f"{label}_{i}.png").write_bytes(png_bytes(synthetic_cell(64, seed=10 * label_index + i)))
