"""The one page list: app.py builds the navigation from it, Home its links.

A page whose file does not exist yet is left out, so the app starts while pages are being added.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PageEntry:
    filename: str  # under pages/
    title: str
    icon: str
    section: str
    purpose: str  # Home's one-line description ("" for Home itself)

    @property
    def path(self) -> str:
        return f"pages/{self.filename}"

    @property
    def url_path(self) -> str:
        """The page's URL path: Streamlit names it after the file (``classify.py``: ``/classify``)."""
        return Path(self.filename).stem


def _section(section: str, *rows: tuple[str, str, str, str]) -> tuple[PageEntry, ...]:
    """The section's pages from (file, title, Material icon name, Home's purpose) rows."""
    return tuple(PageEntry(filename, title, f":material/{icon}:", section, purpose)
                 for filename, title, icon, purpose in rows)


PAGES: tuple[PageEntry, ...] = (
    *_section(
        "Clinician",
        ("home.py", "Home", "home", ""),
        ("classify.py", "Classify", "biotech",
         "Upload single-cell images: a cell gallery grouped by class, probabilities, Grad-CAM, needs-review flags "
         "and the batch warning, confirm or correct cells, differential count, CSV and printable summary."),
        ("performance.py", "Model performance", "monitoring",
         "Confusion matrix (IG/monocyte outlined), per-class metrics, calibration, accuracy versus coverage, "
         "misclassified images; compare two models."),
        ("robustness.py", "Robustness", "shield",
         "How accuracy holds up under blur, stain and noise corruptions, and on other laboratories' images."),
        ("adapt.py", "Adapt to your lab", "tune",
         "The cells reviewers accepted or corrected, per class and laboratory; adapt the model on them and "
         "compare before and after."),
    ),
    *_section(
        "Data review",
        ("duplicates.py", "Duplicates", "content_copy",
         "Exact and near-duplicate images, and leakage between splits: images that also occur in a second "
         "dataset, such as the test set."),
        ("outliers.py", "Outliers", "scatter_plot", "Images unlike the rest of their class."),
        ("label_issues.py", "Label issues", "label", "Images whose label is probably wrong."),
        ("review_log.py", "Review log", "history", "Every recorded decision and adaptation run: who, what, when."),
    ),
)


def existing_pages() -> list[PageEntry]:
    return [page for page in PAGES if (APP_DIR / page.path).is_file()]
