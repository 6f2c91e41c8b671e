"""Files the project writes for people: one output-path check, one writer, formula-safe CSV.

Every command that writes checks its output path first (:func:`output_file` for a report or
CSV, :func:`output_folder` for a model or benchmark folder), before any slow work, and writes
through :func:`write_text` / :func:`write_csv`.  So ``--out`` naming a folder, a place under a
file, a read-only location, or a disk that fills up mid-write is one ``error: ...`` line and
exit code 2, never a traceback -- for every command alike.

Every CSV the project writes (predictions, review log, ``review-export``, the export manifest,
``predict``) passes its cells through :func:`safe_cell`: a file name such as
``=HYPERLINK("http://...","open").jpg`` must not become a live formula in a spreadsheet.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bloodcell_core.errors import BloodcellError

if TYPE_CHECKING:
    import pandas as pd

# Cells starting with these are formulas (or become one) in Excel, LibreOffice and Sheets.
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class OutputError(BloodcellError):
    """An output path that can't be written (a folder, a missing or read-only location, a full disk)."""


# -- formula-safe CSV ------------------------------------------------------------------------------

def safe_cell(value: object) -> object:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_PREFIXES):
        return "'" + value
    return value


def unguard_cell(text: str) -> str:
    """Undo :func:`safe_cell` when reading back a CSV the project wrote (e.g. an export manifest)."""
    if text.startswith("'") and text[1:].startswith(CSV_FORMULA_PREFIXES):
        return text[1:]
    return text


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell (and column name) passed through :func:`safe_cell`."""
    if frame.empty:
        return frame.rename(columns=safe_cell)
    return frame.map(safe_cell).rename(columns=safe_cell)


def frame_csv(frame: pd.DataFrame) -> str:
    """``frame`` as formula-safe CSV text (no index)."""
    return safe_frame(frame).to_csv(index=False)


def rows_csv(rows: Iterable[Mapping[str, object]], fieldnames: Sequence[str]) -> str:
    """Dict rows as formula-safe CSV text with ``fieldnames`` as the header."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=[safe_cell(name) for name in fieldnames])
    writer.writeheader()
    writer.writerows({safe_cell(key): safe_cell(value) for key, value in row.items()} for row in rows)
    return buffer.getvalue()


# -- output paths ----------------------------------------------------------------------------------

def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (the folder a write would have to create into)."""
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _check_creatable(folder: Path, target: Path) -> None:
    """OutputError unless ``folder`` exists as a writable folder or can be created."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise OutputError(f"{target}: can't be written, {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{target}: can't be written, {existing} is not writable")


def output_file(path: str | Path) -> Path:
    """``path`` checked as a file to (over)write: not a folder, in a folder that is or can be made writable.

    Nothing is created; call it before the slow work so a bad ``--out`` fails at once.
    """
    out = Path(path)
    if str(path).strip() == "" or out.is_dir() or str(path).endswith(("/", os.sep)):
        raise OutputError(f"{out}: is a folder; --out needs a file name such as report.json")
    if out.exists() and not os.access(out, os.W_OK):
        raise OutputError(f"{out}: can't be written (read-only)")
    _check_creatable(out.parent, out)
    return out


def output_folder(path: str | Path) -> Path:
    """``path`` checked as a folder to write into: an existing writable folder, or one that can be made."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file; this needs a folder")
    _check_creatable(out, out)
    return out


def new_folder(path: str | Path, refusal: str) -> Path:
    """``path`` checked as a folder to write into that is new or empty; ``refusal`` says why otherwise
    (a model or an export never lands on top of other files)."""
    out = output_folder(path)
    if out.exists() and any(out.iterdir()):
        raise OutputError(f"{out}: already exists and is not empty; {refusal}")
    return out


def ensure_folder(path: str | Path) -> Path:
    """Create the folder ``path`` (and its parents); OutputError instead of an OSError."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{out}: can't create the folder ({_reason(error)})") from None
    return out


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (temporary file, then rename); returns the path.

    A reader never sees half a file, and a failed write leaves the old file as it was.
    """
    out = output_file(path)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        ensure_folder(out.parent)
        temporary.write_text(text, encoding="utf-8", newline="")
        os.replace(temporary, out)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise OutputError(f"{out}: can't be written ({_reason(error)})") from None
    return out


def write_csv(path: str | Path, rows: Iterable[Mapping[str, object]], fieldnames: Sequence[str]) -> Path:
    """Write dict rows as formula-safe CSV (:func:`rows_csv`) to ``path``, atomically."""
    return write_text(path, rows_csv(rows, fieldnames))
