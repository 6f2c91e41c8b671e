"""Dataset adapters: a folder of class subfolders, an .npz of arrays, or a CSV manifest.

All three give a :class:`Dataset`: parallel lists of item ids (file paths, or
``file.npz::split[i]`` for arrays), integer labels and the class list.  Images are
decoded lazily through :func:`bloodcell_core.data.images.load_image`; unreadable files
are collected with their reason instead of stopping the load.
"""
from __future__ import annotations

import csv
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from bloodcell_core.classes import CANONICAL_CLASSES, normalise_class_name, order_classes
from bloodcell_core.data.images import is_image_file, load_image
from bloodcell_core.errors import DatasetError, UnreadableImageError
from bloodcell_core.progress import ProgressFn, track
from bloodcell_core.outputs import unguard_cell

NPZ_SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """Images with labels. ``arrays`` is set for npz sources, otherwise items are file paths."""

    source: str
    classes: list[str]
    items: list[str]
    labels: np.ndarray  # int64 indices into ``classes``
    arrays: np.ndarray | None = None
    unreadable: list[dict[str, str]] = field(default_factory=list)
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def label_names(self) -> list[str]:
        return [self.classes[i] for i in self.labels]

    def load(self, index: int) -> np.ndarray:
        """Decode one image (raises UnreadableImageError)."""
        if self.arrays is not None:
            return array_to_rgb(self.arrays[index])
        return load_image(self.items[index])

    def subset(self, indices: np.ndarray | list[int]) -> "Dataset":
        idx = np.asarray(indices, dtype=np.int64)
        return Dataset(self.source, list(self.classes), [self.items[i] for i in idx],
                       self.labels[idx], None if self.arrays is None else self.arrays[idx],
                       list(self.unreadable))

    def iter_images(self, progress: ProgressFn | None = None, label: str = "Loading images",
                    workers: int = 4) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
        """Yield ``(index, image, None)`` or ``(index, None, reason)`` in order, decoding in threads."""
        def load_one(i: int) -> tuple[int, np.ndarray | None, str | None]:
            try:
                return i, self.load(i), None
            except UnreadableImageError as exc:
                return i, None, str(exc)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(load_one, range(len(self)))
            yield from track(results, len(self), label, progress, every=64)

    def fingerprint(self) -> str:
        """Cheap identity of the dataset: items, labels and file sizes (or array bytes).

        Computed once per object (0.4 s for 13,520 files, and the pages ask on every rerun); a
        Dataset is not changed after loading, so files changed on disk need a new load.
        """
        if self._fingerprint is None:
            self._fingerprint = self._compute_fingerprint()
        return self._fingerprint

    def _compute_fingerprint(self) -> str:
        digest = hashlib.sha256("|".join(self.classes).encode())
        if self.arrays is not None:
            digest.update(np.ascontiguousarray(self.arrays).tobytes())
        for item, label in zip(self.items, self.labels):
            size = Path(item).stat().st_size if self.arrays is None and Path(item).exists() else -1
            digest.update(f"{Path(item).name}:{label}:{size};".encode())
        return digest.hexdigest()[:16]


