"""Safe decoding: every odd file gives RGB uint8 or a one-line UnreadableImageError."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from bloodcell_core.data.images import content_hash, decode_image, load_image
from bloodcell_core.errors import UnreadableImageError
from tests.helpers_images import synthetic_cell


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a huge size."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


CELL = Image.fromarray(synthetic_cell(64))


@pytest.mark.parametrize("data, message", [
    (b"", "empty file"),
    (_encode(CELL, "JPEG")[:300], "corrupt or truncated"),
    (b"hello, this is text", "not an image"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "not an image"),
    (_bomb_png(50_000, 50_000), "too large"),
    (_bomb_png(10_000, 10_000), "too large"),
    (_encode(Image.new("RGB", (1, 1)), "PNG"), "too small"),
])
def test_bad_files_raise_one_line_errors(data: bytes, message: str) -> None:
    with pytest.raises(UnreadableImageError) as error:
        decode_image(data, "upload.png")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("image, fmt", [
    (CELL.convert("L"), "PNG"),
    (CELL.convert("RGBA"), "PNG"),
    (CELL.convert("CMYK"), "JPEG"),
    (CELL.convert("P"), "GIF"),
    (CELL, "BMP"),
    (CELL, "TIFF"),
])
def test_modes_convert_to_rgb(image: Image.Image, fmt: str) -> None:
    decoded = decode_image(_encode(image, fmt))
    assert decoded.shape == (64, 64, 3) and decoded.dtype == np.uint8


def test_sixteen_bit_tiff_scales_to_8_bit() -> None:
    ramp = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    decoded = decode_image(_encode(Image.fromarray(ramp), "TIFF"))
    assert decoded.shape == (64, 64, 3)
    assert decoded.max() > 200 and decoded.min() < 10


def test_rgba_transparent_becomes_white() -> None:
    clear = Image.new("RGBA", (16, 16), (10, 20, 30, 0))
    assert (decode_image(_encode(clear, "PNG")) == 255).all()


def test_animated_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((200, 0, 0), (0, 200, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    decoded = decode_image(buffer.getvalue())
    assert decoded[0, 0, 0] > decoded[0, 0, 1]


def test_exif_orientation_is_applied() -> None:
    wide = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    decoded = decode_image(_encode(wide, "JPEG", exif=exif.tobytes()))
    assert decoded.shape[:2] == (40, 20)


def test_load_image_from_path_and_missing(tmp_path) -> None:
    path = tmp_path / "cell.png"
    CELL.save(path)
    assert load_image(path).shape == (64, 64, 3)
    with pytest.raises(UnreadableImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    assert content_hash(path.read_bytes()) == content_hash(path.read_bytes())
