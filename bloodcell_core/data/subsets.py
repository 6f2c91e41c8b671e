"""Picking and decoding part of a dataset for a model: the card's held-out images, known classes,
and whether the model trained on the dataset at all (``seen_in_training``).

Shared by the robustness and shift benchmarks, ``calibrate``, ``evaluate``, ``crosslab`` and the pages.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from bloodcell_core.data.datasets import Dataset
from bloodcell_core.errors import DatasetError
from bloodcell_core.models.card import ModelCard
from bloodcell_core.paths import PROJECT_ROOT
from bloodcell_core.progress import ProgressFn


def labels_in_classes(dataset: Dataset, classes: Sequence[str]) -> np.ndarray:
    """Dataset labels as indices into a model's ``classes``; -1 for classes it doesn't know."""
    index = {name: i for i, name in enumerate(classes)}
    mapping = np.array([index.get(name, -1) for name in dataset.classes], dtype=np.int64)
    return mapping[dataset.labels] if len(dataset) else np.zeros(0, dtype=np.int64)


def _item_key(item: str, depth: int = 2) -> str:
    """``class_folder/file`` (``depth`` 2) -- matches card paths recorded on another machine or root;
    ``dataset_folder/class_folder/file`` (3) tells two laboratories with the same file names apart."""
    parts = Path(item).parts
    return "/".join(parts[-depth:])


def validation_indices(dataset: Dataset, validation_items: Sequence[str]) -> np.ndarray:
    """Dataset indices listed in a model card's ``validation_items``: exact paths first,
    else matched on ``class_folder/file`` (the card may come from another checkout)."""
    wanted = {str(item) for item in validation_items}
    exact = [i for i, item in enumerate(dataset.items) if item in wanted]
    if exact:
        return np.array(exact, dtype=np.int64)
    keys = {_item_key(item) for item in wanted}
    return np.array([i for i, item in enumerate(dataset.items) if _item_key(item) in keys], dtype=np.int64)


def load_images(dataset: Dataset, indices: np.ndarray,
                progress: ProgressFn | None) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Decode the chosen images once; returns (images, their dataset indices, unreadable count)."""
    subset = dataset.subset(indices)
    images, kept = [], []
    for position, image, _reason in subset.iter_images(progress, label="Loading images"):
        if image is not None:
            images.append(image)
            kept.append(int(indices[position]))
    return images, np.array(kept, dtype=np.int64), len(indices) - len(kept)


# --- which of a dataset's images a model trained on -------------------------------------

def _source_pairs(entries: Sequence[Any]) -> list[tuple[str | None, str | None]]:
    """(source, fingerprint) of each card entry that is an object."""
    return [(s.get("source"), s.get("fingerprint")) for s in entries if isinstance(s, Mapping)]


def _card_sources(card: ModelCard) -> list[tuple[str | None, str | None]]:
    """(source, fingerprint) of every training source a card names: ``data`` itself, each ``data.sources``
    entry and the ``adaptation.data`` of a lab-adapted model (a multi-source card lists one entry per set)."""
    return [(card.data.source, card.data.fingerprint),
            *_source_pairs([*card.data.sources, card.adaptation.get("data") or {}])]


def _resolved(path: str) -> set[Path]:
    """A card's source path resolved as written (cwd) and from the project root, where the
    shipped cards were written with paths such as ``../shared/data/pbc-dev``."""
    raw = Path(path)
    if raw.is_absolute():
        return {raw.resolve()}
    return {raw.resolve(), (PROJECT_ROOT / raw).resolve()}


def _is_among(sources: Sequence[tuple[str | None, str | None]], dataset: Dataset) -> bool:
    """Whether ``dataset`` is one of the (source, fingerprint) pairs: same fingerprint or same path."""
    fingerprints = {str(fingerprint) for _, fingerprint in sources if fingerprint}
    if fingerprints and dataset.fingerprint() in fingerprints:
        return True
    here = Path(dataset.source).resolve()
    return any(here in _resolved(str(source)) for source, _ in sources if source)


def is_training_source(card: ModelCard | Mapping[str, Any], dataset: Dataset) -> bool:
    """True when ``dataset`` is one of the card's training sources: same fingerprint or same path."""
    return _is_among(_card_sources(ModelCard.of(card)), dataset)


