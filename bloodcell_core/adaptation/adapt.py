"""The adapt command's engine: a parent model plus a laboratory's cells -> a new, adapted model.

Method (chosen by the k-shot measurements in the README, ``docs/adaptation.md``): a second
softmax layer is fitted on the laboratory's labelled cells (:mod:`.head`) and a gate sends each
image to the parent's layer or the laboratory's, whichever domain its features are nearer
(:class:`bloodcell_core.models.architectures.LabGatedHead`): the new laboratory gets its own
answers and the home laboratory keeps the parent's (refitting one shared layer cost 7-19 points
at home in the measurements).  With unlabelled cells, BatchNorm statistics are first moved
a quarter of the way to the laboratory's (:mod:`.batchnorm`).  The card records the parent, the
data (fingerprint, counts per class), the method and settings, grouped cross-validated before/after
accuracy on the laboratory's cells and, when the parent's PBC held-out images are readable, what
adapting cost at home.
The needs-review thresholds and the batch warning are refitted on the calibration images:
the parent's held-out images (when readable) plus the laboratory's labelled cells.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold

from bloodcell_core.adaptation.batchnorm import adapt_batchnorm
from bloodcell_core.adaptation.head import HeadSettings, refit_head
from bloodcell_core.data.datasets import Dataset
from bloodcell_core.data.subsets import labels_in_classes, load_images, validation_indices
from bloodcell_core.errors import BloodcellError, DatasetError
from bloodcell_core.evaluation.calibration import apply_temperature
from bloodcell_core.evaluation.metrics import classification_report
from bloodcell_core.inference.feature_density import Density, fit_density
from bloodcell_core.inference.predictor import Predictor
from bloodcell_core.inference.tta import add_views_where_unsure
from bloodcell_core.models.architectures import LabGatedHead
from bloodcell_core.models.card import ModelCard
from bloodcell_core.progress import ProgressFn

FIT_VIEWS = ("identity", "rot180", "hflip", "vflip", "transpose", "rot90", "rot270")  # training views
# Reports measured on the parent, and how the parent was made, would misdescribe the adapted model:
# left out of its card (the parent's card keeps them; the commands' --record measure it anew).
PARENT_ONLY_REPORTS = ("crosslab", "robustness", "shift_bench", "adaptation_curve", "history")
MAX_FOLDS = 5


@dataclass
class LabCells:
    """One laboratory's decoded, cropped cells: crops (N, S, S, 3), labels into the model's classes."""

    source: str
    fingerprint: str
    crops: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AdaptSettings:
    head: HeadSettings = HeadSettings()
    # With unlabelled cells: share of the laboratory's BatchNorm statistics. On the shipped model and
    # LISC (all 259 cells unlabelled, k = 10 labelled per class) 0.25 gave 89.8% at a home cost of
    # 0.3 points, 0.5 gave 89.3% at 1.5 points (over the 1-point budget), none 89.6%.
    batchnorm_blend: float = 0.25


def lab_cells(dataset: Dataset, predictor: Predictor, progress: ProgressFn | None, labelled: bool) -> LabCells:
    """Decode and crop a laboratory's images; a class the model lacks is an error when labelled."""
    from bloodcell_core.data.duplicates import duplicate_groups, phashes

    labels = labels_in_classes(dataset, predictor.classes)
    if labelled and (labels < 0).any():
        missing = sorted({dataset.classes[dataset.labels[i]] for i in np.flatnonzero(labels < 0)})
        raise DatasetError(f"{dataset.source}: class(es) {', '.join(missing)} are not among the model's "
                           f"classes ({', '.join(predictor.classes)})")
    images, kept, _unreadable = load_images(dataset, np.arange(len(dataset)), progress)
    if not images:
        raise DatasetError(f"{dataset.source}: no readable images")
    crops = predictor.prepare_batch(images)
    groups = duplicate_groups(phashes(images))
    lab_labels = labels[kept]
    counts = {predictor.classes[c]: int((lab_labels == c).sum()) for c in np.unique(lab_labels) if c >= 0}
    return LabCells(dataset.source, dataset.fingerprint(), crops, lab_labels, groups, counts)


