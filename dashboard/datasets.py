"""Datasets the app may open: only those under ``bloodcell_core.paths.data_roots()``.

The dashboard never browses the server's filesystem: the picker offers the datasets found
under the configured roots (folders of class subfolders, ``.npz`` files, ``.csv`` manifests)
and a typed path is accepted only when it resolves (symlinks followed) inside a root.
The functions above the widgets section are plain Python, testable without Streamlit running.
"""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from bloodcell_core.data.datasets import Dataset, load_dataset
from bloodcell_core.data.subsets import held_out_caption, held_out_split
from bloodcell_core.data.images import is_image_file
from bloodcell_core.errors import DatasetError
from bloodcell_core.models.card import ModelCard
from bloodcell_core.paths import SHARED_DEV_DATA, data_roots

DATASET_FILE_SUFFIXES = (".npz", ".csv")
MAX_DEPTH = 3  # how far below a root datasets are searched for
MAX_FOUND = 200  # stop listing after this many (a root with thousands of folders)


def _has_images(folder: Path) -> bool:
    """True when ``folder`` holds at least one image file (stops at the first one)."""
    try:
        with os.scandir(folder) as entries:
            return any(entry.is_file() and is_image_file(Path(entry.name)) for entry in entries)
    except OSError:
        return False


def is_class_folder_dataset(folder: Path) -> bool:
    """A folder whose subfolders (classes) hold images: ``DATA/<class>/*.jpg``."""
    try:
        subfolders = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return False
    return any(_has_images(sub) for sub in subfolders)


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError:
        return []


def find_datasets(roots: list[Path] | None = None, max_depth: int = MAX_DEPTH) -> list[Path]:
    """Every dataset (class-folder tree, .npz, .csv) under the data roots, shallowest first.

    A class-folder dataset's own subfolders are not searched further (they are its classes).
    """
    found: list[Path] = []
    queue = [(root, 0) for root in (data_roots() if roots is None else roots)]
    while queue and len(found) < MAX_FOUND:
        folder, depth = queue.pop(0)
        if is_class_folder_dataset(folder):
            found.append(folder)
            continue
        for child in _children(folder):
            if child.is_file() and child.suffix.lower() in DATASET_FILE_SUFFIXES:
                found.append(child)
            elif child.is_dir() and depth < max_depth:
                queue.append((child, depth + 1))
    return found[:MAX_FOUND]


def root_of(path: Path, roots: list[Path] | None = None) -> Path | None:
    """The data root ``path`` lies in (after resolving symlinks and ``..``), or None."""
    resolved = path.resolve()
    for root in data_roots() if roots is None else roots:
        if resolved == root or resolved.is_relative_to(root):
            return root
    return None


def resolve_dataset_path(text: str | Path, roots: list[Path] | None = None) -> Path:
    """A typed dataset path, checked: absolute inside a root, or relative to one.

    Raises DatasetError for anything outside the roots, missing, or not a dataset format.
    """
    roots = data_roots() if roots is None else roots
    if not roots:
        raise DatasetError("no data roots are configured (set BLOODCELL_DATA_ROOTS)")
    raw = Path(str(text).strip())
    if not str(text).strip():
        raise DatasetError("type a dataset path")
    candidates = [raw] if raw.is_absolute() else [root / raw for root in roots]
    for candidate in candidates:
        if root_of(candidate, roots) is None:
            continue
        resolved = candidate.resolve()
        if not resolved.exists():
            continue
        if resolved.is_dir() or resolved.suffix.lower() in DATASET_FILE_SUFFIXES:
            return resolved
        raise DatasetError(f"{raw}: not a dataset (use a folder of class folders, .npz or .csv)")
    if all(root_of(c, roots) is None for c in candidates):
        raise DatasetError(f"{raw}: outside the configured data roots; the app opens datasets only under "
                           + ", ".join(str(r) for r in roots))
    raise DatasetError(f"{raw}: no such dataset under the data roots")


def default_dataset(found: list[Path]) -> Path | None:
    """The shared PBC dev set when present, else the first dataset found."""
    shared = SHARED_DEV_DATA.resolve() if SHARED_DEV_DATA.exists() else None
    if shared is not None and shared in found:
        return shared
    return found[0] if found else None


