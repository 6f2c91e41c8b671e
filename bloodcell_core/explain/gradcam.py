"""Grad-CAM through :class:`tf_keras_vis.gradcam.Gradcam`."""
from __future__ import annotations

from typing import ClassVar

import numpy as np
from tf_keras_vis import ModelVisualization
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.utils.scores import CategoricalScore

from bloodcell_core.explain.base import Explainer, linear_output_modifiers


class GradCAM(Explainer):
    """Class activation map weighted by the mean gradient of the class logit.

    Gradients are taken from a logits copy of the model (softmax replaced by linear on a
    clone), as tf-keras-vis recommends: softmax gradients vanish for confident predictions.
    """

    name = "Grad-CAM"
    visualizer_class: ClassVar[type[ModelVisualization]] = Gradcam  # Grad-CAM++ swaps in GradcamPlusPlus

    def _build_visualizer(self) -> ModelVisualization:
        return self.visualizer_class(self.model, model_modifier=linear_output_modifiers(), clone=True)

    def _maps(self, batch: np.ndarray, score: CategoricalScore) -> np.ndarray:
        return self._visualizer(score, batch, penultimate_layer=self.penultimate_layer,
                                seek_penultimate_conv_layer=False)
