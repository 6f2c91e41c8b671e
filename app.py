"""The dashboard: ``streamlit run app.py``.

A multipage app (``st.navigation``) whose pages live in ``pages/``; every page only calls
``bloodcell_core`` and draws.  This script runs before every page: it sets the page layout,
draws the sidebar model picker and hands over to the selected page.
"""
from __future__ import annotations

import streamlit as st

from dashboard import state
from dashboard.navigation import existing_pages


def navigation_pages() -> dict[str, list]:
    """``st.Page`` objects per section, for the page files that exist (the one list: dashboard/navigation.py)."""
    sections: dict[str, list] = {}
    for entry in existing_pages():
        page = st.Page(entry.path, title=entry.title, icon=entry.icon, default=entry.filename == "home.py")
        sections.setdefault(entry.section, []).append(page)
    return sections


# An emoji page icon becomes an inline data: favicon. A ":material/...:" page icon would make the
# browser fetch the favicon from fonts.gstatic.com (Streamlit 1.67), and the app must work offline;
# the ":material/...:" icons inside pages are drawn with the Material Symbols font Streamlit bundles
# (static/media/MaterialSymbols-Rounded.*.woff2), so they stay local (tests/test_browser.py checks).
st.set_page_config(page_title="Blood-cell review", page_icon="🩸", layout="wide")
state.keep_keras_state_between_runs()  # the model stays loaded; Streamlit would reset Keras after each run
navigation = st.navigation(navigation_pages())
state.model_picker()
try:
    navigation.run()
finally:  # after the page is drawn: load TensorFlow, the model and Grad-CAM in the background, once
    state.warm_model_in_background()
