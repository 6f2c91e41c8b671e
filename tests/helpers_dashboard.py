"""Test helpers for the dashboard: the app under AppTest (opened, signed in), a tiny saved model
with a card, PNG bytes, a cell dataset.

``synthetic_cell`` is :func:`tests.helpers_images.synthetic_cell`, imported here for the tests that take it from this module.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from tests.helpers_images import synthetic_cell

__all__ = ["APP", "REVIEWER_PASSWORD", "TINY_MODEL_CLASS", "alice_reviewer_secrets", "build_tiny_model", "open_app",
           "png_bytes", "recorded", "review_history", "sign_in", "synthetic_cell", "tiny_model_card", "upload",
           "write_cell_dataset"]

TINY_MODEL_CLASS = "lymphocyte"  # the class the tiny dashboard test model always predicts
APP = str(Path(__file__).resolve().parent.parent / "app.py")
REVIEWER_PASSWORD = "review-test-password"


def alice_reviewer_secrets() -> dict:
    """Secrets with one reviewer, alice ("Dr Alice"); hashing costs, so modules keep it in a fixture."""
    from bloodcell_core.review.auth import hash_password

    return {"reviewers": {"alice": {"password_hash": hash_password(REVIEWER_PASSWORD, rounds=4),
                                    "display_name": "Dr Alice"}}}


def open_app(secrets: dict | None = None, page: str | None = None) -> AppTest:
    """The app run once under AppTest (read-only open unless ``secrets`` say otherwise), then ``page``."""
    app = AppTest.from_file(APP, default_timeout=30)
    app.secrets.update(secrets or {"access": {"read_only_open": True}})
    app.run()
    if page is not None:
        app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def sign_in(app: AppTest) -> AppTest:
    """Sign alice in through the sidebar form (secrets from :func:`alice_reviewer_secrets`)."""
    app.sidebar.text_input(key="bloodcell-sign-in-username").input("alice")
    app.sidebar.text_input(key="bloodcell-sign-in-password").input(REVIEWER_PASSWORD)
    next(b for b in app.sidebar.button if b.label == "Sign in").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert "Signed in as Dr Alice" in [t.value for t in app.sidebar.text] or any(
        "Dr Alice" in m.value for m in app.sidebar.markdown)
    return app


def upload(app: AppTest, files: list[tuple[str, bytes]]) -> AppTest:
    """Put (name, PNG bytes) files into Classify's uploader and rerun."""
    app.file_uploader(key="classify_uploads").set_value([(name, data, "image/png") for name, data in files])
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def review_history(data_dir: Path):
    """The review store's history (a DataFrame) of the dashboard fixture's data folder."""
    from bloodcell_core.review.store import ReviewStore

    with ReviewStore(f"sqlite:///{data_dir / 'review.sqlite'}") as store:
        return store.history()


def recorded(data_dir: Path) -> list[tuple[str, str, str, str]]:
    """(action, old label, new label, reviewer) of every recorded decision, oldest first."""
    history = review_history(data_dir)
    return list(zip(history["action"], history["old_label"], history["new_label"], history["reviewer"]))[::-1]


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


# Disc colours of the "colour cells" the colour model tells apart: one class per colour.
COLOUR_CLASSES: dict[str, tuple[int, int, int]] = {
    "lymphocyte": (120, 40, 150), "neutrophil": (150, 40, 60), "eosinophil": (40, 60, 160)}


def colour_cell(label: str, seed: int = 0, side: int = 64) -> np.ndarray:
    """A synthetic cell whose stained disc has ``label``'s colour in COLOUR_CLASSES."""
    image = synthetic_cell(side, seed=seed, nucleus_colour=(120, 40, 150)).astype(np.float32)
    purple = np.all(np.abs(image - (120, 40, 150)) < 20, axis=-1)
    image[purple] = COLOUR_CLASSES[label]
    rng = np.random.default_rng(seed)
    image[purple] += rng.normal(0, 3, (int(purple.sum()), 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def build_colour_model():
    """A tiny 8-class model on 32 px input that predicts a colour cell's class (nearest mean colour of
    the crop, confidently), so a batch of colour cells falls into several classes."""
    import keras

    from bloodcell_core.classes import CANONICAL_CLASSES
    from bloodcell_core.inference.predictor import Predictor

    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0, name="scale")(inputs)
    x = keras.layers.Conv2D(3, 1, use_bias=False, name="conv")(x)
    x = keras.layers.Activation("relu", name="last_conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    outputs = keras.layers.Dense(len(CANONICAL_CLASSES), activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="colour_dashboard_model")
    model.get_layer("conv").set_weights([np.eye(3, dtype=np.float32).reshape(1, 1, 3, 3)])
    predictor = Predictor.from_model(model, list(CANONICAL_CLASSES))
    kernel = np.zeros((3, len(CANONICAL_CLASSES)), np.float32)
    bias = np.full(len(CANONICAL_CLASSES), -1e3, np.float32)
    for label in COLOUR_CLASSES:
        centre = predictor.embed([colour_cell(label, seed) for seed in range(3)]).mean(axis=0)
        index = CANONICAL_CLASSES.index(label)
        kernel[:, index] = 2 * 2000 * centre  # logits: -2000 * |f - centre|^2 + const
        bias[index] = -2000 * float(centre @ centre)
    model.get_layer("probabilities").set_weights([kernel, bias])
    return model
