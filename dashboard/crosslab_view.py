"""The Robustness page's "Other laboratories" section: which datasets, their scores, their errors.

Scores come from :func:`bloodcell_core.evaluation.crosslab.crosslab_section` (one section per
dataset); this module picks the datasets, runs them one by one (one bad dataset is reported,
not fatal) and turns sections into a table and gallery tiles.  No Streamlit here.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bloodcell_core.data.datasets import Dataset
from bloodcell_core.data.subsets import is_home_source, seen_in_training
from bloodcell_core.errors import BloodcellError, one_line
from bloodcell_core.evaluation.crosslab import crosslab_section
from bloodcell_core.models.card import ModelCard
from bloodcell_core.progress import ProgressFn
from bloodcell_core.reporting.images import model_crop

TABLE_COLUMNS = ["dataset", "images", "classes present", "accuracy", "balanced accuracy", "flagged",
                 "errors flagged", "confident errors", "seen in training"]
RATE_COLUMNS = ("accuracy", "balanced accuracy", "flagged", "errors flagged", "confident errors")


def other_laboratories(card: ModelCard, datasets: Mapping[str, Dataset]) -> tuple[dict[str, Dataset], list[str]]:
    """(the datasets by label other than the model's home laboratory, the ones it never trained on
    first; the labels of those never trained on).  A laboratory that is a further training source is
    kept: it is scored on its held-out images only and marked as seen."""
    seen = {label: seen_in_training(card, dataset) for label, dataset in datasets.items()
            if not is_home_source(card, dataset)}
    labs = {label: datasets[label] for label in sorted(seen, key=seen.__getitem__)}
    return labs, [label for label in labs if not seen[label]]


def run_laboratories(datasets: Mapping[str, Dataset], predictor: Any, progress: ProgressFn | None = None
                     ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(sections by label, one-line problems by label): every dataset scored in full."""
    sections: dict[str, dict[str, Any]] = {}
    problems: dict[str, str] = {}
    for number, (label, dataset) in enumerate(datasets.items(), start=1):
        step = None if progress is None else (
            lambda done, total, text, n=number: progress(done, total, f"Laboratory {n} of {len(datasets)}, {text}"))
        try:
            sections[label] = crosslab_section(dataset, predictor, step,
                                               held_out_only=seen_in_training(predictor.card, dataset))
        except BloodcellError as error:
            problems[label] = one_line(error)
    return sections, problems


def laboratories_frame(sections: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per laboratory: the figures of its crosslab section (rates as 0-1 floats)."""
    rows = [{"dataset": label, "images": section["n_images"],
             "classes present": ", ".join(section["classes_present"]),
             "accuracy": section["accuracy"], "balanced accuracy": section["balanced_accuracy"],
             "flagged": section["flagged_fraction"], "errors flagged": section["errors_flagged"],
             "confident errors": section["confident_error_rate"],
             "seen in training": seen_text(section)}
            for label, section in sections.items()]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def seen_text(section: Mapping[str, Any]) -> str:
    """'no', or 'yes' with whether only its held-out images were scored."""
    if not section["seen_in_training"]:
        return "no"
    return "yes, held-out images only" if section.get("held_out_only") else "yes"


def error_tiles(dataset: Dataset, predictor: Any, section: Mapping[str, Any], limit: int
                ) -> list[tuple[np.ndarray, str]]:
    """(the crop the model saw, caption) of the ``limit`` most confident errors of a section."""
    position = {item: i for i, item in enumerate(dataset.items)}
    tiles = []
    for error in section["errors"][:limit]:
        index = position.get(error["path"])
        if index is None:
            continue
        try:
            crop = model_crop(predictor, dataset.load(index))
        except BloodcellError:
            continue
        flag = ", flagged" if error["needs_review"] else ""
        tiles.append((crop, f"true {error['true']}, predicted {error['predicted']} "
                            f"({error['confidence']:.0%}{flag}) · {Path(error['path'].split('::')[0]).name}"))
    return tiles
