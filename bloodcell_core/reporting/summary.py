"""The printable summary of a classified batch: one self-contained HTML page.

Everything user-supplied (file names, reviewer names, model names) is escaped; the page
has no scripts and no external resources, so it prints and archives as it is.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from html import escape
from typing import Any

from bloodcell_core.models.card import ModelCard
from bloodcell_core.reporting.batch import ClassifiedImage, differential_count

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #1f1f29; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
.warning { border: 2px solid #b3261e; padding: 0.6em; color: #b3261e; }
h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; margin-top: 0.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; }
.meta td { border: none; padding: 0.1em 0.8em 0.1em 0; }
.flag { color: #b3360b; font-weight: 600; }
.note { margin-top: 2em; font-size: 0.85em; color: #555; }
@media print { body { margin: 1cm; } }
"""


def _row(cells: Sequence[Any], numeric: Sequence[bool] | None = None, header: bool = False) -> str:
    tag = "th" if header else "td"
    numeric = numeric or [False] * len(cells)
    return "<tr>" + "".join(f'<{tag}{" class=num" if num else ""}>{escape(str(cell))}</{tag}>'
                            for cell, num in zip(cells, numeric)) + "</tr>"


def _differential_section(images: Sequence[ClassifiedImage], classes: Sequence[str]) -> str:
    count = differential_count(images, classes)
    table = count.table()
    rows = [_row(["Class", "Count", "%", "Needs review"], header=True)]
    rows += [_row([r["class"], r["count"], f'{r["percent"]:.1f}', r["needs review"]], [False, True, True, True])
             for r in table.to_dict("records")]
    rows.append(_row(["Total", count.n_counted, "100.0" if count.n_counted else "0.0", count.n_awaiting],
                     [False, True, True, True]))
    return (f"<h2>Differential count</h2><p>{count.n_counted} cells counted; "
            f"{count.n_awaiting} flagged image(s) awaiting review are not included.</p>"
            f"<table>{''.join(rows)}</table>")


def _images_section(images: Sequence[ClassifiedImage]) -> str:
    """One row per image; Status and Final label follow :func:`~bloodcell_core.reporting.batch.review_status`."""
    rows = [_row(["File", "Predicted", "Confidence", "Needs review", "Status", "Final label", "Reviewed by"],
                 header=True)]
    for image in images:
        flag = "; ".join(image.prediction.review_reasons) if image.prediction.needs_review else ""
        reviewer = image.decision.reviewer if image.decision is not None else ""
        rows.append(_row([image.name, image.prediction.predicted, f"{image.prediction.confidence:.1%}",
                          flag, image.status, image.final_label, reviewer],
                         [False, False, True, False, False, False, False]))
    return f"<h2>Images</h2><table>{''.join(rows)}</table>"


def _errors_section(errors: Sequence[str]) -> str:
    if not errors:
        return ""
    items = "".join(f"<li>{escape(message)}</li>" for message in errors)
    return f"<h2>Files not analysed</h2><ul>{items}</ul>"


def summary_html(images: Sequence[ClassifiedImage], classes: Sequence[str], card: ModelCard | Mapping[str, Any],
                 reviewer: str | None, errors: Sequence[str] = (), when: datetime | None = None,
                 warning: str | None = None) -> str:
    """A printable HTML summary: date, model, reviewer, differential count, every image, bad files.

    ``warning`` (the batch-shift warning) is printed above everything else."""
    when = when or datetime.now(timezone.utc)
    card = ModelCard.of(card)
    flagged = sum(image.prediction.needs_review for image in images)
    meta = [("Date", when.strftime("%Y-%m-%d %H:%M %Z").strip()),
            ("Model", f"{card.name or 'model'} ({card.architecture or '?'}, created {card.created or 'unknown'})"),
            ("Reviewer", reviewer or "not signed in"),
            ("Images", f"{len(images)} analysed, {flagged} flagged needs review, {len(errors)} not readable")]
    meta_rows = "".join(f"<tr><td><b>{escape(k)}</b></td><td>{escape(v)}</td></tr>" for k, v in meta)
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            "<title>Blood-cell classification summary</title>"
            f"<style>{STYLE}</style></head><body>"
            "<h1>Blood-cell classification summary</h1>"
            + (f"<p class=warning><b>Warning:</b> {escape(warning)}</p>" if warning else "") +
            f"<table class=meta>{meta_rows}</table>"
            f"{_differential_section(images, classes)}{_images_section(images)}{_errors_section(errors)}"
            "<p class=note>Decision support only. The model's predictions are not a diagnosis; images flagged "
            "<span class=flag>needs review</span> must be checked by a qualified person.</p>"
            "</body></html>")