def is_home_source(card: ModelCard | Mapping[str, Any], dataset: Dataset) -> bool:
    """True when ``dataset`` is the model's home laboratory: its first (or only) training source,
    the one its validation and review thresholds rest on."""
    data = ModelCard.of(card).data
    return _is_among(_source_pairs(data.sources)[:1] or [(data.source, data.fingerprint)], dataset)


def seen_in_training(card: ModelCard | Mapping[str, Any], dataset: Dataset) -> bool:
    """True when the model trained on any of ``dataset``: it is a training source, or some of its
    items are among the card's ``validation_items`` (the held-out part of a training source, so the
    dataset is, or contains, part of one).  Cards of multi-source models list every source."""
    if is_training_source(card, dataset):
        return True
    # dataset_folder/class_folder/file, not validation_indices' class_folder/file: other laboratories'
    # files are often named alike (1.jpg, 2.jpg); a moved or renamed copy still matches by fingerprint.
    keys = {_item_key(str(item), 3) for item in ModelCard.of(card).validation_items}
    return bool(keys) and any(_item_key(item, 3) in keys for item in dataset.items)


@dataclass(frozen=True)
class HeldOutSplit:
    """A dataset seen from one model: ``held_out`` indexes the images it never trained on
    (every image when the dataset is not a training source)."""

    n_images: int
    seen: bool
    held_out: np.ndarray

    @property
    def n_training(self) -> int:
        """Images of the dataset the model trained on."""
        return self.n_images - len(self.held_out)


def _contained_held_out(card: ModelCard, dataset: Dataset) -> np.ndarray:
    """Of a dataset that contains part of a training source (a manifest mixing laboratories), the
    images the model never trained on: those not from the source's folder, and the held-out ones."""
    keys = {_item_key(str(item), 3) for item in card.validation_items}
    folders = {key.split("/")[0] for key in keys if key.count("/") == 2}
    return np.array([i for i, item in enumerate(dataset.items)
                     if _item_key(item, 3) in keys or _item_key(item, 3).split("/")[0] not in folders],
                    dtype=np.int64)


def held_out_split(card: ModelCard | Mapping[str, Any], dataset: Dataset) -> HeldOutSplit:
    """Split ``dataset`` into the model's held-out images and (implicitly) its training images."""
    card = ModelCard.of(card)
    if is_training_source(card, dataset):
        listed = card.validation_items
        held_out = validation_indices(dataset, listed) if listed else np.zeros(0, dtype=np.int64)
        return HeldOutSplit(len(dataset), True, held_out)
    if seen_in_training(card, dataset):
        return HeldOutSplit(len(dataset), True, _contained_held_out(card, dataset))
    return HeldOutSplit(len(dataset), False, np.arange(len(dataset)))


def held_out_caption(split: HeldOutSplit) -> str:
    return f"held-out: {len(split.held_out):,} images the model never trained on"


def overlap_warning(split: HeldOutSplit, source: str) -> str | None:
    """The one warning line for a dataset that includes the model's training images, else None."""
    if split.n_training == 0:
        return None
    return (f"warning: {source}: {split.n_training:,} of its {split.n_images:,} images are the model's "
            f"training images, so its scores flatter the model (not a fair test); --held-out-only keeps "
            f"the {len(split.held_out):,} held-out ones")


def choose_held_out(card: ModelCard | Mapping[str, Any], dataset: Dataset, held_out_only: bool
                    ) -> tuple[Dataset, HeldOutSplit, str | None]:
    """The CLI rule: (dataset to score, its split, warning line or None).

    With ``held_out_only`` the model's training images are dropped (an error when none is
    left); without it every image is scored and a warning is returned when some were trained on.
    """
    split = held_out_split(card, dataset)
    if not held_out_only or split.n_training == 0:
        return dataset, split, overlap_warning(split, dataset.source)
    if not len(split.held_out):
        raise DatasetError(f"{dataset.source}: the model trained on it and its card lists none of its images "
                           "as held out (validation_items), so --held-out-only leaves nothing to score")
    return dataset.subset(split.held_out), split, None
