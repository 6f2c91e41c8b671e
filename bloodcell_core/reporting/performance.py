"""What the Model performance and Home pages show, computed from an Evaluation or a model card."""
from __future__ import annotations

from pathlib import Path

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bloodcell_core.data.datasets import Dataset
from bloodcell_core.data.sampling import stratified_sample
from bloodcell_core.models.card import ModelCard

if TYPE_CHECKING:  # type hints only: sklearn stays out of the Home page's imports
    from bloodcell_core.evaluation.evaluate import Evaluation

HEADLINE_METRICS = (("accuracy", "Accuracy"), ("balanced_accuracy", "Balanced accuracy"),
                    ("macro_auc", "Macro AUC"), ("ece", "ECE"), ("ig_to_monocyte", "IG → monocyte"),
                    ("monocyte_to_ig", "Monocyte → IG"))


def sample_dataset(dataset: Dataset, n: int | None, seed: int = 0) -> Dataset:
    """A stratified subset of at most ``n`` images (the whole dataset when n is None or larger)."""
    if n is None or n >= len(dataset):
        return dataset
    return dataset.subset(stratified_sample(dataset.labels, n, seed))


PLAIN_NUMBER_METRICS = ("Macro AUC", "ECE")  # shown as 0.123; the others are rates, shown as percentages


def format_metric(name: str, value: float | None) -> str:
    """A headline metric for display: AUC and ECE as numbers, rates as percentages, None as n/a."""
    if value is None or value != value:  # NaN
        return "n/a"
    return f"{value:.3f}" if name in PLAIN_NUMBER_METRICS else f"{value:.1%}"


def headline(report: Mapping[str, Any]) -> dict[str, float | None]:
    """The report's headline numbers (display name -> value)."""
    return {title: report.get(key) for key, title in HEADLINE_METRICS}


def per_class_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """Precision, recall, F1, specificity and support per class."""
    rows = [{"class": name, **values} for name, values in report.get("per_class", {}).items()]
    return pd.DataFrame(rows, columns=["class", "precision", "recall", "f1", "specificity", "support"])


