"""Classify: upload single-cell images; prediction, probabilities, explanation, review, batch report."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import streamlit as st

from bloodcell_core.errors import BloodcellError
from bloodcell_core.explain import DEFAULT_METHOD, METHOD_NAMES, overlay
from bloodcell_core.explain.overlay import DEFAULT_ALPHA
from bloodcell_core.inference.feature_density import batch_warning_text
from bloodcell_core.inference.predictor import Prediction, Predictor
from bloodcell_core.models.card import ModelCard
from bloodcell_core.reporting.batch import ClassifiedImage, differential_count, predictions_csv
from bloodcell_core.reporting.decisions import CLASSIFY_DATASET, record_review, record_reviews
from bloodcell_core.reporting.gallery import GalleryGroup, gallery_groups, group_confirmations, group_key
from bloodcell_core.reporting.images import draw_crop_box, explained_crop
from bloodcell_core.reporting.summary import summary_html
from bloodcell_core.reporting.uploads import MB, DecodedUpload, upload_types_label
from bloodcell_core.review.store import Decision
from dashboard import charts, gallery, state
from dashboard.batch_state import (THUMBNAILS_KEY, UPLOADS_KEY, current_batch, decoded_uploads, show_kept_batch,
                                   thumbnails_for, touch_session, uploads_changed)
from dashboard.sign_in import current_reviewer

PREDICTIONS_KEY = "classify_predictions"  # {(model key, image hash): Prediction}
EXPLANATIONS_KEY = "classify_explanations"  # {(model key, image hash, method, class): (crop, heatmap)}
MESSAGE_KEY = "classify_message"  # the outcome of the last review click: (kind, text)
VIEWS = ("Gallery", "Cards")
PER_PAGE = 6
FILTERS = ("All images", "Needs review", "Not yet reviewed")
TOAST_ICONS = {"success": ":material/task_alt:", "info": ":material/info:", "warning": ":material/warning:",
               "error": ":material/error:"}


def predictions_for(uploads: list[DecodedUpload], predictor: Predictor, model_key: str) -> list[Prediction]:
    """Predictions for the readable uploads, computed once per model and image for this session."""
    cache: dict[tuple[str, str], Prediction] = st.session_state.setdefault(PREDICTIONS_KEY, {})
    missing = {u.image_hash: u.image for u in uploads if (model_key, u.image_hash) not in cache}
    if missing:
        with state.progress_bar("Classifying") as progress:
            predicted = predictor.predict_images(list(missing.values()), batch_size=32, progress=progress)
        cache.update({(model_key, h): p for h, p in zip(missing, predicted)})
    return [cache[(model_key, u.image_hash)] for u in uploads]


def forget_other_images(hashes: set[str]) -> None:
    """Drop cached predictions, heatmaps and thumbnails of images no longer uploaded (memory stays
    bounded); each cache is keyed by a tuple whose second item is the image hash."""
    for key in (PREDICTIONS_KEY, EXPLANATIONS_KEY, THUMBNAILS_KEY):
        cache: dict = st.session_state.get(key, {})
        for stale in [k for k in cache if k[1] not in hashes]:
            del cache[stale]


def explanation_for(upload: DecodedUpload, predictor: Predictor, model_key: str, method: str,
                    class_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(crop, heatmap) for one image, computed once per model, method and image for this session."""
    cache: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = st.session_state.setdefault(EXPLANATIONS_KEY, {})
    key = (model_key, upload.image_hash, method, class_name)
    if key not in cache:
        explainer = state.load_explainer(predictor, state.selected_model_dir(), method)
        with st.spinner(f"Computing {method}..."):
            cache[key] = explained_crop(predictor, explainer, upload.image, class_name)
    return cache[key]


def on_review(image: ClassifiedImage, new_label: str | None, model_name: str) -> None:
    """Button callback: record the decision once; the outcome is shown on the next run."""
    if not new_label:
        st.session_state[MESSAGE_KEY] = ("warning", "Pick the correct class first.")
        return
    try:
        written = record_review(state.review_store(), image, new_label, current_reviewer(), model_name,
                                source=state.lab_source())
    except BloodcellError as error:
        st.session_state[MESSAGE_KEY] = ("error", state.one_line(error))
        return
    verb = "Confirmed" if new_label == image.prediction.predicted else f"Corrected to {new_label}"
    outcome = "recorded" if written else "already recorded; nothing written"
    if state.lab_source() is None:
        outcome += " (not archived for adaptation: set the laboratory / source name in the sidebar)"
    st.session_state[MESSAGE_KEY] = ("success" if written else "info", f"{verb}: {outcome}.")


