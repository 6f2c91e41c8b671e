"""Decoding one image file (or upload) to an RGB uint8 array, safely.

Every path from a file to the model goes through :func:`load_image`, so training,
evaluation, the CLI and the app see exactly the same pixels.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bloodcell_core.errors import UnreadableImageError

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp")
MAX_PIXELS = 40_000_000  # larger declared sizes are refused before decoding (decompression bombs)
MIN_SIDE = 8  # a 1x1 or 4x4 "image" carries no cell
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
_TOO_LARGE = f"image too large, refused before decoding (over {MAX_PIXELS:,} pixels; decompression-bomb guard)"


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def content_hash(data: bytes) -> str:
    """SHA-256 of the file bytes: the identity of an image in the review store."""
    return hashlib.sha256(data).hexdigest()


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (L, LA, P, RGBA, I;16, I, F, CMYK, YCbCr) to RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        high = array.max() if array.size else 1.0
        scale = 65535.0 if high > 255 else 255.0
        array = np.clip(array / scale * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode image bytes to an (H, W, 3) uint8 RGB array, or raise UnreadableImageError.

    EXIF orientation is applied; animated images use their first frame.
    """
    if not data:
        raise UnreadableImageError(f"{name}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise UnreadableImageError(f"{name}: {_TOO_LARGE} (declared {width}x{height})")
            if min(width, height) < MIN_SIDE:
                raise UnreadableImageError(
                    f"{name}: image too small ({width}x{height} pixels; need at least {MIN_SIDE})")
            image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image)
            rgb = _to_rgb(image)
    except UnreadableImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnreadableImageError(f"{name}: {_TOO_LARGE}") from None
    except UnidentifiedImageError:
        raise UnreadableImageError(f"{name}: not an image file (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImageError(f"{name}: corrupt or truncated image ({exc})") from None
    return np.asarray(rgb, dtype=np.uint8)


def read_bytes(path: str | Path) -> bytes:
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UnreadableImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UnreadableImageError(f"{path}: is a folder, not an image") from None
    except OSError as exc:
        raise UnreadableImageError(f"{path}: can't read ({exc.strerror})") from None


def load_image(source: str | Path | bytes | BinaryIO, name: str | None = None) -> np.ndarray:
    """Load a path, raw bytes or a file-like object (e.g. a Streamlit upload) as RGB uint8."""
    if isinstance(source, (str, Path)):
        return decode_image(read_bytes(source), name or str(source))
    if isinstance(source, (bytes, bytearray)):
        return decode_image(bytes(source), name or "image")
    return decode_image(source.read(), name or getattr(source, "name", "upload"))
