"""Tables and Plotly figures of the Robustness page, from ``run_robustness`` reports.

Pure functions (report dicts in, DataFrames / figures / images out), so they are tested
without Streamlit.  A report is ``bloodcell_core.robustness.benchmark.run_robustness``'s
dict: ``clean`` and, per corruption, one entry per severity with ``accuracy``,
``balanced_accuracy`` and ``per_class_recall``; ``gaussian_noise`` entries also carry ``sigma``.
"""
from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bloodcell_core.robustness.corruptions import CORRUPTIONS, GAUSSIAN_NOISE, GAUSSIAN_SIGMAS, corrupt_item

NOISE = GAUSSIAN_NOISE
METRICS = {"accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy"}
MODEL_DASHES = ("solid", "dash")
PALETTE = px.colors.qualitative.Dark24


def pretty(name: str) -> str:
    return name.replace("_", " ")


def corruption_names(report: Mapping[str, Any]) -> list[str]:
    """The MedMNIST-C corruptions in the report (Gaussian noise, on its own scale, left out)."""
    return [name for name in report.get("corruptions", {}) if name != NOISE]


def curve_frame(report: Mapping[str, Any], metric: str = "accuracy") -> pd.DataFrame:
    """Long table: corruption, severity (0 = clean), value; one row per point of every curve."""
    clean = report["clean"][metric]
    rows = []
    for name in corruption_names(report):
        rows.append({"corruption": name, "severity": 0, "value": clean})
        rows += [{"corruption": name, "severity": int(entry["severity"]), "value": float(entry[metric])}
                 for entry in report["corruptions"][name]]
    return pd.DataFrame(rows, columns=["corruption", "severity", "value"])


def _percent_axes(fig: go.Figure, metric: str) -> None:
    fig.update_yaxes(tickformat=".0%", range=[0, 1.03])  # the full scale: models and runs stay comparable
    fig.update_layout(yaxis_title=METRICS.get(metric, metric))


def severity_figure(report: Mapping[str, Any], metric: str = "accuracy", title: str = "",
                    height: int = 520) -> go.Figure:
    """One line per corruption: ``metric`` against severity, starting from the clean score at 0."""
    frame = curve_frame(report, metric)
    fig = go.Figure()
    for number, (name, points) in enumerate(frame.groupby("corruption", sort=False)):
        fig.add_trace(go.Scatter(x=points["severity"], y=points["value"], mode="lines+markers", name=pretty(name),
                                 line=dict(color=PALETTE[number % len(PALETTE)]),
                                 hovertemplate=f"{pretty(name)}, severity %{{x}}: %{{y:.1%}}<extra></extra>"))
    fig.add_hline(y=report["clean"][metric], line=dict(color="grey", dash="dot"),
                  annotation_text="clean", annotation_position="bottom left")
    fig.update_xaxes(title="severity (0 = clean)", tickvals=[0, *report.get("severities", [1, 2, 3, 4, 5])])
    _percent_axes(fig, metric)
    fig.update_layout(title=title or f"{METRICS.get(metric, metric)} versus severity", height=height,
                      margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.2))
    return fig


