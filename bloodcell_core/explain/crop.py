"""The explained crop: what the model saw of an image, with its saliency heatmap (numpy only)."""
from __future__ import annotations

from typing import Any

import numpy as np


def as_crop(model_input: np.ndarray) -> np.ndarray:
    """A prepared model input (float, 0-255) as the RGB uint8 crop it shows."""
    return np.clip(np.round(model_input), 0, 255).astype(np.uint8)


def explained_crop(predictor: Any, explainer: Any, image: np.ndarray, class_name: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(the crop the model saw as RGB uint8, its saliency heatmap in [0, 1] for ``class_name``)."""
    model_input, _ = predictor.prepare(image)
    heatmap = explainer.explain(model_input, predictor.classes.index(class_name))
    return as_crop(model_input), heatmap