def gated_head(parent_head: tuple[np.ndarray, np.ndarray], lab_head: tuple[np.ndarray, np.ndarray],
               density: dict[str, Any] | None, features: np.ndarray, labels: np.ndarray) -> LabGatedHead:
    """The adapted model's softmax layer: parent and lab heads, gated by the nearer class means.

    ``features`` (V, N, F) and ``labels`` are the laboratory's cells: their class means, in the
    parent density's PCA space, are the laboratory side of the gate.  Without a density (an old
    parent card, home images unreadable) the gate always picks the laboratory's layer."""
    flat = features.reshape(-1, features.shape[-1])
    if density is None:
        mean, basis, precision = np.zeros(flat.shape[1]), np.zeros((flat.shape[1], 1)), np.eye(1)
        home_means, lab_means = np.full((1, 1), 1e3), np.zeros((1, 1))
    else:
        home = Density(density)
        mean, basis, precision, home_means = home.mean, home.basis, home.precision, home.class_means
        projected = (flat - home.mean) @ home.basis
        tiled = np.tile(labels, features.shape[0])
        lab_means = np.stack([projected[tiled == c].mean(axis=0) for c in np.unique(labels)])
    layer = LabGatedHead(parent_head[0].shape[1], flat.shape[1], basis.shape[1], len(home_means),
                         len(lab_means), name="probabilities")
    layer.build((None, flat.shape[1]))
    values = {"home_kernel": parent_head[0], "home_bias": parent_head[1], "lab_kernel": lab_head[0],
              "lab_bias": lab_head[1], "mean": mean, "basis": basis, "precision": precision,
              "home_means": home_means, "lab_means": lab_means}
    for name, value in values.items():
        layer.tables[name].assign(np.asarray(value, np.float32))
    return layer


def served_probabilities(head: LabGatedHead, features: np.ndarray, predictor: Predictor,
                         views: tuple[str, ...] = FIT_VIEWS) -> np.ndarray:
    """Probabilities as the Predictor serves them, from per-view features (V, N, F) whose rows are
    ``views``: the head on each served view, averaged, the extra views added where those leave a
    cell unsure (:func:`~bloodcell_core.inference.tta.add_views_where_unsure`), then the temperature."""
    def averaged(names: tuple[str, ...], rows: np.ndarray | slice = slice(None)) -> tuple[np.ndarray]:
        return (np.mean([np.asarray(head(features[views.index(v)][rows].astype(np.float32))) for v in names], axis=0),)

    probabilities = averaged(predictor.tta_views)
    if predictor.extra_views and predictor.extra_views_below:
        probabilities = add_views_where_unsure(probabilities, lambda rows: averaged(predictor.extra_views, rows),
                                               len(predictor.tta_views), len(predictor.extra_views),
                                               predictor.extra_views_below)
    return apply_temperature(probabilities[0], predictor.temperature)  # T = 1 leaves them unchanged


def cross_validate(predictor: Predictor, cells: LabCells, features: np.ndarray, density: dict[str, Any],
                   settings: AdaptSettings) -> dict[str, Any]:
    """Grouped K-fold on the laboratory's cells: parent vs adapted (gated) on each held-out fold."""
    parent_head = tuple(predictor.model.get_layer("probabilities").get_weights())
    n_folds = min(MAX_FOLDS, len(np.unique(cells.groups)))
    if n_folds < 2:
        raise DatasetError(f"{cells.source}: need at least 2 distinct images to adapt and cross-validate")
    after = np.zeros((len(cells.labels), len(predictor.classes)))
    before = predictor.run_prepared(cells.crops)[0]  # the model before its new layer, on every cell once
    for train, test in GroupKFold(n_splits=n_folds).split(cells.labels, groups=cells.groups):
        lab_head = fit_lab_head(features[:, train], cells.labels[train], parent_head, settings, density)
        head = gated_head(parent_head, lab_head, density, features[:, train], cells.labels[train])
        after[test] = served_probabilities(head, features[:, test], predictor)
    return {"folds": n_folds, "grouped_by": "exact/near duplicates (pHash)",
            "before": _summary(before, cells.labels, predictor.classes),
            "after": _summary(after, cells.labels, predictor.classes)}


