"""User-facing errors: one clear line, no traceback."""
from __future__ import annotations


class BloodcellError(Exception):
    """An error caused by input the user can fix (a bad path, a corrupt file, ...).

    The CLI prints ``error: <message>`` and exits non-zero; the app shows the
    message and keeps serving.
    """


class UnreadableImageError(BloodcellError):
    """An image file that can't be decoded (or is refused for safety)."""


class ModelLoadError(BloodcellError):
    """A model file or card that is missing, corrupt or inconsistent."""


class DatasetError(BloodcellError):
    """A dataset path that is missing, empty or not in a known format."""


def one_line(error: BaseException, limit: int | None = None) -> str:
    """The first line of an error message (BloodcellErrors are one line already), at most
    ``limit`` characters; the exception's type name when the message is empty."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__
