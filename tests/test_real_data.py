"""The shipped model on real PBC images from ../shared (skipped only where that folder is missing)."""
from __future__ import annotations

import numpy as np
import pytest

from bloodcell_core.data.datasets import load_dataset
from bloodcell_core.paths import DEFAULT_MODEL_DIR, SHARED_DEV_DATA

pytestmark = pytest.mark.skipif(not SHARED_DEV_DATA.exists(),
                                reason="../shared/data/pbc-dev not present (real-data test)")
PER_CLASS = 50  # 8 classes x 50 = 400 fixed images


@pytest.fixture(scope="module")
def predictor():
    from bloodcell_core.inference.predictor import Predictor
    return Predictor.load(DEFAULT_MODEL_DIR)


@pytest.fixture(scope="module")
def fixed_sample(predictor):
    """50 images per class, taken in sorted order from the model's held-out validation items."""
    from bloodcell_core.data.subsets import validation_indices

    dataset = load_dataset(SHARED_DEV_DATA)
    held_out = set(validation_indices(dataset, predictor.card.validation_items).tolist())
    chosen = []
    for c in range(len(dataset.classes)):
        members = [i for i in np.flatnonzero(dataset.labels == c) if i in held_out]
        assert len(members) >= PER_CLASS, "the card's held-out images must be found (never score training images)"
        chosen += members[:PER_CLASS]
    return dataset.subset(chosen)


def _accuracy(predictor, dataset, transform=lambda image, i: image) -> float:
    images = [transform(dataset.load(i), i) for i in range(len(dataset))]
    predicted = predictor.predict_proba(images).argmax(axis=1)
    expected = [predictor.classes.index(name) for name in dataset.label_names]
    return float((predicted == np.array(expected)).mean())


def test_shipped_model_accuracy_on_fixed_dev_sample(predictor, fixed_sample) -> None:
    """Equal images per class: close to the card's held-out balanced accuracy (a regression guard)."""
    assert len(fixed_sample) == 400
    assert _accuracy(predictor, fixed_sample) >= predictor.card.validation["balanced_accuracy"] - 0.02


def test_shipped_model_on_zoomed_out_off_centre_cells(predictor, fixed_sample) -> None:
    from bloodcell_core.robustness.shifts import apply_shift
    accuracy = _accuracy(predictor, fixed_sample, lambda image, i: apply_shift(image, "zoom_out_offcentre", i))
    assert accuracy >= 0.90


def _as_full_size_pbc(image: np.ndarray, index: int) -> np.ndarray:
    """The shared 192 px copy back at the full PBC dataset's size (360 x 363) and JPEG, as it ships."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).resize((360, 363), Image.BICUBIC).save(buffer, "JPEG", quality=95)
    return np.asarray(Image.open(buffer).convert("RGB"))


def test_shipped_model_reads_full_size_pbc_images_as_the_shared_copies(predictor, fixed_sample) -> None:
    """Other PBC images come at 360 x 363 px, not the 192 px of ../shared: the nucleus-relative crop
    must make the source's size irrelevant (all 1,932 held-out images: 96.6% shared, 96.8% full size)."""
    shared = _accuracy(predictor, fixed_sample)
    assert abs(_accuracy(predictor, fixed_sample, _as_full_size_pbc) - shared) <= 0.015
