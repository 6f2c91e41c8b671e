"""Plotly figures shared by the pages.  Pure functions: data in, ``go.Figure`` out."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

HIGHLIGHT_PAIRS = (("ig", "monocyte"), ("monocyte", "ig"))  # (true, predicted) cells to outline
ACCENT = "#7b2d8e"  # a stain purple, used for the main series
FLAG = "#d9480f"


def _compact(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def probability_bars(top: Sequence[tuple[str, float]], title: str = "Top probabilities",
                     height: int = 220) -> go.Figure:
    """Horizontal bars for the top-k (class, probability) pairs, the best on top."""
    names = [name for name, _ in top][::-1]
    values = [float(p) for _, p in top][::-1]
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=ACCENT,
                           text=[f"{v:.1%}" for v in values], textposition="outside", cliponaxis=False,
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_xaxes(range=[0, 1.15], tickformat=".0%", tickvals=[0, 0.25, 0.5, 0.75, 1.0])
    fig.update_layout(title=title)
    return _compact(fig, height)


def confusion_matrix_figure(matrix: Sequence[Sequence[int]], classes: Sequence[str], normalise: bool = False,
                            title: str = "Confusion matrix",
                            highlight: Sequence[tuple[str, str]] = HIGHLIGHT_PAIRS,
                            rows: Sequence[str] | None = None, height: int = 480) -> go.Figure:
    """Heatmap of true (rows) versus predicted (columns); the ``highlight`` cells are outlined.

    ``normalise`` divides each row by its total (recall on the diagonal).  ``rows`` names the
    true classes when they are fewer than the predicted ``classes`` (another laboratory's set).
    """
    row_names = list(classes if rows is None else rows)
    counts = np.asarray(matrix, dtype=float).reshape(len(row_names), len(classes))
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalise else counts
    text = [[f"{v:.0%}" if normalise else f"{int(v)}" for v in row] for row in values]
    fig = go.Figure(go.Heatmap(
        z=values, x=list(classes), y=row_names, text=text, texttemplate="%{text}",
        colorscale="Purples", showscale=False,
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="true class")
    fig.update_xaxes(title="predicted class", side="bottom")
    for true, predicted in highlight:
        if true in row_names and predicted in classes:
            row, col = row_names.index(true), list(classes).index(predicted)
            fig.add_shape(type="rect", x0=col - 0.5, x1=col + 0.5, y0=row - 0.5, y1=row + 0.5,
                          line=dict(color=FLAG, width=3))
    fig.update_layout(title=title)
    return _compact(fig, height)


def reliability_figure(reliability: dict[str, list], ece: float | None, title: str = "Reliability") -> go.Figure:
    """Accuracy per confidence bin against the diagonal of perfect calibration."""
    centres, accuracy, counts = [], [], []
    for lower, upper, acc, count in zip(reliability.get("bin_lower", []), reliability.get("bin_upper", []),
                                        reliability.get("accuracy", []), reliability.get("count", [])):
        if acc is not None and count:
            centres.append((lower + upper) / 2)
            accuracy.append(acc)
            counts.append(count)
    width = (reliability["bin_upper"][0] - reliability["bin_lower"][0]) if reliability.get("bin_upper") else 0.1
    fig = go.Figure()
    fig.add_trace(go.Bar(x=centres, y=accuracy, width=width * 0.95, name="accuracy", marker_color=ACCENT,
                         customdata=counts,
                         hovertemplate="confidence %{x:.2f}: accuracy %{y:.1%} (%{customdata} images)"
                                       "<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line=dict(color="grey", dash="dash")))
    fig.update_xaxes(range=[0, 1], title="confidence")
    fig.update_yaxes(range=[0, 1], title="accuracy", tickformat=".0%")
    suffix = f" (ECE {ece:.3f})" if ece is not None else ""
    fig.update_layout(title=title + suffix, showlegend=False)
    return _compact(fig, 360)


def coverage_figure(curve: dict[str, list[float]], marker: tuple[float, float] | None = None,
                    marker_label: str = "model card threshold",
                    title: str = "Accuracy versus coverage") -> go.Figure:
    """Accuracy of the accepted images as the needs-review threshold removes the least confident.

    ``marker`` = (coverage, accuracy) of the threshold in use, drawn as a point.
    """
    fig = go.Figure(go.Scatter(x=curve.get("coverage", []), y=curve.get("accuracy", []), mode="lines+markers",
                               marker=dict(size=4), line=dict(color=ACCENT), name="accepted images",
                               customdata=curve.get("threshold", []),
                               hovertemplate="coverage %{x:.1%}, accuracy %{y:.2%}, threshold %{customdata:.3f}"
                                             "<extra></extra>"))
    if marker is not None:
        fig.add_trace(go.Scatter(x=[marker[0]], y=[marker[1]], mode="markers+text", name=marker_label,
                                 marker=dict(size=12, color=FLAG, symbol="diamond"), text=[marker_label],
                                 textposition="top right"))
    fig.update_xaxes(title="coverage (share decided without review)", tickformat=".0%", autorange="reversed")
    fig.update_yaxes(title="accuracy of accepted", tickformat=".1%")
    fig.update_layout(title=title, showlegend=False)
    return _compact(fig, 360)


def class_count_bars(classes: Sequence[str], counts: Sequence[int], flagged: Sequence[int] | None = None,
                     title: str = "Differential count") -> go.Figure:
    """Stacked bars per class: counted images and, apart, those awaiting review."""
    fig = go.Figure(go.Bar(x=list(classes), y=list(counts), name="counted", marker_color=ACCENT))
    if flagged is not None:
        fig.add_trace(go.Bar(x=list(classes), y=list(flagged), name="needs review", marker_color=FLAG))
    fig.update_layout(barmode="stack", title=title, legend=dict(orientation="h", y=-0.25))
    highest = max([c + f for c, f in zip(counts, flagged or [0] * len(counts))] or [0])
    fig.update_yaxes(title="images", rangemode="tozero", tickformat="d", dtick=max(1, math.ceil(highest / 5)))
    return _compact(fig, 320)


def adaptation_curve_figure(table: pd.DataFrame, title: str = "Accuracy after adapting on k cells per class"
                            ) -> go.Figure:
    """Adapted accuracy (± one standard deviation over draws) against k, per laboratory, with its
    unadapted accuracy dashed: rows of :func:`bloodcell_core.reporting.performance.curve_table`."""
    fig = go.Figure()
    for name, rows in table.groupby("laboratory", sort=False):
        fig.add_trace(go.Scatter(x=rows["k"], y=rows["adapted"], mode="lines+markers", name=f"{name}, adapted",
                                 error_y=dict(type="data", array=rows["adapted std"], visible=True),
                                 line=dict(color=ACCENT), hovertemplate="k = %{x}: %{y:.1%}<extra></extra>"))
        fig.add_trace(go.Scatter(x=rows["k"], y=rows["unadapted"], mode="lines", name=f"{name}, unadapted",
                                 line=dict(color=FLAG, dash="dash"), hovertemplate="unadapted: %{y:.1%}<extra></extra>"))
    fig.update_xaxes(title="labelled cells per class (k)", type="log", tickvals=sorted(table["k"].unique()))
    fig.update_yaxes(title="accuracy on the rest of the laboratory", tickformat=".0%")
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.3))
    return _compact(fig, 340)
