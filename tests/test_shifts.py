"""Synthetic domain shifts: deterministic, change the image, do what their names say."""
from __future__ import annotations

import numpy as np
import pytest

from bloodcell_core.errors import BloodcellError
from bloodcell_core.robustness.shifts import CANVAS_SIZE, SHIFTS, apply_shift, background_mask
from tests.helpers_images import synthetic_cell

EXPECTED_SHIFTS = ("zoom_out_offcentre", "zoom_in", "yellow_background_blur", "stain_shift", "jpeg_lowres")


def test_registry():
    assert tuple(SHIFTS) == EXPECTED_SHIFTS


@pytest.mark.parametrize("name", EXPECTED_SHIFTS)
def test_shift_is_deterministic_and_changes_the_image(name):
    image = synthetic_cell(192)
    first, again = apply_shift(image, name, seed=3), apply_shift(image, name, seed=3)
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert first.shape != image.shape or np.abs(first.astype(float) - image).mean() > 2.0


@pytest.mark.parametrize("name", ["zoom_out_offcentre", "zoom_in", "yellow_background_blur", "stain_shift"])
def test_random_shifts_depend_on_the_seed(name):
    image = synthetic_cell(192)
    assert not np.array_equal(apply_shift(image, name, seed=1), apply_shift(image, name, seed=2))


@pytest.mark.parametrize("side", [28, 64, 400])
def test_shifts_work_at_any_size(side):
    image = synthetic_cell(side)
    for name in SHIFTS:
        out = apply_shift(image, name, seed=0)
        expected = (CANVAS_SIZE[1], CANVAS_SIZE[0], 3) if name == "zoom_out_offcentre" else image.shape
        assert out.shape == expected and out.dtype == np.uint8


def test_zoom_out_shrinks_the_cell_off_centre_with_black_corners():
    image = synthetic_cell(192)
    for seed in range(4):
        out = apply_shift(image, "zoom_out_offcentre", seed=seed)
        width, height = CANVAS_SIZE
        assert out.shape == (height, width, 3)
        corners = [out[0, 0], out[0, -1], out[-1, 0], out[-1, -1]]
        assert sum(int(c.max()) == 0 for c in corners) >= 2  # the rotated canvas leaves black corners
        nucleus = (out[..., 1] < 80) & (out[..., 2] > 100)
        assert nucleus.any()
        rows, cols = np.nonzero(nucleus)
        nucleus_area = nucleus.sum() / (height * width)
        original_area = ((image[..., 1] < 80) & (image[..., 2] > 100)).mean()
        assert nucleus_area < 0.5 * original_area  # the cell is much smaller in the frame
        centre_offset = np.hypot(cols.mean() - width / 2, rows.mean() - height / 2)
        assert centre_offset > 10  # and not in the middle


def test_zoom_in_enlarges_the_centre():
    image = synthetic_cell(192)
    out = apply_shift(image, "zoom_in", seed=0)
    nucleus_share = lambda img: ((img[..., 1] < 80) & (img[..., 2] > 100)).mean()  # noqa: E731
    assert nucleus_share(out) > 2.0 * nucleus_share(image)


def test_yellow_background_tints_background_and_blurs():
    image = synthetic_cell(192)
    out = apply_shift(image, "yellow_background_blur", seed=0).astype(float)
    background = background_mask(image) > 0.9
    assert background.mean() > 0.3
    assert out[..., 2][background].mean() < image[..., 2][background].mean() - 20  # less blue: yellower
    nucleus = (image[..., 1] < 80) & (image[..., 2] > 100)
    assert not (background & nucleus).any()  # the stained cell is not background
    assert np.abs(np.diff(out, axis=1)).mean() < np.abs(np.diff(image.astype(float), axis=1)).mean()


def test_jpeg_lowres_loses_detail_but_keeps_the_shape():
    image = synthetic_cell(192)
    out = apply_shift(image, "jpeg_lowres", seed=0)
    assert out.shape == image.shape
    assert np.abs(np.diff(out.astype(float), axis=1)).mean() < np.abs(np.diff(image.astype(float), axis=1)).mean()


def test_bad_input():
    with pytest.raises(BloodcellError, match="unknown shift"):
        apply_shift(synthetic_cell(64), "snow")
    with pytest.raises(BloodcellError, match="RGB uint8"):
        apply_shift(np.zeros((64, 64), np.uint8), "zoom_in")
