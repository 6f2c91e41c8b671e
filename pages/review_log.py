"""Review log: every recorded decision (who, what, when) and adaptation run, filterable, downloadable as CSV."""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from pathlib import Path

import pandas as pd
import streamlit as st

from bloodcell_core.adaptation.from_archive import adaptation_runs
from bloodcell_core.errors import BloodcellError
from bloodcell_core.review.store import ACTIONS, ReviewStore
from dashboard import state
from dashboard.datasets import dataset_label, root_of

PREFIX = "log"
ALL = "(all)"
SHOWN_COLUMNS = ["time", "reviewer", "action", "dataset", "path", "old_label", "new_label", "note", "image_hash"]


def since_moment(day: date | None) -> datetime | None:
    """Midnight UTC at the start of ``day`` (the store keeps UTC times)."""
    return None if day is None else datetime.combine(day, time.min, tzinfo=timezone.utc)


def choices(history: pd.DataFrame, column: str) -> list[str]:
    return [ALL, *sorted(str(value) for value in history[column].dropna().unique())]


def filters_from_widgets(everything: pd.DataFrame) -> dict[str, object]:
    """The reviewer / action / dataset / since pickers as ``ReviewStore.history`` keyword arguments."""
    reviewer_column, action_column, dataset_column, since_column = st.columns(4)
    reviewer = reviewer_column.selectbox("Reviewer", choices(everything, "reviewer"), key=f"{PREFIX}_reviewer")
    action = action_column.selectbox("Action", [ALL, *ACTIONS], key=f"{PREFIX}_action")
    dataset = dataset_column.selectbox("Dataset", choices(everything, "dataset"), key=f"{PREFIX}_dataset")
    day = since_column.date_input("Since (UTC)", value=None, key=f"{PREFIX}_since", format="YYYY-MM-DD")
    chosen = {"reviewer": reviewer, "action": action, "dataset": dataset}
    filters: dict[str, object] = {name: value for name, value in chosen.items() if value != ALL}
    if since_moment(day) is not None:
        filters["since"] = since_moment(day)
    return filters


def display_path(path: str) -> str:
    """A recorded path as ``root-name/relative`` when it lies in a data root: no server paths on screen."""
    if not path:
        return ""
    try:
        return dataset_label(Path(path)) if root_of(Path(path)) is not None else path
    except (OSError, ValueError):
        return path


def show_table(history: pd.DataFrame) -> None:
    columns = st.columns(3)
    columns[0].metric("Decisions", f"{len(history):,}")
    columns[1].metric("Reviewers", history["reviewer"].nunique())
    columns[2].metric("Images", history["image_hash"].nunique())
    shown = history[SHOWN_COLUMNS].assign(path=[display_path(p) for p in history["path"]])
    st.dataframe(shown, hide_index=True, width="stretch",
                 column_config={"time": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
                                "path": st.column_config.TextColumn("path", help="Relative to its data root; the "
                                                                    "CSV has the full recorded path"),
                                "old_label": "old label", "new_label": "new label",
                                "image_hash": st.column_config.TextColumn("image hash (SHA-256)", width="small")})


def show_adaptation_runs(store: ReviewStore) -> None:
    """Models adapted on the reviewed-cell archive: who, when, from which cells, with what result."""
    runs = adaptation_runs(store)
    if runs.empty:
        return
    st.subheader("Adaptation runs")
    st.dataframe(runs, hide_index=True, width="stretch",
                 column_config={"time": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
                                "from": st.column_config.TextColumn("adapted on"),
                                "result": st.column_config.TextColumn("result (cross-validated; home check)")})
    st.subheader("Decisions")


def download(store: ReviewStore, filters: dict[str, object]) -> None:
    stamp = datetime.now(timezone.utc)
    st.download_button("Download CSV", store.to_csv(**filters), file_name=f"review-log-{stamp:%Y%m%d-%H%M}.csv",
                       mime="text/csv", on_click="ignore", icon=":material/download:", key=f"{PREFIX}_csv",
                       help="Every column of the decisions shown, including request ids.")


def main() -> None:
    state.require_view()
    st.title("Review log")
    st.caption("The append-only trail of every decision: nothing here is ever edited or deleted; a later "
               "decision on the same image supersedes the earlier one.")
    try:
        store = state.review_store()
        everything = store.history()
    except BloodcellError as error:
        st.error(f"Review store unavailable: {state.one_line(error)}")
        return
    if everything.empty:
        st.info("No decisions recorded yet.")
        return
    try:
        show_adaptation_runs(store)
    except BloodcellError as error:
        st.error(state.one_line(error))
    filters = filters_from_widgets(everything)
    try:
        history = store.history(**filters)
    except BloodcellError as error:
        st.error(state.one_line(error))
        return
    if history.empty:
        st.info("No decision matches these filters.")
        return
    show_table(history)
    download(store, filters)


main()
