"""The method table and the per-model explainer cache (imports TensorFlow and tf-keras-vis)."""
from __future__ import annotations

import threading

import keras

from bloodcell_core.explain import DEFAULT_METHOD, METHOD_NAMES, resolve_method
from bloodcell_core.explain.base import Explainer
from bloodcell_core.explain.gradcam import GradCAM
from bloodcell_core.explain.gradcam_plus import GradCAMPlusPlus
from bloodcell_core.explain.scorecam import ScoreCAM
from bloodcell_core.explain.smoothgrad import SmoothGrad

# Display name -> class, in menu order; the first is the default.
METHODS: dict[str, type[Explainer]] = {
    cls.name: cls for cls in (GradCAM, GradCAMPlusPlus, ScoreCAM, SmoothGrad)
}
assert tuple(METHODS) == METHOD_NAMES, "explain.METHOD_NAMES must list the registered methods in order"

_cache: dict[tuple[int, str], Explainer] = {}
_cache_lock = threading.Lock()


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