def decision_text(decision: Decision) -> str:
    when = decision.time.strftime("%Y-%m-%d %H:%M UTC") if decision.time else ""
    verb = "confirmed" if decision.action == "confirm-prediction" else f"corrected to {decision.new_label}"
    return f"Reviewed: {verb} by {decision.reviewer}, {when}"


def show_bad_files(bad: list[DecodedUpload]) -> None:
    st.error(f"{len(bad)} file(s) could not be analysed; the others were.", icon=":material/broken_image:")
    for upload in bad:
        st.text(upload.error)  # plain text: file names are never rendered as Markdown or HTML


def show_batch_warning(predictor: Predictor, predictions: list[Prediction]) -> str | None:
    """One banner when the batch as a whole looks unlike the training laboratory's images."""
    shift = predictor.batch_shift(predictions)
    if not shift or not shift["detected"]:
        return None
    text = batch_warning_text(len(predictions), sum(p.needs_review for p in predictions), shift)
    st.warning(text, icon=":material/warning:")
    st.page_link("pages/adapt.py", label="Adapt the model to this laboratory", icon=":material/tune:")
    return text


def show_batch_summary(images: list[ClassifiedImage], classes: list[str], card: ModelCard, reviewer: str | None,
                       errors: list[str], warning: str | None = None) -> None:
    count = differential_count(images, classes)
    st.subheader("Differential count")
    left, right = st.columns([2, 3])
    with left:
        st.dataframe(count.table(), hide_index=True,
                     column_config={"percent": st.column_config.NumberColumn("%", format="%.1f")})
        st.caption(f"{count.n_counted} counted; {count.n_awaiting} flagged image(s) awaiting review are "
                   "kept apart until a reviewer confirms or corrects them.")
    with right:
        awaiting = [count.awaiting.get(name, 0) for name in count.classes]
        st.plotly_chart(charts.class_count_bars(count.classes, [count.counted.get(n, 0) for n in count.classes],
                                                awaiting), key="classify_differential_chart")
    stamp = datetime.now(timezone.utc)
    csv_column, html_column = st.columns(2)
    # Both files are made when their button is clicked (Streamlit runs the callable then), not on
    # every rerun: building them took about 30 ms of each reclassification's rerun with 200 cells.
    csv_column.download_button("Download predictions (CSV)", lambda: predictions_csv(images, classes),
                               file_name=f"predictions-{stamp:%Y%m%d-%H%M}.csv", mime="text/csv",
                               on_click="ignore", icon=":material/download:", key="classify_csv")
    html_column.download_button("Download printable summary (HTML)",
                                lambda: summary_html(images, classes, card, reviewer, errors, stamp, warning),
                                file_name=f"summary-{stamp:%Y%m%d-%H%M}.html", mime="text/html",
                                on_click="ignore", icon=":material/print:", key="classify_summary")


def show_review_controls(position: int, image: ClassifiedImage, classes: list[str], model_name: str,
                         reviewer: str | None) -> None:
    if image.decision is not None:
        st.success(state.md_escape(decision_text(image.decision)), icon=":material/task_alt:")
    if reviewer is None:
        return
    predicted = image.prediction.predicted
    suffix = f"{position}_{image.image_hash[:16]}"
    st.button(f"Accept: {predicted}", key=f"classify_accept_{suffix}", icon=":material/check:",
              on_click=on_review, args=(image, predicted, model_name))
    pick, save = st.columns([3, 2], vertical_alignment="bottom")
    corrected = pick.selectbox("Correct to", [c for c in classes if c != predicted], index=None,
                               placeholder="choose the right class", key=f"classify_correct_{suffix}")
    save.button("Save correction", key=f"classify_save_{suffix}", icon=":material/edit:",
                on_click=on_review, args=(image, corrected, model_name))


