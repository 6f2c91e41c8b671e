"""Adapt a model on the reviewed-cell archive, from the app: export, ``adapt``, save, record the run.

The new model goes to :func:`bloodcell_core.paths.adapted_models_dir` (``data_dir()/models``),
which the model picker lists; the run is one ``adapt-model`` row in the review store (dataset
:data:`ADAPTATION_DATASET`), so the Review log shows who adapted what, when, on which cells and
with what result, in the same append-only trail as the decisions.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bloodcell_core.adaptation.cli import adaptation_line, check_new_folder
from bloodcell_core.errors import BloodcellError
from bloodcell_core.inference.predictor import Predictor
from bloodcell_core.models.card import ModelCard
from bloodcell_core.paths import adapted_models_dir
from bloodcell_core.progress import ProgressFn
from bloodcell_core.review.archive import export_archive, normalise_source
from bloodcell_core.review.auth import guarded_record
from bloodcell_core.review.store import Decision, ReviewAction, ReviewStore, make_request_id

ADAPTATION_DATASET = "model-adaptation"  # the review store's ``dataset`` for adaptation runs
RUN_COLUMNS = ["time", "reviewer", "parent", "model", "from", "result"]


@dataclass(frozen=True)
class AdaptationRun:
    """A finished adaptation: the new model's folder and card, and whether the run was recorded."""

    folder: Path
    card: ModelCard
    recorded: bool


def model_folder(name: str) -> Path:
    """The new model's folder under the adapted-models folder: a file-safe form of ``name``, never existing."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name or "").strip()).strip("-.")[:80]
    if not slug:
        raise BloodcellError("name the new model (letters, digits, . _ -)")
    try:
        return check_new_folder(adapted_models_dir() / slug)
    except BloodcellError:  # its message names the server path; the page shows the name only
        raise BloodcellError(f"a model folder {slug!r} exists already: choose another name") from None


def run_note(card: ModelCard, folder: Path) -> str:
    """What the run adapted on and what it measured, in one line (the Review log's note)."""
    info = card.adaptation
    data = info.get("data") or {}
    counts = ", ".join(f"{name} {n}" for name, n in sorted((data.get("class_counts") or {}).items()))
    source = data.get("archive_source") or data.get("source")
    head = f"source {source}: {data.get('n_images', 0)} cells ({counts})"
    return f"{head}; {adaptation_line(card, Path(folder.name))}"


def run_decision(card: ModelCard, folder: Path, reviewer: str) -> Decision:
    """The ``adapt-model`` row: keyed by the data fingerprint, parent -> new model as the labels."""
    info = card.adaptation
    fingerprint = (info.get("data") or {}).get("fingerprint") or "no-labelled-data"
    return Decision(image_hash=fingerprint, dataset=ADAPTATION_DATASET, path=folder.name,
                    action=ReviewAction.ADAPT_MODEL,
                    old_label=info["parent"]["name"], new_label=str(card.name), reviewer=reviewer,
                    note=run_note(card, folder),
                    request_id=make_request_id("adapt", reviewer, str(folder.resolve()), fingerprint))


def adapt_from_archive(store: ReviewStore, parent: Predictor, parent_dir: str | Path, source: str,
                       name: str, reviewer: str | None, progress: ProgressFn | None = None) -> AdaptationRun:
    """Adapt ``parent`` on the cells archived under ``source``; save as ``name``; record the run.

    Checks the reviewer, the name and the folder before the slow work; BloodcellError (one line)
    for no reviewer, no cells, a taken name or whatever ``adapt`` refuses.
    """
    from bloodcell_core.adaptation.adapt import adapt
    from bloodcell_core.data.datasets import load_dataset
    from bloodcell_core.models.store import save_model

    if not reviewer:
        raise BloodcellError("sign in to adapt a model")
    source_name = normalise_source(source)
    if source_name is None:
        raise BloodcellError("pick the laboratory/source whose cells to adapt on")
    folder = model_folder(name)
    with tempfile.TemporaryDirectory(prefix="bloodcell-archive-") as scratch:
        cells_dir = Path(scratch) / (folder.name + "-cells")
        _step(progress, 0, "Exporting the reviewed cells")
        export_archive(store, cells_dir, source=source_name)
        try:
            model, card = adapt(parent, load_dataset(cells_dir), None, progress=progress, parent_dir=parent_dir)
        except BloodcellError as error:  # name the archive, not the temporary folder
            raise BloodcellError(str(error).replace(str(cells_dir), f"the cells of {source_name!r}")) from None
    card.name = str(name).strip()
    card.adaptation["data"].update(source=f"review archive: {source_name}", archive_source=source_name)
    _step(progress, 1, "Saving the adapted model")
    save_model(model, card, folder)
    recorded = guarded_record(store, run_decision(card, folder, reviewer), reviewer)
    _step(progress, 2, "Saved and recorded")
    return AdaptationRun(folder, card, recorded)


def _step(progress: ProgressFn | None, done: int, label: str) -> None:
    """The page's own steps around ``adapt`` (which reports its image loading itself)."""
    if progress is not None:
        progress(done, 2, label)


def recall_table(card: ModelCard) -> pd.DataFrame:
    """Per class: cells adapted on, and cross-validated recall before/after (the page's table)."""
    info = card.adaptation
    cv = info.get("cross_validation") or {}
    counts = (info.get("data") or {}).get("class_counts") or {}
    before = (cv.get("before") or {}).get("per_class_recall", {})
    after = (cv.get("after") or {}).get("per_class_recall", {})
    rows = [{"class": name, "cells": counts.get(name, 0), "recall before": before.get(name),
             "recall after": after.get(name)} for name in sorted(set(before) | set(after) | set(counts))]
    return pd.DataFrame(rows, columns=["class", "cells", "recall before", "recall after"])


def adaptation_runs(store: ReviewStore) -> pd.DataFrame:
    """Every recorded adaptation run, newest first, with :data:`RUN_COLUMNS`."""
    history = store.history(action=ReviewAction.ADAPT_MODEL, dataset=ADAPTATION_DATASET)
    return pd.DataFrame({"time": history["time"], "reviewer": history["reviewer"], "parent": history["old_label"],
                         "model": history["new_label"], "from": history["note"].str.split("; ").str[0],
                         "result": history["note"].str.split("; ", n=1).str[1]}, columns=RUN_COLUMNS)
