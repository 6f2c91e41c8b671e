"""Image corruptions for robustness testing and augmentation (numpy / Pillow / SciPy / scikit-image).

The 11 corruptions and their 5 severities follow the *bloodmnist* entry of MedMNIST-C
(Di Salvo et al. 2024, ``medmnistc/corruptions/registry.py`` in
github.com/francescodisalvo05/medmnistc-api), re-implemented without OpenCV, Wand or torch:

============== ====================================== ===========================================
corruption     MedMNIST-C bloodmnist parameters        how it is applied here
============== ====================================== ===========================================
pixelate       resize factor .6 .5 .4 .3 .25          box down-/up-sampling (as MedMNIST-C)
jpeg_compr.    quality 50 30 15 10 7                  Pillow JPEG round trip (as MedMNIST-C)
defocus_blur   (radius, alias) (2,.01) (3,.1) (4,.1)  aliased disk kernel, 3x3 Gaussian alias
               (5,.1) (6,.1)                          blur (cv2 ``disk`` logic), FFT convolution
motion_blur    (radius, sigma) (3,3) (5,5) (10,5)     ImageMagick MotionBlurImage logic: one-sided
               (10,7) (10,9); angle U(-45, 45)        Gaussian line kernel of 2*ceil(r)+1 taps
brightness_up  factor 1.1 1.2 1.3 1.35 1.4            PIL ImageEnhance.Brightness (as MedMNIST-C)
brightness_dn  factor .9 .8 .7 .6 .5                  PIL ImageEnhance.Brightness
contrast_up    factor 1.1 1.15 1.2 1.25 1.3           PIL ImageEnhance.Contrast (as MedMNIST-C)
contrast_down  factor .9 .8 .7 .6 .5                  PIL ImageEnhance.Contrast
saturate       HSV S += .05 .10 .15 .17 .20           skimage rgb2hsv/hsv2rgb (as MedMNIST-C)
stain_deposit  max marks 1 2 3 3 3                    ink blots multiplied in (1 - ink); see below
bubble         (max radius, max count) (5,10) (7,10)  translucent white discs with a brighter rim,
               (10,10) (12,12) (15,12)                drawn with Pillow (as MedMNIST-C)
============== ====================================== ===========================================

Image size: MedMNIST-C corrupts 224x224 images.  Parameters measured in pixels (blur
radii and sigmas, bubble radii and rim, ink size and margin) are scaled by
``min(H, W) / 224`` so a corruption covers the same share of the field of view at any
resolution -- the same result as corrupting at 224 px and resizing, which is how the
MedMNIST-C 28/64/128 px sets relate to the 224 px one.  At 28-64 px the mildest blurs
therefore become (correctly) sub-pixel and change little.  Factors (pixelate, JPEG,
brightness, contrast, saturation) are size-free and used unchanged.

Derived, not copied: MedMNIST-C's stain deposits are blots sampled from a shipped
``inks.npz`` asset (sizes keyed "3" for severities 1-4 and "4" for severity 5) that
is not available here.  We synthesise ink blots instead: a soft, irregular dark blob
(thresholded smooth noise inside a radial falloff) of 20-36 px at 224 px for
severities 1-4 and 32-52 px for severity 5, peak opacity 0.75-0.95, placed at least 10
px (scaled) from the border, as MedMNIST-C places its inks.

Randomness is *coupled across severities*: for one seed, severity s+1 draws the same
random numbers as severity s (same angle, same positions), only the parameters grow, so
the damage is monotone in severity for one image and one seed.
"""
from __future__ import annotations

import io
import zlib
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance
from scipy import ndimage, signal
from skimage.color import hsv2rgb, rgb2hsv

from bloodcell_core.errors import BloodcellError

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

REFERENCE_SIDE = 224  # MedMNIST-C corrupts 224x224 images; pixel parameters are defined there
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

# Gaussian noise on 0-1 scaled pixels, spanning the 0..0.5 range of the original report.
GAUSSIAN_SIGMAS: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
GAUSSIAN_NOISE = "gaussian_noise"  # its name in benchmark reports, next to the MedMNIST-C corruptions

