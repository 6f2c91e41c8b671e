"""Outliers: images whose model features sit far from every other image's.

A ranked gallery (most unusual first) with keep / drop / relabel per image, and a 2-D map of
the model's features, coloured by class, with the outliers ringed.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from bloodcell_core.audit import AuditSettings
from bloodcell_core.audit.base import OUTLIER_METHODS
from bloodcell_core.audit.embedding_map import PROJECTIONS, EmbeddingMap, map_features
from bloodcell_core.audit.review_queue import OUTLIERS_PAGE, FlaggedImage, is_decided, outlier_queue
from bloodcell_core.data.datasets import Dataset
from bloodcell_core.errors import BloodcellError
from bloodcell_core.inference.predictor import Predictor
from bloodcell_core.review.store import Decision
from dashboard import review_charts, review_widgets, state

PREFIX = "outl"
PER_PAGE = 12
COLUMNS = 4
VIEWS = ("Ranked gallery", "Feature map")


def feature_map(predictor: Predictor, model_dir: Path, sample: Dataset, projection: str) -> EmbeddingMap:
    """The 2-D map of the sample's features (the ones the outlier scores used), once per model, sample and
    projection."""
    cache = state.result_cache("outlier_feature_maps", 4)
    key = (state.model_key(model_dir), sample.source, sample.fingerprint(), projection)
    cached = cache.get(key)
    if cached is None:
        cached = map_features(sample, *review_widgets.sample_features(sample, predictor, model_dir), projection)
        cache.put(key, cached)
    return cached


def show_map(queue: list[FlaggedImage], predictor: Predictor, model_dir: Path, sample: Dataset) -> None:
    projection = st.radio("Projection", PROJECTIONS, horizontal=True, key=f"{PREFIX}_projection",
                          help="PCA is quick and keeps distances comparable; t-SNE separates clusters "
                               "better but takes longer (seconds to a minute for thousands of images).")
    try:
        embedding = feature_map(predictor, model_dir, sample, projection)
    except BloodcellError as error:
        st.error(f"No map: {state.one_line(error)}")
        return
    st.plotly_chart(review_charts.embedding_scatter(embedding, {f.image.path for f in queue}),
                    key=f"{PREFIX}_map")
    st.caption("Each point is an image of the sample placed by the model's features; rings mark the "
               "outliers. Hover a point for its file.")


def show_tile(flagged: FlaggedImage, sample: Dataset, dataset_name: str, latest: dict[str, Decision],
              reviewer: str | None) -> None:
    with st.container(border=True):
        decided = " · :green-badge[decided]" if is_decided(flagged, latest) else ""
        st.markdown(f"**#{flagged.rank}** · score {flagged.score:.3g}{decided}")
        review_widgets.show_image(sample, flagged.image, latest,
                                  [f"Label: **{state.md_escape(flagged.image.label)}**"])
        if reviewer is not None:
            review_widgets.item_actions(PREFIX, OUTLIERS_PAGE, flagged, review_widgets.relabel_classes(sample),
                                        dataset_name)


def show_gallery(queue: list[FlaggedImage], sample: Dataset, dataset_name: str, latest: dict[str, Decision],
                 reviewer: str | None) -> None:
    shown = review_widgets.pending_entries(queue, latest, PREFIX, "outlier")
    if not shown:
        return
    columns = st.columns(COLUMNS)
    for slot, flagged in enumerate(review_widgets.paginate(shown, PREFIX, PER_PAGE)):
        with columns[slot % COLUMNS]:
            show_tile(flagged, sample, dataset_name, latest, reviewer)


def outlier_settings() -> AuditSettings:
    method = st.selectbox("Outlier score", list(OUTLIER_METHODS), format_func=OUTLIER_METHODS.get,
                          key=f"{PREFIX}_method",
                          help="Both score the model's penultimate-layer features; the top 1% are listed.")
    return AuditSettings(outlier_method=method)


def main() -> None:
    access = review_widgets.review_page(
        "Outliers", "Images unlike the rest of the data: debris, smudges, two cells in one crop, a wrong stain, "
                    "or a rare but real cell. Keep the real ones, drop the unusable ones, relabel the misfiled ones.")
    checked = review_widgets.model_check_queue(access, PREFIX, "outliers", "outliers",
                                               "No outliers found in this sample.", outlier_settings, outlier_queue)
    if checked is None:
        return
    if len(checked.queue) > 1 and len({flagged.score for flagged in checked.queue}) == 1:
        st.warning("Every listed image has the same outlier score: the model's features don't tell these "
                   "images apart (an untrained or collapsed model?), so this ranking means nothing.")
    view = st.segmented_control("View", VIEWS, default=VIEWS[0], key=f"{PREFIX}_view") or VIEWS[0]
    if view == VIEWS[0]:
        show_gallery(checked.queue, checked.sample, checked.dataset_name, checked.latest, access.reviewer)
    else:
        show_map(checked.queue, checked.predictor, checked.model_dir, checked.sample)


main()
