"""The Classify page's cell gallery: a batch grouped by class, as an analyser's review screen shows it.

Cells flagged *needs review* and not yet reviewed come first, in a group of their own; every
other cell sits in the group of its current label (the reviewer's, else the model's), the groups
in the model's class order.  A reclassified cell therefore moves group, and the group counts are
the differential count.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from bloodcell_core.classes import short_class_name
from bloodcell_core.preprocess.localise import crop_to_box, fill_black_borders
from bloodcell_core.reporting.batch import ClassifiedImage

NEEDS_REVIEW = "needs review"  # the key of the flagged, unreviewed group
THUMBNAIL_SIDE = 96


@dataclass(frozen=True)
class GalleryGroup:
    """One group of the gallery: its key (a class name or :data:`NEEDS_REVIEW`) and its cells."""

    key: str
    members: tuple[int, ...]  # positions in the batch
    confirmed: int  # members whose latest decision already gives this group's label
    batch_size: int

    @property
    def count(self) -> int:
        return len(self.members)

    @property
    def share(self) -> float:
        return self.count / self.batch_size if self.batch_size else 0.0

    @property
    def fully_confirmed(self) -> bool:
        return self.key != NEEDS_REVIEW and self.count > 0 and self.confirmed == self.count

    @property
    def title(self) -> str:
        state = " · confirmed" if self.fully_confirmed else ""
        return f"{self.key}: {self.count} ({self.share:.0%}){state}"


def group_key(image: ClassifiedImage) -> str:
    return NEEDS_REVIEW if image.awaiting_review else image.final_label


def gallery_groups(images: Sequence[ClassifiedImage], classes: Sequence[str]) -> list[GalleryGroup]:
    """The non-empty groups: needs review first, then the classes in order (unknown labels last)."""
    members: dict[str, list[int]] = {}
    for position, image in enumerate(images):
        members.setdefault(group_key(image), []).append(position)
    order = [NEEDS_REVIEW, *classes, *sorted(set(members) - {NEEDS_REVIEW, *classes})]
    groups = []
    for key in order:
        if key not in members:
            continue
        confirmed = sum(images[p].reviewed_label == key for p in members[key])
        groups.append(GalleryGroup(key, tuple(members[key]), confirmed, len(images)))
    return groups


def group_confirmations(images: Sequence[ClassifiedImage], group: GalleryGroup) -> list[tuple[ClassifiedImage, str]]:
    """What confirming ``group`` records: each cell not yet confirmed gets the group's label."""
    if group.key == NEEDS_REVIEW:
        return []  # flagged cells are looked at one by one, never waved through as a group
    return [(images[p], group.key) for p in group.members if images[p].reviewed_label != group.key]


def thumbnail_label(predicted: str, confidence: float) -> str:
    """What a thumbnail carries: the model's class, abbreviated, and its confidence ("lymph 97%").

    The class matters most in the needs-review group, where the cells of all classes sit together
    and the reviewer would otherwise open each to see the suggestion; elsewhere it shows the cells
    a reviewer has moved away from the model's class."""
    return f"{short_class_name(predicted)} {confidence:.0%}"


def crop_thumbnail(image: np.ndarray, box: tuple[int, int, int, int] | None, label: str = "",
                   side: int = THUMBNAIL_SIDE) -> str:
    """The model's crop of ``image`` (``box``: left, top, right, bottom; may pass the edges) as a
    ``side`` px square JPEG data URI, small enough for a gallery of hundreds of cells, with
    ``label`` (:func:`thumbnail_label`) printed small in its lower-left corner.

    It goes through the crop path the model's input does (black padding and its seam painted,
    the outside of the image filled with the slide background), so a reviewer judges the pixels
    the model judged; the detail view keeps the upload as it is."""
    height, width = image.shape[:2]
    box = tuple(int(v) for v in box) if box is not None else (0, 0, width, height)
    crop = Image.fromarray(crop_to_box(fill_black_borders(np.ascontiguousarray(image, dtype=np.uint8)),
                                       box, side))  # type: ignore[arg-type]
    if label:
        draw = ImageDraw.Draw(crop)
        text_box = draw.textbbox((3, side - 14), label)
        draw.rectangle((text_box[0] - 2, text_box[1] - 1, text_box[2] + 2, text_box[3] + 1), fill=(0, 0, 0))
        draw.text((3, side - 14), label, fill=(255, 255, 255))
    buffer = io.BytesIO()
    crop.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
