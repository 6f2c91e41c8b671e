"""Cell localisation on generated smears: finds a stained disc wherever and however big it is."""
from __future__ import annotations

import numpy as np
import pytest

from bloodcell_core.preprocess.localise import (
    PADDING_LEVEL, SEAM_WIDTH, background_colour, crop_to_box, fill_black_borders, localise, localise_and_crop,
)
from tests.helpers_images import synthetic_cell


@pytest.mark.parametrize("seed", range(12))
def test_centre_error_within_ten_percent_of_frame(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(96, 320))
    radius = size * rng.uniform(0.05, 0.2)
    margin = radius * 1.5
    centre = (rng.uniform(margin, size - margin), rng.uniform(margin, size - margin))
    where = localise(synthetic_cell(size, centre=centre, radius=radius, seed=seed))
    assert where.found
    error = np.hypot(where.centre[0] - centre[1], where.centre[1] - centre[0])
    assert error <= 0.10 * size


def test_crop_scales_with_the_cell() -> None:
    small = localise(synthetic_cell(200, radius=15))
    large = localise(synthetic_cell(200, radius=40))
    side = lambda box: box[2] - box[0]  # noqa: E731
    assert side(large.box) > 2 * side(small.box)


@pytest.mark.parametrize("image", [
    np.full((64, 64, 3), 230, np.uint8),  # blank slide
    np.zeros((64, 64, 3), np.uint8),  # black frame
    np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (64, 1, 3)),  # grey ramp
])
def test_no_stained_cell_falls_back_to_whole_image(image: np.ndarray) -> None:
    where = localise(image)
    assert not where.found
    assert where.box == (0, 0, 64, 64)


def test_crop_outside_the_frame_is_filled_with_background() -> None:
    image = synthetic_cell(64)
    crop = crop_to_box(image, (-32, -32, 96, 96), 32)
    assert crop.shape == (32, 32, 3)
    assert crop[0, 0].mean() > 180  # background colour, not black


def test_localise_and_crop_returns_requested_size() -> None:
    crop, where = localise_and_crop(synthetic_cell(150, centre=(40, 100)), 48)
    assert crop.shape == (48, 48, 3) and crop.dtype == np.uint8 and where.found


def _padded(image: np.ndarray, top: int, left: int, bottom: int = 0, right: int = 0) -> np.ndarray:
    """``image`` placed on a black canvas, as a crop cut near a field's edge is."""
    height, width = image.shape[:2]
    canvas = np.zeros((height + top + bottom, width + left + right, 3), np.uint8)
    canvas[top:top + height, left:left + width] = image
    return canvas


def test_black_padding_bars_are_painted_with_the_background() -> None:
    cell = synthetic_cell(120, centre=(30, 60), radius=15)
    padded = _padded(cell, top=40, left=25, right=10)
    filled = fill_black_borders(padded)
    assert filled.shape == padded.shape
    background = np.array(background_colour(cell))
    assert np.abs(filled[:40].astype(int) - background).max() <= 1
    assert np.abs(filled[:, :25].astype(int) - background).max() <= 1
    assert np.abs(filled[:, -10:].astype(int) - background).max() <= 1
    seam = SEAM_WIDTH
    np.testing.assert_array_equal(filled[40 + seam:, 25 + seam:-10 - seam], cell[seam:, seam:-seam])


def test_the_grey_seam_along_a_bar_is_painted_too() -> None:
    """A bar's edge resampled into the image leaves a grey line, not black: paint it with the bar."""
    cell = synthetic_cell(120, centre=(60, 60), radius=15)
    padded = _padded(cell, top=0, left=30)
    padded[:, 30] = 60  # the blended seam: too bright to be padding, far too dark to be slide
    padded[:, 31] = 120
    filled = fill_black_borders(padded)
    background = np.array(background_colour(padded))
    assert np.abs(filled[:, :32].astype(int) - background).max() <= 1
    np.testing.assert_array_equal(filled[:, 30 + SEAM_WIDTH:], padded[:, 30 + SEAM_WIDTH:])


def test_an_eyepiece_surround_is_painted() -> None:
    image = synthetic_cell(160, radius=20)
    rows, cols = np.mgrid[:160, :160]
    outside = np.hypot(rows - 80, cols - 80) > 75
    image[outside] = 0
    filled = fill_black_borders(image)
    assert filled[outside].min() > 150  # slide background, not black
    inside = np.hypot(rows - 80, cols - 80) <= 75 - SEAM_WIDTH - 1
    np.testing.assert_array_equal(filled[inside], image[inside])


def test_padding_does_not_move_the_cell_or_darken_its_crop() -> None:
    cell = synthetic_cell(120, centre=(30, 60), radius=15)
    padded = _padded(cell, top=40, left=25)
    where_padded, where_plain = localise(fill_black_borders(padded)), localise(cell)
    assert where_padded.found
    assert abs(where_padded.centre[0] - 25 - where_plain.centre[0]) <= 2
    assert abs(where_padded.centre[1] - 40 - where_plain.centre[1]) <= 2
    crop, _ = localise_and_crop(padded, 48)
    assert (crop.max(axis=-1) <= PADDING_LEVEL).mean() == 0  # no black left in what the model sees


@pytest.mark.parametrize("image", [
    synthetic_cell(96),  # nothing to fill
    np.zeros((64, 64, 3), np.uint8),  # all black: no background to paint with
])
def test_images_without_black_at_the_edge_are_returned_unchanged(image: np.ndarray) -> None:
    assert fill_black_borders(image) is image


def test_black_inside_the_image_is_kept() -> None:
    image = synthetic_cell(96)
    image[5:20, 5:20] = 0  # dark debris away from the edge
    image[0, 50] = 0  # and one black speck on it, which alone is painted
    filled = fill_black_borders(image)
    np.testing.assert_array_equal(filled[5:20, 5:20], 0)
    assert filled[0, 50].min() > 150
