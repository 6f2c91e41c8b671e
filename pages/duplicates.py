"""Duplicates: exact and near-duplicate groups side by side, conflicting labels first; leakage into a
second dataset (e.g. the test set), as ``audit --against`` reports it.

Per group a reviewer keeps one image (the others are dropped), drops the group, relabels it,
or marks it as not a duplicate; a leaked image can be dropped from this dataset. Decisions go to
the review store under the signed-in identity.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from bloodcell_core.audit.review_queue import (DuplicateGroup, LeakedImage, ReviewImage, duplicate_groups,
                                               group_decisions, is_decided, leak_decision, leaked_images,
                                               pending_first, queue_progress)
from bloodcell_core.data.datasets import Dataset
from bloodcell_core.review.store import Decision, ReviewAction
from dashboard import review_widgets, state
from dashboard.datasets import data_root_picker

PREFIX = "dup"
PER_PAGE = 5
COLUMNS = 4  # images per row inside a group
FILTERS = ("All groups", "Conflicting labels", "Exact duplicates", "Near duplicates")
ACTION_TEXT = {ReviewAction.KEEP_ONE_COPY: "Keep one", ReviewAction.DROP: "Drop all",
               ReviewAction.RELABEL: "Relabel all", ReviewAction.NOT_DUPLICATE: "Not a duplicate"}
SHARED_HASH_NOTE = ("These files are byte-identical: decisions follow an image's content, so one decision covers "
                    "every copy. Delete surplus copies from the folder itself.")


def on_group_action(dataset_name: str, group: DuplicateGroup, action: str, keep_path: str | None = None) -> None:
    """Button callback: record the group decision once (the note and new label come from the widgets)."""
    new_label = st.session_state.get(f"{PREFIX}_label_{group.key}") if action == ReviewAction.RELABEL else None
    note = st.session_state.get(f"{PREFIX}_note_{group.key}", "")
    review_widgets.record_from_callback(
        PREFIX, dataset_name,
        lambda reviewer, latest: group_decisions(group, action, reviewer, dataset_name, latest,
                                                 keep_path=keep_path, new_label=new_label, note=note),
        ACTION_TEXT[action])


def on_leak_drop(dataset_name: str, against_name: str, leak: LeakedImage) -> None:
    """Button callback: drop this dataset's copy of a leaked image (once, however often the page reruns)."""
    review_widgets.record_from_callback(
        PREFIX, dataset_name,
        lambda reviewer, latest: [d for d in [leak_decision(leak, reviewer, dataset_name, against_name, latest)] if d],
        "Dropped from this dataset")


def second_dataset(dataset: Dataset) -> tuple[Dataset, str] | None:
    """The optional second dataset (e.g. the test set) this one's images are looked for in."""
    if not st.toggle("Check for leakage into a second dataset (e.g. the test set)", key=f"{PREFIX}_leak_on",
                     help="Images of this dataset that also occur, exactly or nearly, in the second one: a model "
                          "trained here and tested there would be scored on images it has seen."):
        return None
    path = data_root_picker(f"{PREFIX}_against", "Second dataset")
    if path is None:
        return None
    if Path(path).resolve() == Path(dataset.source).resolve():
        st.info("Pick a different dataset than the one reviewed to check for leakage.")
        return None
    return review_widgets.open_picked(path)


def show_leak(leak: LeakedImage, dataset: Dataset, against: Dataset, names: tuple[str, str],
              latest: dict[str, Decision], reviewer: str | None) -> None:
    """One leaked pair side by side: this dataset's image (with its decision) and its copy in the other."""
    dataset_name, against_name = names
    with st.container(border=True):
        st.markdown(f"**{state.md_escape(leak.detail.capitalize())}**")
        mine, theirs = st.columns(2)
        with mine:
            review_widgets.show_image(dataset, leak.image, latest,
                                      [f"This dataset · label **{state.md_escape(leak.image.label)}**"])
        with theirs:
            where = f"{state.md_escape(against_name)} · label **{state.md_escape(leak.other_label)}**"
            review_widgets.show_image(against, ReviewImage(leak.other_path, leak.other_label, None), {}, [where])
        if reviewer is not None and leak.image.image_hash is not None:
            st.button("Drop from this dataset", key=f"{PREFIX}_leakdrop_{leak.key}", icon=":material/delete:",
                      help="The export then leaves this image out of this dataset",
                      on_click=on_leak_drop, args=(dataset_name, against_name, leak))


