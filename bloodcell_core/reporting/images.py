"""Pictures the Classify page shows: the crop box on the upload, the explained crop."""
from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from bloodcell_core.explain.crop import as_crop, explained_crop

__all__ = ["BOX_COLOUR", "as_crop", "draw_crop_box", "explained_crop", "model_crop"]  # explained_crop: explain.crop's

BOX_COLOUR = (255, 140, 0)


def draw_crop_box(image: np.ndarray, box: tuple[int, int, int, int] | None,
                  colour: tuple[int, int, int] = BOX_COLOUR, width: int | None = None) -> np.ndarray:
    """A copy of the RGB ``image`` with the model's crop (left, top, right, bottom) outlined.

    The box may extend past the image (a cell at the edge is padded); it is clipped for drawing.
    """
    canvas = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    if box is None:
        return np.asarray(canvas)
    height, width_px = image.shape[:2]
    left, top, right, bottom = (int(v) for v in box)
    left, top = max(0, left), max(0, top)
    right, bottom = min(width_px - 1, right - 1), min(height - 1, bottom - 1)
    line = width if width is not None else max(2, round(min(height, width_px) / 100))
    if right > left and bottom > top:
        ImageDraw.Draw(canvas).rectangle((left, top, right, bottom), outline=colour, width=line)
    return np.asarray(canvas)


def model_crop(predictor: Any, image: np.ndarray) -> np.ndarray:
    """The crop the model saw of ``image`` (localised, stain-normalised as served), RGB uint8."""
    return as_crop(predictor.prepare(image)[0])
