"""Cross-laboratory evaluation: one model, several labelled datasets, one section each.

Each section is :func:`bloodcell_core.evaluation.evaluate.evaluate`'s report narrowed to what a
laboratory needs to judge the model: scores over the classes the dataset has (a prediction of
any other model class is an error), how much the needs-review flag catches, whether the model
saw any of it in training, and the misclassified items for a gallery.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from bloodcell_core.data.datasets import Dataset
from bloodcell_core.data.subsets import choose_held_out, labels_in_classes, seen_in_training
from bloodcell_core.errors import DatasetError
from bloodcell_core.evaluation.evaluate import Evaluation, evaluate
from bloodcell_core.inference.predictor import Predictor
from bloodcell_core.progress import ProgressFn

SECTION_KEYS = ("n_images", "classes_present", "accuracy", "balanced_accuracy", "confusion_matrix", "per_class",
                "flagged_fraction", "errors_flagged", "confident_error_rate", "seen_in_training",
                "unknown_class_images", "unreadable", "errors", "batch_shift")
PER_CLASS_KEYS = ("precision", "recall", "f1", "support")


def dataset_name(dataset: Dataset) -> str:
    """A section's key: the folder or file name (``lisc``, ``bionet``, ``cells.npz`` -> ``cells``)."""
    path = Path(dataset.source)
    return path.stem if path.suffix.lower() in (".npz", ".csv") else path.name


def _check_scorable(dataset: Dataset, predictor: Predictor) -> None:
    """One-line errors, raised before any image is classified."""
    if not len(dataset):
        raise DatasetError(f"{dataset.source}: no images")
    if not (labels_in_classes(dataset, predictor.classes) >= 0).any():
        raise DatasetError(f"{dataset.source}: none of its classes ({', '.join(dataset.classes)}) is one of the "
                           f"model's ({', '.join(predictor.classes)})")


def _errors(evaluation: Evaluation) -> list[dict[str, Any]]:
    """Misclassified items, most confident first (the page's gallery shows the worst ones)."""
    classes = evaluation.report["classes"]
    rows = [{"path": item, "true": classes[label], "predicted": p.predicted,
             "confidence": round(float(p.confidence), 4), "needs_review": bool(p.needs_review)}
            for item, label, p in zip(evaluation.items, evaluation.labels, evaluation.predictions)
            if p.predicted != classes[label]]
    return sorted(rows, key=lambda row: -row["confidence"])


def _section(evaluation: Evaluation, seen: bool) -> dict[str, Any]:
    report = evaluation.report
    classes = report["classes"]
    present = [c for c in classes if report["per_class"][c]["support"] > 0]
    rows = [classes.index(c) for c in present]
    wrong = np.array([p.predicted != classes[label] for label, p in zip(evaluation.labels, evaluation.predictions)],
                     dtype=bool)
    flagged = np.array([p.needs_review for p in evaluation.predictions], dtype=bool)
    n_images = int(report["n_images"])
    return {
        "dataset": report["dataset"],
        "dataset_fingerprint": report["dataset_fingerprint"],
        "n_images": n_images,
        "classes_present": present,
        "accuracy": report["accuracy"],
        # evaluate's balanced accuracy is the mean recall over the true classes present (sklearn
        # leaves out classes that are only predicted), so a prediction of another class is an error.
        "balanced_accuracy": report["balanced_accuracy"],
        "confusion_matrix": {"rows": present, "columns": list(classes),
                             "counts": [report["confusion_matrix"][i] for i in rows]},
        "per_class": {c: {k: report["per_class"][c][k] for k in PER_CLASS_KEYS} for c in present},
        "flagged_fraction": report["needs_review"]["fraction_flagged"],
        "errors_flagged": report["needs_review"]["errors_flagged"],
        "confident_error_rate": float((wrong & ~flagged).sum() / n_images) if n_images else 0.0,
        "seen_in_training": seen,
        "unknown_class_images": report["unknown_class_images"],
        "unreadable": report["unreadable"],
        "errors": _errors(evaluation),
    }