def show_leakage(report: dict, dataset: Dataset, against: tuple[Dataset, str], dataset_name: str,
                 reviewer: str | None) -> None:
    """The leakage section: how many images leaked, then the pairs (undecided first)."""
    other, against_name = against
    leakage = report.get("leakage") or {}
    st.subheader(f"Leakage into {state.md_escape(against_name)}")
    leaks = leaked_images(report, review_widgets.report_hashes(dataset, report))
    if not leaks:
        st.success(f"No image of this dataset also occurs in {state.md_escape(against_name)} "
                   f"({leakage.get('n_other', len(other)):,} images checked).")
        return
    st.warning(f"{leakage.get('n_images_leaked', len(leaks)):,} image(s) of this dataset also occur in "
               f"{state.md_escape(against_name)} ({len(leaks)} pair(s)): a model trained on one and tested on "
               "the other is scored on images it has seen.")
    latest = review_widgets.latest_decisions(dataset_name)
    if latest is None:
        return
    review_widgets.show_progress(queue_progress(leaks, latest), "leaked images")
    shown = pending_first(leaks, latest, st.session_state.get(f"{PREFIX}_show_decided", False))
    for leak in review_widgets.paginate(shown, f"{PREFIX}_leak", PER_PAGE):
        show_leak(leak, dataset, other, (dataset_name, against_name), latest, reviewer)


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
                    on_click=on_group_action, args=(dataset_name, group, ReviewAction.KEEP_ONE_COPY, kept))
    else:
        not_duplicate, drop, label, relabel, note = st.columns([1.2, 1, 1.3, 1, 2], vertical_alignment="bottom")
    not_duplicate.button("Not a duplicate", key=f"{PREFIX}_notdup_{group.key}", icon=":material/call_split:",
                         on_click=on_group_action, args=(dataset_name, group, ReviewAction.NOT_DUPLICATE))
    drop.button("Drop all", key=f"{PREFIX}_drop_{group.key}", icon=":material/delete:",
                on_click=on_group_action, args=(dataset_name, group, ReviewAction.DROP))
    label.selectbox("New label", review_widgets.relabel_classes(dataset), index=None, placeholder="choose a class",
                    key=f"{PREFIX}_label_{group.key}")
    relabel.button("Relabel all", key=f"{PREFIX}_relabel_{group.key}", icon=":material/label:",
                   on_click=on_group_action, args=(dataset_name, group, ReviewAction.RELABEL))
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
                              on_click=on_group_action,
                              args=(dataset_name, group, ReviewAction.KEEP_ONE_COPY, image.path))
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
    access = review_widgets.review_page(
        "Duplicates", "The same cell stored twice inflates a class and, when the copies land in both training and "
                      "test data, inflates the test score. Copies filed under different labels come first.")
    chosen = review_widgets.review_dataset(PREFIX)
    if chosen is None:
        return
    dataset, dataset_name = chosen
    against = second_dataset(dataset)
    report = review_widgets.duplicate_report(dataset, against[0] if against is not None else None)
    review_widgets.show_report_problems(report, ("exact_duplicates", "near_duplicates"))
    groups = duplicate_groups(report, review_widgets.report_hashes(dataset, report))
    show_counts(report, groups)
    if against is not None:
        review_widgets.show_message(PREFIX)
        show_leakage(report, dataset, against, dataset_name, access.reviewer)
        st.subheader("Duplicates within this dataset")
    latest = review_widgets.queue_decisions(groups, dataset_name, access, PREFIX, "groups",
                                            "No duplicates found in this dataset.")
    if latest is None:
        return
    which_column, toggle_column = st.columns([3, 1], vertical_alignment="bottom")
    which = which_column.radio("Show", FILTERS, horizontal=True, key=f"{PREFIX}_filter")
    shown = review_widgets.pending_entries(filtered(groups, which), latest, PREFIX, "group", "groups", toggle_column)
    if not shown:
        return
    numbers = {group.key: number for number, group in enumerate(groups, start=1)}
    for group in review_widgets.paginate(shown, PREFIX, PER_PAGE):
        show_group(numbers[group.key], group, dataset, dataset_name, latest, access.reviewer)


main()
