"""Adapt to your lab: the reviewed-cell archive per class and source, and adapting the current model on it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from bloodcell_core.adaptation.from_archive import adapt_from_archive, recall_table
from bloodcell_core.errors import BloodcellError
from bloodcell_core.models.card import ModelCard
from bloodcell_core.reporting.performance import curve_table
from bloodcell_core.review.archive import archive_counts, archived_cells
from bloodcell_core.review.store import ReviewStore
from dashboard import charts, state

PREFIX = "adapt"
RESULT_KEY = f"{PREFIX}_result"  # the last run this session: {"folder", "parent", "card"}


def show_archive(counts: pd.DataFrame) -> None:
    """Reviewed cells per class and source: a table (classes x sources) and a bar chart."""
    table = counts.pivot_table(index="class", columns="source", values="cells", aggfunc="sum", fill_value=0)
    left, right = st.columns([2, 3])
    left.dataframe(table, width="stretch")
    right.bar_chart(counts, x="class", y="cells", color="source", stack=True, horizontal=True, height=260)
    st.caption(f"{int(counts['cells'].sum()):,} reviewed cells from {counts['source'].nunique()} source(s); each "
               "counts under its latest decision.")


def ten_cell_summary(row: dict[str, Any]) -> str:
    """One laboratory's k = 10 point of a curve table, in words."""
    home = row["home after"]
    return (f"{state.md_escape(row['laboratory'])}: {row['unadapted']:.0%} unadapted, {row['adapted']:.0%} after "
            f"10 cells per class" + (f" (home images {home:.1%} after)" if home == home else ""))  # NaN: no check


def show_expected_gain() -> None:
    """The k-shot curves the picked model's card records: how many cells per class are worth labelling."""
    try:
        _, card = state.selected_card()
    except BloodcellError:
        return
    table = curve_table(card)
    if table.empty:
        return
    with st.expander("What to expect: how many cells per class to label", icon=":material/monitoring:"):
        st.plotly_chart(charts.adaptation_curve_figure(table), key=f"{PREFIX}_curve")
        measured = "; ".join(ten_cell_summary(row) for row in table[table["k"] == 10].to_dict("records"))
        st.caption("Measured for this model on laboratories it never trained on (random draws of k labelled "
                   "cells per class, the rest of the laboratory scored, near-duplicates of picked cells left "
                   f"out){': ' + measured if measured else ''}. Your laboratory may differ.")


def picked_parent() -> Path | None:
    """The parent folder named in the picked model's card (an adapted model), when it still holds a model."""
    try:
        _, card = state.selected_card()
    except BloodcellError:
        return None
    folder = (card.adaptation.get("parent") or {}).get("folder")
    return Path(folder) if folder and (Path(folder) / "model.keras").is_file() else None


def show_switch_back() -> None:
    """One click back to the parent while an adapted model is picked."""
    parent = picked_parent()
    if parent is not None:
        st.button(f"Switch back to the parent model: {state.md_escape(state.model_label(parent.resolve()))}",
                  key=f"{PREFIX}_switch_back", icon=":material/undo:", on_click=state.select_model, args=(parent,))


def run_adaptation(store: ReviewStore, source: str, name: str, reviewer: str) -> None:
    """Adapt the picked model on ``source``'s cells with a progress bar; on success rerun to show it."""
    parent_dir = state.selected_model_dir()
    predictor = state.predictor_or_stop()
    try:
        with state.progress_bar("Adapting") as progress:
            run = adapt_from_archive(store, predictor, parent_dir, source, name, reviewer, progress)
    except BloodcellError as error:
        st.error(state.md_escape(state.one_line(error)))
        return
    st.session_state[RESULT_KEY] = {"folder": str(run.folder.resolve()), "parent": str(parent_dir),
                                    "card": run.card}
    st.rerun()  # so the sidebar picker lists the new model at once


def show_metrics(card: ModelCard) -> None:
    info = card.adaptation
    cv = info.get("cross_validation") or {}
    home = info.get("home_check")
    columns = st.columns(3)
    if cv:
        columns[0].metric("Accuracy on your cells (cross-validated)", f"{cv['after']['accuracy']:.1%}",
                          f"{cv['after']['accuracy'] - cv['before']['accuracy']:+.1%} vs parent")
        columns[1].metric("Balanced accuracy", f"{cv['after']['balanced_accuracy']:.1%}",
                          f"{cv['after']['balanced_accuracy'] - cv['before']['balanced_accuracy']:+.1%} vs parent")
    if home:
        columns[2].metric(f"Home check ({home['n_images']} held-out images)", f"{home['accuracy_after']:.1%}",
                          f"{home['accuracy_after'] - home['accuracy_before']:+.1%} vs parent")
    else:
        columns[2].metric("Home check", "not run", help="The parent's held-out home images were not readable.")
    if cv:
        st.caption(f"{cv['folds']}-fold cross-validation on your cells, grouped so near-duplicates never straddle "
                   "folds: every cell is scored by a model adapted without it.")


def show_result(result: dict[str, Any]) -> None:
    card = result["card"]
    st.success(state.md_escape(f"Saved the adapted model '{card.name}': pick it in the sidebar."),
               icon=":material/task_alt:")
    show_metrics(card)
    st.dataframe(recall_table(card), hide_index=True, width="content",
                 column_config={"recall before": st.column_config.NumberColumn(format="percent"),
                                "recall after": st.column_config.NumberColumn(format="percent")})
    use, back = st.columns(2)
    use.button("Use the adapted model", key=f"{PREFIX}_use_new", icon=":material/check:",
               on_click=state.select_model, args=(result["folder"],))
    back.button("Use the parent model", key=f"{PREFIX}_use_parent", icon=":material/undo:",
                on_click=state.select_model, args=(result["parent"],))


def show_form(store: ReviewStore, sources: list[str], reviewer: str | None, reason: str) -> None:
    if reviewer is None:
        st.info(reason, icon=":material/lock:")
        return
    parent_name = state.model_label(state.selected_model_dir())
    source = st.selectbox("Adapt on the cells from", sources, key=f"{PREFIX}_source")
    name = st.text_input("Name for the new model", key=f"{PREFIX}_model_name", max_chars=80,
                         placeholder=f"e.g. {parent_name.split(' ')[0]}-{source}")
    st.caption(f"Adapts the current model, {state.md_escape(parent_name)}, and saves a new model; the current "
               "one is not changed.")
    if st.button("Adapt the current model", key=f"{PREFIX}_run", type="primary", icon=":material/tune:"):
        run_adaptation(store, source, name, reviewer)


def main() -> None:
    access = state.require_view()
    st.title("Adapt to your lab")
    st.caption("Every cell a signed-in reviewer accepts or corrects on Classify is archived with its laboratory "
               "name. A few of them per class refit the model to this laboratory's stain and microscope.")
    show_switch_back()
    show_expected_gain()
    try:
        store = state.review_store()
        counts = archive_counts(archived_cells(store))
    except BloodcellError as error:
        st.error(f"Review store unavailable: {state.one_line(error)}")
        return
    if counts.empty:
        st.info("No reviewed cells archived yet: on Classify, set the laboratory / source name in the sidebar, "
                "then accept or correct cells.")
        return
    show_archive(counts)
    show_form(store, sorted(counts["source"].unique()), access.reviewer, access.reason)
    result = st.session_state.get(RESULT_KEY)
    if result is not None:
        show_result(result)


main()
