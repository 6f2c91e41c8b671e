"""Decoding a batch of uploaded files: every file gets a result, bad ones a one-line reason."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from bloodcell_core.data.images import content_hash, decode_image
from bloodcell_core.errors import UnreadableImageError

DEFAULT_MAX_UPLOAD_MB = 20
MB = 1024 * 1024  # Streamlit counts server.maxUploadSize in these
UPLOAD_TYPES: tuple[str, ...] = ("jpg", "jpeg", "png", "bmp", "tif", "tiff")


@dataclass
class DecodedUpload:
    """One uploaded file: its pixels, or the reason it could not be used."""

    name: str  # as the user's browser sent it: untrusted text, never render as HTML
    size: int
    image_hash: str  # sha256 of the bytes: the image's identity in the review store
    image: np.ndarray | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.image is not None


def decode_upload(name: str, data: bytes, max_bytes: int | None = None) -> DecodedUpload:
    """Decode one upload (size limit, then :func:`decode_image`'s checks)."""
    size = len(data)
    digest = content_hash(data)
    if max_bytes is not None and size > max_bytes:
        return DecodedUpload(name, size, digest, error=(
            f"{name}: file too large ({size / MB:.1f} MB; the limit is {max_bytes / MB:.0f} MB)"))
    try:
        return DecodedUpload(name, size, digest, image=decode_image(data, name))
    except UnreadableImageError as error:
        return DecodedUpload(name, size, digest, error=str(error))


def decode_uploads(files: Iterable[tuple[str, bytes]], max_bytes: int | None = None) -> list[DecodedUpload]:
    """Decode every (name, bytes) pair; a bad file never stops the others."""
    return [decode_upload(name, data, max_bytes) for name, data in files]
