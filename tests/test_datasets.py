"""Dataset adapters: folders with aliases, npz (BloodMNIST and plain), CSV manifests, bad input."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from bloodcell_core.classes import CANONICAL_CLASSES, normalise_class_name
from bloodcell_core.data.datasets import expand_image_paths, load_dataset
from bloodcell_core.errors import DatasetError
from tests.helpers_images import synthetic_cell, write_class_folders


@pytest.mark.parametrize("raw, expected", [
    ("EOSINOPHIL", "eosinophil"), ("immature granulocytes", "ig"), ("immaturegranulocytes", "ig"),
    ("IG", "ig"), ("Platelets", "platelet"), ("NRBC", "erythroblast"), ("blast", "blast"),
])
def test_class_aliases(raw: str, expected: str) -> None:
    assert normalise_class_name(raw) == expected


def test_folder_with_aliases_keeps_canonical_order_and_lists_unreadable(tmp_path) -> None:
    write_class_folders(tmp_path, ["NEUTROPHIL", "immature granulocytes", "EOSINOPHIL"], per_class=2)
    (tmp_path / "EOSINOPHIL" / "notes.txt").write_text("not an image")
    (tmp_path / "EOSINOPHIL" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    dataset = load_dataset(tmp_path)
    assert dataset.classes == ["eosinophil", "ig", "neutrophil"]
    assert len(dataset) == 7  # the broken jpg is listed, and fails only when decoded
    assert [u["reason"] for u in dataset.unreadable] == ["not an image file type"]
    results = list(dataset.iter_images())
    failures = [r for r in results if r[1] is None]
    assert len(failures) == 1 and "broken.jpg" in failures[0][2]


def test_nine_class_set_keeps_extra_classes(tmp_path) -> None:
    names = ["band", "blast", "metamyelocyte", "myelocyte", "neutrophil", "lymphocyte", "monocyte",
             "eosinophil", "basophil"]
    write_class_folders(tmp_path, names, per_class=1)
    dataset = load_dataset(tmp_path)
    assert dataset.classes[:5] == ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]
    assert set(dataset.classes[5:]) == {"band", "blast", "metamyelocyte", "myelocyte"}


def test_bloodmnist_npz_maps_integer_labels_to_canonical_order(tmp_path) -> None:
    images = np.stack([synthetic_cell(28, seed=i) for i in range(6)])
    path = tmp_path / "bloodmnist.npz"
    np.savez(path, train_images=images[:4], train_labels=np.array([[0], [3], [7], [3]]),
             test_images=images[4:], test_labels=np.array([[5], [1]]))
    dataset = load_dataset(path)
    assert len(dataset) == 6
    assert dataset.label_names == ["basophil", "ig", "platelet", "ig", "monocyte", "eosinophil"]
    assert dataset.load(0).shape == (28, 28, 3)
    assert len(load_dataset(path, split="test")) == 2


def test_plain_npz_with_grayscale_float_images(tmp_path) -> None:
    path = tmp_path / "plain.npz"
    np.savez(path, images=np.random.rand(3, 16, 16).astype(np.float32), labels=np.array(["LYMPHOCYTE", "ig", "ig"]))
    dataset = load_dataset(path)
    assert dataset.classes == ["ig", "lymphocyte"]
    image = dataset.load(0)
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8


def test_csv_manifest_resolves_relative_paths(tmp_path) -> None:
    Image.fromarray(synthetic_cell(32)).save(tmp_path / "a.png")
    with (tmp_path / "m.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([["path", "label"], ["a.png", "Monocytes"], ["gone.png", "ig"]])
    dataset = load_dataset(tmp_path / "m.csv")
    assert dataset.label_names == ["monocyte"]
    assert dataset.unreadable[0]["reason"] == "listed in manifest but missing"


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "no such file or folder"),
    (lambda p: p, "no class subfolders"),
    (lambda p: (np.savez(p / "x.npz", foo=np.zeros(3)), p / "x.npz")[1], "npz needs"),
    (lambda p: ((p / "x.txt").write_text("?"), p / "x.txt")[1], "unknown dataset format"),
])
def test_bad_dataset_paths_raise_clear_errors(tmp_path, make, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_dataset(make(tmp_path))


def test_fingerprint_changes_with_labels(tmp_path) -> None:
    write_class_folders(tmp_path / "a", ["ig", "monocyte"], per_class=2)
    first = load_dataset(tmp_path / "a").fingerprint()
    (tmp_path / "a" / "ig" / "ig_0.png").rename(tmp_path / "a" / "monocyte" / "ig_0.png")
    assert load_dataset(tmp_path / "a").fingerprint() != first


def test_expand_image_paths_recurses_and_reports_missing(tmp_path) -> None:
    write_class_folders(tmp_path / "d", ["ig"], per_class=2)
    files, missing = expand_image_paths([tmp_path / "d", tmp_path / "nope.png"])
    assert len(files) == 2 and missing[0]["path"].endswith("nope.png")
    assert len(CANONICAL_CLASSES) == 8


def test_equal_quotas_take_the_same_from_every_class_until_one_runs_out() -> None:
    from bloodcell_core.data.sampling import stratified_sample

    labels = np.array([0] * 40 + [1] * 15 + [2] * 3)
    chosen = stratified_sample(labels, 12, seed=2, quotas="equal")
    assert np.bincount(labels[chosen], minlength=3).tolist() == [5, 4, 3]  # class 2 has 3; the spare goes in order
    assert (chosen == np.sort(chosen)).all() and len(set(chosen.tolist())) == 12
    assert np.bincount(labels[stratified_sample(labels, 9, 0, quotas="equal")]).tolist() == [3, 3, 3]
