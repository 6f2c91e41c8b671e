"""SmoothGrad through :class:`tf_keras_vis.saliency.Saliency`."""
from __future__ import annotations

import keras
import numpy as np
from tf_keras_vis.saliency import Saliency
from tf_keras_vis.utils.scores import CategoricalScore

from bloodcell_core.explain.base import Explainer, linear_output_modifiers

DEFAULT_SAMPLES = 10
DEFAULT_NOISE = 0.2


class SmoothGrad(Explainer):
    """Pixel-level saliency: |d logit / d pixel|, max over colour channels, averaged over
    noisy copies of the image.

    ``noise`` is relative: tf-keras-vis draws Gaussian noise with sigma = noise * (max - min)
    of each input image, so 0.2 on a 0..255 image is a sigma of about 50 grey levels (the
    10-20 % of the value range the SmoothGrad paper recommends); no rescaling is needed.
    ``penultimate_layer`` is accepted for a uniform interface and ignored (gradients are
    taken with respect to the input pixels).
    """

    name = "SmoothGrad"
    uses_feature_map = False

    def __init__(self, model: keras.Model, penultimate_layer: str | None = None,
                 samples: int = DEFAULT_SAMPLES, noise: float = DEFAULT_NOISE) -> None:
        if samples < 1 or noise < 0:
            raise ValueError("samples must be at least 1 and noise non-negative")
        super().__init__(model, penultimate_layer)
        self.samples = samples
        self.noise = noise

    def _build_visualizer(self) -> Saliency:
        return Saliency(self.model, model_modifier=linear_output_modifiers(), clone=True)

    def _maps(self, batch: np.ndarray, score: CategoricalScore) -> np.ndarray:
        return self._visualizer(score, batch, smooth_samples=self.samples,
                                smooth_noise=self.noise)