def show_image(position: int, upload: DecodedUpload, image: ClassifiedImage, predictor: Predictor,
               model_key: str, method: str, alpha: float, reviewer: str | None, narrow: bool = False) -> None:
    """The detail card of one image; ``narrow``: pictures side by side above the result (the gallery's side)."""
    prediction = image.prediction
    with st.container(border=True):
        st.markdown(f"**Image {position + 1}**")
        st.text(upload.name)
        if narrow:
            original, explained = st.columns(2)
            result = st.container()
        else:
            original, explained, result = st.columns([1, 1, 1.4])
        original.image(draw_crop_box(upload.image, prediction.crop_box),
                       caption="Upload; orange box: the crop the model saw", width="stretch")
        try:
            crop, heatmap = explanation_for(upload, predictor, model_key, method, prediction.predicted)
            explained.image(overlay(crop, heatmap, alpha), caption=f"{method} for {prediction.predicted}",
                            width="stretch")
        except BloodcellError as error:
            explained.warning(f"No explanation: {state.one_line(error)}")
        with result:
            st.metric("Predicted", prediction.predicted, f"confidence {prediction.confidence:.1%}",
                      delta_color="off", delta_arrow="off")
            st.plotly_chart(charts.probability_bars(prediction.top(3)), key=f"classify_probs_{position}",
                            config={"displayModeBar": False})
        if prediction.needs_review:
            st.warning("**Needs review**: " + "; ".join(prediction.review_reasons), icon=":material/flag:")
        show_review_controls(position, image, predictor.classes, predictor.name, reviewer)


def record_changes(changes: list[tuple[ClassifiedImage, str]], model_name: str, what: str) -> None:
    """Callback of the gallery's buttons: record every change in one transaction, then unselect the cells."""
    try:
        written = record_reviews(state.review_store(), changes, current_reviewer(), model_name,
                                 source=state.lab_source())
    except BloodcellError as error:
        st.session_state[MESSAGE_KEY] = ("error", state.one_line(error))
        return
    gallery.clear_selections({group_key(image) for image, _label in changes})
    if written:
        st.session_state[MESSAGE_KEY] = ("success", f"{what}: {written} decision(s) recorded.")
    else:
        st.session_state[MESSAGE_KEY] = ("info", f"{what}: already recorded; nothing written.")


def show_message() -> None:
    message = st.session_state.pop(MESSAGE_KEY, None)
    if message is not None:
        kind, text = message
        st.toast(state.md_escape(text), icon=TOAST_ICONS[kind], duration="long")
        if kind in ("warning", "error"):
            getattr(st, kind)(state.md_escape(text))


def show_gallery(uploads: list[DecodedUpload], images: list[ClassifiedImage], predictor: Predictor,
                 model_key: str, method: str, alpha: float, reviewer: str | None) -> None:
    """Cells grouped by class (needs review first); selected cells get the action bar and, one
    selected, its detail card (the only place a heatmap is computed)."""
    thumbnails = thumbnails_for(uploads, images, model_key)
    name = predictor.name

    def confirm(group: GalleryGroup) -> None:
        record_changes(group_confirmations(images, group), name, f"Confirmed {group.key}")

    def move(selected: list[int], label: str) -> None:
        record_changes([(images[p], label) for p in selected], name, f"Moved to {label}")

    def accept(selected: list[int]) -> None:
        record_changes([(images[p], images[p].prediction.predicted) for p in selected], name, "Accepted")

    grid_column, detail_column = st.columns([3, 2])
    selected: list[int] = []
    with grid_column:
        st.caption("Each cell shows the model's class and confidence. Click a cell to open it; Ctrl-click or "
                   "drag to select several, in any group. Then press a class, or its number key, to move the "
                   "selected cells there.")
        for group in gallery_groups(images, predictor.classes):
            with st.container(border=True):
                gallery.group_heading(group, images, confirm if reviewer else None)
                selected += gallery.group_grid(group, thumbnails)
    gallery.keep_in_view()
    with detail_column.container(key=gallery.DETAIL_KEY):
        if selected and reviewer:
            gallery.action_bar(selected, images, predictor.classes, move, accept)
        if len(selected) == 1:
            position = selected[0]
            show_image(position, uploads[position], images[position], predictor, model_key, method, alpha,
                       reviewer, narrow=True)
        elif not selected:
            st.info("Select a cell to see its probabilities, explanation and crop.", icon=":material/touch_app:")