def batch_warning(evaluation: Evaluation, predictor: Predictor) -> dict[str, Any] | None:
    """Would the batch warning fire for this dataset as one upload (None: too small or no threshold)?"""
    return predictor.batch_shift(evaluation.predictions)


CARD_KEYS = ("n_images", "classes_present", "accuracy", "balanced_accuracy", "flagged_fraction", "errors_flagged",
             "confident_error_rate", "seen_in_training", "batch_shift")


def card_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The card's ``crosslab`` entry: the headline figures per laboratory (no confusion or error lists)."""
    return {"datasets": {name: {key: section.get(key) for key in CARD_KEYS}
                         for name, section in report["datasets"].items()}}


def _labelled(progress: ProgressFn | None, name: str) -> ProgressFn | None:
    if progress is None:
        return None
    return lambda done, total, label: progress(done, total, f"{name}: {label}")


def crosslab_section(dataset: Dataset, predictor: Predictor, progress: ProgressFn | None = None,
                     held_out_only: bool = False, warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One dataset's section.

    ``held_out_only`` scores only the images the model never trained on (the card's
    ``validation_items`` of a training source); otherwise ``warn`` gets one line, before any
    image is classified, when the dataset includes training images.  Raises DatasetError (one
    line) for a dataset with no images, none of the model's classes, or no readable image.
    """
    seen = seen_in_training(predictor.card, dataset)
    scored, split, warning = choose_held_out(predictor.card, dataset, held_out_only)
    _check_scorable(scored, predictor)
    if warning and warn is not None:
        warn(warning)
    evaluation = evaluate(scored, predictor, _labelled(progress, dataset_name(dataset)))
    if evaluation.report["n_images"] == 0:
        raise DatasetError(f"{dataset.source}: none of its {len(scored):,} images of the model's classes "
                           "could be read")
    section = _section(evaluation, seen)
    section["batch_shift"] = batch_warning(evaluation, predictor)
    section["held_out_only"] = bool(held_out_only and split.n_training > 0)
    section["n_training_images_scored"] = 0 if section["held_out_only"] else split.n_training
    return section


def unique_names(datasets: Sequence[Dataset]) -> list[str]:
    """Section keys: dataset names, with ``-2``, ``-3``... appended to repeats."""
    names: list[str] = []
    for dataset in datasets:
        base, number = dataset_name(dataset), 1
        name = base
        while name in names:
            number += 1
            name = f"{base}-{number}"
        names.append(name)
    return names


def crosslab(datasets: Sequence[Dataset], predictor: Predictor, progress: ProgressFn | None = None,
             held_out_only: bool = False, warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The crosslab report: ``report["datasets"][name]`` is :func:`crosslab_section` of each dataset."""
    sections = {name: crosslab_section(dataset, predictor, progress, held_out_only, warn)
                for name, dataset in zip(unique_names(datasets), datasets)}
    return {"model": predictor.name, "classes": list(predictor.classes), "held_out_only": bool(held_out_only),
            "datasets": sections}


def summary_line(name: str, section: dict[str, Any]) -> str:
    """One stderr line per dataset."""
    caught = section["errors_flagged"]
    return (f"{name}: {section['n_images']:,} images ({', '.join(section['classes_present'])}), accuracy "
            f"{section['accuracy']:.4f}, balanced {section['balanced_accuracy']:.4f}, flagged "
            f"{section['flagged_fraction']:.3f}, errors flagged {'n/a' if caught is None else f'{caught:.3f}'}, "
            f"confident errors {section['confident_error_rate']:.3f}; seen in training: "
            f"{'yes' if section['seen_in_training'] else 'no'}; {section['unknown_class_images']['n_images']} of "
            f"classes the model lacks, {len(section['unreadable'])} unreadable")
