"""Test-time augmentation: average the model over symmetric views of each crop.

A blood cell on a smear has no up, down, left or right, so a rotated or mirrored crop is
the same cell.  Averaging the model's probabilities over a few such views smooths out
orientation-specific mistakes.  Which views a model uses is stored in its card
(``ModelCard.inference.tta``, default ``["identity"]``: one pass, no averaging; read with
:attr:`bloodcell_core.models.card.ModelCard.views`; that module also lists the valid names), so the
CLI, the evaluation, the robustness benchmarks and the app all predict the same way.
Each extra view costs one more forward pass; Grad-CAM explains the identity view. A card may
also name views that are added only where the first ones leave the model unsure
(:func:`run_views_where_unsure`), so most crops pay for two passes and the doubtful ones for more.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bloodcell_core.models.card import NO_TTA, parse_views

# parse_views: models.card's, kept here for old imports
__all__ = ["NO_TTA", "VIEWS", "View", "add_views_where_unsure", "parse_views", "run_views", "run_views_where_unsure"]

View = Callable[[np.ndarray], np.ndarray]

# Views of a batch shaped (N, H, W, C); all keep the shape because crops are square.
VIEWS: dict[str, View] = {
    "identity": lambda batch: batch,
    "rot180": lambda batch: batch[:, ::-1, ::-1],
    "hflip": lambda batch: batch[:, :, ::-1],
    "vflip": lambda batch: batch[:, ::-1, :],
    "transpose": lambda batch: batch.transpose(0, 2, 1, 3),
    "rot90": lambda batch: np.rot90(batch, 1, axes=(1, 2)),
    "rot270": lambda batch: np.rot90(batch, 3, axes=(1, 2)),
}


def run_views(run: Callable[[np.ndarray], tuple[np.ndarray, ...]], batch: np.ndarray,
              views: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """Run ``run`` once on all views stacked into one batch and average each output over the views.

    ``run`` maps a batch to arrays whose first axis is the batch (probabilities, features).
    One stacked call keeps the per-call overhead (large on CPU for small batches) paid once.
    """
    if views == NO_TTA:
        return run(batch)
    stacked = np.concatenate([np.ascontiguousarray(VIEWS[name](batch)) for name in views])
    averaged = []
    for output in run(stacked):
        output = np.asarray(output)
        averaged.append(output.reshape(len(views), len(batch), *output.shape[1:]).mean(axis=0))
    return tuple(averaged)


def run_views_where_unsure(run: Callable[[np.ndarray], tuple[np.ndarray, ...]], batch: np.ndarray,
                           views: tuple[str, ...], extra: tuple[str, ...], below: float | None
                           ) -> tuple[np.ndarray, ...]:
    """:func:`run_views` over ``views``; then, for the crops whose averaged top probability (the
    first output) is below ``below``, the average over ``views`` and ``extra`` together.

    The test is on the model's own probabilities, before any temperature, so calibrating a model
    does not change which crops get the extra views.
    """
    outputs = tuple(np.asarray(o) for o in run_views(run, batch, views))
    if not extra or not below or not len(batch):
        return outputs
    return add_views_where_unsure(outputs, lambda unsure: run_views(run, batch[unsure], extra),
                                  len(views), len(extra), below)


def add_views_where_unsure(outputs: tuple[np.ndarray, ...],
                           run_extra: Callable[[np.ndarray], tuple[np.ndarray, ...]],
                           n_views: int, n_extra: int, below: float) -> tuple[np.ndarray, ...]:
    """``outputs`` (averaged over ``n_views`` views; the first are probabilities) with the rows whose
    top probability is below ``below`` re-averaged over ``n_views + n_extra`` views.

    ``run_extra(rows)`` gives the outputs of those rows averaged over the ``n_extra`` added views.
    Shared by the Predictor (views of crops) and adaptation (views of cached features), so both
    score a crop the same way.
    """
    unsure = np.flatnonzero(outputs[0].max(axis=1) < below)
    if not len(unsure):
        return outputs
    weight = n_views / (n_views + n_extra)
    combined = []
    for base, added in zip(outputs, run_extra(unsure)):
        merged = base.copy()
        merged[unsure] = weight * base[unsure] + (1 - weight) * np.asarray(added)
        combined.append(merged)
    return tuple(combined)
