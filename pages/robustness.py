"""Robustness: how accuracy holds up under MedMNIST-C blood corruptions and Gaussian noise.

Curves of accuracy against severity (one line per corruption), a corruption x class heatmap
of lost recall, the Gaussian-noise curve of the original report, and a gallery to watch one
image's prediction and Grad-CAM change as a corruption gets worse.  Results are computed once
per model, dataset and sample; a second model can be benchmarked on the same images.  Of a
dataset the model trained on, only the card's held-out images are used unless the user asks.

"Other laboratories": the model on every dataset under the data roots but its home laboratory
(a further training source is scored on its held-out images only and marked seen), through ``bloodcell_core.evaluation.crosslab``: a table, a confusion matrix
per laboratory and its most confident errors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from bloodcell_core.data.datasets import Dataset
from bloodcell_core.data.sampling import stratified_sample
from bloodcell_core.errors import BloodcellError
from bloodcell_core.explain import DEFAULT_METHOD, overlay
from bloodcell_core.inference.predictor import Prediction, Predictor
from bloodcell_core.reporting.images import explained_crop
from bloodcell_core.robustness.benchmark import run_robustness
from dashboard import charts, state
from dashboard import crosslab_view as labs_view
from dashboard import robustness_view as view
from dashboard.datasets import data_root_picker, dataset_label, held_out_choice, open_all_datasets, open_dataset

PREFIX = "rob"
DEFAULT_SAMPLE = 200  # 62 corrupted copies of each image: 73 s for 200 images (compact model, 2-core CPU, measured)
NO_COMPARISON = "(none)"
GALLERY_KEY = "rob_gallery"  # {model key|item|corruption|level|seed: (corrupted image, Prediction)}
GALLERY_MAX = 500  # images offered in the gallery picker
MEAN = "mean over severities"
LABS_TILES_KEY = "rob_labs_tiles"  # {model key|laboratory|fingerprint: [(crop, caption)]}
LABS_GALLERY = 8  # error tiles shown per laboratory


def benchmark(predictor: Predictor, model_dir: Path, dataset: Dataset, sample_size: int, seed: int,
              compute: bool) -> dict[str, Any] | None:
    """The cached robustness report of this model on this dataset and sample; computed when ``compute``."""
    cache = state.result_cache("robustness", 8)
    key = (state.model_key(model_dir), dataset.source, dataset.fingerprint(), sample_size, seed)
    cached = cache.get(key)
    if cached is not None or not compute:
        return cached
    with state.progress_bar(f"Corrupting and classifying ({predictor.name})") as progress:
        report = run_robustness(dataset, predictor, max_images=sample_size or None, seed=seed, progress=progress)
    cache.put(key, report)
    return report


def comparison_choice(model_dir: Path) -> Path | None:
    others = [str(p) for p in state.model_options() if p.resolve() != model_dir.resolve()]
    choice = st.selectbox("Compare with", [NO_COMPARISON, *others], key=f"{PREFIX}_compare",
                          format_func=lambda o: o if o == NO_COMPARISON else state.model_label(Path(o)))
    return None if choice == NO_COMPARISON else Path(choice)


def model_names(first: str, second: str | None) -> list[str]:
    if second is None:
        return [first]
    return [first, second] if first != second else [f"{first} (1)", f"{second} (2)"]


def show_curves(reports: dict[str, dict[str, Any]], metric: str) -> None:
    columns = st.columns(len(reports))
    for number, (column, (name, report)) in enumerate(zip(columns, reports.items())):
        with column:
            title = f"{view.METRICS[metric]} versus severity" + (f": {name}" if len(reports) > 1 else "")
            st.plotly_chart(view.severity_figure(report, metric, title=title), key=f"{PREFIX}_curves_{number}")
    if len(reports) > 1:
        st.plotly_chart(view.comparison_figure(reports, metric), key=f"{PREFIX}_compare_curves")
    st.caption("Severity 0 is the clean image; severities 1-5 follow MedMNIST-C's bloodmnist parameters.")


def show_heatmaps(reports: dict[str, dict[str, Any]]) -> None:
    levels = [MEAN, *[str(s) for s in next(iter(reports.values())).get("severities", [1, 2, 3, 4, 5])]]
    level = st.select_slider("Severity", levels, value=MEAN, key=f"{PREFIX}_heat_level")
    severity = None if level == MEAN else int(level)
    columns = st.columns(len(reports))
    for number, (column, (name, report)) in enumerate(zip(columns, reports.items())):
        title = "Recall drop per class" + (f": {name}" if len(reports) > 1 else "")
        column.plotly_chart(view.recall_drop_heatmap(view.recall_drop(report, severity), title=title),
                            key=f"{PREFIX}_heat_{number}")
    st.caption("Clean recall minus recall under the corruption: red cells are classes the corruption hurts.")


def show_noise(reports: dict[str, dict[str, Any]], metric: str) -> None:
    st.plotly_chart(view.noise_figure(reports, metric), key=f"{PREFIX}_noise")
    st.caption("Additive Gaussian noise on 0-1 scaled pixels, sigma 0.02 to 0.5: the curve of the original "
               "report. It is not part of the mean corrupted accuracy.")


def gallery_items(dataset: Dataset, sample_size: int, seed: int) -> np.ndarray:
    """Dataset indices the gallery offers: the benchmark's stratified sample (same size and seed)."""
    return stratified_sample(dataset.labels, min(sample_size or len(dataset), GALLERY_MAX), seed)


