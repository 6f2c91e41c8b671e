"""Duplicates: exact and near-duplicate groups side by side, conflicting labels first.

Per group a reviewer keeps one image (the others are dropped), drops the group, relabels it,
or marks it as not a duplicate; decisions go to the review store under the signed-in identity.
"""
from __future__ import annotations

import streamlit as st

from bloodcell_core.audit.review_queue import (KEEP_ONE, DuplicateGroup, duplicate_groups, group_decisions,
                                               is_decided, pending_first, queue_progress)
from bloodcell_core.data.datasets import Dataset
from bloodcell_core.review.store import Decision
from dashboard import review_widgets, state

PREFIX = "dup"
PER_PAGE = 5
COLUMNS = 4  # images per row inside a group
FILTERS = ("All groups", "Conflicting labels", "Exact duplicates", "Near duplicates")
ACTION_TEXT = {KEEP_ONE: "Keep one", "drop": "Drop all", "relabel": "Relabel all", "not-duplicate": "Not a duplicate"}
SHARED_HASH_NOTE = ("These files are byte-identical: decisions follow an image's content, so one decision covers "
                    "every copy. Delete surplus copies from the folder itself.")


def on_group_action(dataset_name: str, group: DuplicateGroup, action: str, keep_path: str | None = None) -> None:
    """Button callback: record the group decision once (the note and new label come from the widgets)."""
    new_label = st.session_state.get(f"{PREFIX}_label_{group.key}") if action == "relabel" else None
    note = st.session_state.get(f"{PREFIX}_note_{group.key}", "")
    review_widgets.record_from_callback(
        PREFIX, dataset_name,
        lambda reviewer, latest: group_decisions(group, action, reviewer, dataset_name, latest,
                                                 keep_path=keep_path, new_label=new_label, note=note),
        ACTION_TEXT[action])


def shares_one_hash(group: DuplicateGroup) -> bool:
    """Every readable image of the group has the same bytes: one decision covers them all."""
    return len(group.hashes) == 1 and len(group.images) > 1


def group_heading(number: int, group: DuplicateGroup, decided: bool) -> str:
    kind = "Exact duplicates" if group.kind == "exact" else "Near duplicates"
    parts = [f"**Group {number}**", kind, group.detail, f"{len(group.images)} images"]
    if group.conflicting:
        parts.append(":orange-badge[:material/warning: labels conflict]")
    if decided:
        parts.append(":green-badge[:material/task_alt: decided]")
    return " · ".join(parts)


def show_group_actions(group: DuplicateGroup, dataset: Dataset, dataset_name: str) -> None:
    """Group-wide buttons; a group of byte-identical files gets "Keep" here instead of one per image."""
    if shares_one_hash(group):
        keep, not_duplicate, drop, label, relabel, note = st.columns([0.8, 1.2, 1, 1.3, 1, 2],
                                                                     vertical_alignment="bottom")
        kept = next(image.path for image in group.images if image.image_hash)
        keep.button("Keep one", key=f"{PREFIX}_keepall_{group.key}", icon=":material/check:",
                    help="Keep one copy of this image; the export leaves its byte-identical copies out",
                    on_click=on_group_action, args=(dataset_name, group, KEEP_ONE, kept))
    else:
        not_duplicate, drop, label, relabel, note = st.columns([1.2, 1, 1.3, 1, 2], vertical_alignment="bottom")
    not_duplicate.button("Not a duplicate", key=f"{PREFIX}_notdup_{group.key}", icon=":material/call_split:",
                         on_click=on_group_action, args=(dataset_name, group, "not-duplicate"))
    drop.button("Drop all", key=f"{PREFIX}_drop_{group.key}", icon=":material/delete:",
                on_click=on_group_action, args=(dataset_name, group, "drop"))
    label.selectbox("New label", review_widgets.relabel_classes(dataset), index=None, placeholder="choose a class",
                    key=f"{PREFIX}_label_{group.key}")
    relabel.button("Relabel all", key=f"{PREFIX}_relabel_{group.key}", icon=":material/label:",
                   on_click=on_group_action, args=(dataset_name, group, "relabel"))
    note.text_input("Note (optional)", key=f"{PREFIX}_note_{group.key}", max_chars=500)


