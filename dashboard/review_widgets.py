"""Streamlit glue shared by the data-review pages (Duplicates, Outliers, Label issues).

The queue logic (what is decided, which decisions an action writes) lives in
:mod:`bloodcell_core.audit.review_queue`; this module runs the audits with a progress bar
and a cache, draws the common pieces (progress, unreadable files, a decision's summary, image
tiles, paging) and records decisions from button callbacks.

Audit reports are kept twice: on disk by ``cached_audit`` (per dataset fingerprint, model and
settings, so a restart does not recompute) and in memory here (so a rerun does not even read
the JSON).  The duplicate checks always run on the whole dataset, with no model; outliers and
label issues run on a stratified sample of at most ``REVIEW_SAMPLE_DEFAULT`` images unless
the reviewer asks for more.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import streamlit as st

from bloodcell_core.audit import AuditSettings, cached_audit
from bloodcell_core.audit.review_queue import (FlaggedImage, QueueProgress, ReviewImage, hash_paths, item_decision,
                                               pending_first, queue_progress, record_decisions, report_paths)
from bloodcell_core.data.datasets import Dataset
from bloodcell_core.errors import BloodcellError
from bloodcell_core.inference.predictor import Predictor
from bloodcell_core.progress import ProgressFn
from bloodcell_core.reporting.performance import sample_dataset
from bloodcell_core.review.store import Decision
from dashboard import state
from dashboard.datasets import data_root_picker, dataset_label, open_dataset
from dashboard.sign_in import current_reviewer

# Model checks on 2,000 images: 13.5 s with the compact model on the 2-core CPU (measured); the whole
# 13,520-image duplicate check: 8.2 s, then 0.2 s from the disk cache.
REVIEW_SAMPLE_DEFAULT = 2000
DUPLICATES_ONLY = "model checks are not run on the Duplicates page"
T = TypeVar("T")
TOAST_ICONS = {"success": ":material/task_alt:", "info": ":material/info:", "warning": ":material/warning:",
               "error": ":material/error:"}


# -- datasets and audits ----------------------------------------------------------------------------

def review_dataset(prefix: str, container: Any = None) -> tuple[Dataset, str] | None:
    """The dataset picker (confined to the data roots); ``(dataset, its name in the review store)``.

    The name is the picker's label (``root/relative/path``): the same on every page, and what
    ``python -m bloodcell_core export --dataset-name`` filters on.
    """
    where = container if container is not None else st.container()
    with where:
        path = data_root_picker(f"{prefix}_dataset", "Dataset")
    return open_picked(path)


def open_picked(path: str | None) -> tuple[Dataset, str] | None:
    """(dataset, its label) for a picked data-root path; None (and a one-line error) when it can't be opened."""
    if path is None:
        return None
    try:
        return open_dataset(path), dataset_label(path)
    except BloodcellError as error:
        st.error(state.one_line(error))
        return None


def duplicate_report(dataset: Dataset, against: Dataset | None = None) -> dict[str, Any]:
    """Exact / near duplicates and conflicting labels on the whole dataset (no model), cached; with
    ``against``, also the images that leaked into that second dataset (as ``audit --against``)."""
    cache = state.result_cache("review_duplicates", 8)
    key = (dataset.source, dataset.fingerprint(), against.fingerprint() if against is not None else None)
    cached = cache.get(key)
    if cached is None:
        with state.progress_bar("Checking for duplicates") as progress:
            cached = cached_audit(dataset, None, against, settings=AuditSettings(), progress=progress,
                                  no_model_reason=DUPLICATES_ONLY)
        cache.put(key, cached)
    return cached


def model_sample(dataset: Dataset, prefix: str, container: Any = None) -> tuple[Dataset, int | None]:
    """The sample-size input and the stratified sample the model-based checks run on."""
    where = container if container is not None else st
    size = where.number_input("Images for the model checks (stratified sample; 0 = all)", 0, None,
                              REVIEW_SAMPLE_DEFAULT, 500, key=f"{prefix}_sample",
                              help="Outliers and label issues embed every sampled image with the model: "
                                   "about 8 ms per image on a 2-core CPU. Duplicates always use every image.")
    cap = int(size) or None
    return sample_dataset(dataset, cap), cap


