"""Cell localisation on generated smears: finds a stained disc wherever and however big it is."""
from __future__ import annotations

import numpy as np
import pytest

from bloodcell_core.preprocess.localise import crop_to_box, localise, localise_and_crop
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
