"""Heatmap colouring and blending onto the cell image (numpy + PIL, plotly's colour scales)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import plotly.colors
from PIL import Image

from bloodcell_core.explain.errors import ExplanationError

DEFAULT_COLORMAP = "Turbo"
DEFAULT_ALPHA = 0.45


@lru_cache(maxsize=8)
def colormap_lut(name: str = DEFAULT_COLORMAP) -> np.ndarray:
    """(256, 3) uint8 lookup table sampled from a plotly sequential colour scale."""
    scale = getattr(plotly.colors.sequential, name, None)
    if not isinstance(scale, list):
        raise ExplanationError(f"unknown colour map {name!r}")
    samples = plotly.colors.sample_colorscale(scale, list(np.linspace(0.0, 1.0, 256)),
                                              colortype="tuple")
    lut = np.round(np.asarray(samples, dtype=np.float64) * 255.0).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def _checked_heatmap(heatmap: np.ndarray) -> np.ndarray:
    values = np.asarray(heatmap, dtype=np.float32)
    if values.ndim != 2 or values.size == 0:
        raise ExplanationError(f"heatmap must be a 2-D array, got shape {values.shape}")
    return np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)


def heatmap_to_rgb(heatmap: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """(h, w) values in [0, 1] -> (h, w, 3) uint8 RGB; values outside are clipped."""
    levels = np.round(_checked_heatmap(heatmap) * 255.0).astype(np.intp)
    return colormap_lut(colormap)[levels]


def resize_heatmap(heatmap: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a [0, 1] heatmap to (height, width)."""
    values = _checked_heatmap(heatmap)
    if values.shape == (height, width):
        return values
    resized = Image.fromarray(values, mode="F").resize((width, height), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def overlay(image_rgb: np.ndarray, heatmap: np.ndarray, alpha: float = DEFAULT_ALPHA,
            colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """Blend the coloured heatmap onto an RGB uint8 image: (1 - alpha) * image + alpha * colour.

    The heatmap is resized to the image, so a model-input-sized map can go straight onto
    the crop it was computed from.  alpha = 0 gives back the image unchanged.
    """
    image = np.asarray(image_rgb)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ExplanationError(f"image must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ExplanationError(f"alpha must be between 0 and 1, got {alpha}")
    colours = heatmap_to_rgb(resize_heatmap(heatmap, image.shape[0], image.shape[1]), colormap)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours.astype(np.float32)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)