def model_report(sample: Dataset, predictor: Predictor, model_dir: Path, settings: AuditSettings,
                 prefix: str) -> dict[str, Any] | None:
    """The audit with the model on ``sample``: cached, or computed after a button press (None until then)."""
    cache = state.result_cache("review_model_audit", 8)
    key = (state.model_key(model_dir), sample.source, sample.fingerprint(), tuple(sorted(settings.to_dict().items())))
    cached = cache.get(key)
    if cached is not None:
        return cached
    prompt = st.empty()
    with prompt.container():
        pressed = st.button("Run the model checks", type="primary", key=f"{prefix}_run", icon=":material/play_arrow:")
        if not pressed:
            st.info(f"Press the button to embed {len(sample):,} images with {state.md_escape(predictor.name)} and "
                    "look for outliers and likely label errors. Results are kept per model, dataset and sample.")
            return None
    prompt.empty()
    with state.progress_bar("Running the model checks") as progress:
        report = cached_audit(sample, predictor, settings=settings, progress=progress,
                              features=lambda: sample_features(sample, predictor, model_dir, progress)[:2])
    cache.put(key, report)
    return report


def sample_features(sample: Dataset, predictor: Predictor, model_dir: Path, progress: ProgressFn | None = None,
                    ) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """``Predictor.embed_dataset`` of the sample, once per model and sample: the model checks (whatever
    their settings) and the Outliers map share it."""
    cache = state.result_cache("review_sample_features", 2)
    key = (state.model_key(model_dir), sample.source, sample.fingerprint())
    cached = cache.get(key)
    if cached is None:
        if progress is not None:
            cached = predictor.embed_dataset(sample, progress=progress)
        else:
            with state.progress_bar("Embedding images") as bar:
                cached = predictor.embed_dataset(sample, progress=bar)
        cache.put(key, cached)
    return cached


