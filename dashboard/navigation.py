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


PAGES: tuple[PageEntry, ...] = (
    PageEntry("home.py", "Home", ":material/home:", "Clinician", ""),
    PageEntry("classify.py", "Classify", ":material/biotech:", "Clinician",
              "Upload single-cell images: a cell gallery grouped by class, probabilities, Grad-CAM, needs-review "
              "flags and the batch warning, confirm or correct cells, differential count, CSV and printable summary."),
    PageEntry("performance.py", "Model performance", ":material/monitoring:", "Clinician",
              "Confusion matrix (IG/monocyte outlined), per-class metrics, calibration, accuracy versus coverage, "
              "misclassified images; compare two models."),
    PageEntry("robustness.py", "Robustness", ":material/shield:", "Clinician",
              "How accuracy holds up under blur, stain and noise corruptions, and on other laboratories' images."),
    PageEntry("adapt.py", "Adapt to your lab", ":material/tune:", "Clinician",
              "The cells reviewers accepted or corrected, per class and laboratory; adapt the model on them and "
              "compare before and after."),
    PageEntry("duplicates.py", "Duplicates", ":material/content_copy:", "Data review",
              "Exact and near-duplicate images, and leakage between splits: images that also occur in a second "
              "dataset, such as the test set."),
    PageEntry("outliers.py", "Outliers", ":material/scatter_plot:", "Data review",
              "Images unlike the rest of their class."),
    PageEntry("label_issues.py", "Label issues", ":material/label:", "Data review",
              "Images whose label is probably wrong."),
    PageEntry("review_log.py", "Review log", ":material/history:", "Data review",
              "Every recorded decision and adaptation run: who, what, when."),
)


def existing_pages() -> list[PageEntry]:
    return [page for page in PAGES if (APP_DIR / page.path).is_file()]
