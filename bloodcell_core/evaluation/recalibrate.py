"""Fit a trained model's temperature (and its needs-review thresholds) on labelled images.

For a model trained before calibration was part of training, or for a lab that wants the
shown probabilities to match its own images.  On the model's training data the card's
held-out validation images are used (never images it trained on); on any other dataset,
all of its images of the model's classes.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from bloodcell_core.data.datasets import Dataset
from bloodcell_core.data.subsets import labels_in_classes, load_images, validation_indices
from bloodcell_core.errors import DatasetError
from bloodcell_core.evaluation.calibration import apply_temperature, calibrate
from bloodcell_core.evaluation.metrics import classification_report, coverage_curve
from bloodcell_core.inference.predictor import Predictor
from bloodcell_core.inference.review_flags import fit_review_policy
from bloodcell_core.models.card import ModelCard
from bloodcell_core.progress import ProgressFn


def _images_to_fit_on(dataset: Dataset, predictor: Predictor) -> tuple[np.ndarray, str]:
    listed = predictor.card.validation_items
    held_out = validation_indices(dataset, listed) if listed else np.array([], np.int64)
    if len(held_out):
        return held_out, "the model card's held-out validation images"
    return np.arange(len(dataset)), f"every image of {Path(dataset.source).name}"


def recalibrate_model(dataset: Dataset, model_dir: str | Path | None, progress: ProgressFn | None = None,
                      tta: tuple[str, ...] | None = None,
                      extra: tuple[list[str], float | None] | None = None) -> tuple[Predictor, ModelCard]:
    """(predictor, new card): temperature, review policy and validation report refitted.

    ``tta`` (view names, :mod:`bloodcell_core.inference.tta`) and ``extra`` (views added for
    unsure crops, and the top probability below which a crop is unsure; ``([], None)`` removes
    them) change how the model predicts, so everything is refitted on predictions made that
    way; None keeps the card's.
    """
    predictor = Predictor.load(model_dir)
    base_card = predictor.card
    inference = base_card.inference
    if tta is not None:
        inference = dataclasses.replace(inference, tta=list(tta))
    if extra is not None:
        inference = dataclasses.replace(inference, tta_extra=list(extra[0]) or None, tta_extra_below=extra[1])
    inference.check()  # a view in both lists fails before the slow work
    base_card = base_card.replace(inference=inference)
    uncalibrated = Predictor(predictor.model, base_card.replace(calibration={"temperature": 1.0}))
    indices, which = _images_to_fit_on(dataset, predictor)
    labels = labels_in_classes(dataset, predictor.classes)
    images, kept, _n_unreadable = load_images(dataset, indices[labels[indices] >= 0], progress)
    labels_array = labels[kept]
    if len(set(labels_array.tolist())) < 2:
        raise DatasetError(f"{dataset.source}: need readable images of at least 2 of the model's classes to calibrate")
    raw_probabilities, features = uncalibrated.predict_outputs(images, progress=progress)
    calibration = {**calibrate(raw_probabilities, labels_array), "fitted_on": which}
    probabilities = apply_temperature(raw_probabilities, calibration["temperature"])
    card = base_card.replace(calibration=calibration,
                             review=fit_review_policy(probabilities, labels_array, features, len(predictor.classes)))
    if which.startswith("the model card's"):
        report = classification_report(probabilities, labels_array, predictor.classes)
        report["coverage_curve"] = coverage_curve(probabilities.max(axis=1), probabilities.argmax(axis=1) == labels_array)
        card = card.replace(validation=report)
    return Predictor(predictor.model, card), card
