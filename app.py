"""The dashboard: ``streamlit run app.py``.

A multipage app (``st.navigation``) whose pages live in ``pages/``; every page only calls
``bloodcell_core`` and draws.  This script runs before every page: it sets the page layout,
draws the sidebar model picker and hands over to the selected page.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import state

APP_DIR = Path(__file__).resolve().parent

# (file under pages/, title, icon, section). A page whose file does not exist yet is left out,
# so the app starts while pages are being added.
PAGES: list[tuple[str, str, str, str]] = [
    ("home.py", "Home", ":material/home:", "Clinician"),
    ("classify.py", "Classify", ":material/biotech:", "Clinician"),
    ("performance.py", "Model performance", ":material/monitoring:", "Clinician"),
    ("robustness.py", "Robustness", ":material/shield:", "Clinician"),
    ("adapt.py", "Adapt to your lab", ":material/tune:", "Clinician"),
    ("duplicates.py", "Duplicates", ":material/content_copy:", "Data review"),
    ("outliers.py", "Outliers", ":material/scatter_plot:", "Data review"),
    ("label_issues.py", "Label issues", ":material/label:", "Data review"),
    ("review_log.py", "Review log", ":material/history:", "Data review"),
]


def navigation_pages() -> dict[str, list]:
    """``st.Page`` objects per section, for the page files that exist."""
    sections: dict[str, list] = {}
    for filename, title, icon, section in PAGES:
        path = APP_DIR / "pages" / filename
        if path.is_file():
            page = st.Page(f"pages/{filename}", title=title, icon=icon, default=filename == "home.py")
            sections.setdefault(section, []).append(page)
    return sections


# An emoji page icon becomes an inline data: favicon. A ":material/...:" page icon would make the
# browser fetch the favicon from fonts.gstatic.com (Streamlit 1.67), and the app must work offline;
# the ":material/...:" icons inside pages are drawn with the Material Symbols font Streamlit bundles
# (static/media/MaterialSymbols-Rounded.*.woff2), so they stay local (tests/test_browser.py checks).
st.set_page_config(page_title="Blood-cell review", page_icon="🩸", layout="wide")
navigation = st.navigation(navigation_pages())
state.model_picker()
try:
    navigation.run()
finally:  # after the page is drawn: load TensorFlow, the model and Grad-CAM in the background, once
    state.warm_model_in_background()
