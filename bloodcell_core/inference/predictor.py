"""The Predictor: one object that turns decoded images into explained-ready predictions.

Path for every image, in training, evaluation, the CLI and the app alike:
decoded RGB -> :func:`localise_and_crop` (crop_size from the card) -> model (scaling inside),
averaged over the card's test-time views (:mod:`bloodcell_core.inference.tta`) -> temperature.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bloodcell_core.data.datasets import Dataset
from bloodcell_core.errors import UnreadableImageError
from bloodcell_core.inference.feature_density import batch_shift
from bloodcell_core.inference.review_flags import ood_scorer, review_reasons
from bloodcell_core.inference.temperature import apply_temperature
from bloodcell_core.inference.tta import run_views_where_unsure
from bloodcell_core.models.card import ModelCard, ReviewPolicy
from bloodcell_core.preprocess.localise import localise_and_crop
from bloodcell_core.preprocess.stain import reinhard
from bloodcell_core.progress import ProgressFn

EMBED_CHUNK = 256  # images decoded and held at once by Predictor.embed_dataset


@dataclass
class Prediction:
    predicted: str
    confidence: float
    probabilities: dict[str, float]
    needs_review: bool
    review_reasons: list[str] = field(default_factory=list)
    crop_box: tuple[int, int, int, int] | None = None
    localised: bool = True
    ood_distance: float | None = None  # feature distance to the training laboratory (see review_flags)
    unlike_training: bool = False  # ood_distance above the card's threshold: counts toward the batch warning

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]


def _serving_graph(model: Any) -> Any:
    """(probabilities, pooled features) of ``model`` with its BatchNorms folded into the convolutions.

    ``Predictor.model`` stays the original: explanations, adaptation and saving use it; this graph
    computes the same function faster (:mod:`bloodcell_core.models.fold_batchnorm`). It is a
    snapshot of the weights: after changing a model's weights (adaptation's BatchNorm statistics),
    wrap it in a new Predictor, as ``adapt`` does; so it is not cached per model object.
    """
    import keras

    from bloodcell_core.models.fold_batchnorm import fold_batchnorm

    served = fold_batchnorm(model)
    try:
        features = served.get_layer("features").output
    except ValueError:
        features = served.layers[-2].output
    return keras.Model(served.inputs, [served.outputs[0], features])


class Predictor:
    """A loaded model with its card. Build once (the app caches it with st.cache_resource)."""

    def __init__(self, model: Any, card: ModelCard | dict[str, Any]):
        """``card``: a :class:`ModelCard` or its JSON mapping (read once here)."""
        card = ModelCard.of(card)
        self.model = model
        self.card = card
        self.classes: list[str] = list(card.classes)
        self.crop_size = int(card.crop_size or model.inputs[0].shape[1])
        self.policy: ReviewPolicy = card.review
        self._stain_reference = card.preprocessing.stain_normalisation
        self.temperature = card.calibration.effective_temperature
        self.tta_views: tuple[str, ...] = card.views
        self.extra_views: tuple[str, ...] = card.inference.extra_views  # only for unsure crops
        self.extra_views_below = card.inference.tta_extra_below
        self._ood_distance = ood_scorer(self.policy)
        self._outputs_and_features = _serving_graph(model)

    @classmethod
    def load(cls, model_dir: str | Path | None = None) -> "Predictor":
        from bloodcell_core.models.store import load_model

        model, card = load_model(model_dir)
        return cls(model, card)

    @classmethod
    def from_model(cls, model: Any, classes: list[str], card: dict[str, Any] | None = None) -> "Predictor":
        """An in-memory model: a card naming its classes and input size, plus the sections in ``card``."""
        side = int(model.inputs[0].shape[1])
        base = {"name": model.name, "classes": list(classes), "crop_size": side, "input_size": side,
                "architecture": "in-memory"}
        return cls(model, {**base, **(card or {})})

    @property
    def served_views(self) -> tuple[str, ...]:
        """Every view this predictor may run: the card's views, then those added for unsure crops."""
        return self.tta_views + self.extra_views

    @property
    def name(self) -> str:
        return self.card.name or "model"

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """RGB uint8 -> model input (S, S, 3) float32 plus where the cell was found."""
        crop, where = localise_and_crop(image, self.crop_size)
        if self._stain_reference is not None:
            crop = reinhard(crop, self._stain_reference)
        return crop.astype(np.float32), {"crop_box": where.box, "localised": where.found}

    def run_prepared(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Prepared crops (N, S, S, 3) -> (probabilities, features), as served: views averaged, temperature."""
        probabilities, features = run_views_where_unsure(self._outputs_and_features.predict_on_batch, batch,
                                                         self.tta_views, self.extra_views, self.extra_views_below)
        # The card's temperature (fitted by bloodcell_core.evaluation.calibration); 1 changes nothing.
        return apply_temperature(probabilities, self.temperature), np.asarray(features)

    def prepare_batch(self, images: list[np.ndarray]) -> np.ndarray:
        """Decoded images -> stacked model inputs (N, S, S, 3) through the one crop path."""
        if not images:
            return np.zeros((0, self.crop_size, self.crop_size, 3), np.float32)
        return np.stack([self.prepare(image)[0] for image in images])

    def features_per_view(self, batch: np.ndarray, views: tuple[str, ...], batch_size: int = 128) -> np.ndarray:
        """Pooled features (V, N, F) of prepared crops under each named view (no averaging)."""
        from bloodcell_core.inference.tta import VIEWS

        per_view = []
        for name in views:
            chunks = [np.asarray(self._outputs_and_features.predict_on_batch(
                np.ascontiguousarray(VIEWS[name](batch[start:start + batch_size])))[1])
                for start in range(0, len(batch), batch_size)]
            per_view.append(np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32))
        return np.stack(per_view)

    def _batches(self, images: list[np.ndarray], batch_size: int, progress: ProgressFn | None,
                 label: str):
        for start in range(0, len(images), batch_size):
            prepared = [self.prepare(img) for img in images[start:start + batch_size]]
            batch = np.stack([p[0] for p in prepared])
            yield [p[1] for p in prepared], *self.run_prepared(batch)
            if progress is not None:
                progress(min(start + batch_size, len(images)), len(images), label)

    def predict_images(self, images: list[np.ndarray], batch_size: int = 64,
                       progress: ProgressFn | None = None) -> list[Prediction]:
        results: list[Prediction] = []
        for infos, probabilities, features in self._batches(images, batch_size, progress, "Predicting"):
            distances = self._ood_distance(features) if self._ood_distance is not None else [None] * len(infos)
            for info, probs, distance in zip(infos, probabilities, distances):
                results.append(self._to_prediction(probs, distance, info))
        return results

    def _to_prediction(self, probs: np.ndarray, distance: float | None, info: dict[str, Any]) -> Prediction:
        best = int(np.argmax(probs))
        confidence = float(probs[best])
        reasons = review_reasons(confidence, None if distance is None else float(distance),
                                 info["localised"], self.policy)
        ood_threshold = self.policy.ood_threshold
        unlike = distance is not None and ood_threshold is not None and distance > ood_threshold
        return Prediction(self.classes[best], confidence,
                          {c: float(p) for c, p in zip(self.classes, probs)},
                          bool(reasons), reasons, tuple(info["crop_box"]), info["localised"],
                          None if distance is None else float(distance), bool(unlike))

    def batch_shift(self, predictions: list[Prediction]) -> dict[str, Any] | None:
        """Does this batch as a whole look unlike the training laboratory? None below 20 images."""
        return batch_shift([p.unlike_training for p in predictions], self.policy)

    def predict_outputs(self, images: list[np.ndarray], batch_size: int = 64, progress: ProgressFn | None = None,
                        label: str = "Predicting") -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, classes), penultimate features (N, F)) for decoded images, in one pass."""
        probabilities, features = [], []
        for _infos, probs, feats in self._batches(images, batch_size, progress, label):
            probabilities.append(probs)
            features.append(feats)
        if not probabilities:
            return np.zeros((0, len(self.classes)), np.float32), np.zeros((0, 0), np.float32)
        return np.concatenate(probabilities), np.concatenate(features)

    def predict_proba(self, images: list[np.ndarray], batch_size: int = 64,
                      progress: ProgressFn | None = None) -> np.ndarray:
        return self.predict_outputs(images, batch_size, progress)[0]

    def embed(self, images: list[np.ndarray], batch_size: int = 64,
              progress: ProgressFn | None = None) -> np.ndarray:
        return self.predict_outputs(images, batch_size, progress, "Embedding")[1]

    def embed_dataset(self, dataset: Dataset, indices: np.ndarray | None = None,
                      progress: ProgressFn | None = None, chunk: int = EMBED_CHUNK
                      ) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
        """``(indices of the readable items, their features (N, F) float32, unreadable [{path, reason}])``.

        Items (all of ``dataset`` by default) are decoded ``chunk`` at a time, so memory stays
        bounded on large sets; the audit's checks and the Outliers map both embed through here.
        """
        wanted = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
        kept: list[int] = []
        parts: list[np.ndarray] = []
        unreadable: list[dict[str, str]] = []
        if progress is not None:
            progress(0, len(wanted), "Embedding images")
        for start in range(0, len(wanted), chunk):
            images = []
            for index in wanted[start:start + chunk].tolist():
                try:
                    images.append(dataset.load(index))
                    kept.append(index)
                except UnreadableImageError as error:
                    unreadable.append({"path": dataset.items[index], "reason": str(error)})
            if images:
                parts.append(np.asarray(self.embed(images), dtype=np.float32))
            if progress is not None:
                progress(min(start + chunk, len(wanted)), len(wanted), "Embedding images")
        features = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
        return np.asarray(kept, dtype=np.int64), features, unreadable
