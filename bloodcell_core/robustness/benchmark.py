"""Robustness (MedMNIST-C corruptions, Gaussian noise) and domain-shift benchmarks.

Both take a :class:`~bloodcell_core.data.datasets.Dataset` and a predictor -- anything with
``classes``, ``card``, ``predict_proba(images, batch_size=..)`` and, for the shift bench,
``predict_images(images, batch_size=..)`` returning objects with ``predicted`` and
``needs_review`` (:class:`bloodcell_core.inference.predictor.Predictor`).  Images are decoded
once; every corrupted or shifted copy is made in memory with a seed derived from
(seed, dataset index, corruption), so a run is reproducible and severities of one
corruption share their randomness (same blur angle, same bubble positions).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bloodcell_core.data.datasets import Dataset
from bloodcell_core.data.sampling import stratified_sample
from bloodcell_core.data.subsets import held_out_split, labels_in_classes, load_images
from bloodcell_core.errors import BloodcellError, DatasetError
from bloodcell_core.evaluation.metrics import balanced_accuracy
from bloodcell_core.models.card import ModelCard
from bloodcell_core.progress import ProgressFn
from bloodcell_core.robustness.corruptions import (CORRUPTIONS, GAUSSIAN_NOISE, GAUSSIAN_SIGMAS, SEVERITIES,
                                                   corrupt_item, derived_seed)
from bloodcell_core.robustness.shifts import SHIFTS, apply_shift

BATCH_SIZE = 64
ERRORS_CAUGHT_TARGET = 0.5  # at least half of the model's errors on every shift must be flagged
CLEAN_FLAGGED_LIMIT = 0.10  # while flagging at most 10% of clean images


# --- selection and loading -------------------------------------------------------------

def _prepare(dataset: Dataset, predictor: Any, candidates: np.ndarray, max_images: int | None,
             seed: int, progress: ProgressFn | None) -> dict[str, Any]:
    if max_images is not None and max_images < 1:
        raise BloodcellError(f"--max-images must be at least 1, got {max_images}")
    labels = labels_in_classes(dataset, predictor.classes)
    known = candidates[labels[candidates] >= 0]
    if len(known) == 0:
        raise DatasetError(f"{dataset.source}: none of the dataset's classes ({', '.join(dataset.classes)}) "
                           f"are known to the model ({', '.join(predictor.classes)})")
    chosen = known[stratified_sample(labels[known], max_images, seed)]
    images, kept, n_unreadable = load_images(dataset, chosen, progress)
    if not images:
        raise DatasetError(f"{dataset.source}: none of the {len(chosen)} selected images could be decoded")
    return {"images": images, "indices": kept, "y_true": labels[kept], "n_unreadable": n_unreadable,
            "n_excluded_unknown_class": int(len(candidates) - len(known))}


# --- metrics ---------------------------------------------------------------------------

def classification_scores(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy (mean recall over the classes present) and per-class recall."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    recall = {classes[c]: float(np.mean(y_pred[y_true == c] == c)) for c in np.unique(y_true)}
    return {"accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
            "balanced_accuracy": balanced_accuracy(y_true, y_pred),
            "per_class_recall": recall}


def _run_facts(predictor: Any, data: dict[str, Any], seed: int) -> dict[str, Any]:
    """The first keys of both benchmark reports: which model, classes and images, which seed."""
    return {"model": ModelCard.of(predictor.card).name, "classes": list(predictor.classes), "n_images": len(data["images"]),
            "n_excluded_unknown_class": data["n_excluded_unknown_class"], "n_unreadable": data["n_unreadable"],
            "seed": int(seed)}


def _report(progress: ProgressFn | None, done: int, total: int, label: str) -> None:
    if progress is not None:
        progress(done, total, label)


# --- robustness ------------------------------------------------------------------------

def _corrupted_scores(images: list[np.ndarray], indices: np.ndarray, y_true: np.ndarray, predictor: Any,
                      name: str, level: int, seed: int) -> dict[str, Any]:
    corrupted = [corrupt_item(image, name, level, seed, int(index)) for image, index in zip(images, indices)]
    y_pred = predictor.predict_proba(corrupted, batch_size=BATCH_SIZE).argmax(axis=1)
    return classification_scores(y_true, y_pred, predictor.classes)


def run_robustness(dataset: Dataset, predictor: Any, max_images: int | None = None, seed: int = 0,
                   severities: Sequence[int] = SEVERITIES,
                   progress: ProgressFn | None = None) -> dict[str, Any]:
    """Accuracy under the 11 MedMNIST-C blood corruptions x severities, plus Gaussian noise.

    ``mean_corrupted_balanced_accuracy`` averages the 11 corruptions over ``severities``
    (Gaussian noise is reported under ``corruptions`` but kept out of the mean).
    """
    bad = [s for s in severities if s not in SEVERITIES]
    if bad or not severities:
        raise BloodcellError(f"severities must be among 1..5, got {list(severities)}")
    data = _prepare(dataset, predictor, np.arange(len(dataset)), max_images, seed, progress)
    images, indices, y_true = data["images"], data["indices"], data["y_true"]
    total = 1 + len(CORRUPTIONS) * len(severities) + len(GAUSSIAN_SIGMAS)
    label = "Corruptions"
    clean_pred = predictor.predict_proba(images, batch_size=BATCH_SIZE).argmax(axis=1)
    clean = classification_scores(y_true, clean_pred, predictor.classes)
    done = 1
    _report(progress, done, total, label)
    results: dict[str, list[dict[str, Any]]] = {}
    for name in CORRUPTIONS:
        results[name] = []
        for severity in severities:
            scores = _corrupted_scores(images, indices, y_true, predictor, name, severity, seed)
            results[name].append({"severity": int(severity), **scores})
            done += 1
            _report(progress, done, total, label)
    results[GAUSSIAN_NOISE] = []
    for level, sigma in enumerate(GAUSSIAN_SIGMAS, start=1):
        scores = _corrupted_scores(images, indices, y_true, predictor, GAUSSIAN_NOISE, level, seed)
        results[GAUSSIAN_NOISE].append({"severity": level, "sigma": float(sigma), **scores})
        done += 1
        _report(progress, done, total, label)
    corrupted_mean = float(np.mean([entry["balanced_accuracy"] for name in CORRUPTIONS for entry in results[name]]))
    clean_balanced = clean["balanced_accuracy"]
    return {
        **_run_facts(predictor, data, seed),
        "severities": [int(s) for s in severities],
        "clean": clean,
        "corruptions": results,
        "mean_corrupted_balanced_accuracy": corrupted_mean,
        "relative_drop": (clean_balanced - corrupted_mean) / clean_balanced if clean_balanced > 0 else None,
        "corruption_source": "MedMNIST-C bloodmnist severity parameters (github.com/francescodisalvo05/medmnistc-api)",
    }


# --- domain shifts ---------------------------------------------------------------------

def _shift_scores(predictions: list[Any], y_true: np.ndarray, classes: Sequence[str],
                  predictor: Any = None) -> dict[str, Any]:
    index = {name: i for i, name in enumerate(classes)}
    y_pred = np.array([index[p.predicted] for p in predictions], dtype=np.int64)
    flagged = np.array([bool(p.needs_review) for p in predictions])
    wrong = y_pred != y_true
    scores = classification_scores(y_true, y_pred, classes)
    return {"accuracy": scores["accuracy"], "balanced_accuracy": scores["balanced_accuracy"],
            "errors": int(wrong.sum()),
            "errors_flagged_fraction": float(flagged[wrong].mean()) if wrong.any() else None,
            "flagged_fraction": float(flagged.mean()) if len(flagged) else 0.0,
            "confident_error_rate": float((wrong & ~flagged).mean()) if len(wrong) else 0.0,
            "batch_shift": predictor.batch_shift(predictions) if hasattr(predictor, "batch_shift") else None}


def _held_out(dataset: Dataset, predictor: Any) -> tuple[np.ndarray, str]:
    """The shift bench's images: the card's held-out ones when the model trained on DATA."""
    split = held_out_split(getattr(predictor, "card", None) or {}, dataset)
    if not split.seen:
        return split.held_out, "stratified_sample"
    if len(split.held_out):
        return split.held_out, "validation_items"
    return np.arange(len(dataset)), "stratified_sample (the card's validation_items are not in DATA)"


def run_shift_bench(dataset: Dataset, predictor: Any, max_images: int | None = None, seed: int = 0,
                    holdout_fraction: float | None = None,
                    progress: ProgressFn | None = None) -> dict[str, Any]:
    """Accuracy and needs-review behaviour under the synthetic domain shifts.

    Evaluated on the model's held-out images when its card lists ``validation_items``
    (capped by a stratified ``max_images``), else on a stratified sample of ``max_images``;
    ``holdout_fraction`` (0..1) further keeps only that stratified share of them.
    The abstention target: on every shift at least half of the model's errors are flagged
    for review, while at most 10% of clean images are flagged.
    """
    candidates, held_out = _held_out(dataset, predictor)
    if holdout_fraction is not None:
        if not 0 < holdout_fraction <= 1:
            raise BloodcellError(f"holdout fraction must be in (0, 1], got {holdout_fraction}")
        labels = labels_in_classes(dataset, predictor.classes)[candidates]
        keep = max(1, round(holdout_fraction * len(candidates)))
        candidates = candidates[stratified_sample(labels, keep, seed + 1)]
    data = _prepare(dataset, predictor, candidates, max_images, seed, progress)
    images, indices, y_true = data["images"], data["indices"], data["y_true"]
    label = "Domain shifts"
    total = 1 + len(SHIFTS)
    clean = _shift_scores(predictor.predict_images(images, batch_size=BATCH_SIZE), y_true, predictor.classes,
                          predictor)
    _report(progress, 1, total, label)
    shifts: dict[str, dict[str, Any]] = {}
    for done, name in enumerate(SHIFTS, start=2):
        shifted = [apply_shift(image, name, derived_seed(seed, int(index), name))
                   for image, index in zip(images, indices)]
        scores = _shift_scores(predictor.predict_images(shifted, batch_size=BATCH_SIZE), y_true, predictor.classes,
                               predictor)
        shifts[name] = {**scores, "delta_accuracy": scores["accuracy"] - clean["accuracy"],
                        "delta_balanced_accuracy": scores["balanced_accuracy"] - clean["balanced_accuracy"]}
        _report(progress, done, total, label)
    # A shift on which the model makes no error has nothing to catch: it counts as caught.
    caught = [s["errors_flagged_fraction"] if s["errors_flagged_fraction"] is not None else 1.0
              for s in shifts.values()]
    min_caught = float(min(caught)) if caught else None
    return {
        **_run_facts(predictor, data, seed),
        "held_out": held_out,
        "clean": clean,
        "shifts": shifts,
        "abstention": {
            "clean_flagged_fraction": clean["flagged_fraction"],
            "min_errors_caught_fraction": min_caught,
            "errors_caught_target": ERRORS_CAUGHT_TARGET,
            "clean_flagged_limit": CLEAN_FLAGGED_LIMIT,
            "targets_met": bool(min_caught is not None and min_caught >= ERRORS_CAUGHT_TARGET
                                and clean["flagged_fraction"] <= CLEAN_FLAGGED_LIMIT),
        },
    }
