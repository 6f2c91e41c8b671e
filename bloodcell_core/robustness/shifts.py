"""Synthetic domain shifts (issue 7): what images from another lab or scanner look like.

Each shift is ``fn(image: RGB uint8, seed: int) -> RGB uint8``, deterministic for a seed:

* ``zoom_out_offcentre`` -- a BCCD-style frame: the cell shrunk to 0.4-0.6 of a 192-px
  PBC frame, pasted off-centre on a 320x240 canvas of its own textured background, the
  canvas rotated with black corners.  Output is 240x320 whatever the input size.
* ``zoom_in`` -- a 1.6-2x centre crop resized back to the input size (a frame filled by the cell).
* ``yellow_background_blur`` -- bright, low-saturation background tinted toward yellow
  (240, 220, 120), then a Gaussian blur of sigma 2 (a yellowish, out-of-focus scanner).
* ``stain_shift`` -- haematoxylin / eosin / DAB optical densities each rescaled by a random
  factor in [0.7, 1.3] (``skimage.color.rgb2hed`` / ``hed2rgb``): a different staining protocol.
* ``jpeg_lowres`` -- downscaled to 64 px on the longer side (smaller images are kept), JPEG quality 30, then
  upscaled back to the input size, so the output keeps the input's shape (the model
  resizes to its own input anyway; only the lost detail matters).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import hed2rgb, rgb2hed, rgb2hsv

from bloodcell_core.errors import BloodcellError
from bloodcell_core.robustness.corruptions import jpeg_round_trip

Shift = Callable[[np.ndarray, int], np.ndarray]

CANVAS_SIZE = (320, 240)  # (width, height) of the zoom-out frame
PBC_SIDE = 192  # the cell is scaled relative to a 192-px PBC frame, whatever the input size
ZOOM_OUT_SCALE = (0.4, 0.6)
MAX_ROTATION_DEG = 45.0
ZOOM_IN_FACTOR = (1.6, 2.0)
YELLOW = np.array([240.0, 220.0, 120.0])
YELLOW_STRENGTH = (0.5, 0.7)  # blend share toward YELLOW on background pixels
BLUR_SIGMA = 2.0
HED_FACTOR = (0.7, 1.3)
LOWRES_SIDE = 64
LOWRES_JPEG_QUALITY = 30


def _resize(image: np.ndarray, width: int, height: int, resample=Image.BILINEAR) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((max(1, width), max(1, height)), resample))


def border_colour(image: np.ndarray) -> np.ndarray:
    """The slide background colour: median of the brightest quarter of the outermost pixel
    ring (in a cell-centred crop the border is background and red cells; the red cells are darker)."""
    ring = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]).astype(np.float64)
    brightness = ring.sum(axis=1)
    return np.median(ring[brightness >= np.percentile(brightness, 75)], axis=0)


def _textured_background(colour: np.ndarray, width: int, height: int,
                         rng: np.random.Generator) -> np.ndarray:
    """A flat ``colour`` field with faint smooth texture (like an empty slide region)."""
    noise = ndimage.gaussian_filter(rng.standard_normal((height, width, 3)), sigma=(2, 2, 0))
    noise *= 3.0 / (noise.std() + 1e-9)
    return np.clip(colour + noise, 0, 255)


def _feather_mask(height: int, width: int, ramp: int) -> np.ndarray:
    """1 inside, ramping to 0 over ``ramp`` pixels at the edges: pastes without a hard seam."""
    rows = np.minimum(np.arange(height), np.arange(height)[::-1]) + 1
    cols = np.minimum(np.arange(width), np.arange(width)[::-1]) + 1
    return np.clip(np.minimum.outer(rows, cols) / max(1, ramp), 0, 1)[..., None]


def _rotated_inside(corners: np.ndarray, angle_deg: float, width: int, height: int) -> bool:
    """Whether ``corners`` (x, y) stay inside the canvas after rotating it about its centre."""
    theta = np.deg2rad(angle_deg)
    centre = np.array([width / 2, height / 2])
    # PIL rotates counter-clockwise on screen (y down), i.e. by -theta in these coordinates.
    rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    moved = (corners - centre) @ rotation.T + centre
    return bool(np.all((moved >= 1) & (moved <= [width - 1, height - 1])))


def zoom_out_offcentre(image: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    width, height = CANVAS_SIZE
    side_scale = rng.uniform(*ZOOM_OUT_SCALE) * PBC_SIDE / max(image.shape[:2])
    cell = _resize(image, round(image.shape[1] * side_scale), round(image.shape[0] * side_scale))
    cell_h, cell_w = cell.shape[:2]
    angle = rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)
    canvas = _textured_background(border_colour(image), width, height, rng)
    # Off-centre: the cell centre at least a quarter of the free room away from the canvas
    # centre, and the whole cell still inside the frame after rotation.
    placed = None
    for _ in range(200):
        left = int(rng.integers(0, width - cell_w + 1))
        top = int(rng.integers(0, height - cell_h + 1))
        offset = np.hypot(left + cell_w / 2 - width / 2, top + cell_h / 2 - height / 2)
        corners = np.array([[left, top], [left + cell_w, top], [left, top + cell_h],
                            [left + cell_w, top + cell_h]], dtype=float)
        if offset >= 0.25 * (height - cell_h) and _rotated_inside(corners, angle, width, height):
            placed = (left, top)
            break
    left, top = placed or ((width - cell_w) // 2, (height - cell_h) // 2)
    mask = _feather_mask(cell_h, cell_w, ramp=max(2, cell_h // 16))
    region = canvas[top:top + cell_h, left:left + cell_w]
    canvas[top:top + cell_h, left:left + cell_w] = mask * cell + (1 - mask) * region
    rotated = Image.fromarray(np.rint(canvas).astype(np.uint8)).rotate(
        angle, resample=Image.BILINEAR, expand=False, fillcolor=(0, 0, 0))
    return np.asarray(rotated)


def zoom_in(image: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    factor = rng.uniform(*ZOOM_IN_FACTOR)
    height, width = image.shape[:2]
    crop_h, crop_w = max(1, round(height / factor)), max(1, round(width / factor))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    crop = image[top:top + crop_h, left:left + crop_w]
    return _resize(np.ascontiguousarray(crop), width, height, Image.BICUBIC)


def background_mask(image: np.ndarray) -> np.ndarray:
    """Soft 0..1 mask of bright, low-saturation pixels (slide background, pale red cells).

    Thresholds are relative to the image's own border colour, so pink-, grey- or
    blue-tinted backgrounds all qualify while the stained cell does not.
    """
    hsv = rgb2hsv(image)
    border = rgb2hsv(border_colour(image).reshape(1, 1, 3) / 255.0)[0, 0]
    bright = hsv[..., 2] >= min(0.75, border[2] - 0.12)
    pale = hsv[..., 1] <= border[1] + 0.10
    return ndimage.gaussian_filter((bright & pale).astype(np.float64), sigma=1.5)


def yellow_background_blur(image: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    strength = rng.uniform(*YELLOW_STRENGTH)
    weight = background_mask(image)[..., None] * strength
    tinted = image * (1 - weight) + YELLOW * weight
    blurred = ndimage.gaussian_filter(tinted, sigma=(BLUR_SIGMA, BLUR_SIGMA, 0), mode="nearest")
    return np.rint(np.clip(blurred, 0, 255)).astype(np.uint8)


def stain_shift(image: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    factors = rng.uniform(*HED_FACTOR, size=3)
    hed = rgb2hed(image) * factors
    return np.rint(np.clip(hed2rgb(hed), 0, 1) * 255).astype(np.uint8)


def jpeg_lowres(image: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic regardless of ``seed`` (no randomness), kept for the common signature."""
    height, width = image.shape[:2]
    scale = min(1.0, LOWRES_SIDE / max(height, width))
    small = _resize(image, round(width * scale), round(height * scale), Image.BILINEAR)
    compressed = jpeg_round_trip(small, LOWRES_JPEG_QUALITY)
    return _resize(compressed, width, height, Image.BILINEAR)


SHIFTS: dict[str, Shift] = {
    "zoom_out_offcentre": zoom_out_offcentre,
    "zoom_in": zoom_in,
    "yellow_background_blur": yellow_background_blur,
    "stain_shift": stain_shift,
    "jpeg_lowres": jpeg_lowres,
}


def apply_shift(image: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """Validated ``SHIFTS[name](image, seed)``."""
    if name not in SHIFTS:
        raise BloodcellError(f"unknown shift {name!r}; choose from {', '.join(SHIFTS)}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise BloodcellError(f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}")
    if min(image.shape[:2]) < 8:
        raise BloodcellError(f"image too small to shift ({image.shape[1]}x{image.shape[0]} pixels)")
    return np.ascontiguousarray(SHIFTS[name](image, int(seed)), dtype=np.uint8)
