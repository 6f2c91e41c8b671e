"""The reviewed-cell archive: every cell a signed-in reviewer accepts or corrects, kept for adaptation.

Design (one for both backends): the image lives in the review database itself, table
``archived_images`` (see :mod:`bloodcell_core.review.store`), keyed by the image hash the
decisions already record.  So a PostgreSQL deployment with several app instances shares one
archive, a backup of the review database backs up the archive with its decisions, and nothing
is written outside the database.  Cells are small (tens of kB), so thousands of them cost tens
of MB.

- Content-addressed and written once: a second archive of the same hash (a rerun, a second
  reviewer, a correction) inserts nothing; the first reviewer's laboratory/source name stays.
- The label is never stored with the image: it is the image's **latest decision** (the one
  the decisions table says), so a later correction relabels the archived cell.
- Bytes: the upload's own bytes when the caller has them, else a lossless PNG of the decoded
  pixels (what the model saw).  Either way the key is the upload's hash.
"""
from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bloodcell_core.errors import BloodcellError, UnreadableImageError
from bloodcell_core.reporting.batch import reviewed_label_of
from bloodcell_core.review.store import ReviewStore

MAX_SOURCE_LENGTH = 64
PNG = "image/png"
_SUFFIXES = {PNG: ".png", "image/jpeg": ".jpg", "image/bmp": ".bmp", "image/tiff": ".tif"}


@dataclass(frozen=True)
class ArchivedCell:
    """One archived cell with its current (latest-decision) label."""

    image_hash: str
    source: str
    label: str | None  # None when its decisions no longer give a label
    reviewer: str
    time: datetime
    media_type: str
    image: bytes | None = None


def normalise_source(name: object) -> str | None:
    """A laboratory/source name as stored: printable, whitespace collapsed, at most 64 characters."""
    visible = "".join(ch if ch.isprintable() else " " for ch in str(name or ""))
    cleaned = " ".join(visible.split())[:MAX_SOURCE_LENGTH]
    return cleaned or None


def _encoded(image: bytes | np.ndarray) -> tuple[bytes, str]:
    """(bytes, media type): upload bytes as they are (type sniffed by Pillow), arrays as PNG."""
    from PIL import Image

    if isinstance(image, (bytes, bytearray)):
        try:
            with Image.open(io.BytesIO(image)) as opened:
                media_type = Image.MIME.get(opened.format or "", PNG)
        except (OSError, ValueError, SyntaxError):
            raise UnreadableImageError("not an image file: nothing archived") from None
        return bytes(image), media_type
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue(), PNG


def archive_reviewed(store: ReviewStore, image: bytes | np.ndarray | None, image_hash: str,
                     source: str | None, reviewer: str | None, dataset: str) -> bool:
    """Archive one reviewed cell; True when a new row was written.

    The one hook every review path calls after recording a decision in ``dataset``.  Refuses
    (BloodcellError) without a signed-in ``reviewer``; archives nothing (False) without pixels or
    a laboratory/source name, or when ``image_hash`` is archived already.
    """
    if not reviewer or not str(reviewer).strip():
        raise BloodcellError("sign in to archive reviewed cells")
    source = normalise_source(source)
    if image is None or source is None or not image_hash:
        return False
    data, media_type = _encoded(image)
    return store.archive({"image_hash": image_hash, "dataset": dataset, "source": source,
                          "reviewer": str(reviewer), "media_type": media_type, "image": data,
                          "created_at": datetime.now(timezone.utc)})


def archived_cells(store: ReviewStore, source: str | None = None, with_images: bool = False) -> list[ArchivedCell]:
    """The archive (oldest first), each cell labelled by its latest decision."""
    rows = store.archived(source=source, with_images=with_images)
    latest = {dataset: store.latest(dataset=dataset) for dataset in {row["dataset"] for row in rows}}
    return [ArchivedCell(image_hash=row["image_hash"], source=row["source"], reviewer=row["reviewer"],
                         label=reviewed_label_of(latest[row["dataset"]].get(row["image_hash"])),
                         time=row["created_at"], media_type=row["media_type"], image=row.get("image"))
            for row in rows]


def archive_counts(cells: Iterable[ArchivedCell]):
    """A DataFrame with one row per (source, class): ``cells``, sorted; labelless cells left out."""
    import pandas as pd

    frame = pd.DataFrame([{"source": c.source, "class": c.label} for c in cells if c.label],
                         columns=["source", "class"])
    counts = frame.groupby(["source", "class"]).size().rename("cells").reset_index()
    return counts.sort_values(["source", "class"], ignore_index=True)


def export_archive(store: ReviewStore, out: str | Path, source: str | None = None) -> dict[str, int]:
    """Write the archive as ``out/<class>/<hash><suffix>`` (a folder of class folders); cells per class.

    Errors (BloodcellError) when nothing matches, before creating ``out``.
    """
    from bloodcell_core.outputs import OutputError, ensure_folder, new_folder

    target = new_folder(out, "export into a new folder")
    cells = [cell for cell in archived_cells(store, source, with_images=True) if cell.label]
    if not cells:
        where = f" from source {source!r}" if source is not None else ""
        raise BloodcellError(f"no reviewed cells archived{where}: accept or correct cells on Classify first")
    counts: dict[str, int] = {}
    for cell in cells:
        if cell.label in (".", "..") or Path(cell.label).name != cell.label:
            raise BloodcellError(f"archived label {cell.label!r} can't be a folder name")
        folder = ensure_folder(target / cell.label)
        try:
            (folder / f"{cell.image_hash}{_SUFFIXES.get(cell.media_type, '.png')}").write_bytes(cell.image or b"")
        except OSError as error:
            raise OutputError(f"{folder}: can't be written ({error.strerror or error})") from None
        counts[cell.label] = counts.get(cell.label, 0) + 1
    return counts
