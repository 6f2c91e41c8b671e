"""Find the cell an image is about and crop around it at a standard scale.

Scanners differ in zoom and framing: CellaVision crops centre one cell at a fixed
magnification, other labs fill the frame with it, and BCCD-style frames show a small
cell off-centre.  We find the stained nucleus (dark, purple-blue: low green channel
plus purple chroma, which survives stain and background-tint changes), take the
component that is largest and most central, and crop a square around it whose side
is ``CROP_FACTOR`` times the nucleus extent.  ``CROP_FACTOR`` was calibrated so that a
typical PBC dev image maps to roughly its own frame; every image, dev or foreign,
then shows its cell at the same relative size.

Black padding reaching the image's edge (bars where a crop ran past the field, an
eyepiece's dark surround) is painted with the slide background first
(:func:`fill_black_borders`).

When no plausible nucleus is found, the whole image (padded to a square) is used and
``found`` is False, which raises the needs-review flag downstream.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.filters import threshold_multiotsu

ANALYSIS_SIDE = 128  # the search runs on a downscaled copy: fast and insensitive to texture
CROP_FACTOR = 2.5  # crop side / nucleus extent: a dev WBC (nucleus ~65 px of 192) maps to ~160 px, cytoplasm included
MIN_AREA_FRACTION = 0.002  # a nucleus smaller than this share of the frame is noise
MIN_CONTRAST = 40.0  # score gap between nucleus class and background class
PADDING_LEVEL = 16  # a pixel whose every channel is at most this is black padding, not slide
SEAM_WIDTH = 2  # px beyond the black painted too: resampling blends the bar's edge into a dark seam


@dataclass(frozen=True)
class Localisation:
    """Where the cell is. ``box`` is (left, top, right, bottom) in original pixels, square,
    possibly reaching outside the image (the outside is filled with background)."""

    box: tuple[int, int, int, int]
    centre: tuple[float, float]
    extent: float
    found: bool


def stain_score(rgb: np.ndarray) -> np.ndarray:
    """High on stained nuclei: green-channel darkness gated by purple chroma, plus chroma.

    Gating by chroma keeps black rotation corners, dust and grey shadows (dark but not
    purple) out, and a yellow background (negative chroma) scores zero.
    """
    rgb = rgb.astype(np.float32)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    chroma = 0.5 * (red + blue) - green
    return (255.0 - green) * np.clip(chroma / 40.0, 0.0, 1.0) + np.maximum(chroma, 0.0)


def _downscale(image: np.ndarray) -> tuple[np.ndarray, float]:
    height, width = image.shape[:2]
    scale = ANALYSIS_SIDE / max(height, width)
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR)), scale


def _whole_image(height: int, width: int) -> Localisation:
    side = max(height, width)
    left, top = (width - side) // 2, (height - side) // 2
    return Localisation((left, top, left + side, top + side), (width / 2, height / 2), side, False)


def _pick_component(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The component with the best area x centrality, or None if all are too small."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return None
    height, width = mask.shape
    areas = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    centres = np.array(ndimage.center_of_mass(mask, labels, np.arange(1, count + 1)))
    distance = np.hypot((centres[:, 0] - height / 2) / height, (centres[:, 1] - width / 2) / width)
    scores = areas * np.exp(-(distance ** 2) / (2 * 0.3 ** 2))
    best = int(np.argmax(scores))
    if areas[best] < MIN_AREA_FRACTION * height * width:
        return None
    return ndimage.find_objects(labels)[best]


def localise(image: np.ndarray) -> Localisation:
    """Locate the main stained cell of an RGB uint8 image (see module docstring)."""
    height, width = image.shape[:2]
    small, scale = _downscale(image)
    score = ndimage.gaussian_filter(stain_score(small), sigma=1.5)
    try:
        low, high = threshold_multiotsu(score, classes=3)
    except ValueError:  # flat image: fewer than 3 distinct levels
        return _whole_image(height, width)
    if score.max() - np.median(score) < MIN_CONTRAST:
        return _whole_image(height, width)
    # Join lobes of one nucleus (segmented neutrophils) before picking a component.
    mask = ndimage.binary_closing(score > high, structure=np.ones((5, 5)), iterations=1)
    mask = ndimage.binary_fill_holes(mask)
    found = _pick_component(mask)
    if found is None:
        return _whole_image(height, width)
    rows, cols = found
    centre_y = (rows.start + rows.stop) / 2 / scale
    centre_x = (cols.start + cols.stop) / 2 / scale
    extent = max(rows.stop - rows.start, cols.stop - cols.start) / scale
    side = max(CROP_FACTOR * extent, 0.15 * max(height, width), 8.0)
    half = side / 2
    box = (round(centre_x - half), round(centre_y - half), round(centre_x + half), round(centre_y + half))
    return Localisation(box, (centre_x, centre_y), extent, True)


def background_colour(image: np.ndarray) -> tuple[int, int, int]:
    """Median colour of the brightest quarter of pixels: the slide background."""
    flat = image.reshape(-1, 3)[:: max(1, image.shape[0] * image.shape[1] // 4096)]
    brightness = flat.astype(np.int32).sum(axis=1)
    bright = flat[brightness >= np.percentile(brightness, 75)]
    return tuple(int(v) for v in np.median(bright, axis=0))  # type: ignore[return-value]


def _is_black(pixels: np.ndarray) -> np.ndarray:
    return pixels.max(axis=-1) <= PADDING_LEVEL


def _edge_is_black_anywhere(image: np.ndarray) -> bool:
    edges = (image[0], image[-1], image[:, 0], image[:, -1])
    return any(bool(_is_black(edge).any()) for edge in edges)


def fill_black_borders(image: np.ndarray) -> np.ndarray:
    """Paint black regions that reach the image's edge with the slide background.

    Crops cut near the edge of a microscope field are padded with black bars (48 of LISC's
    259 are), photos through an eyepiece have a black surround, and rotated scans have black
    corners. A brightfield slide has no black, so these are not content, but the model never
    saw them in training and they pull its answer (LISC: 17 of the 48 padded cells
    misclassified, 11 once painted; 41 of the 211 others). The ``SEAM_WIDTH`` pixels along
    the black are painted too: where the bar met the image, the source's resampling left a
    seam of grey (every channel 30-100 in LISC) that is still a dark line to the model
    (LISC 79.9% -> 81.1% with it painted). Near-black pixels inside the image that do not
    connect to its edge are left alone. Pixel coordinates are kept, so localisation boxes
    still refer to the original image. An image without black on its edge costs a look at
    its border only.
    """
    if not _edge_is_black_anywhere(image):
        return image
    labels, count = ndimage.label(_is_black(image))
    reaches_edge = np.zeros(count + 1, bool)
    reaches_edge[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    reaches_edge[0] = False  # label 0: not black
    surround = reaches_edge[labels]
    if surround.all():
        return image  # all black: nothing to take a background from
    surround = ndimage.binary_dilation(surround, iterations=SEAM_WIDTH)
    filled = image.copy()
    filled[surround] = background_colour(image)  # the brightest pixels: black does not move it
    return filled


def crop_to_box(image: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Crop ``box`` (may exceed the image; filled with background) and resize to size x size."""
    left, top, right, bottom = box
    height, width = image.shape[:2]
    source = Image.fromarray(image)
    if left >= 0 and top >= 0 and right <= width and bottom <= height:
        return np.asarray(source.resize((size, size), Image.BILINEAR, box=box, reducing_gap=2.0))
    canvas = Image.new("RGB", (right - left, bottom - top), background_colour(image))
    inner = (max(left, 0), max(top, 0), min(right, width), min(bottom, height))
    if inner[0] < inner[2] and inner[1] < inner[3]:
        canvas.paste(source.crop(inner), (inner[0] - left, inner[1] - top))
    return np.asarray(canvas.resize((size, size), Image.BILINEAR, reducing_gap=2.0))


def localise_and_crop(image: np.ndarray, size: int) -> tuple[np.ndarray, Localisation]:
    """The one preprocessing path from decoded image to a size x size cell crop."""
    image = fill_black_borders(image)
    where = localise(image)
    return crop_to_box(image, where.box, size), where