def array_to_rgb(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype != np.uint8:
        high = float(array.max()) if array.size else 1.0
        array = np.clip(array * (255.0 if high <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def _build(source: str, items: list[str], names: list[str], arrays: np.ndarray | None = None,
           unreadable: list[dict[str, str]] | None = None,
           classes: list[str] | None = None) -> Dataset:
    classes = classes or order_classes(set(names))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[n] for n in names], dtype=np.int64)
    return Dataset(source, classes, items, labels, arrays, unreadable or [])


def load_folder(root: Path) -> Dataset:
    """One subfolder per class (names mapped through aliases; nested folders are searched)."""
    items: list[str] = []
    names: list[str] = []
    unreadable: list[dict[str, str]] = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        class_name = normalise_class_name(class_dir.name)
        for path in sorted(p for p in class_dir.rglob("*") if p.is_file()):
            if is_image_file(path):
                items.append(str(path))
                names.append(class_name)
            elif not path.name.startswith("."):
                unreadable.append({"path": str(path), "reason": "not an image file type"})
    if not items:
        raise DatasetError(f"{root}: no class subfolders with images found "
                           "(expected DATA/<class>/*.jpg)")
    return _build(str(root), items, names, unreadable=unreadable)


def _npz_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DatasetError(f"labels must be one integer or name per image, got shape {labels.shape}")
    return labels


def load_npz(path: Path, split: str | None = None) -> Dataset:
    """BloodMNIST-style ``{split}_images``/``{split}_labels`` or plain ``images``/``labels``.

    Integer labels index a ``classes`` array when the file has one, otherwise the
    canonical 8-class order (BloodMNIST's order).
    """
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from None
    with archive:
        keys = set(archive.files)
        if {"images", "labels"} <= keys:
            pairs = [("", "images", "labels")]
        else:
            splits = [split] if split else [s for s in NPZ_SPLITS if f"{s}_images" in keys]
            pairs = [(s, f"{s}_images", f"{s}_labels") for s in splits
                     if f"{s}_images" in keys and f"{s}_labels" in keys]
        if not pairs:
            raise DatasetError(f"{path}: npz needs 'images'/'labels' or '<split>_images'/'<split>_labels' "
                               f"arrays; found {sorted(keys) or 'none'}")
        arrays, labels, items = [], [], []
        for split_name, image_key, label_key in pairs:
            images, split_labels = archive[image_key], _npz_labels(archive[label_key])
            if len(images) != len(split_labels):
                raise DatasetError(f"{path}: {image_key} has {len(images)} images but "
                                   f"{label_key} has {len(split_labels)} labels")
            arrays.append(images)
            labels.append(split_labels)
            tag = f"{split_name}" if split_name else "images"
            items += [f"{path}::{tag}[{i}]" for i in range(len(images))]
        class_list = [str(c) for c in archive["classes"]] if "classes" in keys else None
    all_labels = np.concatenate(labels)
    if all_labels.dtype.kind in "iu":
        classes = [normalise_class_name(c) for c in class_list] if class_list else list(CANONICAL_CLASSES)
        if all_labels.size and (all_labels.min() < 0 or all_labels.max() >= len(classes)):
            raise DatasetError(f"{path}: integer labels out of range for {len(classes)} classes")
        names = [classes[int(i)] for i in all_labels]
        used = order_classes(set(names)) if class_list is None else classes
        return _build(str(path), items, names, np.concatenate(arrays), classes=used)
    names = [normalise_class_name(str(n)) for n in all_labels]
    return _build(str(path), items, names, np.concatenate(arrays))


def load_csv(path: Path) -> Dataset:
    """A manifest with ``path,label`` columns; relative paths are relative to the CSV's folder."""
    items, names, unreadable = [], [], []
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
                raise DatasetError(f"{path}: CSV manifest needs 'path' and 'label' columns")
            for row in reader:
                image_path = Path(unguard_cell(row["path"]))
                if not image_path.is_absolute():
                    image_path = path.parent / image_path
                if not image_path.is_file():
                    unreadable.append({"path": str(image_path), "reason": "listed in manifest but missing"})
                    continue
                items.append(str(image_path))
                names.append(normalise_class_name(unguard_cell(row["label"])))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: can't read CSV manifest ({exc})") from None
    if not items:
        raise DatasetError(f"{path}: manifest lists no existing images")
    return _build(str(path), items, names, unreadable=unreadable)


def load_dataset(path: str | Path, split: str | None = None) -> Dataset:
    """Open DATA whatever its format: folder, .npz or .csv."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_dir():
        return load_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return load_npz(path, split)
    if suffix == ".csv":
        return load_csv(path)
    raise DatasetError(f"{path}: unknown dataset format (use a folder of class folders, .npz or .csv)")


def combine_datasets(datasets: list[Dataset]) -> tuple[Dataset, np.ndarray]:
    """Several training sources as one Dataset (classes in canonical order) plus a source index
    per image.  Folder and manifest sources concatenate their paths; npz sources concatenate
    their arrays when every source is an npz of one image shape."""
    if len(datasets) == 1:
        return datasets[0], np.zeros(len(datasets[0]), np.int64)
    with_arrays = [d.arrays is not None for d in datasets]
    if any(with_arrays) and not all(with_arrays):
        raise DatasetError("can't train on npz and image-folder sources together: export the npz "
                           "to a folder of class folders first")
    arrays = None
    if all(with_arrays):
        shapes = {d.arrays.shape[1:] for d in datasets}  # type: ignore[union-attr]
        if len(shapes) > 1:
            raise DatasetError(f"npz sources have different image shapes {sorted(shapes)}")
        arrays = np.concatenate([d.arrays for d in datasets])  # type: ignore[misc]
    items = [item for d in datasets for item in d.items]
    names = [name for d in datasets for name in d.label_names]
    unreadable = [entry for d in datasets for entry in d.unreadable]
    combined = _build(" + ".join(d.source for d in datasets), items, names, arrays, unreadable)
    source_index = np.concatenate([np.full(len(d), i, np.int64) for i, d in enumerate(datasets)])
    return combined, source_index


def expand_image_paths(paths: list[str | Path]) -> tuple[list[Path], list[dict[str, str]]]:
    """Files and folders (searched recursively) to image files; missing paths are reported."""
    found: list[Path] = []
    missing: list[dict[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p))
        elif path.is_file():
            found.append(path)
        else:
            missing.append({"path": str(path), "reason": "no such file or folder"})
    return found, missing
