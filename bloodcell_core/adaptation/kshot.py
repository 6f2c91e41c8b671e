"""k-shot curves: how many labelled cells of a new laboratory the adaptation needs.

For each k, ``draws`` random draws of k labelled cells per class (at most half of a class, so
some are left to score), the adapted model (the same gated second head ``adapt`` builds) is
scored on the rest of the laboratory's cells, leaving out every near-duplicate of a picked cell.
Features are computed once per laboratory, so a whole curve costs one pass over its images.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np

from bloodcell_core.adaptation.adapt import (FIT_VIEWS, AdaptSettings, fit_lab_head, home_density,
                                             gated_head, home_images, lab_cells, served_probabilities)
from bloodcell_core.data.datasets import Dataset
from bloodcell_core.inference.predictor import Predictor
from bloodcell_core.progress import ProgressFn

DEFAULT_KS = (1, 3, 5, 10, 20)


def _draw(labels: np.ndarray, groups: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    picked = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        picked += list(members[:max(1, min(k, len(members) // 2))])
    picked = np.array(picked)
    rest = np.flatnonzero(~np.isin(groups, groups[picked]))
    return picked, rest


def kshot_curve(predictor: Predictor, dataset: Dataset, ks: Sequence[int] = DEFAULT_KS, draws: int = 5,
                seed: int = 0, settings: AdaptSettings = AdaptSettings(), home: Any = None,
                progress: ProgressFn | None = None) -> dict[str, Any]:
    """Accuracy on the rest of a laboratory after adapting on k cells per class (mean, std over draws).

    ``home`` (crops, labels) adds what each adaptation costs on the parent's home images."""
    cells = lab_cells(dataset, predictor, progress, labelled=True)
    density = home_density(predictor, home if home is not None else home_images(predictor, progress))
    features = predictor.features_per_view(cells.crops, FIT_VIEWS)
    parent_head = tuple(predictor.model.get_layer("probabilities").get_weights())
    parent_probabilities = predictor.run_prepared(cells.crops)[0]
    home_features = None if home is None else predictor.features_per_view(home[0], predictor.served_views)
    curve = {}
    for k in ks:
        rows = {"parent": [], "adapted": [], "home_adapted": []}
        for draw in range(draws):
            picked, rest = _draw(cells.labels, cells.groups, k, np.random.default_rng([seed, k, draw]))
            lab_head = fit_lab_head(features[:, picked], cells.labels[picked], parent_head, settings, density)
            head = gated_head(parent_head, lab_head, density, features[:, picked], cells.labels[picked])
            rows["parent"].append(_accuracy(parent_probabilities[rest], cells.labels[rest]))
            rows["adapted"].append(_accuracy(served_probabilities(head, features[:, rest], predictor),
                                             cells.labels[rest]))
            if home_features is not None:
                rows["home_adapted"].append(_accuracy(served_probabilities(head, home_features, predictor,
                                                                           predictor.served_views), home[1]))
        curve[str(k)] = {name: {"mean": float(np.mean(v)), "std": float(np.std(v))} for name, v in rows.items() if v}
    return {"dataset": dataset.source, "n_images": int(len(cells.labels)), "class_counts": cells.counts,
            "draws": draws, "ks": list(ks), "curve": curve}



def _accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float((probabilities.argmax(axis=1) == labels).mean())



def curve_record(curve: Mapping[str, Any]) -> dict[str, Any]:
    """What a card keeps of one laboratory's curve (``adaptation_curve`` section): no class lists."""
    keep = ("n_images", "draws", "ks", "curve", "seen_in_training", "home_parent_accuracy")
    return {key: curve[key] for key in keep if key in curve}
