"""Home: what the tool is, which model is loaded, and where to go."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from bloodcell_core.errors import BloodcellError
from bloodcell_core.reporting.history import ablation_frame, card_history, lineage_script
from bloodcell_core.reporting.performance import card_overview, card_validation, format_metric
from dashboard import state
from dashboard.navigation import existing_pages


access = state.require_view()
st.title("Blood-cell review dashboard")
st.markdown(
    "Decision support for peripheral-blood smear review. A convolutional network classifies single-cell "
    "images into eight classes (basophil, eosinophil, erythroblast, immature granulocyte, lymphocyte, "
    "monocyte, neutrophil, platelet), shows where it looked (Grad-CAM), and flags the images it should "
    "not decide alone as **needs review**. Reviewers confirm or correct predictions; every decision is "
    "stored with the reviewer's identity and time. The data-review pages help find duplicates, outliers "
    "and mislabelled images in a training set.")
st.caption("Not a diagnostic device: every result needs a qualified person's judgement.")

st.header("Loaded model")
try:  # drawn from the model card: TensorFlow and the model load in the background meanwhile
    model_dir, card = state.selected_card()
except BloodcellError as error:
    st.error(state.model_problem(error))
    card = None
if card is not None:
    st.dataframe(pd.DataFrame(list(card_overview(card).items()), columns=["Property", "Value"]),
                 hide_index=True, width="stretch")
    validation = card_validation(card)
    if validation:
        st.subheader("Validation metrics (from the model card)")
        columns = st.columns(len(validation))
        for column, (name, value) in zip(columns, validation.items()):
            column.metric(name, format_metric(name, value))
    try:
        history = card_history(card)
    except BloodcellError as error:
        st.warning(str(error))
        history = None
    if history:
        with st.expander("How this model was made: its runs, and the ablation that chose its recipe"):
            st.caption("The command of each run, in order (from the model card):")
            st.code(lineage_script(history), language="bash", wrap_lines=True)
            st.caption("Variants compared on held-out PBC images and on the real other laboratories "
                       "('unseen': a laboratory that variant never trained on):")
            st.dataframe(ablation_frame(history), hide_index=True, width="stretch")
    if card.review.rule:
        st.caption(f"Needs-review rule: {card.review.rule}")
    if card.credit:
        st.caption(f"Credit: {card.credit}")
    st.caption(f"Model folder: {Path(model_dir).name}")
    status = state.model_status(model_dir)
    if status.startswith("failed: "):
        st.error(state.model_problem(status.removeprefix("failed: "), model_dir))
    elif status == "ready":
        st.caption("Model loaded and ready.")
    else:
        st.caption("The model is loading in the background; Classify will use it as soon as it is ready.")

st.header("Pages")
for entry in existing_pages():
    if entry.purpose:
        link, text = st.columns([1, 3])
        with link:
            st.page_link(entry.path, label=entry.title, icon=entry.icon)
        text.caption(entry.purpose)
