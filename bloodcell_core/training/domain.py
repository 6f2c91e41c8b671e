"""Random scanner/lab shifts applied to the *raw* image, before localisation.

The model never sees raw images, only cell crops. To learn what the crop step makes
of a foreign image (a small off-centre cell on a big rotated frame, a frame-filling
zoom, a yellow soft-focus background, another stain, a low-resolution JPEG), we shift
the raw image at random and then run the same localise-and-crop as serving does.
Ranges are deliberately wider than any single benchmark shift.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter
from skimage.color import hed2rgb, rgb2hed

from bloodcell_core.preprocess.localise import background_colour


def _zoom_out_on_canvas(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    scale = rng.uniform(0.3, 0.8)
    canvas_w, canvas_h = int(rng.integers(220, 420)), int(rng.integers(170, 330))
    small = Image.fromarray(image).resize((max(8, int(width * scale)), max(8, int(height * scale))),
                                          Image.BILINEAR)
    bg = np.array(background_colour(image), dtype=np.float32)
    noise = rng.normal(0, 4, (canvas_h, canvas_w, 3))
    canvas = Image.fromarray(np.clip(bg + noise, 0, 255).astype(np.uint8))
    x = int(rng.integers(0, max(1, canvas_w - small.width)))
    y = int(rng.integers(0, max(1, canvas_h - small.height)))
    canvas.paste(small, (x, y))
    corner = (0, 0, 0) if rng.random() < 0.6 else (255, 255, 255)
    return np.asarray(canvas.rotate(float(rng.uniform(0, 360)), Image.BILINEAR, fillcolor=corner))


def _zoom_in(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    zoom = rng.uniform(1.3, 2.2)
    crop_w, crop_h = int(width / zoom), int(height / zoom)
    left = (width - crop_w) // 2 + int(rng.integers(-crop_w // 8, crop_w // 8 + 1))
    top = (height - crop_h) // 2 + int(rng.integers(-crop_h // 8, crop_h // 8 + 1))
    left, top = int(np.clip(left, 0, width - crop_w)), int(np.clip(top, 0, height - crop_h))
    crop = Image.fromarray(image).crop((left, top, left + crop_w, top + crop_h))
    return np.asarray(crop.resize((width, height), Image.BICUBIC))


def _tint_background(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    tints = [(245, 225, 120), (235, 235, 235), (210, 220, 245), (250, 200, 210), (230, 215, 160)]
    tint = np.array(tints[int(rng.integers(len(tints)))], dtype=np.float32)
    pixels = image.astype(np.float32)
    brightness = pixels.mean(axis=2, keepdims=True) / 255.0
    weight = np.clip((brightness - 0.55) / 0.3, 0, 1) * rng.uniform(0.4, 0.9)
    return np.clip(pixels * (1 - weight) + tint * weight, 0, 255).astype(np.uint8)


def _stain_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hed = rgb2hed(image)
    hed = hed * rng.uniform(0.65, 1.35, size=3) + rng.uniform(-0.03, 0.03, size=3)
    return (np.clip(hed2rgb(hed), 0, 1) * 255).astype(np.uint8)


def _blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    radius = rng.uniform(0.5, 2.8)
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


def _low_res_jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = int(rng.integers(48, 110))
    small = Image.fromarray(image).resize((side, side), Image.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=int(rng.integers(20, 70)))
    return np.asarray(Image.open(buffer).convert("RGB"))


def _hue_gamma(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hsv = np.asarray(Image.fromarray(image).convert("HSV")).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + int(rng.integers(-18, 19))) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.6, 1.5), 0, 255)
    rgb = np.asarray(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")) / 255.0
    return (np.clip(rgb ** rng.uniform(0.7, 1.4), 0, 1) * 255).astype(np.uint8)


# (shift, probability) in the order they are applied: colour first, then geometry, then capture.
DOMAIN_SHIFTS = (
    (_stain_jitter, 0.45), (_hue_gamma, 0.35), (_tint_background, 0.3),
    (_zoom_in, 0.25), (_zoom_out_on_canvas, 0.3), (_blur, 0.3), (_low_res_jpeg, 0.2),
)


def random_domain_shift(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply a random subset (at least one) of the shifts above."""
    chosen = [fn for fn, p in DOMAIN_SHIFTS if rng.random() < p]
    if not chosen:
        chosen = [DOMAIN_SHIFTS[int(rng.integers(len(DOMAIN_SHIFTS)))][0]]
    # zoom in and zoom out exclude each other
    if _zoom_in in chosen and _zoom_out_on_canvas in chosen:
        chosen.remove(_zoom_in if rng.random() < 0.5 else _zoom_out_on_canvas)
    for fn in chosen:
        image = fn(image, rng)
    return image
