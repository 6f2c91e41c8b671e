"""Saliency maps (Grad-CAM, Grad-CAM++, ScoreCAM, SmoothGrad) through tf-keras-vis.

``get_explainer(model, method)`` builds each method once per model and caches it;
``explainer.explain(model_input, class_index)`` returns heatmaps in [0, 1] the size of the
model input; :func:`overlay` puts one onto the image.

One module per method (``gradcam``, ``gradcam_plus``, ``scorecam``, ``smoothgrad``), the table
of them in ``registry``.  Importing this package is light: the method names, the overlay
helpers and the error come without TensorFlow, which loads on first use of a method, so the
dashboard can draw its first page before TensorFlow has finished importing.
"""
from __future__ import annotations

import importlib
import re
from typing import Any

from bloodcell_core.explain.errors import ExplanationError
from bloodcell_core.explain.overlay import heatmap_to_rgb, overlay, resize_heatmap

# Menu order; the first is the default.  registry.METHODS maps each name to its class.
METHOD_NAMES: tuple[str, ...] = ("Grad-CAM", "Grad-CAM++", "ScoreCAM", "SmoothGrad")
DEFAULT_METHOD = METHOD_NAMES[0]

# Names loaded on first access (they import TensorFlow): name -> module that defines it.
_LAZY = {
    "METHODS": "registry", "get_explainer": "registry", "clear_explainer_cache": "registry",
    "Explainer": "base", "find_penultimate_layer": "base",
    "GradCAM": "gradcam", "GradCAMPlusPlus": "gradcam_plus", "ScoreCAM": "scorecam", "SmoothGrad": "smoothgrad",
}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9+]", "", name.lower())


def resolve_method(method: str) -> str:
    """Display name for ``method``, matched loosely ("gradcam", "grad-cam++", "SmoothGrad")."""
    by_key = {_key(name): name for name in METHOD_NAMES}
    try:
        return by_key[_key(method)]
    except (KeyError, AttributeError):
        raise ExplanationError(f"unknown explanation method {method!r}; choose one of "
                               f"{', '.join(METHOD_NAMES)}") from None


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_METHOD", "METHODS", "METHOD_NAMES", "Explainer", "ExplanationError", "GradCAM", "GradCAMPlusPlus",
    "ScoreCAM", "SmoothGrad", "clear_explainer_cache", "find_penultimate_layer", "get_explainer",
    "heatmap_to_rgb", "overlay", "resize_heatmap", "resolve_method",
]
