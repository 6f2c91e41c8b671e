"""Load models once per process, optionally in a background thread, and say how far it got.

Used by the dashboard (``dashboard.state.model_warmer``), but free of Streamlit: the app's
first page draws from the model card while TensorFlow and the model load here.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

from bloodcell_core.errors import one_line
from bloodcell_core.explain import DEFAULT_METHOD

if TYPE_CHECKING:  # TensorFlow-heavy: imported on first load
    from bloodcell_core.inference.predictor import Predictor


class ModelWarmer:
    """Loads models (and their default explainer) once per process, optionally in the background.

    The app's first page is drawn from the model card alone; meanwhile a background thread
    imports TensorFlow, loads the model, builds the Grad-CAM explainer and runs one prediction
    and one explanation, so the first upload on Classify doesn't pay for any of it.  A page
    that needs the model before the thread is done waits for that same load (one load per
    model, never two).
    """

    def __init__(self, max_models: int = 4) -> None:
        self._predictors: OrderedDict[str, Predictor] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._started: set[str] = set()
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self._max_models = max_models

    def _lock_for(self, key: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def predictor(self, key: str, model_dir: str) -> Predictor:
        """The loaded model for ``key`` (path + file times), loading it if nobody has yet."""
        with self._lock_for(key):
            with self._lock:
                if key in self._predictors:
                    self._predictors.move_to_end(key)
                    return self._predictors[key]
            from bloodcell_core.inference.predictor import Predictor

            loaded = Predictor.load(model_dir)
            with self._lock:
                self._predictors[key] = loaded
                while len(self._predictors) > self._max_models:
                    self._predictors.popitem(last=False)
            return loaded

    def warm(self, key: str, model_dir: str) -> None:
        """Load, build Grad-CAM and run both once; errors are left for the page's own load to show."""
        try:
            predictor = self.predictor(key, model_dir)
            from bloodcell_core.explain import get_explainer
            from bloodcell_core.explain.crop import explained_crop

            explainer = get_explainer(predictor.model, DEFAULT_METHOD)
            cell = np.full((192, 192, 3), 225, np.uint8)
            cell[64:128, 64:128] = (120, 60, 140)  # a purple square: enough to trace every code path
            predictor.predict_images([cell])
            explained_crop(predictor, explainer, cell, predictor.classes[0])
        except Exception as error:  # noqa: BLE001 (reported by status() and by the page that loads it)
            with self._lock:
                self._errors[key] = one_line(error)

    def status(self, key: str) -> str:
        """"ready", "loading", "not started" or "failed: <one line>" for the model ``key``."""
        with self._lock:
            if key in self._errors:
                return f"failed: {self._errors[key]}"
            if key in self._predictors:
                return "ready"
            return "loading" if key in self._started else "not started"

    def warm_in_background(self, key: str, model_dir: str) -> bool:
        """Start :meth:`warm` in a daemon thread, once per model key; True if started now."""
        with self._lock:
            if key in self._started:
                return False
            self._started.add(key)
        threading.Thread(target=self.warm, args=(key, model_dir), name="bloodcell-model-warmup",
                         daemon=True).start()
        return True
