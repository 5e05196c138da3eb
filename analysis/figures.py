"""Plotly figures for the panels of the paper's Fig. 5 plus time and Likert by arm, and their export as
interactive HTML and static PNG.

PNG export uses kaleido 1.x, which drives a Chrome/Chromium found by choreographer: the ``BROWSER_PATH``
environment variable if set, else ``chromium``/``google-chrome`` on ``PATH`` and the usual install paths
(Debian's ``/usr/bin/chromium`` here). No browser is downloaded. All PNGs of a run are written by one
``plotly.io.write_images`` call so the browser starts once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio


def discrepancy_matrix(readings: pd.DataFrame) -> go.Figure:
    """Fig. 5b: reader x case heatmap of peer discrepancy (mean urgent + emergent corrections), arm on hover."""
    judged = readings.dropna(subset=["peer_discrepancy"])
    z = judged.pivot(index="reader", columns="case", values="peer_discrepancy")
    arm = judged.pivot(index="reader", columns="case", values="arm").reindex_like(z)
    means = z.mean(axis=1)
    fig = go.Figure(go.Heatmap(
        z=z.to_numpy(), x=list(z.columns), y=[f"{r} (mean {means[r]:.2f})" for r in z.index],
        customdata=arm.to_numpy(), colorscale="Reds", colorbar={"title": "urgent+emergent"},
        zmin=0, zmax=max(1.0, float(np.nanmax(z.to_numpy())) if z.size else 1.0),  # zero is always the palest
        hovertemplate="reader %{y}<br>case %{x}<br>arm %{customdata}<br>discrepancies %{z:.2f}<extra></extra>",
    ))
    fig.update_layout(title="Urgent and emergent discrepancies against peers (Fig. 5b)",
                      xaxis_title="case", yaxis_title="reader")
    return fig


def discrepancy_by_interval_figure(intervals: pd.DataFrame) -> go.Figure:
    """Fig. 5c: mean peer discrepancy by writing-time interval, one bar group per arm."""
    fig = go.Figure([
        go.Bar(name=arm, x=group["interval"], y=group["mean_peer_discrepancy"],
               text=[f"n={n}" for n in group["n_readings"]])
        for arm, group in intervals.groupby("arm", sort=True)
    ])
    fig.update_layout(barmode="group", title="Discrepancies by report writing time (Fig. 5c)",
                      xaxis_title="writing time, minutes", yaxis_title="mean urgent + emergent discrepancies")
    return fig


def template_use_matrix(readings: pd.DataFrame, measure: str) -> go.Figure:
    """Fig. 5d: reader x case heatmap of template use (draft-to-final similarity), arm on hover."""
    z = readings.pivot(index="reader", columns="case", values="template_use")
    arm = readings.pivot(index="reader", columns="case", values="arm").reindex_like(z)
    means = z.mean(axis=1)
    fig = go.Figure(go.Heatmap(
        z=z.to_numpy(), x=list(z.columns), y=[f"{r} (mean {means[r]:.2f})" for r in z.index],
        customdata=arm.to_numpy(), colorscale="Blues", zmin=0, zmax=1, colorbar={"title": "similarity"},
        hovertemplate="reader %{y}<br>case %{x}<br>arm %{customdata}<br>template use %{z:.2f}<extra></extra>",
    ))
    fig.update_layout(title=f"Template use, {measure} (Fig. 5d)", xaxis_title="case", yaxis_title="reader")
    return fig


def time_saved_figure(stratified: pd.DataFrame, reference_arm: str) -> go.Figure:
    """Fig. 5e: minutes saved per 100 studies against ``reference_arm`` for the top-k% readers by template
    use, with bootstrap 95% CIs when ``ci_low``/``ci_high`` columns are present."""
    fig = go.Figure()
    for arm, group in stratified.groupby("arm", sort=True):
        error = None
        if {"ci_low", "ci_high"} <= set(group.columns):
            error = {"type": "data", "symmetric": False,
                     "array": group["ci_high"] - group["saved_minutes_per_100"],
                     "arrayminus": group["saved_minutes_per_100"] - group["ci_low"]}
        fig.add_trace(go.Scatter(name=arm, x=group["top_percent"], y=group["saved_minutes_per_100"],
                                 mode="lines+markers", error_y=error))
    fig.add_hline(y=0, line_dash="dot")
    fig.update_layout(title=f"Time saved per 100 studies vs {reference_arm}, by template use (Fig. 5e)",
                      xaxis_title="top % of readers by template use", yaxis_title="minutes saved per 100 studies")
    return fig


def time_by_arm_figure(readings: pd.DataFrame) -> go.Figure:
    """Active minutes per case by arm (box plot with every reading shown)."""
    fig = go.Figure([go.Box(name=arm, y=group["active_seconds"] / 60, boxpoints="all", jitter=0.4)
                     for arm, group in readings.groupby("arm", sort=True)])
    fig.update_layout(title="Active reading time per case", yaxis_title="minutes")
    return fig


def likert_figure(summary: pd.DataFrame) -> go.Figure:
    """Mean Likert answer by question and arm, bootstrap 95% CIs as error bars when present."""
    fig = go.Figure()
    for arm, group in summary.groupby("arm", sort=True):
        error = None
        if {"ci_low", "ci_high"} <= set(group.columns):
            error = {"type": "data", "symmetric": False, "array": group["ci_high"] - group["mean"],
                     "arrayminus": group["mean"] - group["ci_low"]}
        fig.add_trace(go.Bar(name=arm, x=group["question"], y=group["mean"], error_y=error))
    fig.update_layout(barmode="group", title="Radiologist experience (Likert)", yaxis_title="mean answer")
    return fig


def write_figures(figures: dict[str, go.Figure], out_dir: Path) -> dict[str, Path]:
    """Write each figure as ``<name>.html`` (plotly.js written once as ``plotly.min.js`` beside them) and
    ``<name>.png`` (1200 x 700 px, kaleido).

    Returns:
        {``<name>.html``/``<name>.png``: path}.

    Raises:
        RuntimeError: from kaleido when no Chrome/Chromium can be started (set ``BROWSER_PATH``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, fig in figures.items():
        paths[f"{name}.html"] = out_dir / f"{name}.html"
        fig.write_html(paths[f"{name}.html"], include_plotlyjs="directory")
    png = {f"{name}.png": out_dir / f"{name}.png" for name in figures}
    pio.write_images(list(figures.values()), list(png.values()), width=1200, height=700)
    return paths | png