def compare_frame(reports: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Headline metrics of several reports side by side (rows: metrics, columns: report names)."""
    return pd.DataFrame({name: headline(report) for name, report in reports.items()})


def threshold_point(evaluation: Evaluation, threshold: float | None) -> tuple[float, float] | None:
    """(coverage, accuracy of accepted) on this evaluation at a confidence threshold."""
    if threshold is None or not evaluation.predictions:
        return None
    confidence = np.array([p.confidence for p in evaluation.predictions])
    predicted = np.array([evaluation.report["classes"].index(p.predicted) for p in evaluation.predictions])
    accepted = confidence >= float(threshold)
    if not accepted.any():
        return 0.0, 1.0
    return float(accepted.mean()), float((predicted[accepted] == evaluation.labels[accepted]).mean())


@dataclass(frozen=True)
class Misclassified:
    position: int  # index into evaluation.items / .predictions
    item: str
    true: str
    predicted: str
    confidence: float


def misclassified(evaluation: Evaluation, pair: tuple[str, str] | None = None) -> list[Misclassified]:
    """Wrong predictions, most confident first; ``pair`` = (true, predicted) keeps one confusion only."""
    classes = evaluation.report["classes"]
    wrong = [Misclassified(i, item, classes[label], prediction.predicted, prediction.confidence)
             for i, (item, label, prediction) in enumerate(zip(evaluation.items, evaluation.labels,
                                                                evaluation.predictions))
             if prediction.predicted != classes[label]]
    if pair is not None:
        wrong = [m for m in wrong if (m.true, m.predicted) == tuple(pair)]
    return sorted(wrong, key=lambda m: -m.confidence)


def confusion_pairs(errors: list[Misclassified]) -> list[tuple[tuple[str, str], int]]:
    """(true, predicted) pairs among the errors, most frequent first."""
    return Counter((m.true, m.predicted) for m in errors).most_common()


def _percent(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "n/a"


def _unknown(value: Any, text: str) -> str:
    return text if value is None else str(value)


def card_overview(card: ModelCard | Mapping[str, Any]) -> dict[str, str]:
    """What a reader needs to know about a model, from its card, as display strings."""
    card = ModelCard.of(card)
    review = card.review
    sources = card.data.sources or [card.data.to_json()]
    trained_on = " + ".join(f"{Path(str(s.get('source', 'unknown'))).name}"
                            + (f" ({int(s['n_images']):,} images)" if s.get("n_images") else "") for s in sources)
    overview = {
        "Name": _unknown(card.name, "unnamed model"),
        "Architecture": _unknown(card.architecture, "?"),
        "Classes": ", ".join(card.classes),
        "Input size": f"{_unknown(card.input_size, '?')} px (crop {_unknown(card.crop_size, '?')} px)",
        "Trained on": trained_on,
        "Created": _unknown(card.created, "unknown"),
    }
    if card.training.get("seconds") is not None:
        overview["Training time"] = f"{float(card.training['seconds']) / 60:.1f} min"
    if review.confidence_threshold is not None:
        overview["Needs-review threshold"] = (
            f"confidence < {float(review.confidence_threshold):.3f} "
            f"(validation coverage {_percent(review.validation_coverage)}, accuracy of accepted "
            f"{_percent(review.validation_accuracy_accepted)})")
    overview.update(_serving_and_stress_rows(card))
    return overview


def _serving_and_stress_rows(card: ModelCard) -> dict[str, str]:
    """How the model predicts (test-time views, temperature) and what its stress tests measured."""
    rows: dict[str, str] = {}
    temperature = card.calibration.temperature
    serving = card.inference.describe()
    if temperature is not None:
        serving += f"; temperature {float(temperature):.3f}"
    rows["Prediction"] = serving
    robustness = card.robustness
    if robustness.get("mean_corrupted_balanced_accuracy") is not None:
        rows["Corruption robustness"] = (
            f"mean balanced accuracy {_percent(robustness['mean_corrupted_balanced_accuracy'])} over the "
            f"MedMNIST-C blood suite (clean {_percent(robustness.get('clean_balanced_accuracy'))}, "
            f"{robustness.get('n_images', '?')} images)")
    conditions = card.shift_bench.get("conditions") or {}
    shifted = {k: v for k, v in conditions.items() if k != "clean" and v.get("accuracy") is not None}
    if shifted:
        worst = min(shifted, key=lambda k: shifted[k]["accuracy"])
        rows["Synthetic shifts"] = (f"accuracy {_percent(conditions.get('clean', {}).get('accuracy'))} clean; "
                                    f"worst {worst.replace('_', ' ')} {_percent(shifted[worst]['accuracy'])}")
    rows.update(_other_laboratory_rows(card))
    rows.update(_adaptation_curve_rows(card))
    adaptation = card.adaptation
    if adaptation:
        cv = adaptation.get("cross_validation") or {}
        rows["Adapted"] = (f"from {adaptation.get('parent', {}).get('name')} on "
                           f"{Path(str((adaptation.get('data') or adaptation.get('unlabelled') or {}).get('source', '?'))).name}"
                           + (f": cross-validated accuracy {_percent(cv['before']['accuracy'])} -> "
                              f"{_percent(cv['after']['accuracy'])}" if cv else ""))
    return rows


def _other_laboratory_rows(card: ModelCard) -> dict[str, str]:
    """One row per other laboratory the card's ``crosslab`` entry measured (seen in training or not)."""
    labs = card.crosslab.get("datasets") or {}
    rows = {}
    for name, lab in labs.items():
        seen = "seen in training" if lab.get("seen_in_training") else "never seen in training"
        rows[f"Other laboratory: {name}"] = (
            f"accuracy {_percent(lab.get('accuracy'))}, balanced {_percent(lab.get('balanced_accuracy'))} "
            f"({lab.get('n_images', '?')} images, {seen}); confident errors "
            f"{_percent(lab.get('confident_error_rate'))}")
    return rows


CURVE_TABLE_COLUMNS = ["laboratory", "k", "draws", "unadapted", "adapted", "adapted std", "home after"]


def curve_table(card: ModelCard | Mapping[str, Any]) -> pd.DataFrame:
    """One row per laboratory and k of the card's k-shot curves (``adaptation_curve``, written by
    ``scripts/adaptation_curve.py --record``); rates as 0-1 floats, home after NaN without a home check."""
    rows = []
    for name, lab in (ModelCard.of(card).adaptation_curve.get("laboratories") or {}).items():
        for k, point in sorted((lab.get("curve") or {}).items(), key=lambda item: int(item[0])):
            rows.append({"laboratory": name, "k": int(k), "draws": lab.get("draws", "?"),
                         "unadapted": point["parent"]["mean"], "adapted": point["adapted"]["mean"],
                         "adapted std": point["adapted"]["std"],
                         "home after": point.get("home_adapted", {}).get("mean", float("nan"))})
    return pd.DataFrame(rows, columns=CURVE_TABLE_COLUMNS)


def _adaptation_curve_rows(card: ModelCard) -> dict[str, str]:
    """One row per laboratory of the card's k-shot curves: unadapted, and after 10 cells per class."""
    at_ten = curve_table(card).query("k == 10")
    return {f"Adapting to {row['laboratory']}": (
                f"accuracy {_percent(row['unadapted'])} unadapted, {_percent(row['adapted'])} after 10 labelled "
                f"cells per class (mean of {row['draws']} draws)")
            for row in at_ten.to_dict("records")}


def card_validation(card: ModelCard | Mapping[str, Any]) -> dict[str, float | None]:
    """Headline validation metrics recorded on the card (empty when it has none)."""
    validation = ModelCard.of(card).validation
    return headline(validation) if validation else {}