def _summary(probabilities: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    report = classification_report(probabilities, labels, classes)
    present = np.unique(labels)
    predicted = probabilities.argmax(axis=1)
    return {"accuracy": report["accuracy"],
            "balanced_accuracy": float(np.mean([(predicted[labels == c] == c).mean() for c in present])),
            "per_class_recall": {classes[c]: float((predicted[labels == c] == c).mean()) for c in present}}


def fit_lab_head(features: np.ndarray, labels: np.ndarray, parent_head, settings: AdaptSettings,
                 density: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """The laboratory's softmax layer from its cells' per-view features (V, N, F)."""
    flat = features.reshape(-1, features.shape[-1])
    return refit_head(*parent_head, flat, np.tile(labels, features.shape[0]), settings.head, density)


def home_density(predictor: Predictor, home) -> dict[str, Any] | None:
    """The parent card's feature density, or one fitted on its held-out home images (None: neither)."""
    if predictor.policy.ood_density:
        return predictor.policy.ood_density
    if home is None:
        return None
    crops, labels = home
    return fit_density(predictor.run_prepared(crops)[1], labels, len(predictor.classes))


def home_images(predictor: Predictor, progress: ProgressFn | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The parent's held-out home-laboratory crops and labels, when its card's source is readable."""
    from bloodcell_core.data.datasets import load_dataset

    data = predictor.card.data
    source = next(iter(data.sources), {}).get("source") or data.source
    listed = predictor.card.validation_items
    if not source or not listed:
        return None
    try:
        dataset = load_dataset(source)
    except BloodcellError:
        return None
    indices = validation_indices(dataset, listed)
    labels = labels_in_classes(dataset, predictor.classes)
    indices = indices[labels[indices] >= 0] if len(indices) else indices
    if not len(indices):
        return None
    images, kept, _ = load_images(dataset, indices, progress)
    return predictor.prepare_batch(images), labels[kept]


def adapt(parent: Predictor, labelled: Dataset | None, unlabelled: Dataset | None,
          settings: AdaptSettings = AdaptSettings(), progress: ProgressFn | None = None,
          parent_dir: str | Path | None = None) -> tuple[Any, ModelCard]:
    """(adapted keras model, its card). The parent's model object is left untouched."""
    if labelled is None and unlabelled is None:
        raise BloodcellError("adapt needs labelled cells (DATA), unlabelled cells (--unlabelled), or both")
    if labelled is not None and len(labelled) < 2:
        raise DatasetError(f"{labelled.source}: a single image is not enough to adapt (and check) a model")
    if isinstance(parent.model.get_layer("probabilities"), LabGatedHead):
        raise BloodcellError(f"{parent.name} is already adapted to a laboratory: adapt its parent instead")
    model = _copy_model(parent.model)
    method: dict[str, Any] = {}
    unlabelled_info = None
    if unlabelled is not None:
        pool = lab_cells(unlabelled, Predictor(model, parent.card), progress, labelled=False)
        method["batchnorm"] = adapt_batchnorm(model, pool.crops, settings.batchnorm_blend)
        unlabelled_info = {"source": pool.source, "fingerprint": pool.fingerprint, "n_images": len(pool.crops)}
    working = Predictor(model, parent.card)
    home = home_images(parent, progress)
    cells, cross_validation = None, None
    if labelled is not None:
        cells = lab_cells(labelled, working, progress, labelled=True)
        if len(cells.labels) < 2:
            raise DatasetError(f"{cells.source}: a single image is not enough to adapt (and check) a model")
        density = home_density(working, home)
        features = working.features_per_view(cells.crops, FIT_VIEWS)
        cross_validation = cross_validate(working, cells, features, density, settings)
        parent_head = tuple(model.get_layer("probabilities").get_weights())
        lab_head = fit_lab_head(features, cells.labels, parent_head, settings, density)
        model = _with_head(model, gated_head(parent_head, lab_head, density, features, cells.labels))
        method["head"] = {"what": "a second softmax layer fitted on the laboratory's cells (L2 toward the parent's), "
                                  + ("images routed to the nearer domain's layer" if density is not None else
                                     "used for every image: the parent card has no feature statistics and its "
                                     "home images are unreadable, so there is no gate"), **asdict(settings.head)}
    adapted = Predictor(model, parent.card)
    home_outputs = adapted.run_prepared(home[0]) if home is not None else None  # once: policy and home check
    card = parent.card.replace(review=_refit_policy(adapted, home, home_outputs, cells),
                               **_adapted_card_fields(parent, parent_dir, cells, unlabelled_info, method,
                                                      cross_validation, _home_check(parent, home, home_outputs)))
    return model, card


def _with_head(model: Any, head: LabGatedHead) -> Any:
    """The same network with ``head`` as its softmax layer (named ``probabilities``)."""
    import keras

    try:
        pooled = model.get_layer("dropout").output
    except ValueError:
        pooled = model.get_layer("features").output
    return keras.Model(model.inputs, head(pooled), name=model.name)


def _copy_model(model: Any) -> Any:
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _home_check(parent: Predictor, home, home_outputs) -> dict[str, Any] | None:
    """Parent vs adapted accuracy on the parent's held-out home images (the adapted outputs given)."""
    if home is None:
        return None
    crops, labels = home
    before = parent.run_prepared(crops)[0].argmax(axis=1)
    after = home_outputs[0].argmax(axis=1)
    return {"n_images": int(len(labels)), "accuracy_before": float((before == labels).mean()),
            "accuracy_after": float((after == labels).mean()),
            "what": "the parent's held-out home-laboratory images (its card's validation_items)"}


def _refit_policy(adapted: Predictor, home, home_outputs, cells: LabCells | None) -> dict[str, Any]:
    """Needs-review thresholds and batch warning on the calibration images (home held-out + lab cells)."""
    from bloodcell_core.inference.review_flags import fit_review_policy

    parts = []  # (probabilities, features, labels)
    if home is not None:
        parts.append((*home_outputs, home[1]))
    if cells is not None:
        parts.append((*adapted.run_prepared(cells.crops), cells.labels))
    if not parts:
        return adapted.policy.to_json()
    probabilities, features, labels = (np.concatenate(column) for column in zip(*parts))
    policy = fit_review_policy(probabilities, labels, features, len(adapted.classes))
    policy["calibration_images"] = ("parent's held-out images + " if home is not None else "") + (
        "the laboratory's labelled cells" if cells is not None else "")
    return policy


def _adapted_card_fields(parent: Predictor, parent_dir, cells: LabCells | None, unlabelled_info,
                         method: dict[str, Any], cross_validation, home_check) -> dict[str, Any]:
    lab_name = Path(cells.source).name if cells is not None else Path(unlabelled_info["source"]).name
    return {
        **{report: {} for report in PARENT_ONLY_REPORTS},
        "name": f"{parent.name}-adapted-{lab_name}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "adaptation": {
            "parent": {"name": parent.name, "folder": str(parent_dir) if parent_dir else None,
                       "created": parent.card.created},
            "data": None if cells is None else {"source": cells.source, "fingerprint": cells.fingerprint,
                                                "n_images": int(len(cells.labels)), "class_counts": cells.counts},
            "unlabelled": unlabelled_info,
            "method": method,
            "cross_validation": cross_validation,
            "home_check": home_check,
        },
    }
