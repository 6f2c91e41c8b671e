"""Grad-CAM++ through :class:`tf_keras_vis.gradcam_plus_plus.GradcamPlusPlus`."""
from __future__ import annotations

import numpy as np
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
from tf_keras_vis.utils.scores import CategoricalScore

from bloodcell_core.explain.base import Explainer, linear_output_modifiers


class GradCAMPlusPlus(Explainer):
    """Grad-CAM with pixel-wise gradient weights; better when a class shows up in several
    places (e.g. several granules), at the same cost as Grad-CAM."""

    name = "Grad-CAM++"

    def _build_visualizer(self) -> GradcamPlusPlus:
        return GradcamPlusPlus(self.model, model_modifier=linear_output_modifiers(), clone=True)

    def _maps(self, batch: np.ndarray, score: CategoricalScore) -> np.ndarray:
        return self._visualizer(score, batch, penultimate_layer=self.penultimate_layer,
                                seek_penultimate_conv_layer=False)