# MedMNIST-C ``CORRUPTIONS_DS['bloodmnist']`` severity parameters (severity 1..5).
BLOOD_SEVERITY_PARAMS: dict[str, tuple] = {
    "pixelate": (0.6, 0.5, 0.40, 0.30, 0.25),
    "jpeg_compression": (50, 30, 15, 10, 7),
    "defocus_blur": ((2, 0.01), (3, 0.1), (4, 0.1), (5, 0.1), (6, 0.1)),
    "motion_blur": ((3, 3), (5, 5), (10, 5), (10, 7), (10, 9)),
    "brightness_up": (1.1, 1.2, 1.3, 1.35, 1.4),
    "brightness_down": (0.9, 0.8, 0.7, 0.6, 0.5),
    "contrast_up": (1.1, 1.15, 1.2, 1.25, 1.3),
    "contrast_down": (0.9, 0.8, 0.7, 0.6, 0.5),
    "saturate": (0.05, 0.10, 0.15, 0.17, 0.20),
    "stain_deposit": (1, 2, 3, 3, 3),
    "bubble": ((5, 10), (7, 10), (10, 10), (12, 12), (15, 12)),
}

# Derived ink-blot sizes (px at 224) for MedMNIST-C's ink sets "3" (severity 1-4) and "4" (5).
INK_SIZE_RANGE = {3: (20.0, 36.0), 4: (32.0, 52.0)}
INK_MARGIN = 10  # px at 224, as in MedMNIST-C
BUBBLE_MIN_RADIUS, BUBBLE_MIN_COUNT, BUBBLE_RIM = 3, 7, 2  # MedMNIST-C Bubble constants
BUBBLE_ALPHA = 100  # inner alpha; the rim uses alpha + 30
MAX_BUBBLES = max(count for _, count in BLOOD_SEVERITY_PARAMS["bubble"])
MAX_MARKS = max(BLOOD_SEVERITY_PARAMS["stain_deposit"])


def _scale(image: np.ndarray) -> float:
    """Pixel-parameter scale for this image: its short side relative to MedMNIST-C's 224."""
    return min(image.shape[:2]) / REFERENCE_SIDE


def _param(name: str, severity: int):
    return BLOOD_SEVERITY_PARAMS[name][severity - 1]


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Clip a 0-255 float array and round to uint8.  (MedMNIST-C truncates with
    ``astype(np.uint8)``, which darkens by half a level on average and turns float
    round-off such as 254.9999 into a visible change; rounding avoids both.)"""
    return np.rint(np.clip(values, 0, 255)).astype(np.uint8)


def _convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate each channel with ``kernel`` (odd square), mirrored borders, via FFT."""
    half = kernel.shape[0] // 2
    padded = np.pad(image.astype(np.float64), ((half, half), (half, half), (0, 0)), mode="reflect")
    flipped = kernel[::-1, ::-1, None]  # correlation = convolution with the flipped kernel
    return signal.fftconvolve(padded, flipped, mode="valid", axes=(0, 1))


# --- digital ---------------------------------------------------------------------------

