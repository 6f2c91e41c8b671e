"""Shared plumbing for the saliency methods, which all run through tf-keras-vis.

Every explainer wraps one tf-keras-vis visualiser that is built once (building clones the
model, which is the slow part) and called many times.  tf-keras-vis 0.8.7 runs eagerly
(no ``tf.function``, so nothing is traced or retraced between calls) and works with Keras 3
on flat functional models only, hence the checks in :func:`check_model`.
"""
from __future__ import annotations

import threading
import warnings
from abc import ABC, abstractmethod
from typing import ClassVar, Sequence

import keras
import numpy as np

# tf-keras-vis 0.8.7 imports zoom from scipy.ndimage.interpolation, deprecated (not removed)
# in SciPy 1.x; import its method modules once here, quietly, so later imports are cached.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=DeprecationWarning,
                            message=".*scipy.ndimage.interpolation.*")
    import tf_keras_vis.gradcam  # noqa: F401
    import tf_keras_vis.gradcam_plus_plus  # noqa: F401
    import tf_keras_vis.saliency  # noqa: F401
    import tf_keras_vis.scorecam  # noqa: F401
from tf_keras_vis import ModelVisualization
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
from tf_keras_vis.utils.scores import CategoricalScore

from bloodcell_core.explain.errors import ExplanationError

# Layers whose 4-D output can serve as the class-activation feature map.
FEATURE_MAP_LAYERS: tuple[type, ...] = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.PReLU,
)


def check_model(model: keras.Model) -> None:
    """Refuse models tf-keras-vis can't handle, with a message that says why."""
    if not isinstance(model, keras.Model):
        raise ExplanationError(f"expected a Keras model, got {type(model).__name__}")
    if isinstance(model, keras.Sequential):
        raise ExplanationError("explanations need a functional Keras model, not a Sequential one")
    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        raise ExplanationError(f"model contains a nested model ({nested[0]}); "
                               "explanations need a flat functional model")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExplanationError("explanations need a model with one image input and one output")
    if len(model.inputs[0].shape) != 4 or len(model.outputs[0].shape) != 2:
        raise ExplanationError(f"expected input (N, S, S, C) and output (N, classes), got "
                               f"{tuple(model.inputs[0].shape)} -> {tuple(model.outputs[0].shape)}")


def _output_rank(layer: keras.layers.Layer) -> int | None:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):  # a shared layer has no single output
        return None


def find_penultimate_layer(model: keras.Model) -> str:
    """Name of the last conv/activation layer with a 4-D (N, h, w, c) output.

    tf-keras-vis's own search (``penultimate_layer=-1``) picks the last ``Conv`` layer, which
    in conv -> batch-norm -> activation stacks is the map *before* normalisation and
    activation; the activation output is the usual Grad-CAM target.
    """
    for layer in reversed(model.layers):
        if isinstance(layer, FEATURE_MAP_LAYERS) and _output_rank(layer) == 4:
            return layer.name
    raise ExplanationError("model has no convolutional feature map to explain")


def resolve_penultimate_layer(model: keras.Model, name: str | None) -> str:
    """``name`` checked against the model, or the automatic choice when None."""
    if name is None:
        return find_penultimate_layer(model)
    try:
        layer = model.get_layer(name)
    except ValueError:
        raise ExplanationError(f"model has no layer named {name!r}") from None
    if _output_rank(layer) != 4:
        raise ExplanationError(f"layer {name!r} has no 4-D (N, h, w, c) output to explain")
    return name


def _with_list_io(model: keras.Model) -> keras.Model:
    """The same graph with list-structured inputs/outputs.

    tf-keras-vis always calls models with a list of inputs; Keras 3 warns on every call when
    that doesn't match the model's own input structure.
    """
    return keras.Model(inputs=list(model.inputs), outputs=list(model.outputs))