def gallery_prediction(predictor: Predictor, model_dir: Path, dataset: Dataset, index: int, name: str, level: int,
                       seed: int) -> tuple[np.ndarray, Prediction]:
    """(corrupted image, the model's prediction on it), once per session."""
    cache: dict = st.session_state.setdefault(GALLERY_KEY, {})
    key = f"{state.model_key(model_dir)}|{dataset.items[index]}|{name}|{level}|{seed}"
    if key not in cache:
        image = view.corrupted_view(dataset.load(index), name, level, seed, index)
        cache[key] = (image, predictor.predict_images([image])[0])
    return cache[key]


def gallery_explanation(predictor: Predictor, model_dir: Path, image: np.ndarray, class_name: str) -> np.ndarray:
    """Grad-CAM of ``class_name`` on the crop the model saw, over that crop."""
    explainer = state.load_explainer(predictor, model_dir, DEFAULT_METHOD)
    crop, heatmap = explained_crop(predictor, explainer, image, class_name)
    return overlay(crop, heatmap)


def show_gallery(predictor: Predictor, model_dir: Path, dataset: Dataset, sample_size: int, seed: int) -> None:
    indices = [int(i) for i in gallery_items(dataset, sample_size, seed)]
    names = dataset.label_names
    pick, corruption_column, level_column = st.columns([2, 1.3, 1.5])
    index = pick.selectbox("Image", indices, key=f"{PREFIX}_gallery_image",
                           format_func=lambda i: f"{names[i]} / {Path(dataset.items[i]).name}")
    name = corruption_column.selectbox("Corruption", view.gallery_corruptions(), format_func=view.pretty,
                                       key=f"{PREFIX}_gallery_corruption")
    level = level_column.slider("Severity (0 = clean)", 0, view.gallery_levels(name), 0,
                                key=f"{PREFIX}_gallery_level_{name}")
    try:
        image, prediction = gallery_prediction(predictor, model_dir, dataset, index, name, level, seed)
        explained = gallery_explanation(predictor, model_dir, image, prediction.predicted)
    except BloodcellError as error:
        st.error(state.one_line(error))
        return
    picture, heat, result = st.columns([1, 1, 1.4])
    caption = "clean" if level == 0 else f"{view.pretty(name)}, {view.level_text(name, level)}"
    picture.image(image, caption=caption, width="stretch")
    heat.image(explained, caption=f"{DEFAULT_METHOD} for {prediction.predicted}", width="stretch")
    with result:
        right = prediction.predicted == names[index]
        st.metric("Predicted", prediction.predicted, f"{'right' if right else 'wrong'}: true class {names[index]}",
                  delta_color="green" if right else "red", delta_arrow="off")
        st.plotly_chart(charts.probability_bars(prediction.top(3)), key=f"{PREFIX}_gallery_probs",
                        config={"displayModeBar": False})
    show_severity_strip(predictor, model_dir, dataset, index, name, seed)


def show_severity_strip(predictor: Predictor, model_dir: Path, dataset: Dataset, index: int, name: str,
                        seed: int) -> None:
    """The prediction at every level of this corruption, so the flip point shows at a glance."""
    columns = st.columns(view.gallery_levels(name) + 1)
    for level, column in enumerate(columns):
        image, prediction = gallery_prediction(predictor, model_dir, dataset, index, name, level, seed)
        column.image(image, width="stretch")
        column.caption(f"{view.level_text(name, level)}: **{prediction.predicted}** ({prediction.confidence:.0%})")