def show_cards(uploads: list[DecodedUpload], images: list[ClassifiedImage], predictor: Predictor,
               model_key: str, method: str, alpha: float, reviewer: str | None) -> None:
    """One large card per image, six to a page (the view for looking at images one by one)."""
    which = st.radio("Show", FILTERS, horizontal=True, key="classify_filter")
    shown = visible(images, which)
    pages = max(1, -(-len(shown) // PER_PAGE))
    if st.session_state.get("classify_page", 1) > pages:
        st.session_state["classify_page"] = 1
    page = st.columns([1, 4])[0].number_input(f"Page (of {pages})", 1, pages, key="classify_page") if pages > 1 else 1
    for position in shown[(page - 1) * PER_PAGE: page * PER_PAGE]:
        show_image(position, uploads[position], images[position], predictor, model_key, method, alpha, reviewer)
    if not shown:
        st.caption("No image matches this filter.")


def visible(images: list[ClassifiedImage], which: str) -> list[int]:
    if which == "Needs review":
        return [i for i, image in enumerate(images) if image.prediction.needs_review]
    if which == "Not yet reviewed":
        return [i for i, image in enumerate(images) if image.decision is None]
    return list(range(len(images)))


def classified(uploads: list[DecodedUpload], predictions: list[Prediction]) -> list[ClassifiedImage]:
    """The batch with each image's latest review decision (read afresh: other reviewers write too)."""
    try:
        latest = state.review_store().latest(dataset=CLASSIFY_DATASET)
    except BloodcellError as error:
        st.error(f"Review store unavailable, decisions can't be shown or recorded: {state.one_line(error)}")
        latest = {}
    return [ClassifiedImage(u.name, u.image_hash, p, latest.get(u.image_hash), pixels=u.image)
            for u, p in zip(uploads, predictions)]


@st.fragment
def review_batch(uploads: list[DecodedUpload], predictions: list[Prediction], bad: list[DecodedUpload],
                 predictor: Predictor, model_key: str, method: str, alpha: float, access: state.Access) -> None:
    """Counts, downloads and the images; a fragment, so a review click reruns only this part."""
    touch_session()  # a fragment run is activity too (the idle timeout)
    images = classified(uploads, predictions)
    warning = show_batch_warning(predictor, predictions)
    columns = st.columns(4)
    columns[0].metric("Images analysed", len(uploads))
    columns[1].metric("Needs review", sum(p.needs_review for p in predictions))
    columns[2].metric("Reviewed", sum(image.decision is not None for image in images))
    columns[3].metric("Not readable", len(bad))
    show_batch_summary(images, predictor.classes, predictor.card, access.reviewer, [u.error or "" for u in bad],
                       warning)
    st.subheader("Images")
    if access.reviewer is None:
        st.info(access.reason, icon=":material/lock:")
    show_message()
    view = "Cards"
    if len(uploads) > 1:
        view = st.segmented_control("View", VIEWS, default=VIEWS[0], required=True, key="classify_view")
    show = show_gallery if view == "Gallery" else show_cards
    show(uploads, images, predictor, model_key, method, alpha, access.reviewer)


def main() -> None:
    access = state.require_view()
    if access.reviewer is not None:
        state.lab_source_input()
    st.title("Classify cells")
    predictor = state.predictor_or_stop()
    model_key = state.model_key(state.selected_model_dir())
    max_mb = int(st.get_option("server.maxUploadSize"))

    files = st.file_uploader(
        f"Single-cell images ({upload_types_label()})", accept_multiple_files=True, key=UPLOADS_KEY,
        on_change=uploads_changed, help=f"One cell per image, as cut out by the analyser; up to {max_mb} MB each.")
    method_column, alpha_column = st.columns(2)
    method = method_column.selectbox("Explanation method", list(METHOD_NAMES), index=METHOD_NAMES.index(DEFAULT_METHOD),
                                     key="classify_method",
                                     help="Grad-CAM is fast; ScoreCAM runs one forward pass per feature map "
                                          "tried (at most 16); SmoothGrad averages noisy pixel gradients.")
    alpha = alpha_column.slider("Heatmap opacity", 0.0, 1.0, DEFAULT_ALPHA, 0.05, key="classify_alpha")
    if predictor.card.inference.averages_views:
        st.caption(f"Prediction: {predictor.card.inference.describe()}. Each view is the same crop turned; "
                   "the heatmap explains the upright one.")
    batch, kept = current_batch(files)
    if not batch:
        st.info("Upload one or more images of single cells to classify them.")
        return
    if kept:
        show_kept_batch(len(batch))
    uploads = decoded_uploads(batch, max_mb * MB)
    readable = [u for u in uploads if u.ok]
    bad = [u for u in uploads if not u.ok]
    if bad:
        show_bad_files(bad)
    if not readable:
        return
    forget_other_images({u.image_hash for u in readable})
    predictions = predictions_for(readable, predictor, model_key)
    review_batch(readable, predictions, bad, predictor, model_key, method, alpha, access)


main()