def show_group(number: int, group: DuplicateGroup, dataset: Dataset, dataset_name: str,
               latest: dict[str, Decision], reviewer: str | None) -> None:
    with st.container(border=True):
        st.markdown(group_heading(number, group, is_decided(group, latest)))
        if shares_one_hash(group):
            st.caption(SHARED_HASH_NOTE)
        columns = st.columns(COLUMNS)
        for position, image in enumerate(group.images):
            with columns[position % len(columns)]:
                review_widgets.show_image(dataset, image, latest,
                                          [f"Label: **{state.md_escape(image.label)}**"])
                if reviewer is not None and image.image_hash is not None and not shares_one_hash(group):
                    st.button("Keep this one", key=f"{PREFIX}_keep_{group.key}_{position}",
                              icon=":material/check:", help="Keep this image and drop the others in the group",
                              on_click=on_group_action, args=(dataset_name, group, KEEP_ONE, image.path))
        if reviewer is not None:
            show_group_actions(group, dataset, dataset_name)


def filtered(groups: list[DuplicateGroup], which: str) -> list[DuplicateGroup]:
    if which == "Conflicting labels":
        return [g for g in groups if g.conflicting]
    if which == "Exact duplicates":
        return [g for g in groups if g.kind == "exact"]
    if which == "Near duplicates":
        return [g for g in groups if g.kind == "near"]
    return groups


def show_counts(report: dict, groups: list[DuplicateGroup]) -> None:
    columns = st.columns(4)
    columns[0].metric("Images checked", f"{report['n_images']:,}")
    columns[1].metric("Exact-duplicate groups", sum(g.kind == "exact" for g in groups))
    columns[2].metric("Near-duplicate groups", sum(g.kind == "near" for g in groups),
                      help=f"Perceptual-hash distance up to {report['settings']['hamming']} bits")
    columns[3].metric("Groups with conflicting labels", sum(g.conflicting for g in groups))


def main() -> None:
    access = state.require_view()
    st.title("Duplicates")
    st.caption("The same cell stored twice inflates a class and, when the copies land in both training and "
               "test data, inflates the test score. Copies filed under different labels come first.")
    chosen = review_widgets.review_dataset(PREFIX)
    if chosen is None:
        return
    dataset, dataset_name = chosen
    report = review_widgets.duplicate_report(dataset)
    review_widgets.show_report_problems(report, ("exact_duplicates", "near_duplicates"))
    groups = duplicate_groups(report, review_widgets.report_hashes(dataset, report))
    show_counts(report, groups)
    if not groups:
        st.success("No duplicates found in this dataset.")
        return
    latest = review_widgets.latest_decisions(dataset_name)
    if latest is None:
        return
    review_widgets.show_progress(queue_progress(groups, latest), "groups")
    if access.reviewer is None:
        st.info(access.reason, icon=":material/lock:")
    review_widgets.show_message(PREFIX)
    which_column, toggle_column = st.columns([3, 1], vertical_alignment="bottom")
    which = which_column.radio("Show", FILTERS, horizontal=True, key=f"{PREFIX}_filter")
    show_decided = toggle_column.toggle("Show decided groups", key=f"{PREFIX}_show_decided")
    shown = pending_first(filtered(groups, which), latest, show_decided)
    if not shown:
        st.success("Every group here has been reviewed. Turn on 'Show decided groups' to see them.")
        return
    numbers = {group.key: number for number, group in enumerate(groups, start=1)}
    for group in review_widgets.paginate(shown, PREFIX, PER_PAGE):
        show_group(numbers[group.key], group, dataset, dataset_name, latest, access.reviewer)


main()
