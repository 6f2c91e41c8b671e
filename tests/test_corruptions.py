"""MedMNIST-C blood corruptions and Gaussian noise: shape, determinism, monotone severity."""
from __future__ import annotations

import numpy as np
import pytest

from bloodcell_core.errors import BloodcellError
from bloodcell_core.robustness.corruptions import (BLOOD_SEVERITY_PARAMS, CORRUPTIONS, GAUSSIAN_SIGMAS, corrupt,
                                                   defocus_kernel, gaussian_noise, motion_kernel,
                                                   random_corruption)
from tests.helpers_images import synthetic_cell

MEDMNIST_C_BLOOD = ("pixelate", "jpeg_compression", "defocus_blur", "motion_blur", "brightness_up",
                    "brightness_down", "contrast_up", "contrast_down", "saturate", "stain_deposit", "bubble")


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).mean())


def test_registry_is_the_medmnist_c_blood_suite():
    assert tuple(CORRUPTIONS) == MEDMNIST_C_BLOOD
    assert set(BLOOD_SEVERITY_PARAMS) == set(MEDMNIST_C_BLOOD)
    assert all(len(params) == 5 for params in BLOOD_SEVERITY_PARAMS.values())
    assert BLOOD_SEVERITY_PARAMS["jpeg_compression"] == (50, 30, 15, 10, 7)
    assert BLOOD_SEVERITY_PARAMS["bubble"][-1] == (15, 12)


@pytest.mark.parametrize("name", MEDMNIST_C_BLOOD)
def test_corruption_changes_image_keeps_shape_and_grows_with_severity(name):
    image = synthetic_cell(128)
    outputs = [corrupt(image, name, severity, seed=7) for severity in range(1, 6)]
    for out in outputs:
        assert out.shape == image.shape and out.dtype == np.uint8
        assert not np.array_equal(out, image)
    distances = [distance(out, image) for out in outputs]
    assert all(later >= earlier - 1e-9 for earlier, later in zip(distances, distances[1:])), distances
    assert distances[-1] > distances[0], distances


@pytest.mark.parametrize("name", MEDMNIST_C_BLOOD)
def test_corruption_is_deterministic_for_a_seed(name):
    image = synthetic_cell(96, seed=1)
    np.testing.assert_array_equal(corrupt(image, name, 3, seed=5), corrupt(image, name, 3, seed=5))


@pytest.mark.parametrize("name", ["motion_blur", "stain_deposit", "bubble"])
def test_random_corruptions_depend_on_the_seed(name):
    image = synthetic_cell(128)
    assert not np.array_equal(corrupt(image, name, 5, seed=1), corrupt(image, name, 5, seed=2))


@pytest.mark.parametrize("side", [28, 64, 400])
def test_every_corruption_works_at_any_size(side):
    image = synthetic_cell(side)
    rectangular = np.ascontiguousarray(synthetic_cell(side)[:, : max(8, side * 3 // 4)])
    for name in CORRUPTIONS:
        for source in (image, rectangular):
            out = corrupt(source, name, 5, seed=0)
            assert out.shape == source.shape and out.dtype == np.uint8


def test_corruptions_go_the_expected_way():
    image = synthetic_cell(128)
    assert np.all(corrupt(image, "stain_deposit", 5) <= image)  # ink only darkens
    assert np.all(corrupt(image, "bubble", 5) >= image)  # bubbles are translucent white
    assert corrupt(image, "brightness_up", 3).mean() > image.mean() > corrupt(image, "brightness_down", 3).mean()
    assert corrupt(image, "contrast_down", 5).std() < image.std() < corrupt(image, "contrast_up", 5).std()
    # blurs remove high-frequency texture
    for name in ("defocus_blur", "motion_blur", "pixelate"):
        assert np.abs(np.diff(corrupt(image, name, 5).astype(float), axis=1)).mean() < \
            np.abs(np.diff(image.astype(float), axis=1)).mean()


def test_blur_kernels_follow_the_reference_definitions():
    disk = defocus_kernel(3, 0.1)
    assert disk.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(disk, disk[::-1, ::-1])
    line = motion_kernel(3, 3, angle_deg=0.0)
    half = line.shape[0] // 2
    assert line.sum() == pytest.approx(1.0)
    assert np.count_nonzero(line) == 7  # ImageMagick: 2 * ceil(radius) + 1 taps
    assert np.count_nonzero(line[half]) == 7 and line[half, :half].sum() == 0  # one-sided, horizontal
    assert np.all(np.diff(line[half, half:]) < 0)  # Gaussian falloff along the trail


def test_gaussian_noise_grows_with_sigma_and_is_deterministic():
    image = synthetic_cell(96)
    distances = [distance(gaussian_noise(image, sigma, seed=3), image) for sigma in GAUSSIAN_SIGMAS]
    assert all(later > earlier for earlier, later in zip(distances, distances[1:]))
    assert max(GAUSSIAN_SIGMAS) == pytest.approx(0.5)
    np.testing.assert_array_equal(gaussian_noise(image, 0.1, seed=3), gaussian_noise(image, 0.1, seed=3))
    assert not np.array_equal(gaussian_noise(image, 0.1, seed=3), gaussian_noise(image, 0.1, seed=4))


def test_bad_input_raises_bloodcell_error():
    image = synthetic_cell(64)
    with pytest.raises(BloodcellError, match="unknown corruption"):
        corrupt(image, "fog", 1)
    for severity in (0, 6, 2.5, True):
        with pytest.raises(BloodcellError, match="severity"):
            corrupt(image, "pixelate", severity)
    with pytest.raises(BloodcellError, match="RGB uint8"):
        corrupt(image.astype(np.float32), "pixelate", 1)
    with pytest.raises(BloodcellError, match="RGB uint8"):
        corrupt(image[..., 0], "pixelate", 1)
    with pytest.raises(BloodcellError, match="sigma"):
        gaussian_noise(image, -0.1)


def test_random_corruption_augmentation_hook():
    image = synthetic_cell(64)
    assert random_corruption(image, np.random.default_rng(0), probability=0.0) is image
    first = [random_corruption(image, np.random.default_rng(s), probability=1.0) for s in range(8)]
    again = [random_corruption(image, np.random.default_rng(s), probability=1.0) for s in range(8)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
        assert a.shape == image.shape and a.dtype == np.uint8
    assert sum(not np.array_equal(a, image) for a in first) >= 6
    rng = np.random.default_rng(1)
    untouched = sum(random_corruption(image, rng) is image for _ in range(200))
    assert 60 < untouched < 140  # default: half the images stay clean
