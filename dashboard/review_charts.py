"""Plotly figures of the data-review pages.  Pure functions: data in, ``go.Figure`` out.

Plotly renders a small set of HTML tags (``<b>``, ``<a href>``, ``<br>``...) inside hover
text, so file names are HTML-escaped before they go into a figure.
"""
from __future__ import annotations

import html
from collections.abc import Collection, Sequence

import numpy as np
import plotly.express as px
import plotly.graph_objects as go

from bloodcell_core.audit.embedding_map import EmbeddingMap

OUTLIER_COLOUR = "#111111"


def safe_hover(values: Sequence[str]) -> list[str]:
    """Strings for Plotly hover text, with HTML special characters escaped."""
    return [html.escape(str(value), quote=True) for value in values]


def embedding_scatter(embedding: EmbeddingMap, outliers: Collection[str], title: str | None = None,
                      height: int = 560) -> go.Figure:
    """One colour per class; the ``outliers`` (paths) drawn again as large rings on top; hover: the path."""
    paths = np.asarray(embedding.paths, dtype=object)
    labels = np.asarray(embedding.labels, dtype=object)
    palette = px.colors.qualitative.Safe + px.colors.qualitative.Pastel
    fig = go.Figure()
    for number, label in enumerate(dict.fromkeys(embedding.labels)):
        members = labels == label
        fig.add_trace(go.Scattergl(
            x=embedding.xy[members, 0], y=embedding.xy[members, 1], mode="markers", name=html.escape(label),
            marker=dict(size=6, opacity=0.7, color=palette[number % len(palette)]),
            customdata=safe_hover(paths[members]),
            hovertemplate=f"{html.escape(label)}<br>%{{customdata}}<extra></extra>"))
    flagged = np.isin(paths, list(outliers))
    if flagged.any():
        fig.add_trace(go.Scattergl(
            x=embedding.xy[flagged, 0], y=embedding.xy[flagged, 1], mode="markers", name="outlier",
            marker=dict(size=14, symbol="circle-open", color=OUTLIER_COLOUR, line=dict(width=2)),
            customdata=np.column_stack([safe_hover(paths[flagged]), safe_hover(labels[flagged])]),
            hovertemplate="outlier (%{customdata[1]})<br>%{customdata[0]}<extra></extra>"))
    axis = ("PC 1", "PC 2") if embedding.projection == "PCA" else ("t-SNE 1", "t-SNE 2")
    if embedding.explained_variance:
        axis = tuple(f"{name} ({share:.0%} of variance)" for name, share in zip(axis, embedding.explained_variance))
    fig.update_xaxes(title=axis[0], showticklabels=False, zeroline=False)
    fig.update_yaxes(title=axis[1] if len(axis) > 1 else "", showticklabels=False, zeroline=False)
    fig.update_layout(title=title or f"Model features, {embedding.projection} ({len(paths):,} images)",
                      height=height, margin=dict(l=10, r=10, t=50, b=10), legend=dict(itemsizing="constant"))
    return fig