def pixelate(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    factor = _param("pixelate", severity)
    height, width = image.shape[:2]
    small = Image.fromarray(image).resize((max(1, int(width * factor)), max(1, int(height * factor))),
                                          Image.BOX)
    return np.asarray(small.resize((width, height), Image.BOX))


def jpeg_compression(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return jpeg_round_trip(image, _param("jpeg_compression", severity))


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


# --- blur ------------------------------------------------------------------------------

def _gaussian_weights(size: int, sigma: float) -> np.ndarray:
    """cv2.getGaussianKernel(size, sigma)."""
    offsets = np.arange(size) - (size - 1) / 2
    weights = np.exp(-offsets ** 2 / (2 * sigma ** 2))
    return weights / weights.sum()


def defocus_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """MedMNIST-C / ImageNet-C ``disk``: a normalised aliased disk, lightly Gaussian-blurred."""
    ksize = 3 if radius <= 8 else 5
    half = int(np.ceil(radius)) + ksize // 2
    grid = np.arange(-half, half + 1)
    x, y = np.meshgrid(grid, grid)
    disk = (x ** 2 + y ** 2 <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    weights = _gaussian_weights(ksize, max(alias_blur, 1e-3))
    disk = ndimage.convolve1d(disk, weights, axis=0, mode="mirror")
    return ndimage.convolve1d(disk, weights, axis=1, mode="mirror")


def defocus_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, alias_blur = _param("defocus_blur", severity)
    kernel = defocus_kernel(radius * _scale(image), alias_blur)
    return _to_uint8(_convolve(image, kernel))


def motion_kernel(radius: float, sigma: float, angle_deg: float) -> np.ndarray:
    """ImageMagick ``MotionBlurImage``: 2*ceil(radius)+1 taps along ``angle``, weighted by a
    one-sided Gaussian of ``sigma``, so the blur trails in one direction."""
    taps = 2 * int(np.ceil(radius)) + 1 if radius > 1e-6 else 1
    distances = np.arange(taps)
    weights = np.exp(-distances ** 2 / (2 * max(sigma, 1e-6) ** 2))
    weights /= weights.sum()
    theta = np.deg2rad(angle_deg)
    dx = np.ceil(distances * np.cos(theta) - 0.5).astype(int)
    dy = np.ceil(distances * np.sin(theta) - 0.5).astype(int)
    half = taps - 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1))
    np.add.at(kernel, (half + dy, half + dx), weights)
    return kernel


def motion_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, sigma = _param("motion_blur", severity)
    angle = rng.uniform(-45, 45)
    scale = _scale(image)
    kernel = motion_kernel(radius * scale, sigma * scale, angle)
    half = kernel.shape[0] // 2
    # Few non-zero taps: summing shifted copies is much cheaper than a dense convolution.
    padded = np.pad(image.astype(np.float64), ((half, half), (half, half), (0, 0)), mode="edge")
    height, width = image.shape[:2]
    out = np.zeros(image.shape, dtype=np.float64)
    for row, col in zip(*np.nonzero(kernel)):
        out += kernel[row, col] * padded[row:row + height, col:col + width]
    return _to_uint8(out)


# --- colour ----------------------------------------------------------------------------

def _enhance(image: np.ndarray, enhancer: type, factor: float) -> np.ndarray:
    return np.asarray(enhancer(Image.fromarray(image)).enhance(factor))


def brightness_up(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return _enhance(image, ImageEnhance.Brightness, _param("brightness_up", severity))


def brightness_down(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return _enhance(image, ImageEnhance.Brightness, _param("brightness_down", severity))


def contrast_up(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return _enhance(image, ImageEnhance.Contrast, _param("contrast_up", severity))


def contrast_down(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return _enhance(image, ImageEnhance.Contrast, _param("contrast_down", severity))


def saturate(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    hsv = rgb2hsv(image)
    hsv[..., 1] = np.clip(hsv[..., 1] + _param("saturate", severity), 0, 1)
    return _to_uint8(np.clip(hsv2rgb(hsv), 0, 1) * 255)


# --- microscopy-specific ---------------------------------------------------------------

def ink_blot(size: int, rng: np.random.Generator) -> np.ndarray:
    """A soft irregular blot, values 0..~0.95 (opacity), shape (size, size)."""
    size = max(3, size)
    coords = (np.arange(size) - (size - 1) / 2) / (size / 2)
    x, y = np.meshgrid(coords, coords)
    stretch = rng.uniform(0.6, 1.0)
    radial = 1.0 - (x ** 2 + (y / stretch) ** 2)
    texture = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma=size / 6)
    texture /= np.abs(texture).max() + 1e-9
    blob = (radial + 0.5 * texture > 0.35).astype(np.float64)
    blob = ndimage.gaussian_filter(blob, sigma=max(0.6, size / 30))
    return np.clip(blob * rng.uniform(0.75, 0.95), 0, 1)


def stain_deposit(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    max_marks = _param("stain_deposit", severity)
    ink_set = max(3, severity - 1)  # MedMNIST-C: inks[str(max(3, severity_index))]
    scale = _scale(image)
    count_draw = rng.uniform()
    # Draw every possible mark's randomness so severities share positions (coupled randomness).
    marks = [(rng.uniform(), rng.uniform(), rng.uniform(), rng.integers(2 ** 32)) for _ in range(MAX_MARKS)]
    num_marks = 1 + int(count_draw * max_marks) if max_marks > 1 else max_marks
    height, width = image.shape[:2]
    margin = max(1, round(INK_MARGIN * scale))
    out = image.astype(np.float64)
    low, high = INK_SIZE_RANGE[ink_set]
    for size_draw, x_draw, y_draw, ink_seed in marks[:num_marks]:
        size = round((low + size_draw * (high - low)) * scale)
        size = max(3, min(size, height - 2 * margin, width - 2 * margin))
        ink = ink_blot(size, np.random.default_rng(int(ink_seed)))
        left = margin + int(x_draw * max(0, width - size - 2 * margin))
        top = margin + int(y_draw * max(0, height - size - 2 * margin))
        out[top:top + size, left:left + size] *= (1.0 - ink)[..., None]
    return _to_uint8(out)


def bubble(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    max_radius, max_bubbles = _param("bubble", severity)
    scale = _scale(image)
    height, width = image.shape[:2]
    count_draw = rng.uniform()
    draws = rng.uniform(size=(MAX_BUBBLES, 3))  # radius, x, y for every possible bubble
    num_bubbles = BUBBLE_MIN_COUNT + int(count_draw * (max_bubbles - BUBBLE_MIN_COUNT + 1))
    rim = max(1, round(BUBBLE_RIM * scale))
    overlay = Image.new("RGBA", (width, height), (255, 255, 255, 0))
    draw = ImageDraw.Draw(overlay)
    for radius_draw, x_draw, y_draw in draws[:num_bubbles]:
        radius_px = BUBBLE_MIN_RADIUS + int(radius_draw * (max_radius - BUBBLE_MIN_RADIUS + 1))
        radius = max(1.0, radius_px * scale)
        x = radius + x_draw * max(0.0, width - 2 * radius)
        y = radius + y_draw * max(0.0, height - 2 * radius)
        draw.ellipse((x - radius - rim, y - radius - rim, x + radius + rim, y + radius + rim),
                     fill=(255, 255, 255, BUBBLE_ALPHA + 30))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(255, 255, 255, BUBBLE_ALPHA))
    output = Image.fromarray(image)
    output.paste(overlay, (0, 0), overlay)
    return np.asarray(output)


# --- noise -----------------------------------------------------------------------------

def gaussian_noise(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Additive Gaussian noise of ``sigma`` on 0-1 scaled pixels, clipped, rounded to uint8."""
    image = _check_image(image)
    if sigma < 0:
        raise BloodcellError(f"noise sigma must be >= 0, got {sigma}")
    rng = np.random.default_rng(seed)
    noisy = image / 255.0 + rng.normal(0.0, sigma, size=image.shape)
    return np.rint(np.clip(noisy, 0, 1) * 255).astype(np.uint8)


# One table of corruptions: name -> fn(image, severity 1..5, rng).
CORRUPTIONS: dict[str, Corruption] = {
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
    "defocus_blur": defocus_blur,
    "motion_blur": motion_blur,
    "brightness_up": brightness_up,
    "brightness_down": brightness_down,
    "contrast_up": contrast_up,
    "contrast_down": contrast_down,
    "saturate": saturate,
    "stain_deposit": stain_deposit,
    "bubble": bubble,
}


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise BloodcellError(f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}")
    if min(image.shape[:2]) < 8:
        raise BloodcellError(f"image too small to corrupt ({image.shape[1]}x{image.shape[0]} pixels)")
    return image


def _check_corruption(name: str, severity: int) -> Corruption:
    if name not in CORRUPTIONS:
        raise BloodcellError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise BloodcellError(f"severity must be an integer 1..5, got {severity!r}")
    return CORRUPTIONS[name]


def derived_seed(seed: int, *keys: int | str) -> int:
    """A seed derived from ``seed`` and stable keys (image index, corruption name, ...), so
    every image gets its own randomness, reproducible and independent of processing order."""
    entropy = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(str(key).encode()) for key in keys]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def apply_corruption(image: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Validated ``CORRUPTIONS[name](image, severity, rng)``."""
    function = _check_corruption(name, severity)
    return np.ascontiguousarray(function(_check_image(image), int(severity), rng), dtype=np.uint8)


def corrupt(image: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """Corrupt an RGB uint8 image with MedMNIST-C corruption ``name`` at ``severity`` (1..5).

    Deterministic for a given seed; the output has the input's shape and dtype.
    """
    return apply_corruption(image, name, severity, np.random.default_rng(seed))


def corrupt_item(image: np.ndarray, name: str, level: int, seed: int, index: int) -> np.ndarray:
    """Item ``index`` of a benchmark run with ``seed``, corrupted as the robustness benchmark does.

    ``name`` is a MedMNIST-C corruption (``level`` = severity 1..5) or ``"gaussian_noise"``
    (``level`` = 1-based position in :data:`GAUSSIAN_SIGMAS`); level 0 returns ``image`` itself.
    The randomness comes from (seed, index, name) only, so severities of one corruption share
    it and the Robustness gallery shows exactly the image the benchmark scored.
    """
    if level == 0:
        return image
    item_seed = derived_seed(seed, index, name)
    if name == GAUSSIAN_NOISE:
        return gaussian_noise(image, GAUSSIAN_SIGMAS[level - 1], seed=item_seed)
    return apply_corruption(image, name, level, np.random.default_rng(item_seed))


def random_corruption(image: np.ndarray, rng: np.random.Generator, probability: float = 0.5) -> np.ndarray:
    """Training augmentation: with ``probability`` apply a random corruption at a random
    severity 1..5, otherwise return the image unchanged (MedMNIST-C-style augmentation)."""
    if rng.uniform() >= probability:
        return image
    name = list(CORRUPTIONS)[int(rng.integers(len(CORRUPTIONS)))]
    severity = int(rng.integers(1, 6))
    return apply_corruption(image, name, severity, rng)
