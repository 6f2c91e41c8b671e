"""Picking and decoding part of a dataset for a model: the card's held-out images, known classes.

Shared by the robustness and shift benchmarks and by ``calibrate``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from bloodcell_core.data.datasets import Dataset
from bloodcell_core.progress import ProgressFn


def labels_in_classes(dataset: Dataset, classes: Sequence[str]) -> np.ndarray:
    """Dataset labels as indices into a model's ``classes``; -1 for classes it doesn't know."""
    index = {name: i for i, name in enumerate(classes)}
    mapping = np.array([index.get(name, -1) for name in dataset.classes], dtype=np.int64)
    return mapping[dataset.labels] if len(dataset) else np.zeros(0, dtype=np.int64)


def _item_key(item: str) -> str:
    """``class_folder/file`` -- matches card paths recorded on another machine or root."""
    parts = Path(item).parts
    return "/".join(parts[-2:])


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