def linear_output_modifiers() -> list:
    """Model modifiers giving tf-keras-vis a copy whose output is logits, not softmax.

    Used with ``clone=True`` so the modifiers act on a clone: the serving model keeps its
    softmax and its predictions.  ``ReplaceToLinear`` goes last, as tf-keras-vis requires.
    """
    return [_with_list_io, ReplaceToLinear()]


class Explainer(ABC):
    """One saliency method bound to one model; build once, call :meth:`explain` many times."""

    name: ClassVar[str]
    uses_feature_map: ClassVar[bool] = True

    def __init__(self, model: keras.Model, penultimate_layer: str | None = None) -> None:
        check_model(model)
        self.model = model
        self.penultimate_layer = (resolve_penultimate_layer(model, penultimate_layer)
                                  if self.uses_feature_map else None)
        self._input_shape = tuple(model.inputs[0].shape[1:])
        self._n_classes = int(model.outputs[0].shape[-1])
        self._lock = threading.Lock()  # one call at a time per explainer (Streamlit threads)
        self._visualizer = self._build_visualizer()

    @abstractmethod
    def _build_visualizer(self) -> ModelVisualization:
        """The tf-keras-vis object for this method, built on a modified copy of the model."""

    @abstractmethod
    def _maps(self, batch: np.ndarray, score: CategoricalScore) -> np.ndarray:
        """Raw (N, S, S) maps from tf-keras-vis for a float32 batch."""

    def explain(self, model_input: np.ndarray, class_index: int | Sequence[int]) -> np.ndarray:
        """Heatmap(s) in [0, 1], float32, the size of the model input.

        ``model_input`` is what the model takes: one (S, S, 3) image or an (N, S, S, 3) batch,
        float values in 0..255.  ``class_index`` is one class for every image or one per image.
        Returns (S, S) for one image, (N, S, S) for a batch.
        """
        batch, single = self._as_batch(model_input)
        score = CategoricalScore(self._class_indices(class_index, len(batch)))
        with self._lock:
            maps = np.asarray(self._maps(batch, score), dtype=np.float32)
        maps = np.clip(np.nan_to_num(maps, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
        return maps[0] if single else maps

    def _as_batch(self, model_input: np.ndarray) -> tuple[np.ndarray, bool]:
        try:
            batch = np.asarray(model_input, dtype=np.float32)
        except (TypeError, ValueError):
            raise ExplanationError("model input must be a numeric image array") from None
        single = batch.ndim == len(self._input_shape)
        if single:
            batch = batch[np.newaxis]
        if batch.ndim != len(self._input_shape) + 1 or len(batch) == 0 or not all(
                want is None or want == got for want, got in zip(self._input_shape, batch.shape[1:])):
            raise ExplanationError(f"model input shape {np.shape(model_input)} does not match "
                                   f"the model's {self._input_shape} (or a batch of them)")
        if not np.isfinite(batch).all():
            raise ExplanationError("model input contains NaN or infinite values")
        return batch, single

    def _class_indices(self, class_index: int | Sequence[int], n_images: int) -> list[int]:
        if isinstance(class_index, (int, np.integer)) and not isinstance(class_index, bool):
            indices = [int(class_index)] * n_images
        else:
            try:
                indices = [int(i) for i in np.asarray(class_index).reshape(-1)]
            except (TypeError, ValueError):
                raise ExplanationError("class_index must be an int or a list of ints") from None
            if len(indices) != n_images:
                raise ExplanationError(f"got {len(indices)} class indices for {n_images} images")
        bad = [i for i in indices if not 0 <= i < self._n_classes]
        if bad:
            raise ExplanationError(f"class index {bad[0]} is out of range for a "
                                   f"{self._n_classes}-class model")
        return indices

    def __repr__(self) -> str:
        layer = f", layer={self.penultimate_layer!r}" if self.penultimate_layer else ""
        return f"{type(self).__name__}(model={self.model.name!r}{layer})"
