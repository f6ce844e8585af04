"""Plotly figures for the app: probability bars, training curves, confusion matrices, emotion
timelines; and the dashboard's runs table.

Every figure leaves room above its titles for Plotly's toolbar (it appears on hover at the top
right and used to cover the titles on a phone); pages that need no toolbar pass
:data:`PLOTLY_CONFIG`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from fer.data import CLASSES
from fer.render import EMOTION_COLORS

# t=60: the toolbar takes the top ~30 px; titles sit below it, just above the plot area.
_LAYOUT = dict(margin=dict(l=10, r=10, t=60, b=10), template="plotly_white",
               paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")
PLOTLY_CONFIG = {"displayModeBar": False}


def _title(text: str | None) -> dict:
    # Anchored to the plot area's top edge rather than the figure's, so it never meets the
    # toolbar; left-aligned so a narrow screen cuts nothing off.
    return dict(text=text, x=0, xanchor="left", xref="paper", y=1, yanchor="bottom",
                yref="paper", pad=dict(b=8)) if text else {}


def probability_bars(probs: Sequence[float], title: str | None = None,
                     height: int = 260) -> go.Figure:
    """Horizontal bars of the 7 probabilities, fixed order, one colour per emotion."""
    probs = [float(p) for p in probs]
    fig = go.Figure(go.Bar(
        x=probs, y=list(CLASSES), orientation="h",
        marker_color=[EMOTION_COLORS[c] for c in CLASSES],
        text=[f"{p:.0%}" for p in probs], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.1%}<extra></extra>",
    ))
    fig.update_layout(**_LAYOUT, height=height, title=_title(title), showlegend=False)
    fig.update_xaxes(range=[0, 1.15], tickformat=".0%", showgrid=True)
    fig.update_yaxes(autorange="reversed")  # angry at the top, as listed everywhere
    return fig


def training_curves(histories: dict[str, list[dict[str, float]]]) -> go.Figure:
    """Loss, accuracy (train dashed, validation solid) and learning rate per epoch."""
    # Wider gaps than the default 0.2/cols so each panel's tick labels stay off its neighbour.
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss", "accuracy", "learning rate"),
                        horizontal_spacing=0.09)
    palette = ["#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B"]
    for i, (name, rows) in enumerate(histories.items()):
        color = palette[i % len(palette)]
        epochs = [r["epoch"] for r in rows]
        for col, key in ((1, "loss"), (2, "accuracy")):
            for prefix, dash in (("", "dot"), ("val_", "solid")):
                values = [r.get(prefix + key) for r in rows]
                if any(v is not None for v in values):
                    fig.add_trace(go.Scatter(
                        x=epochs, y=values, mode="lines+markers", marker_size=4,
                        line=dict(color=color, dash=dash),
                        name=f"{name} {'val' if prefix else 'train'}", legendgroup=name,
                        showlegend=col == 1), row=1, col=col)
        fig.add_trace(go.Scatter(x=epochs, y=[r.get("learning_rate") for r in rows],
                                 mode="lines", line=dict(color=color), name=f"{name} lr",
                                 legendgroup=name, showlegend=False), row=1, col=3)
    fig.update_layout(**_LAYOUT, height=360, legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    # One tick per power of ten, written 10⁻³: Plotly's default log ticks read "2, 0.001, 5, 2,
    # 100µ" and ran into the next panel at phone width.
    # Labels inside the panel: at phone width the gap between panels is too narrow for them.
    fig.update_yaxes(type="log", dtick=1, exponentformat="power", showexponent="all",
                     ticklabelposition="inside", row=1, col=3)
    return fig


def confusion_matrix(matrix: Sequence[Sequence[int]], normalize: bool = True) -> go.Figure:
    """Heatmap of true (rows) against predicted (columns) classes."""
    cm = np.asarray(matrix, dtype=float)
    z = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    text = [[f"{v:.0%}" if normalize else f"{int(v)}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z, x=list(CLASSES), y=list(CLASSES), colorscale="Blues", text=text,
        texttemplate="%{text}", hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
        showscale=False))
    fig.update_layout(**_LAYOUT, height=420, xaxis_title="predicted", yaxis_title="true")
    fig.update_yaxes(autorange="reversed")
    return fig


def per_class_bars(per_class: dict[str, dict[str, float]]) -> go.Figure:
    """Precision and recall per class, side by side."""
    fig = go.Figure()
    for metric, color in (("precision", "#4C78A8"), ("recall", "#F58518"), ("f1", "#54A24B")):
        fig.add_trace(go.Bar(x=list(CLASSES), y=[per_class[c][metric] for c in CLASSES],
                             name=metric, marker_color=color,
                             hovertemplate="%{x}: %{y:.1%}<extra>" + metric + "</extra>"))
    fig.update_layout(**_LAYOUT, height=320, barmode="group", legend=dict(orientation="h"))
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    return fig


def reliability_diagram(curves: dict[str, dict]) -> go.Figure:
    """Accuracy against top-1 confidence per bin (a calibrated model sits on the diagonal).

    Args:
        curves: a label (e.g. "calibrated, ECE 2.1%") -> a
            :class:`fer.calibration.Reliability` as a dict (edges, confidence, accuracy, count).
    """
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                               line=dict(color="#999999", dash="dash")))
    palette = ["#1F77B4", "#FF7F0E", "#2CA02C"]
    for i, (name, r) in enumerate(curves.items()):
        pts = [(c, a, n) for c, a, n in zip(r["confidence"], r["accuracy"], r["count"]) if n]
        fig.add_trace(go.Scatter(
            x=[c for c, _, _ in pts], y=[a for _, a, _ in pts], mode="lines+markers",
            name=name, line=dict(color=palette[i % len(palette)]),
            marker=dict(size=[6 + 14 * (n / max(p[2] for p in pts)) ** 0.5 for *_, n in pts]),
            customdata=[n for *_, n in pts],
            hovertemplate="confidence %{x:.0%}: right %{y:.0%} of %{customdata} faces"
                          "<extra></extra>"))
    fig.update_layout(**_LAYOUT, height=360, legend=dict(orientation="h", y=-0.25),
                      xaxis_title="top-1 probability (confidence)", yaxis_title="accuracy")
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def emotion_timeline(times: Sequence[float], probs: np.ndarray, title: str | None = None,
                     height: int = 300) -> go.Figure:
    """The 7 probabilities of one person over time, one line per emotion in its colour.

    Args:
        times: seconds, one per analysed frame.
        probs: ``(len(times), 7)`` probabilities in :data:`fer.data.CLASSES` order.
        title: shown above the plot area.
        height: pixels.
    """
    probs = np.asarray(probs, dtype=float).reshape(len(times), len(CLASSES))
    fig = go.Figure()
    for i, name in enumerate(CLASSES):
        fig.add_trace(go.Scatter(
            x=list(times), y=probs[:, i], mode="lines", name=name,
            line=dict(color=EMOTION_COLORS[name], width=2),
            hovertemplate=name + " %{y:.0%}<extra></extra>"))
    layout = {**_LAYOUT, "margin": {**_LAYOUT["margin"], "t": 60 if title else 20}}
    fig.update_layout(**layout, height=height, title=_title(title), hovermode="x unified",
                      legend=dict(orientation="h", y=-0.12, yanchor="top", x=0))
    # Seconds on the ticks rather than an axis title, which the legend covered at phone width.
    fig.update_xaxes(ticksuffix=" s", rangemode="tozero")
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    return fig


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def runs_table(runs) -> tuple[list[dict], dict]:
    """The dashboard's runs table: rows and ``column_config`` for ``st.dataframe``.

    Four narrow columns (run, progress, best validation and test accuracy) so the table fits a
    390 px phone screen without sideways scrolling; the preset is in each run's config and
    usually in its name.

    Args:
        runs: :class:`fer.runs.Run` objects (anything with ``run_id``, ``state``, ``status``,
            ``history``, ``config``, ``best_val_accuracy`` and ``test_accuracy``).
    """
    import streamlit as st

    rows = []
    for r in runs:
        done = r.status.get("epoch") or len(r.history)
        total = r.status.get("epochs") or r.config.get("epochs", "?")
        # Finished and shipped runs, the common case, show epochs alone: a narrower column.
        state = "" if r.state in ("finished", "shipped") else f"{r.state} "
        rows.append({"run": r.run_id, "status": f"{state}{done}/{total}",
                     "val": _percent(r.best_val_accuracy), "test": _percent(r.test_accuracy)})
    percent = dict(format="%.1f%%", width="small")
    columns = {
        "run": st.column_config.TextColumn("run", pinned=True),
        "status": st.column_config.TextColumn(
            "status", help="epochs done/planned; the state unless finished"),
        "val": st.column_config.NumberColumn("val", help="best validation accuracy", **percent),
        "test": st.column_config.NumberColumn("test", help="FER2013 test accuracy", **percent),
    }
    return rows, columns
