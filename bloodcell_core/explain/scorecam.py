"""Faster Score-CAM through :class:`tf_keras_vis.scorecam.Scorecam`."""
from __future__ import annotations

import functools

import keras
import numpy as np
from tf_keras_vis.scorecam import Scorecam
from tf_keras_vis.utils.scores import CategoricalScore

from bloodcell_core.explain.base import Explainer, linear_output_modifiers

DEFAULT_MAX_N = 16


def _quiet_predict(model: keras.Model) -> None:
    """Scorecam calls ``model.predict`` with Keras's default progress bar; silence it on
    this (cloned) model only."""
    model.predict = functools.partial(model.predict, verbose=0)


class ScoreCAM(Explainer):
    """Gradient-free CAM: each feature map masks the input and is weighted by the class
    probability the masked input gets.

    Runs as Faster Score-CAM: only the ``max_N`` feature maps with the largest spatial
    variance are tried, so one image costs about ``max_N`` forward passes.

    tf-keras-vis applies softmax to the model output itself, so it gets a logits copy of
    the model: softmax(logits) is the post-softmax score of the Score-CAM paper, whereas
    softmax(probabilities) would flatten every weight towards 1/classes.
    """

    name = "ScoreCAM"

    def __init__(self, model: keras.Model, penultimate_layer: str | None = None,
                 max_N: int = DEFAULT_MAX_N, batch_size: int = 32) -> None:  # noqa: N803 (tf-keras-vis name)
        if max_N < 1:
            raise ValueError("max_N must be at least 1")
        super().__init__(model, penultimate_layer)
        channels = int(model.get_layer(self.penultimate_layer).output.shape[-1])
        self.max_N = min(max_N, channels)
        self.batch_size = batch_size

    def _build_visualizer(self) -> Scorecam:
        return Scorecam(self.model, model_modifier=[*linear_output_modifiers(), _quiet_predict],
                        clone=True)

    def _maps(self, batch: np.ndarray, score: CategoricalScore) -> np.ndarray:
        return self._visualizer(score, batch, penultimate_layer=self.penultimate_layer,
                                seek_penultimate_conv_layer=False, max_N=self.max_N,
                                batch_size=self.batch_size)
