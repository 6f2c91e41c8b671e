"""Saliency methods on tiny hand-built models (no trained weights)."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bloodcell_core.errors import BloodcellError  # noqa: E402
from bloodcell_core.explain import (  # noqa: E402
    DEFAULT_METHOD,
    METHODS,
    ExplanationError,
    GradCAM,
    ScoreCAM,
    clear_explainer_cache,
    find_penultimate_layer,
    get_explainer,
    heatmap_to_rgb,
    overlay,
    resolve_method,
)

SIZE = 32
WHITE = (slice(4, 11), slice(20, 27))   # rows, cols of the white square
RED = (slice(20, 27), slice(4, 11))     # rows, cols of the red square


def tiny_model() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.Conv2D(8, 3, name="last_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(x))


def square_model() -> keras.Model:
    """Class 0 = "a white square is present", class 1 = "a red square", class 2 = neither.

    conv channel 0 fires where the local mean brightness exceeds 0.8, channel 1 where red
    exceeds the mean of green and blue by 0.5 (black, as left by ScoreCAM's masks, triggers
    neither); last_conv passes both through (centre tap) and the dense layer reads them.
    """
    model = tiny_model()
    conv_w = np.zeros((3, 3, 3, 4), np.float32)
    conv_w[..., 0] = 1 / 27
    conv_w[:, :, 0, 1], conv_w[:, :, 1:, 1] = 1 / 9, -1 / 18
    model.get_layer("conv").set_weights([conv_w, np.array([-0.8, -0.5, 0, 0], np.float32)])
    last_w = np.zeros((3, 3, 4, 8), np.float32)
    last_w[1, 1, 0, 0] = last_w[1, 1, 1, 1] = 1.0
    model.get_layer("last_conv").set_weights([last_w, np.zeros(8, np.float32)])
    dense_w = np.zeros((8, 3), np.float32)
    dense_w[0, 0] = dense_w[1, 1] = 1000.0  # decisive logits, as a trained model has
    model.get_layer("probs").set_weights([dense_w, np.array([0, 0, 1], np.float32)])
    return model


def square_image(seed: int = 0) -> np.ndarray:
    """Mid-grey noise (never triggers either detector) with one white and one red square."""
    image = np.random.default_rng(seed).uniform(70, 140, (SIZE, SIZE, 3)).astype(np.float32)
    image[WHITE] = 255.0
    image[RED] = (255.0, 0.0, 0.0)
    return image


def inside(heatmap: np.ndarray, square: tuple[slice, slice], margin: int = 0) -> np.ndarray:
    mask = np.zeros(heatmap.shape, bool)
    rows, cols = square
    mask[max(rows.start - margin, 0):rows.stop + margin, max(cols.start - margin, 0):cols.stop + margin] = True
    return mask


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return square_model()


@pytest.fixture(autouse=True, scope="module")
def _fresh_cache():
    clear_explainer_cache()
    yield
    clear_explainer_cache()


def test_registry_names_and_default():
    assert list(METHODS) == ["Grad-CAM", "Grad-CAM++", "ScoreCAM", "SmoothGrad"]
    assert DEFAULT_METHOD == "Grad-CAM"
    assert resolve_method("gradcam") == "Grad-CAM"
    assert resolve_method("grad-cam++") == "Grad-CAM++"
    with pytest.raises(BloodcellError, match="unknown explanation method"):
        resolve_method("LIME")


@pytest.mark.parametrize("method", list(METHODS))
def test_maps_are_finite_unit_range_for_image_and_batch(model, method):
    explainer = get_explainer(model, method)
    single = explainer.explain(square_image(), 0)
    assert single.shape == (SIZE, SIZE) and single.dtype == np.float32
    batch = explainer.explain(np.stack([square_image(1), square_image(2), square_image(3)]), [0, 1, 2])
    assert batch.shape == (3, SIZE, SIZE) and batch.dtype == np.float32
    for heatmap in (single, *batch):
        assert np.isfinite(heatmap).all()
        assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    assert single.max() > 0.5  # a real map, not all zeros


@pytest.mark.parametrize("class_index, square, other", [(0, WHITE, RED), (1, RED, WHITE)])
def test_gradcam_peaks_on_the_square_of_the_explained_class(model, class_index, square, other):
    heatmap = get_explainer(model, "Grad-CAM").explain(square_image(), class_index)
    peak = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    assert inside(heatmap, square, margin=2)[peak], f"peak {peak} is not on the square"
    assert heatmap[inside(heatmap, other)].max() < 0.1


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("class_index, square", [(0, WHITE), (1, RED)])
def test_every_method_highlights_the_square_of_the_class(model, method, class_index, square):
    heatmap = get_explainer(model, method).explain(square_image(), class_index)
    on_square = inside(heatmap, square, margin=1)
    assert heatmap[on_square].mean() > 5 * heatmap[~on_square].mean()


def test_explainer_is_built_once_per_model_and_method(model):
    first = get_explainer(model, "Grad-CAM")
    assert get_explainer(model) is first
    assert get_explainer(model, "gradcam") is first
    assert get_explainer(model, "ScoreCAM") is not first
    assert get_explainer(tiny_model(), "Grad-CAM") is not first


def test_serving_model_keeps_softmax_and_predictions():
    serving = square_model()
    images = np.stack([square_image(4), square_image(5)])
    before = serving.predict(images, verbose=0)
    for method in METHODS:
        get_explainer(serving, method).explain(images, [0, 1])
    after = serving.predict(images, verbose=0)
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(after.sum(axis=1), 1.0, rtol=1e-5)
    assert serving.get_layer("probs").activation is keras.activations.softmax


def test_penultimate_layer_is_the_last_4d_conv_or_activation():
    assert find_penultimate_layer(tiny_model()) == "last_conv"
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="top_conv")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("swish", name="top_activation")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    stacked = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    assert find_penultimate_layer(stacked) == "top_activation"
    assert GradCAM(stacked).penultimate_layer == "top_activation"
    assert GradCAM(stacked, penultimate_layer="top_conv").penultimate_layer == "top_conv"


def test_models_that_cannot_be_explained_give_clear_errors():
    with pytest.raises(ExplanationError, match="no layer named"):
        GradCAM(tiny_model(), penultimate_layer="nope")
    inputs = keras.Input((SIZE, SIZE, 3))
    flat = keras.layers.Flatten()(inputs)
    dense_only = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(flat))
    with pytest.raises(ExplanationError, match="no convolutional feature map"):
        GradCAM(dense_only)
    with pytest.raises(ExplanationError, match="Sequential"):
        GradCAM(keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(2, 3)]))


def test_bad_inputs_and_class_indices_are_refused(model):
    explainer = get_explainer(model)
    with pytest.raises(ExplanationError, match="does not match"):
        explainer.explain(np.zeros((16, 16, 3), np.float32), 0)
    with pytest.raises(ExplanationError, match="out of range"):
        explainer.explain(square_image(), 3)
    with pytest.raises(ExplanationError, match="2 class indices for 1 images"):
        explainer.explain(square_image()[None], [0, 1])
    with pytest.raises(ExplanationError, match="NaN"):
        explainer.explain(np.full((SIZE, SIZE, 3), np.nan, np.float32), 0)


def test_scorecam_max_n_is_bounded_by_the_feature_channels(model):
    assert ScoreCAM(model, max_N=16).max_N == 8
    assert ScoreCAM(model, max_N=4).max_N == 4


def test_overlay_shape_dtype_and_alpha_extremes():
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    heatmap = np.linspace(0, 1, 12 * 16, dtype=np.float32).reshape(12, 16)
    blended = overlay(image, heatmap, alpha=0.5)
    assert blended.shape == image.shape and blended.dtype == np.uint8
    assert not np.array_equal(blended, image)
    np.testing.assert_array_equal(overlay(image, heatmap, alpha=0.0), image)
    flat = overlay(image, np.ones((12, 16), np.float32), alpha=1.0)
    np.testing.assert_array_equal(flat, np.broadcast_to(heatmap_to_rgb(np.ones((1, 1)))[0, 0], image.shape))
    with pytest.raises(ExplanationError):
        overlay(image.astype(np.float32), heatmap, alpha=0.5)
    with pytest.raises(ExplanationError):
        overlay(image, heatmap, alpha=1.5)


def test_heatmap_colours_run_from_cold_to_hot():
    colours = heatmap_to_rgb(np.array([[0.0, 1.0, np.nan, 7.0]], np.float32))
    assert colours.shape == (1, 4, 3) and colours.dtype == np.uint8
    cold, hot = colours[0, 0].astype(int), colours[0, 1].astype(int)
    assert cold[2] > cold[0] and hot[0] > hot[2]        # blue-ish low end, red-ish high end
    np.testing.assert_array_equal(colours[0, 2], colours[0, 0])   # NaN -> 0
    np.testing.assert_array_equal(colours[0, 3], colours[0, 1])   # clipped to 1
