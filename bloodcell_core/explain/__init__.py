"""Saliency maps (Grad-CAM, Grad-CAM++, ScoreCAM, SmoothGrad) through tf-keras-vis.

``get_explainer(model, method)`` builds each method once per model and caches it;
``explainer.explain(model_input, class_index)`` returns heatmaps in [0, 1] the size of the
model input; :func:`overlay` puts one onto the image.
"""
from __future__ import annotations

import re
import threading

import keras

from bloodcell_core.explain.base import (
    Explainer,
    ExplanationError,
    find_penultimate_layer,
)
from bloodcell_core.explain.gradcam import GradCAM
from bloodcell_core.explain.gradcam_plus import GradCAMPlusPlus
from bloodcell_core.explain.overlay import heatmap_to_rgb, overlay, resize_heatmap
from bloodcell_core.explain.scorecam import ScoreCAM
from bloodcell_core.explain.smoothgrad import SmoothGrad

# Display name -> class, in menu order; the first is the default.
METHODS: dict[str, type[Explainer]] = {
    cls.name: cls for cls in (GradCAM, GradCAMPlusPlus, ScoreCAM, SmoothGrad)
}
DEFAULT_METHOD = "Grad-CAM"

_cache: dict[tuple[int, str], Explainer] = {}
_cache_lock = threading.Lock()


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9+]", "", name.lower())


def resolve_method(method: str) -> str:
    """Display name for ``method``, matched loosely ("gradcam", "grad-cam++", "SmoothGrad")."""
    by_key = {_key(name): name for name in METHODS}
    try:
        return by_key[_key(method)]
    except (KeyError, AttributeError):
        raise ExplanationError(f"unknown explanation method {method!r}; choose one of "
                               f"{', '.join(METHODS)}") from None


def get_explainer(model: keras.Model, method: str = DEFAULT_METHOD) -> Explainer:
    """The explainer for ``model`` and ``method``, built on first use and cached.

    The cache holds the model (through the explainer), so its id can't be reused by
    another model while the entry lives.
    """
    name = resolve_method(method)
    key = (id(model), name)
    with _cache_lock:
        explainer = _cache.get(key)
        if explainer is None or explainer.model is not model:
            explainer = METHODS[name](model)
            _cache[key] = explainer
    return explainer


def clear_explainer_cache() -> None:
    """Forget every cached explainer (and the models they hold)."""
    with _cache_lock:
        _cache.clear()


__all__ = [
    "DEFAULT_METHOD", "METHODS", "Explainer", "ExplanationError", "GradCAM", "GradCAMPlusPlus",
    "ScoreCAM", "SmoothGrad", "clear_explainer_cache", "find_penultimate_layer", "get_explainer",
    "heatmap_to_rgb", "overlay", "resize_heatmap", "resolve_method",
]
