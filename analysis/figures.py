"""Plotly figures for the panels of the paper's Fig. 5 plus time, Likert and blinded-comparison preference by arm,
and their export as interactive HTML and static PNG. Arms appear in design order under the study's labels; every
bar carries its 95% CI and its n, and bars resting on fewer than :data:`MIN_BIN_N` readings are grey.

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

#: Bars and bins with fewer readings than this are greyed and labelled "n < MIN_BIN_N": their intervals rest on too
#: few readings to be trusted (the coverage benchmark scores only cells at least this large).
MIN_BIN_N = 20


GREY = "#c8c8c8"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _error(estimate: pd.Series, low: pd.Series, high: pd.Series) -> dict:
    return {"type": "data", "symmetric": False, "array": (high - estimate).to_numpy(),
            "arrayminus": (estimate - low).to_numpy()}


def _bars(name: str, x, estimate: pd.Series, low: pd.Series, high: pd.Series, n: pd.Series, colour: str,
          hover: str) -> go.Bar:
    """One bar trace with its 95% CI as error bars and its n written on each bar; bars with n < MIN_BIN_N grey
    and labelled as such."""
    small = n.to_numpy() < MIN_BIN_N
    return go.Bar(name=name, x=list(x), y=estimate.to_numpy(), error_y=_error(estimate, low, high),
                  marker_color=[GREY if s else colour for s in small],
                  text=[f"n={k} < {MIN_BIN_N}" if s else f"n={k}" for k, s in zip(n, small)],
                  textposition="inside", insidetextanchor="start",
                  customdata=np.stack([low, high, n], axis=1),
                  hovertemplate=f"{name}<br>%{{x}}<br>{hover} %{{y:.3g}}"
                                "<br>95% CI %{customdata[0]:.3g} to %{customdata[1]:.3g}<br>n=%{customdata[2]}"
                                "<extra></extra>")


def _heatmap_labels(readings: pd.DataFrame, z: pd.DataFrame, labels: dict[str, str]) -> np.ndarray:
    arm = readings.pivot(index="reader", columns="case", values="arm").reindex_like(z)
    return arm.apply(lambda column: column.map(lambda a: labels.get(a, a) if isinstance(a, str) else "")).to_numpy()


def discrepancy_matrix(readings: pd.DataFrame, labels: dict[str, str]) -> go.Figure:
    """Fig. 5b: reader x case heatmap of peer discrepancy (mean urgent + emergent corrections), arm label on hover."""
    judged = readings.dropna(subset=["peer_discrepancy"])
    z = judged.pivot(index="reader", columns="case", values="peer_discrepancy")
    means = z.mean(axis=1)
    fig = go.Figure(go.Heatmap(
        z=z.to_numpy(), x=list(z.columns), y=[f"{r} (mean {means[r]:.2f})" for r in z.index],
        customdata=_heatmap_labels(judged, z, labels), colorscale="Reds",
        colorbar={"title": "urgent + emergent<br>per report"},
        zmin=0, zmax=max(1.0, float(np.nanmax(z.to_numpy())) if z.size else 1.0),  # zero is always the palest
        hovertemplate="reader %{y}<br>case %{x}<br>arm %{customdata}<br>discrepancies %{z:.2f}<extra></extra>",
    ))
    fig.update_layout(title="Urgent and emergent discrepancies against peers, per reader and case (Fig. 5b)",
                      xaxis_title="case", yaxis_title="reader (mean discrepancies per report)")
    return fig


def discrepancy_by_interval_figure(intervals: pd.DataFrame, labels: dict[str, str]) -> go.Figure:
    """Fig. 5c: mean peer discrepancy by writing-time interval, one bar group per arm in design order, each bar with
    its 95% CI and n (bars under :data:`MIN_BIN_N` readings grey)."""
    fig = go.Figure()
    for index, (arm, label) in enumerate(labels.items()):
        group = intervals[intervals["arm"] == arm]
        if len(group):
            fig.add_trace(_bars(label, group["interval"], group["mean_peer_discrepancy"], group["ci_low"],
                                group["ci_high"], group["n_readings"], _colour(index), "discrepancies"))
    fig.update_layout(barmode="group", title="Discrepancies by report writing time (Fig. 5c); grey: fewer than "
                                             f"{MIN_BIN_N} readings",
                      xaxis_title="writing time, minutes [from, to)",
                      yaxis_title="mean urgent + emergent discrepancies per report")
    return fig


def template_use_matrix(readings: pd.DataFrame, measure: str, labels: dict[str, str]) -> go.Figure:
    """Fig. 5d: reader x case heatmap of template use (draft-to-final similarity), arm label on hover."""
    z = readings.pivot(index="reader", columns="case", values="template_use")
    means = z.mean(axis=1)
    fig = go.Figure(go.Heatmap(
        z=z.to_numpy(), x=list(z.columns), y=[f"{r} (mean {means[r]:.2f})" for r in z.index],
        customdata=_heatmap_labels(readings, z, labels), colorscale="Blues", zmin=0, zmax=1,
        colorbar={"title": "similarity 0-1"},
        hovertemplate="reader %{y}<br>case %{x}<br>arm %{customdata}<br>template use %{z:.2f}<extra></extra>",
    ))
    fig.update_layout(title=f"Template use: similarity of the final report to its starting text, {measure} (Fig. 5d)",
                      xaxis_title="case", yaxis_title="reader (mean similarity)")
    return fig


def time_saved_figure(stratified: pd.DataFrame, labels: dict[str, str], reference_arm: str) -> go.Figure:
    """Fig. 5e: minutes saved per 100 studies against ``reference_arm`` for the top-k% readers by template use,
    each point with its 95% CI (strata below 100%: these readers; 100%: readers in general) and its readers."""
    fig = go.Figure()
    for index, (arm, label) in enumerate(labels.items()):
        group = stratified[stratified["arm"] == arm]
        if group.empty:
            continue
        fig.add_trace(go.Scatter(
            name=label, x=group["top_percent"], y=group["saved_minutes_per_100"], mode="lines+markers",
            line={"color": _colour(index)},
            error_y=_error(group["saved_minutes_per_100"], group["ci_low"], group["ci_high"]),
            customdata=np.stack([group["ci_low"], group["ci_high"], group["n_readers"], group["readers"]], axis=1),
            hovertemplate=f"{label}<br>top %{{x}}% of readers: %{{y:.1f}} min per 100 studies<br>95% CI "
                          "%{customdata[0]:.1f} to %{customdata[1]:.1f}<br>n=%{customdata[2]} readers "
                          "(%{customdata[3]})<extra></extra>"))
    fig.add_hline(y=0, line_dash="dot")
    fig.update_layout(title=f"Time saved per 100 studies against {labels.get(reference_arm, reference_arm)}, "
                            "by template use (Fig. 5e)",
                      xaxis_title="top % of readers by template use in the arm",
                      yaxis_title="minutes saved per 100 studies")
    return fig


def time_by_arm_figure(arm_summary: pd.DataFrame, labels: dict[str, str]) -> go.Figure:
    """Mean active minutes per case by arm in design order, with 95% CIs and the number of readings."""
    rows = arm_summary[arm_summary["metric"] == "active_seconds"].set_index("arm").reindex(list(labels)).dropna(
        subset=["estimate"])
    fig = go.Figure([_bars("active time", [labels[a] for a in rows.index], rows["estimate"] / 60,
                           rows["ci_low"] / 60, rows["ci_high"] / 60, rows["n_readings"].astype(int),
                           _colour(0), "minutes")])
    fig.update_layout(title="Active reporting time per case by arm", xaxis_title="arm",
                      yaxis_title="mean active minutes per case", showlegend=False)
    return fig


def likert_figure(summary: pd.DataFrame, labels: dict[str, str]) -> go.Figure:
    """Mean Likert answer by question and arm (design order), with 95% CIs and the number of answers."""
    fig = go.Figure()
    for index, (arm, label) in enumerate(labels.items()):
        group = summary[summary["arm"] == arm]
        if len(group):
            fig.add_trace(_bars(label, group["question"].str.replace("_", " "), group["mean"], group["ci_low"],
                                group["ci_high"], group["n"], _colour(index), "mean answer"))
    fig.update_layout(barmode="group", title="Radiologist experience: Likert answers by arm",
                      xaxis_title="question", yaxis_title="mean answer, Likert points")
    return fig


def preference_figure(preferences: pd.DataFrame) -> go.Figure:
    """Share of cases with the candidate report equivalent or better, overall / normal / abnormal, per comparison
    set, with 95% CIs and the number of cases (paper Fig. 4c)."""
    fig = go.Figure()
    for index, (name, group) in enumerate(preferences.groupby("set", sort=False)):
        fig.add_trace(_bars(f"{name}: {group['candidate_source'].iloc[0]}", group["group"],
                            group["equivalent_or_better"], group["ci_low"], group["ci_high"], group["n_cases"],
                            _colour(index), "share of cases"))
    fig.update_layout(barmode="group", title="Blinded comparison: cases with the candidate report equivalent or "
                                             "better (a case counts once)",
                      xaxis_title="cases", yaxis_title="share of cases", yaxis_range=[0, 1.05])
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