def report_hashes(dataset: Dataset, report: Mapping[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    """Content hashes of every image the report names (read once per dataset state and report)."""
    cache = state.result_cache("review_hashes", 16)
    paths = report_paths(report)
    key = (dataset.source, report.get("dataset_fingerprint"), hash(tuple(paths)))
    return cache.get_or_compute(key, lambda: hash_paths(dataset, paths))


def latest_decisions(dataset_name: str) -> dict[str, Decision] | None:
    """image hash -> latest decision for this dataset; None (error shown) when the store is unavailable."""
    try:
        return state.review_store().latest(dataset=dataset_name)
    except BloodcellError as error:
        st.error(f"Review store unavailable, decisions can't be shown or recorded: {state.one_line(error)}")
        return None


def load_item(dataset: Dataset, path: str) -> np.ndarray | None:
    """The image of one report path (None when it can't be decoded)."""
    index = _positions(dataset).get(path)
    if index is None:
        return None
    try:
        return dataset.load(index)
    except BloodcellError:
        return None


def _positions(dataset: Dataset) -> dict[str, int]:
    cache = state.result_cache("review_positions", 4)
    return cache.get_or_compute((dataset.source, hash(tuple(dataset.items))),
                                lambda: {item: i for i, item in enumerate(dataset.items)})


# -- drawing ---------------------------------------------------------------------------------------

def show_report_problems(report: Mapping[str, Any], checks: Sequence[str] = ()) -> None:
    """Unreadable files (as a table: names are never rendered as Markdown) and skipped ``checks``."""
    for name in checks:
        reason = report.get("skipped", {}).get(name)
        if reason:
            st.warning(f"The {name.replace('_', ' ')} check could not run: {state.md_escape(reason)}")
    unreadable = report.get("unreadable", [])
    if unreadable:
        with st.expander(f"{len(unreadable)} unreadable file(s) left out; the audit went on without them",
                         icon=":material/broken_image:"):
            st.dataframe(pd.DataFrame(unreadable, columns=["path", "reason"]), hide_index=True, width="stretch")


def show_progress(progress: QueueProgress, noun: str) -> None:
    st.progress(progress.fraction, text=progress.describe(noun))


def decision_text(decision: Decision) -> str:
    """One line: what was decided on an image, by whom, when (plain text)."""
    when = decision.time.strftime("%Y-%m-%d %H:%M UTC") if decision.time else ""
    what = f"relabel to {decision.new_label}" if decision.action == "relabel" else decision.action
    if decision.action == "correct-prediction":
        what = f"corrected to {decision.new_label}"
    return f"{what} by {decision.reviewer}, {when}"


def show_image(dataset: Dataset, image: ReviewImage, latest: Mapping[str, Decision], lines: Sequence[str] = ()) -> None:
    """One image tile: the picture, its file name (plain text), ``lines`` and its latest decision."""
    pixels = load_item(dataset, image.path)
    if pixels is None:
        st.warning("Can't be shown: " + state.md_escape(image.problem or "unreadable image"))
    else:
        st.image(pixels, width="stretch")
    st.text(image.name)
    for line in lines:
        st.caption(line)
    decision = latest.get(image.image_hash) if image.image_hash else None
    if decision is not None:
        st.caption(":material/task_alt: " + state.md_escape(decision_text(decision)))


def paginate(entries: Sequence[T], prefix: str, per_page: int) -> list[T]:
    """The entries of the page picked in a number input (shown only when there is more than one page)."""
    pages = max(1, -(-len(entries) // per_page))
    key = f"{prefix}_page"
    if st.session_state.get(key, 1) > pages:
        st.session_state[key] = 1
    page = st.columns([1, 4])[0].number_input(f"Page (of {pages})", 1, pages, key=key) if pages > 1 else 1
    return list(entries[(page - 1) * per_page: page * per_page])


# -- recording --------------------------------------------------------------------------------------

def message_key(prefix: str) -> str:
    return f"{prefix}_message"


def show_message(prefix: str) -> None:
    """The outcome of the last click on this page (set by :func:`record_from_callback`).

    A toast, as on the Classify page (the decided entry leaves the queue, so the outcome can't be
    shown next to it); warnings and errors also stay on the page.
    """
    message = st.session_state.pop(message_key(prefix), None)
    if message is not None:
        kind, text = message
        st.toast(state.md_escape(text), icon=TOAST_ICONS[kind], duration="long")
        if kind in ("warning", "error"):
            getattr(st, kind)(state.md_escape(text))


def record_from_callback(prefix: str, dataset_name: str,
                         build: Callable[[str, dict[str, Decision]], list[Decision]], what: str) -> None:
    """Button callback body: build the decisions against the store's current state and record them.

    ``build(reviewer, latest)`` returns the decisions; the signed-in identity is read now, at
    click time, so a decision always carries who clicked.  The outcome shows on the next run.
    """
    reviewer = current_reviewer()
    try:
        if reviewer is None:
            raise BloodcellError("sign in to record decisions")
        store = state.review_store()
        decisions = build(reviewer, store.latest(dataset=dataset_name))
        written = record_decisions(store, decisions, reviewer)
    except BloodcellError as error:
        st.session_state[message_key(prefix)] = ("error", state.one_line(error))
        return
    if written:
        counts = Counter(decision.action for decision in decisions)
        detail = ", ".join(f"{count} {action}" for action, count in counts.items())
        st.session_state[message_key(prefix)] = ("success", f"{what}: {written} decision(s) recorded ({detail}).")
    else:
        st.session_state[message_key(prefix)] = ("info", f"{what}: already recorded; nothing written.")


# -- one flagged image (outliers, label issues) ----------------------------------------------------

ITEM_ACTION_TEXT = {"keep": "Kept", "drop": "Dropped", "relabel": "Relabelled"}


def on_item_action(prefix: str, page: str, dataset_name: str, flagged: FlaggedImage, action: str,
                   new_label: str | None = None) -> None:
    """Button callback: record one decision on a flagged image (new label from the picker if not given)."""
    if action == "relabel" and new_label is None:
        new_label = st.session_state.get(f"{prefix}_label_{flagged.key}")
    note = st.session_state.get(f"{prefix}_note_{flagged.key}", "")

    def build(reviewer: str, latest: dict[str, Decision]) -> list[Decision]:
        decision = item_decision(page, flagged, action, reviewer, dataset_name, latest, new_label, note)
        return [decision] if decision is not None else []

    record_from_callback(prefix, dataset_name, build, f"{ITEM_ACTION_TEXT[action]} {flagged.image.name}")


def item_actions(prefix: str, page: str, flagged: FlaggedImage, classes: Sequence[str], dataset_name: str,
                 quick_label: str | None = None) -> None:
    """Keep / drop buttons, a relabel picker, and (label issues) a one-click relabel to the suggestion."""
    if flagged.image.image_hash is None:
        return
    key = flagged.key
    keep, drop = st.columns(2)
    keep.button("Keep", key=f"{prefix}_keep_{key}", icon=":material/check:", width="stretch",
                on_click=on_item_action, args=(prefix, page, dataset_name, flagged, "keep"))
    drop.button("Drop", key=f"{prefix}_drop_{key}", icon=":material/delete:", width="stretch",
                on_click=on_item_action, args=(prefix, page, dataset_name, flagged, "drop"))
    if quick_label and quick_label != flagged.image.label:
        st.button(f"Relabel to {quick_label}", key=f"{prefix}_suggested_{key}", icon=":material/label:",
                  width="stretch", on_click=on_item_action,
                  args=(prefix, page, dataset_name, flagged, "relabel", quick_label))
    options = [c for c in classes if c != flagged.image.label]
    st.selectbox("Relabel to", options, index=None, placeholder="choose a class", key=f"{prefix}_label_{key}")
    st.button("Relabel", key=f"{prefix}_relabel_{key}", icon=":material/edit:", width="stretch",
              on_click=on_item_action, args=(prefix, page, dataset_name, flagged, "relabel"))
    st.text_input("Note", key=f"{prefix}_note_{key}", max_chars=500, placeholder="Note (optional)",
                  label_visibility="collapsed")


def relabel_classes(dataset: Dataset) -> list[str]:
    """The dataset's classes, then the canonical ones it lacks."""
    from bloodcell_core.classes import CANONICAL_CLASSES

    return list(dataset.classes) + [c for c in CANONICAL_CLASSES if c not in dataset.classes]


def model_checks_header(prefix: str) -> tuple[Dataset, str, Dataset, Predictor, Path] | None:
    """Model, dataset picker and sample size of the Outliers / Label issues pages.

    Returns ``(dataset, its review-store name, the sample, predictor, model folder)``.
    """
    predictor = state.predictor_or_stop()
    model_dir = state.selected_model_dir()
    data_column, size_column = st.columns([3, 2], vertical_alignment="bottom")
    chosen = review_dataset(prefix, data_column)
    if chosen is None:
        return None
    dataset, dataset_name = chosen
    sample, _ = model_sample(dataset, prefix, size_column)
    st.caption(f"{state.md_escape(dataset_name)}: {len(dataset):,} images, {len(dataset.classes)} classes; "
               f"the model checks use {len(sample):,} of them. Model: {state.md_escape(predictor.name)}.")
    return dataset, dataset_name, sample, predictor, model_dir


# -- the frame of a review page ---------------------------------------------------------------------

def review_page(title: str, caption: str) -> state.Access:
    """Sign-in (stops when this session may not view), then the page's title and what it is for."""
    access = state.require_view()
    st.title(title)
    st.caption(caption)
    return access


def checked_report(sample: Dataset, predictor: Predictor, model_dir: Path, settings: AuditSettings, prefix: str,
                   check: str) -> dict[str, Any] | None:
    """:func:`model_report` with its problems shown; None unless ``check`` ran."""
    report = model_report(sample, predictor, model_dir, settings, prefix)
    if report is None:
        return None
    show_report_problems(report, (check,))
    return report if check in report else None


def queue_decisions(queue: Sequence[Any], dataset_name: str, access: state.Access, prefix: str, noun: str,
                    none_found: str) -> dict[str, Decision] | None:
    """The queue's latest decisions, with its progress, the sign-in note and the last click's outcome drawn;
    None when the queue is empty (``none_found`` shown) or the review store is unavailable (error shown)."""
    if not queue:
        st.success(none_found)
        return None
    latest = latest_decisions(dataset_name)
    if latest is None:
        return None
    show_progress(queue_progress(queue, latest), noun)
    if access.reviewer is None:
        st.info(access.reason, icon=":material/lock:")
    show_message(prefix)
    return latest


@dataclass(frozen=True)
class CheckedQueue:
    """A model check's queue on the Outliers / Label issues page, and what drawing it needs."""

    dataset_name: str
    sample: Dataset
    predictor: Predictor
    model_dir: Path
    queue: list[FlaggedImage]
    latest: dict[str, Decision]


def model_check_queue(access: state.Access, prefix: str, check: str, noun: str, none_found: str,
                      settings: Callable[[], AuditSettings],
                      to_queue: Callable[[Mapping[str, Any], Mapping[str, Any]], list[FlaggedImage]],
                      ) -> CheckedQueue | None:
    """Model, dataset and sample pickers, ``settings()``'s widgets, the check's report and its queue with
    the latest decisions (see :func:`queue_decisions`); None when there is nothing to review."""
    header = model_checks_header(prefix)
    if header is None:
        return None
    _, dataset_name, sample, predictor, model_dir = header
    report = checked_report(sample, predictor, model_dir, settings(), prefix, check)
    if report is None:
        return None
    queue = to_queue(report, report_hashes(sample, report))
    latest = queue_decisions(queue, dataset_name, access, prefix, noun, none_found)
    return None if latest is None else CheckedQueue(dataset_name, sample, predictor, model_dir, queue, latest)


def pending_entries(entries: Sequence[T], latest: Mapping[str, Decision], prefix: str, what: str,
                    items: str = "images", container: Any = None) -> list[T]:
    """The entries to show, undecided first (decided ones only when the toggle is on); empty: a note says
    every ``what`` has been reviewed."""
    show_decided = (container or st).toggle(f"Show decided {items}", key=f"{prefix}_show_decided")
    shown = pending_first(entries, latest, show_decided)
    if not shown:
        st.success(f"Every {what} here has been reviewed. Turn on 'Show decided {items}' to see them.")
    return shown