def corruption_inputs(predictor: Predictor, model_dir: Path
                      ) -> tuple[Dataset, int, int, Predictor | None, Path | None] | None:
    """The benchmark's widgets: (dataset to score, sample size, seed, second model, its folder), or None."""
    data_column, size_column, seed_column, compare_column = st.columns([2, 1, 0.6, 2])
    with data_column:
        dataset_path = data_root_picker(f"{PREFIX}_dataset", "Labelled dataset")
    sample_size = int(size_column.number_input("Images (0 = all)", 0, None, DEFAULT_SAMPLE, 50,
                                               key=f"{PREFIX}_sample",
                                               help="A stratified sample. Each image is classified 62 times "
                                                    "(11 corruptions x 5 severities + 6 noise levels + clean)."))
    seed = int(seed_column.number_input("Seed", 0, None, 0, 1, key=f"{PREFIX}_seed"))
    with compare_column:
        other_dir = comparison_choice(model_dir)
    if dataset_path is None:
        return None
    try:
        dataset = open_dataset(dataset_path)
    except BloodcellError as error:
        st.error(state.one_line(error))
        return None
    other = None
    if other_dir is not None:
        try:
            other = state.load_predictor(other_dir)
        except Exception as error:  # noqa: BLE001 (a broken second model must not break the page)
            st.error(f"The comparison model can't be loaded: {state.one_line(error)}")
    scored = held_out_choice(dataset, predictor.card, f"{PREFIX}_training_images")
    if scored is None:
        return None
    n_used = min(sample_size or len(scored), len(scored))
    st.caption(f"{state.md_escape(dataset_label(dataset_path))}: {len(dataset):,} images; benchmarking {n_used:,}.")
    return scored, sample_size, seed, other, other_dir if other is not None else None


def corruption_section(predictor: Predictor, model_dir: Path) -> None:
    inputs = corruption_inputs(predictor, model_dir)
    if inputs is None:
        return
    dataset, sample_size, seed, other, other_dir = inputs
    report = benchmark(predictor, model_dir, dataset, sample_size, seed, compute=False)
    second = benchmark(other, other_dir, dataset, sample_size, seed, compute=False) if other is not None else None
    if report is None or (other is not None and second is None):
        prompt = st.empty()
        with prompt.container():
            if not st.button("Run the benchmark", type="primary", key=f"{PREFIX}_run", icon=":material/play_arrow:"):
                n_used = min(sample_size or len(dataset), len(dataset))
                st.info(f"Press the button to classify {n_used:,} images under 62 corruption settings"
                        f"{' with both models' if other is not None else ''}. Results are kept per model, dataset "
                        "and sample until the app restarts.")
                return
        prompt.empty()
    try:
        report = benchmark(predictor, model_dir, dataset, sample_size, seed, compute=True)
        if other is not None:
            second = benchmark(other, other_dir, dataset, sample_size, seed, compute=True)
    except BloodcellError as error:
        st.error(state.one_line(error))
        return
    names = model_names(predictor.name, other.name if other is not None else None)
    show_benchmark(dict(zip(names, [report, second] if second is not None else [report])), predictor, model_dir,
                   dataset, sample_size, seed)


def show_benchmark(reports: dict[str, dict[str, Any]], predictor: Predictor, model_dir: Path, dataset: Dataset,
                   sample_size: int, seed: int) -> None:
    report = next(iter(reports.values()))
    st.dataframe(view.summary_frame(reports), width="stretch")
    if report.get("n_unreadable") or report.get("n_excluded_unknown_class"):
        st.caption(f"Left out: {report['n_unreadable']} unreadable image(s), {report['n_excluded_unknown_class']} "
                   "image(s) of classes the model does not know.")
    metric = st.radio("Score", list(view.METRICS), format_func=view.METRICS.get, horizontal=True,
                      key=f"{PREFIX}_metric")
    tabs = st.tabs(["Severity curves", "Recall drop per class", "Gaussian noise", "Gallery"])
    with tabs[0]:
        show_curves(reports, metric)
    with tabs[1]:
        show_heatmaps(reports)
    with tabs[2]:
        show_noise(reports, metric)
    with tabs[3]:
        show_gallery(predictor, model_dir, dataset, sample_size, seed)


# -- other laboratories ---------------------------------------------------------------------------

