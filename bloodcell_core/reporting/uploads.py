"""Decoding a batch of uploaded files: every file gets a result, bad ones a one-line reason."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from pathlib import PurePath

from bloodcell_core.data.images import IMAGE_EXTENSIONS, content_hash, decode_image
from bloodcell_core.errors import UnreadableImageError

DEFAULT_MAX_UPLOAD_MB = 20
MB = 1024 * 1024  # Streamlit counts server.maxUploadSize in these
# The same file types as the CLI and datasets (one list: data.images.IMAGE_EXTENSIONS).  The page's
# uploader takes any file, so a refused type reaches us and is counted under "Not readable" with
# its reason, instead of being dropped silently in the browser.
UPLOAD_TYPES: tuple[str, ...] = tuple(extension.lstrip(".") for extension in IMAGE_EXTENSIONS)


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


def upload_types_label() -> str:
    """``JPEG, PNG, BMP, TIFF, GIF, WEBP`` for the uploader's label (one spelling per format)."""
    spelled = {"jpg": "JPEG", "jpeg": "JPEG", "tif": "TIFF", "tiff": "TIFF"}
    return ", ".join(dict.fromkeys(spelled.get(t, t.upper()) for t in UPLOAD_TYPES))


def decode_upload(name: str, data: bytes, max_bytes: int | None = None) -> DecodedUpload:
    """Decode one upload (file type, size limit, then :func:`decode_image`'s checks)."""
    size = len(data)
    digest = content_hash(data)
    extension = PurePath(name).suffix.lower().lstrip(".")
    if extension not in UPLOAD_TYPES:
        return DecodedUpload(name, size, digest, error=(
            f"{name}: file type {('.' + extension) if extension else '(none)'} not accepted; "
            f"use {', '.join(UPLOAD_TYPES)}"))
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
