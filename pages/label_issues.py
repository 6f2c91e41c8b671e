"""Label issues: images whose given label the model's features confidently contradict.

Found by confident learning (cleanlab) on out-of-fold probabilities; each image shows its given
label next to the suggested one and the model's own probabilities, with keep / relabel / drop.
"""
from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from bloodcell_core.audit import AuditSettings
from bloodcell_core.audit.review_queue import LABEL_ISSUES_PAGE, FlaggedImage, is_decided, label_issue_queue
from bloodcell_core.data.datasets import Dataset
from bloodcell_core.inference.predictor import Predictor
from bloodcell_core.review.store import Decision
from dashboard import charts, review_widgets, state

PREFIX = "labiss"
PER_PAGE = 8
COLUMNS = 4
PROBABILITIES_KEY = "labiss_probabilities"  # {model key|path: [(class, probability)] top 3}


def model_probabilities(predictor: Predictor, model_dir: Path, sample: Dataset,
                        shown: list[FlaggedImage]) -> dict[str, list[tuple[str, float]]]:
    """path -> the model's top-3 (class, probability) for the shown images, computed once per session."""
    cache: dict[str, list[tuple[str, float]]] = st.session_state.setdefault(PROBABILITIES_KEY, {})
    model = state.model_key(model_dir)
    missing = {}
    for flagged in shown:
        if f"{model}|{flagged.image.path}" not in cache:
            image = review_widgets.load_item(sample, flagged.image.path)
            if image is not None:
                missing[flagged.image.path] = image
    if missing:
        with st.spinner(f"Classifying {len(missing)} image(s)..."):
            predictions = predictor.predict_images(list(missing.values()), batch_size=32)
        cache.update({f"{model}|{path}": p.top(3) for path, p in zip(missing, predictions)})
    return {f.image.path: cache[f"{model}|{f.image.path}"] for f in shown if f"{model}|{f.image.path}" in cache}


def probability_figure(top: list[tuple[str, float]]) -> go.Figure:
    """The shared top-3 bars, compacted for a narrow tile (the bars carry their percentages)."""
    figure = charts.probability_bars(top, title="Model probabilities", height=140)
    figure.update_xaxes(showticklabels=False, showgrid=False)
    figure.update_layout(margin=dict(l=0, r=0, t=28, b=0), title_font_size=13)
    return figure


def show_tile(flagged: FlaggedImage, sample: Dataset, dataset_name: str, latest: dict[str, Decision],
              reviewer: str | None, top: list[tuple[str, float]] | None) -> None:
    with st.container(border=True):
        decided = " · :green-badge[decided]" if is_decided(flagged, latest) else ""
        st.markdown(f"**#{flagged.rank}**{decided}")
        given, suggested = state.md_escape(flagged.image.label), state.md_escape(flagged.suggested_label or "?")
        review_widgets.show_image(sample, flagged.image, latest, [
            f"Given **{given}** → suggested **{suggested}**",
            f"Out-of-fold probability of the given label: {flagged.score:.1%}"])
        if top:
            st.plotly_chart(probability_figure(top), key=f"{PREFIX}_probs_{flagged.key}",
                            config={"displayModeBar": False})
        if reviewer is not None:
            review_widgets.item_actions(PREFIX, LABEL_ISSUES_PAGE, flagged, review_widgets.relabel_classes(sample),
                                        dataset_name, quick_label=flagged.suggested_label)


def main() -> None:
    access = review_widgets.review_page(
        "Label issues", "Images whose given label the model's features confidently contradict (confident learning "
                        "on cross-validated probabilities). Keep the label when it is right, relabel when it is "
                        "not, drop images nobody can classify.")
    checked = review_widgets.model_check_queue(access, PREFIX, "label_issues", "label issues",
                                               "No likely label errors found in this sample.", AuditSettings,
                                               label_issue_queue)
    if checked is None:
        return
    sample, latest = checked.sample, checked.latest
    shown = review_widgets.pending_entries(checked.queue, latest, PREFIX, "label issue")
    if not shown:
        return
    page = review_widgets.paginate(shown, PREFIX, PER_PAGE)
    probabilities = model_probabilities(checked.predictor, checked.model_dir, sample, page)
    columns = st.columns(COLUMNS)
    for slot, flagged in enumerate(page):
        with columns[slot % COLUMNS]:
            show_tile(flagged, sample, checked.dataset_name, latest, access.reviewer,
                      probabilities.get(flagged.image.path))


main()