def comparison_figure(reports: Mapping[str, Mapping[str, Any]], metric: str = "accuracy",
                      columns: int = 4) -> go.Figure:
    """Small multiples, one panel per corruption, one line per model (solid: first, dashed: second)."""
    names = corruption_names(next(iter(reports.values())))
    rows = math.ceil(len(names) / columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[pretty(n) for n in names],
                        shared_xaxes=True, shared_yaxes=True, vertical_spacing=0.09, horizontal_spacing=0.03)
    for model_number, (model, report) in enumerate(reports.items()):
        frame = curve_frame(report, metric)
        label = html.escape(model)
        for panel, name in enumerate(names):
            points = frame[frame["corruption"] == name]
            fig.add_trace(go.Scatter(
                x=points["severity"], y=points["value"], mode="lines+markers", name=label, legendgroup=label,
                showlegend=panel == 0, marker=dict(size=5),
                line=dict(color=PALETTE[model_number], dash=MODEL_DASHES[model_number % len(MODEL_DASHES)]),
                hovertemplate=f"{label}<br>{pretty(name)}, severity %{{x}}: %{{y:.1%}}<extra></extra>"),
                row=panel // columns + 1, col=panel % columns + 1)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.03])
    fig.update_layout(title=f"{METRICS.get(metric, metric)} versus severity, model against model",
                      height=240 * rows + 90, margin=dict(l=10, r=10, t=60, b=50),
                      legend=dict(orientation="h", y=-0.04, yanchor="top"))
    return fig


def recall_drop(report: Mapping[str, Any], severity: int | None = None) -> pd.DataFrame:
    """Corruption x class: clean recall minus recall under the corruption (mean over severities when None).

    Positive = the class loses recall.  Classes absent from the clean sample are left out.
    """
    clean = report["clean"]["per_class_recall"]
    classes = [c for c in report.get("classes", clean) if c in clean]
    rows = {}
    for name in corruption_names(report):
        entries = [e for e in report["corruptions"][name] if severity is None or e["severity"] == severity]
        if entries:
            rows[name] = [clean[c] - float(np.mean([e["per_class_recall"].get(c, np.nan) for e in entries]))
                          for c in classes]
    return pd.DataFrame.from_dict(rows, orient="index", columns=classes)


def recall_drop_heatmap(frame: pd.DataFrame, title: str = "Recall drop per class", height: int = 460) -> go.Figure:
    """Heatmap of :func:`recall_drop` (red: recall lost, blue: recall gained)."""
    limit = float(np.nanmax(np.abs(frame.to_numpy()))) if frame.size else 1.0
    limit = max(limit, 0.05)  # an all-zero table still gets a readable colour scale
    text = [[f"{v:+.0%}" if np.isfinite(v) else "" for v in row] for row in frame.to_numpy()]
    fig = go.Figure(go.Heatmap(
        z=frame.to_numpy(), x=list(frame.columns), y=[pretty(n) for n in frame.index], text=text,
        texttemplate="%{text}", colorscale="RdBu_r", zmid=0, zmin=-limit, zmax=limit,
        colorbar=dict(title="drop", tickformat=".0%"),
        hovertemplate="%{y}, %{x}: recall %{text} lower than clean<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def noise_figure(reports: Mapping[str, Mapping[str, Any]], metric: str = "accuracy", height: int = 380) -> go.Figure:
    """``metric`` against Gaussian-noise sigma (0 = clean), one line per model: the original report's curve."""
    fig = go.Figure()
    for number, (model, report) in enumerate(reports.items()):
        entries = report.get("corruptions", {}).get(NOISE, [])
        sigmas = [0.0] + [float(e["sigma"]) for e in entries]
        values = [report["clean"][metric]] + [float(e[metric]) for e in entries]
        label = html.escape(model)
        fig.add_trace(go.Scatter(x=sigmas, y=values, mode="lines+markers", name=label,
                                 line=dict(color=PALETTE[number], dash=MODEL_DASHES[number % len(MODEL_DASHES)]),
                                 hovertemplate=f"{label}<br>sigma %{{x}}: %{{y:.1%}}<extra></extra>"))
    fig.update_xaxes(title="Gaussian noise sigma (pixels scaled to 0-1)")
    _percent_axes(fig, metric)
    fig.update_layout(title=f"{METRICS.get(metric, metric)} under Gaussian noise", height=height,
                      margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def summary_frame(reports: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Per model: clean scores, mean corrupted balanced accuracy, relative drop, the worst corruption."""
    rows = {}
    for model, report in reports.items():
        means = {name: float(np.mean([e["balanced_accuracy"] for e in report["corruptions"][name]]))
                 for name in corruption_names(report)}
        worst = min(means, key=means.get) if means else None
        drop = report.get("relative_drop")
        rows[model] = {
            "Images": f"{report['n_images']:,}",
            "Clean accuracy": f"{report['clean']['accuracy']:.1%}",
            "Clean balanced accuracy": f"{report['clean']['balanced_accuracy']:.1%}",
            "Mean corrupted balanced accuracy": f"{report['mean_corrupted_balanced_accuracy']:.1%}",
            "Relative drop": "n/a" if drop is None else f"{drop:.1%}",
            "Worst corruption (mean balanced accuracy)": f"{pretty(worst)} ({means[worst]:.1%})" if worst else "n/a",
        }
    return pd.DataFrame(rows)


def trained_on_corruptions_note(card_config: Mapping[str, Any]) -> str | None:
    """Say so when the model trained on this suite's corruptions (its card's ``corruption_variants``):
    its curves then measure corruptions of a kind it has seen, on images it has not, which a reader
    would otherwise take for robustness to the unforeseen."""
    variants = int(card_config.get("corruption_variants") or 0)
    if variants <= 0:
        return None
    copies = "one copy" if variants == 1 else f"{variants} copies"
    return (f"This model trained with {copies} of each training image under a random corruption of this suite "
            "at a random severity, so these curves measure corruptions of a kind it has seen, on held-out "
            "images it has not. Other laboratories, below, are the test of what it has not seen.")


def gallery_levels(name: str) -> int:
    """How many severities the gallery slider offers for ``name`` (Gaussian noise has one per sigma)."""
    return len(GAUSSIAN_SIGMAS) if name == NOISE else 5


def level_text(name: str, level: int) -> str:
    if level == 0:
        return "clean"
    return f"sigma {GAUSSIAN_SIGMAS[level - 1]}" if name == NOISE else f"severity {level}"


corrupted_view = corrupt_item  # the gallery shows item i exactly as the benchmark corrupted it


def gallery_corruptions() -> list[str]:
    return [*CORRUPTIONS, NOISE]
