"""Streamlit glue for the Classify page's cell gallery (grouping and thumbnails live in
:mod:`bloodcell_core.reporting.gallery`).

Each group is one ``st.dataframe`` whose cells are thumbnails, :data:`GRID_COLUMNS` to a row,
with cell selection: clicking thumbnails selects cells (in any group), and the action bar then
moves them to a class (a button per class, each with a number key as its shortcut) or confirms
them.  After cells are moved, the groups they were selected in get new table keys
(:func:`clear_selections`), so no selection points at cells that have since left; the other
groups keep theirs, so the browser rebuilds only those tables.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from bloodcell_core.reporting.batch import ClassifiedImage
from bloodcell_core.reporting.gallery import NEEDS_REVIEW, THUMBNAIL_SIDE, GalleryGroup

GRID_COLUMNS = 5
MAX_VISIBLE_ROWS = 6  # a taller group scrolls inside its table
HEADER_PX = 36
ROW_PX = THUMBNAIL_SIDE + 4
GALLERY_KEY = "classify_gallery"
GENERATIONS_KEY = "classify_gallery_generations"  # {group key: times its selection was cleared}
DETAIL_KEY = "classify_detail"  # the side column's container (action bar, opened cell)
# The column holding that container sticks below the top bar while the gallery scrolls past, so
# the action bar and the opened cell stay on screen next to any group (CSS only; no script).
STICKY_CSS = (f'<style>[data-testid="stColumn"]:has(.st-key-{DETAIL_KEY}) '
              "{position: sticky; top: 4rem; align-self: flex-start; z-index: 1; max-height: calc(100vh - 5rem); "
              "overflow-y: auto; overflow-anchor: none;}</style>")


def grid_frame(group: GalleryGroup, thumbnails: Sequence[str]) -> pd.DataFrame:
    """The group's thumbnails laid out :data:`GRID_COLUMNS` to a row (empty cells at the end)."""
    cells: list[str | None] = [thumbnails[p] for p in group.members]
    cells += [None] * (-len(cells) % GRID_COLUMNS)
    rows = [cells[i:i + GRID_COLUMNS] for i in range(0, len(cells), GRID_COLUMNS)]
    return pd.DataFrame(rows, columns=[f"c{i}" for i in range(GRID_COLUMNS)])


def keep_in_view() -> None:
    """Make the column with the :data:`DETAIL_KEY` container stick while the gallery scrolls."""
    st.html(STICKY_CSS)


def selected_members(group: GalleryGroup, selection: Any) -> list[int]:
    """Batch positions of the thumbnails selected in ``group``'s table."""
    chosen = []
    for row, column in selection.get("cells", []):
        index = int(row) * GRID_COLUMNS + int(str(column).lstrip("c"))
        if index < group.count:
            chosen.append(group.members[index])
    return chosen


def group_key_part(group: GalleryGroup) -> str:
    return group.key.replace(" ", "-")


def grid_key(group: GalleryGroup) -> str:
    """The group's table key: its name and how often its selection was cleared."""
    generation = st.session_state.get(GENERATIONS_KEY, {}).get(group.key, 0)
    return f"{GALLERY_KEY}_{group.key.replace(' ', '-')}_{generation}"


def clear_selections(group_keys: set[str]) -> None:
    """Unselect the cells of these groups (from a button callback): their tables get new keys.

    Only the groups that had a selection are redrawn from scratch; the others keep their keys.
    """
    generations: dict[str, int] = st.session_state.setdefault(GENERATIONS_KEY, {})
    for key in group_keys:
        generations[key] = generations.get(key, 0) + 1


def group_grid(group: GalleryGroup, thumbnails: Sequence[str]) -> list[int]:
    """Draw one group's thumbnail grid; the batch positions selected in it."""
    frame = grid_frame(group, thumbnails)
    config = {column: st.column_config.ImageColumn(" ", width=THUMBNAIL_SIDE) for column in frame.columns}
    height = HEADER_PX + ROW_PX * min(len(frame), MAX_VISIBLE_ROWS) + 2
    event = st.dataframe(frame, column_config=config, hide_index=True, row_height=ROW_PX, height=height,
                         width="content", selection_mode="multi-cell", placeholder="", on_select="rerun",
                         key=grid_key(group))
    return selected_members(group, event.selection)


def reason_kind(reason: str) -> str:
    """``low confidence`` for ``low confidence (0.61 < 0.86)``: the reason without its figures."""
    return re.split(r" \(|: ", reason, maxsplit=1)[0]


def group_heading(group: GalleryGroup, images: Sequence[ClassifiedImage],
                  on_confirm: Callable[[GalleryGroup], None] | None) -> None:
    """The group's name, count and share, and its confirm button (when the viewer may record);
    for the needs-review group, why its cells were flagged."""
    title, button = st.columns([3, 2], vertical_alignment="center")
    icon = ":material/flag:" if group.key == NEEDS_REVIEW else (
        ":material/task_alt:" if group.fully_confirmed else ":material/category:")
    title.markdown(f"{icon} **{group.title}**")
    if group.key == NEEDS_REVIEW:
        reasons = Counter(reason_kind(r) for p in group.members for r in images[p].prediction.review_reasons)
        st.caption("Needs review: " + "; ".join(f"{reason} ({n})" for reason, n in reasons.most_common())
                   + ". Look at each: select, then accept or move it.")
    if on_confirm is not None and group.key != NEEDS_REVIEW and not group.fully_confirmed:
        button.button(f"Confirm all {group.count}", key=f"classify_confirm_{group_key_part(group)}",
                      icon=":material/done_all:", on_click=on_confirm, args=(group,),
                      help=f"Record a confirmation for every cell in {group.key} not yet confirmed.")


def action_bar(selected: list[int], images: Sequence[ClassifiedImage], classes: Sequence[str],
               on_move: Callable[[list[int], str], None], on_accept: Callable[[list[int]], None]) -> None:
    """Buttons that act on the selected cells: accept the model's labels, or move them to a class."""
    names = ", ".join(images[p].name for p in selected[:5]) + (" ..." if len(selected) > 5 else "")
    st.text(f"{len(selected)} selected: {names}")  # plain text: file names are untrusted
    st.button("Accept model's label", key="classify_accept_selected", icon=":material/check:", shortcut="A",
              on_click=on_accept, args=(selected,), help="Record the model's label for each (shortcut: A)",
              width="stretch")
    columns = st.columns(2)
    for number, name in enumerate(classes, start=1):
        shortcut = str(number) if number <= 9 else None
        hint = f"Move the selected cells to {name}" + (f" (shortcut: {shortcut})" if shortcut else "")
        columns[(number - 1) % 2].button(name, key=f"classify_move_{name}", on_click=on_move, args=(selected, name),
                                         shortcut=shortcut, width="stretch", help=hint)
