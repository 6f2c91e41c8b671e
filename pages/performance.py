"""Model performance: the loaded model (and optionally a second one) on a labelled dataset."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from bloodcell_core.data.datasets import Dataset
from bloodcell_core.errors import BloodcellError
from bloodcell_core.evaluation.evaluate import Evaluation, evaluate
from bloodcell_core.explain import DEFAULT_METHOD, METHOD_NAMES, overlay
from bloodcell_core.inference.predictor import Predictor
from bloodcell_core.models.card import ModelCard
from bloodcell_core.reporting.images import explained_crop
from bloodcell_core.reporting.performance import (compare_frame, confusion_pairs, format_metric, headline,
                                                  misclassified, per_class_frame, sample_dataset,
                                                  threshold_point)
from dashboard import charts, state
from dashboard.datasets import data_root_picker, dataset_label, held_out_choice, open_dataset

DEFAULT_SAMPLE = 1000
GALLERY_PER_PAGE = 12
NO_COMPARISON = "(none)"
EXPLANATIONS_KEY = "perf_explanations"  # {model key|method|item: (crop, heatmap)}


def evaluation_for(predictor: Predictor, model_dir: Path, sample: Dataset, sample_size: int | None,
                   compute: bool) -> Evaluation | None:
    """The cached evaluation of this model on this sample; computed (with progress) when ``compute``."""
    cache = state.result_cache("performance", 8)
    key = (state.model_key(model_dir), sample.source, sample.fingerprint(), sample_size)
    cached = cache.get(key)
    if cached is not None or not compute:
        return cached
    with state.progress_bar(f"Evaluating {predictor.name}") as progress:
        result = evaluate(sample, predictor, progress)
    cache.put(key, result)
    return result


def show_headline(report: dict) -> None:
    values = headline(report)
    for column, (name, value) in zip(st.columns(len(values)), values.items()):
        column.metric(name, format_metric(name, value))


def show_confusion(report: dict, normalise: bool, key: str, title: str = "Confusion matrix") -> None:
    st.plotly_chart(charts.confusion_matrix_figure(report["confusion_matrix"], report["classes"], normalise,
                                                   title=title), key=key)


def show_confusion_tab(report: dict) -> None:
    normalise = st.toggle("Row-normalised (share of each true class)", key="perf_normalise")
    left, right = st.columns([5, 2])
    with left:
        show_confusion(report, normalise, "perf_confusion")
        st.caption("Outlined: immature granulocyte ↔ monocyte, the confusion that matters most clinically.")
    with right:
        right.metric("IG predicted as monocyte", format_metric("rate", report.get("ig_to_monocyte")))
        right.metric("Monocyte predicted as IG", format_metric("rate", report.get("monocyte_to_ig")))
        pairs = report.get("most_confused", [])
        if pairs:
            st.markdown("**Most confused pairs**")
            st.dataframe(pd.DataFrame(pairs), hide_index=True,
                         column_config={"rate": st.column_config.NumberColumn(format="percent")})


def show_per_class(report: dict) -> None:
    frame = per_class_frame(report)
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(frame, hide_index=True, column_config={c: percent for c in
                                                        ("precision", "recall", "f1", "specificity")})


def show_calibration(report: dict) -> None:
    st.plotly_chart(charts.reliability_figure(report.get("reliability", {}), report.get("ece")),
                    key="perf_reliability")
    st.caption("Bars below the diagonal: the model is more confident than it is right (over-confident).")


def show_coverage(evaluation: Evaluation, card: ModelCard) -> None:
    threshold = card.review.confidence_threshold
    point = threshold_point(evaluation, threshold)
    label = f"card threshold {threshold:.3f}" if threshold is not None else ""
    st.plotly_chart(charts.coverage_figure(evaluation.report.get("coverage_curve", {}), point, label),
                    key="perf_coverage")
    flags = evaluation.report.get("needs_review", {})
    columns = st.columns(3)
    columns[0].metric("Flagged needs review", format_metric("rate", flags.get("fraction_flagged")))
    columns[1].metric("Accuracy of unflagged", format_metric("rate", flags.get("accuracy_unflagged")))
    columns[2].metric("Errors caught by the flag", format_metric("rate", flags.get("errors_flagged")))
    if point is not None:
        st.caption(f"At the model card's confidence threshold ({threshold:.3f}) the model decides "
                   f"{point[0]:.1%} of these images alone, with {point[1]:.1%} accuracy. The flag also "
                   "fires on out-of-distribution images and when no cell is found.")


def gallery_explanation(predictor: Predictor, model_dir: Path, sample: Dataset, item: str, method: str,
                        class_name: str) -> tuple[np.ndarray, np.ndarray] | None:
    cache: dict = st.session_state.setdefault(EXPLANATIONS_KEY, {})
    key = f"{state.model_key(model_dir)}|{method}|{item}|{class_name}"
    if key not in cache:
        positions = st.session_state.setdefault("perf_item_positions", {})
        identity = (sample.source, hash(tuple(sample.items)))
        if positions.get("source") != identity:
            positions.clear()
            positions.update({"source": identity,
                              "index": {name: i for i, name in enumerate(sample.items)}})
        index = positions["index"][item]
        explainer = state.load_explainer(predictor, model_dir, method)
        cache[key] = explained_crop(predictor, explainer, sample.load(index), class_name)
    return cache[key]


def show_gallery(evaluation: Evaluation, predictor: Predictor, model_dir: Path, sample: Dataset) -> None:
    errors = misclassified(evaluation)
    if not errors:
        st.success("No misclassified images in this sample.")
        return
    pairs = confusion_pairs(errors)
    options = ["all"] + [f"{true} → {predicted}" for (true, predicted), _ in pairs]
    counts = {"all": len(errors), **{f"{t} → {p}": n for (t, p), n in pairs}}
    pick, method_column, alpha_column = st.columns([2, 1, 1])
    chosen = pick.selectbox("Confusion (true → predicted)", options, key="perf_pair",
                            format_func=lambda o: f"{o} ({counts[o]} images)")
    method = method_column.selectbox("Explanation", list(METHOD_NAMES), index=METHOD_NAMES.index(DEFAULT_METHOD),
                                     key="perf_method")
    alpha = alpha_column.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05, key="perf_alpha")
    shown = errors if chosen == "all" else misclassified(evaluation, tuple(chosen.split(" → ")))
    pages = max(1, -(-len(shown) // GALLERY_PER_PAGE))
    if st.session_state.get("perf_gallery_page", 1) > pages:
        st.session_state["perf_gallery_page"] = 1
    page = 1
    if pages > 1:
        page = st.columns([1, 4])[0].number_input(f"Page (of {pages})", 1, pages, key="perf_gallery_page")
    st.caption("Most confident mistakes first. Each tile: the crop the model saw with the explanation "
               "of its (wrong) prediction.")
    columns = st.columns(4)
    for slot, error in enumerate(shown[(page - 1) * GALLERY_PER_PAGE: page * GALLERY_PER_PAGE]):
        with columns[slot % 4]:
            try:
                crop, heatmap = gallery_explanation(predictor, model_dir, sample, error.item, method,
                                                    error.predicted)
                st.image(overlay(crop, heatmap, alpha), width="stretch")
            except BloodcellError as problem:
                st.warning(state.one_line(problem))
            st.caption(f"true **{error.true}**, predicted **{error.predicted}** ({error.confidence:.0%})")
            st.text(Path(error.item.split("::")[0]).name)


def compare_models(first: tuple[str, Evaluation], second: tuple[str, Evaluation]) -> None:
    st.subheader("Side by side")
    names = [first[0], second[0]] if first[0] != second[0] else [f"{first[0]} (1)", f"{second[0]} (2)"]
    frame = compare_frame({names[0]: first[1].report, names[1]: second[1].report})
    shown = pd.DataFrame({column: [format_metric(metric, value) for metric, value in frame[column].items()]
                          for column in frame.columns}, index=frame.index)
    st.dataframe(shown, width="stretch")
    normalise = st.toggle("Row-normalised", key="perf_compare_normalise")
    left, right = st.columns(2)
    with left:
        show_confusion(first[1].report, normalise, "perf_confusion_a", title=names[0])
    with right:
        show_confusion(second[1].report, normalise, "perf_confusion_b", title=names[1])


def comparison_choice(model_dir: Path) -> Path | None:
    others = [str(p) for p in state.model_options() if p.resolve() != model_dir.resolve()]
    choice = st.selectbox("Compare with", [NO_COMPARISON, *others], key="perf_compare",
                          format_func=lambda o: o if o == NO_COMPARISON else state.model_label(Path(o)))
    return None if choice == NO_COMPARISON else Path(choice)


def open_scored(dataset_path: Path, card: ModelCard) -> tuple[Dataset, Dataset] | None:
    """(the dataset, the part to score: its held-out images when the model trained on it), or None."""
    try:
        dataset = open_dataset(dataset_path)
    except BloodcellError as error:
        st.error(state.one_line(error))
        return None
    scored = held_out_choice(dataset, card, "perf_training_images")
    return None if scored is None else (dataset, scored)


def comparison_predictor(other_dir: Path | None) -> Predictor | None:
    if other_dir is None:
        return None
    try:
        return state.load_predictor(other_dir)
    except Exception as error:  # noqa: BLE001 (a broken second model must not break the page)
        st.error(f"The comparison model can't be loaded: {state.one_line(error)}")
        return None


def main() -> None:
    state.require_view()
    st.title("Model performance")
    predictor = state.predictor_or_stop()
    model_dir = state.selected_model_dir()
    data_column, size_column, compare_column = st.columns([2, 1, 2])
    with data_column:
        dataset_path = data_root_picker("perf_dataset", "Labelled dataset")
    sample_size = size_column.number_input("Images (stratified sample; 0 = all)", 0, None, DEFAULT_SAMPLE, 100,
                                           key="perf_sample")
    with compare_column:
        other_dir = comparison_choice(model_dir)
    opened = open_scored(dataset_path, predictor.card) if dataset_path is not None else None
    if opened is None:
        return
    dataset, scored = opened
    size = int(sample_size) or None
    sample = sample_dataset(scored, size)
    other = comparison_predictor(other_dir)
    label = dataset_label(dataset_path)
    st.caption(f"{label}: {len(dataset):,} images, {len(dataset.classes)} classes; evaluating {len(sample):,}.")

    evaluation = evaluation_for(predictor, model_dir, sample, size, compute=False)
    second = evaluation_for(other, other_dir, sample, size, compute=False) if other is not None else None
    missing = evaluation is None or (other is not None and second is None)
    start = st.empty()
    if missing and not start.button("Evaluate", type="primary", key="perf_run", icon=":material/play_arrow:"):
        st.info(f"Press Evaluate to run the model on {len(sample):,} images. Results are kept for this "
                "model and dataset until the app restarts.")
        return
    start.empty()
    evaluation = evaluation_for(predictor, model_dir, sample, size, compute=True)
    if other is not None:
        second = evaluation_for(other, other_dir, sample, size, compute=True)

    report = evaluation.report
    if report["n_images"] == 0:
        st.warning("None of these images has a class the model knows.")
        return
    st.subheader(f"{predictor.name} on {len(evaluation.items):,} images")
    show_headline(report)
    skipped = len(report.get("unreadable", [])), report.get("unknown_class_images", {}).get("n_images", 0)
    if any(skipped):
        st.caption(f"Left out: {skipped[0]} unreadable file(s), {skipped[1]} image(s) of classes the model "
                   "does not know.")
    if second is not None:
        compare_models((predictor.name, evaluation), (other.name, second))
    tabs = st.tabs(["Confusion matrix", "Per-class metrics", "Calibration", "Accuracy vs coverage",
                    "Misclassified images"])
    with tabs[0]:
        show_confusion_tab(report)
    with tabs[1]:
        show_per_class(report)
    with tabs[2]:
        show_calibration(report)
    with tabs[3]:
        show_coverage(evaluation, predictor.card)
    with tabs[4]:
        show_gallery(evaluation, predictor, model_dir, sample)


main()