def dataset_label(path: Path, roots: list[Path] | None = None) -> str:
    """``root-name/relative/path`` for menus (no absolute server paths on screen)."""
    root = root_of(path, roots)
    if root is None:
        return path.name
    relative = path.resolve().relative_to(root)
    return f"{root.name}/{relative}" if str(relative) != "." else root.name


def dataset_key(path: Path) -> str:
    """A cache key that changes when files are added or removed (folder mtimes, file mtime)."""
    path = path.resolve()
    stamps = [path.stat().st_mtime_ns]
    if path.is_dir():
        stamps += [child.stat().st_mtime_ns for child in _children(path) if child.is_dir()]
    return f"{path}|{hash(tuple(stamps))}"


# -- Streamlit widgets -----------------------------------------------------------------------

OTHER_PATH = "Other path inside a data root..."


@st.cache_resource(max_entries=8, show_spinner="Listing the dataset...")
def _load_dataset(key: str, path: str) -> Dataset:  # noqa: ARG001 (key invalidates the cache)
    return load_dataset(path)


def open_dataset(path: Path) -> Dataset:
    """Load (and cache per folder state) a dataset the picker returned; raises DatasetError."""
    if root_of(path) is None:
        raise DatasetError(f"{path}: outside the configured data roots")
    return _load_dataset(dataset_key(path), str(path.resolve()))


def open_all_datasets() -> dict[str, Dataset]:
    """Every dataset under the data roots that opens, by its menu label (the others are left out:
    the dataset picker says why when one is picked)."""
    opened = {}
    for path in find_datasets():
        try:
            opened[dataset_label(path)] = open_dataset(path)
        except DatasetError:
            continue
    return opened


def data_root_picker(key: str, label: str = "Dataset", container=None) -> Path | None:
    """A selectbox of the datasets under the data roots, plus a checked typed path.

    ``key`` is the page-prefixed widget key (e.g. ``"perf_dataset"``).  Returns the chosen
    dataset path, or None (with a message drawn) when there is none or the typed one is refused.
    """
    where = container if container is not None else st
    roots = data_roots()
    if not roots:
        where.info("No data roots are configured: set BLOODCELL_DATA_ROOTS to the folders "
                   "datasets may be opened from (os.pathsep-separated).")
        return None
    found = find_datasets(roots)
    options = [str(p) for p in found] + [OTHER_PATH]
    default = default_dataset(found)
    choice = where.selectbox(label, options, index=options.index(str(default)) if default else 0,
                             format_func=lambda o: o if o == OTHER_PATH else dataset_label(Path(o), roots),
                             key=key)
    if choice != OTHER_PATH:
        return Path(choice)
    typed = where.text_input("Path (absolute inside a data root, or relative to one)", key=f"{key}_typed",
                             help="Data roots: " + ", ".join(r.name for r in roots))
    if not typed.strip():
        return None
    try:
        return resolve_dataset_path(typed, roots)
    except DatasetError as error:
        where.error(str(error))
        return None


TRAINING_IMAGES_LABEL = "Include the model's training images (not a fair test)"


def held_out_choice(dataset: Dataset, card: ModelCard, key: str) -> Dataset | None:
    """The pages' held-out rule: of a dataset the model trained on, only the card's held-out
    images, unless the user ticks ``key`` to score training images too (labelled unfair).

    Returns the dataset to score, or None (with a warning drawn) when nothing fair is left.
    """
    split = held_out_split(card, dataset)
    if split.n_training == 0:
        return dataset
    include = st.checkbox(TRAINING_IMAGES_LABEL, key=key,
                          help="The model learned these images: scoring them shows how well it remembers, "
                               "not how well it does on new cells.")
    if include:
        st.warning(f"Scoring all {split.n_images:,} images, {split.n_training:,} of which the model trained "
                   "on: not a fair test, the figures flatter the model.")
        return dataset
    if not len(split.held_out):
        st.warning("The model trained on this dataset and its card lists none of its images as held out, so "
                   "nothing here is a fair test. Pick another dataset.")
        return None
    st.caption(held_out_caption(split))
    return dataset.subset(split.held_out)