def laboratory_results(predictor: Predictor, model_dir: Path, labs: dict[str, Dataset], compute: bool
                       ) -> tuple[dict, dict] | None:
    """Cached (sections, problems) of this model on these laboratories; computed when ``compute``."""
    cache = state.result_cache("crosslab", 8)
    key = (state.model_key(model_dir), tuple((label, d.fingerprint()) for label, d in labs.items()))
    cached = cache.get(key)
    if cached is not None or not compute:
        return cached
    with state.progress_bar(f"Classifying other laboratories' images ({predictor.name})") as progress:
        result = labs_view.run_laboratories(labs, predictor, progress)
    cache.put(key, result)
    return result


def show_laboratory(label: str, section: dict[str, Any], dataset: Dataset, predictor: Predictor,
                    model_dir: Path, number: int, normalise: bool) -> None:
    matrix = section["confusion_matrix"]
    left, right = st.columns([3, 2])
    left.plotly_chart(charts.confusion_matrix_figure(matrix["counts"], matrix["columns"], normalise,
                                                     title=f"Confusion matrix: {label}", rows=matrix["rows"],
                                                     height=120 + 45 * len(matrix["rows"])),
                      key=f"{PREFIX}_labs_confusion_{number}")
    with right:
        st.markdown(f"**Most confident errors** ({len(section['errors']):,} in all)")
        cache: dict = st.session_state.setdefault(LABS_TILES_KEY, {})
        tile_key = f"{state.model_key(model_dir)}|{label}|{dataset.fingerprint()}"
        if tile_key not in cache:
            cache[tile_key] = labs_view.error_tiles(dataset, predictor, section, LABS_GALLERY)
        columns = st.columns(4)
        for slot, (crop, caption) in enumerate(cache[tile_key]):
            columns[slot % 4].image(crop, caption=caption, width="stretch")


def laboratories_section(predictor: Predictor, model_dir: Path) -> None:
    st.header("Other laboratories")
    st.caption("The model on real images from laboratories other than its training sources (another stain, "
               "microscope, camera and framing): scores over the classes each set has, and how many of the "
               "errors the needs-review flag catches.")
    labs, unseen = labs_view.other_laboratories(predictor.card, open_all_datasets())
    if not labs:
        st.info("No dataset under the data roots other than the model's home laboratory.")
        return
    chosen = st.multiselect("Laboratories", list(labs), default=unseen or list(labs), key=f"{PREFIX}_labs",
                            help="Chosen at first: the laboratories the model never trained on. One it trained "
                                 "on is scored on its held-out images only, and still flatters the model.")
    labs = {label: labs[label] for label in chosen}
    if not labs:
        return
    result = laboratory_results(predictor, model_dir, labs, compute=False)
    if result is None:
        if not st.button("Evaluate on other laboratories", key=f"{PREFIX}_labs_run", icon=":material/play_arrow:"):
            st.info(f"Press the button to classify every image of {len(labs)} dataset(s) "
                    f"({sum(len(d) for d in labs.values()):,} images).")
            return
        result = laboratory_results(predictor, model_dir, labs, compute=True)
    sections, problems = result
    for label, problem in problems.items():
        st.warning(f"{state.md_escape(label)}: {problem}")
    if not sections:
        return
    rate = st.column_config.NumberColumn(format="percent")
    st.dataframe(labs_view.laboratories_frame(sections), hide_index=True,
                 column_config={column: rate for column in labs_view.RATE_COLUMNS}, key=f"{PREFIX}_labs_table")
    st.caption("Confident errors: wrong and not flagged for review, over all images. Balanced accuracy averages "
               "recall over the classes the set has; a prediction of any other class is an error.")
    normalise = st.toggle("Row-normalised confusion matrices", key=f"{PREFIX}_labs_normalise")
    for number, (tab, label) in enumerate(zip(st.tabs(list(sections)), sections)):
        with tab:
            show_laboratory(label, sections[label], labs[label], predictor, model_dir, number, normalise)


def main() -> None:
    state.require_view()
    st.title("Robustness")
    st.caption("Accuracy on corrupted copies of held-out images: blur, pixelation, JPEG artefacts, brightness, "
               "contrast, saturation, stain deposits, bubbles (MedMNIST-C, bloodmnist parameters) and "
               "Gaussian noise; below, on other laboratories' images.")
    predictor = state.predictor_or_stop()
    if note := view.trained_on_corruptions_note(predictor.card.config):
        st.caption(note)
    model_dir = state.selected_model_dir()
    corruption_section(predictor, model_dir)
    st.divider()
    laboratories_section(predictor, model_dir)


main()
