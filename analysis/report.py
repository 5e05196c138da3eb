"""Writing an analysis to disk: one CSV per table, ``columns.csv`` documenting every column, ``skipped.csv``,
the figures (HTML + PNG) and one self-contained ``report.html``. CSVs are written by
:func:`studyapp.services.safe_csv.write_csv` (cells a spreadsheet would run as a formula neutralised)."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from analysis.consistency import failed_comparisons_note
from analysis.figures import write_figures
from analysis.result import AnalysisResult
from analysis.skipped import practice_judgements_left_out, practice_reads_left_out
from studyapp.services.safe_csv import write_csv


def column_documentation(tables: dict[str, pd.DataFrame], docs: dict[str, dict[str, str]]) -> pd.DataFrame:
    """One row per (table, column) with its meaning; ``likert_<question>`` columns use the wildcard entry.

    Raises:
        KeyError: a column of a table has no documentation (names both).
    """
    rows = []
    for name, table in tables.items():
        for column in table.columns:
            meaning = docs[name].get(column)
            if meaning is None and column.startswith("likert_"):
                meaning = docs[name].get("likert_<question>")
            if meaning is None and column.startswith("choice_"):
                meaning = docs[name].get("choice_<question>:<option>")
            if meaning is None:
                raise KeyError(f"column {column!r} of table {name!r} is not documented")
            rows.append({"table": name, "column": column, "meaning": meaning})
    return pd.DataFrame(rows, columns=["table", "column", "meaning"])


#: Figure name -> section title in words.
FIGURE_TITLES = {
    "time_by_arm": "Active reporting time per case by arm",
    "fig5e_time_saved": "Time saved per 100 studies by template use (Fig. 5e)",
    "fig5d_template_use": "Template use per reader and case (Fig. 5d)",
    "fig5b_discrepancy_matrix": "Discrepancies against peers per reader and case (Fig. 5b)",
    "fig5c_discrepancy_by_interval": "Discrepancies by writing time (Fig. 5c)",
    "likert_by_arm": "Radiologist experience: Likert answers by arm",
    "preference_rates": "Blinded comparison: preference for the candidate report",
}
#: Table name -> section title in words, in report order.
TABLE_TITLES = {
    "arm_summary": "Estimates per arm and differences from the reference arm",
    "time_saved_by_template_use": "Time saved per 100 studies by template-use stratum",
    "discrepancy_by_interval": "Discrepancies by writing-time interval",
    "likert_summary": "Likert answers by arm",
    "choice_summary": "Choice questions by arm",
    "preference_rates": "Blinded comparison: preference rates",
    "mixed_models": "Mixed models (a check on the primary intervals)",
    "reader_arm": "Per reader and arm",
}


def _number(value: float) -> str:
    return f"{value:.3g}"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>\n{body}\n</section>\n"


def _with_labels(table: pd.DataFrame, result: AnalysisResult) -> pd.DataFrame:
    """The table with arms in design order and shown as 'label (code)'."""
    if "arm" not in table.columns or table.empty:
        return table
    order = {arm: i for i, arm in enumerate(result.arms)}
    table = table.assign(_order=table["arm"].map(order)).sort_values("_order", kind="stable").drop(columns="_order")
    shown = {arm: arm if result.label(arm) == arm else f"{result.label(arm)} ({arm})" for arm in result.arms}
    table = table.assign(arm=table["arm"].map(lambda a: shown.get(a, a)))
    return table.drop(columns=[c for c in ("arm_label",) if c in table.columns])


def _mixed_models_html(table: pd.DataFrame) -> str:
    shown = table.astype({"p_value": object})
    untrusted = ~table["converged"].astype(bool) | table["warnings"].fillna("").astype(bool) | table["se"].isna()
    shown.loc[untrusted, "p_value"] = "withheld: fit did not converge or warned"
    flagged = int(untrusted.sum())
    disagree = table[table["agreement"].astype(str).str.startswith("DISAGREES")]
    notes = ["Model: outcome ~ arm with crossed reader and case random intercepts (statsmodels MixedLM, REML), "
             "Wald 95% intervals. It assumes the same arm effect for every reader, so where readers differ in how "
             "much an arm helps them its intervals are narrower than the primary ones: a check, not the result.",
             f"{flagged} fit(s) did not converge or warned: their p-values are withheld and they are not compared."
             if flagged else "Every fit converged without warnings."]
    notes += [f"The mixed model disagrees with the primary interval for {r.outcome}, {r.arm}: {r.agreement}. "
              "The primary interval allows the arm effect to differ between readers; the mixed model does not."
              for r in disagree.itertuples()]
    return "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes) + shown.to_html(
        index=False, float_format=_number, na_rep="")


def _method(result: AnalysisResult) -> str:
    return (
        "<p id='interval-method'>Primary intervals: 95% Wald intervals with a two-way cluster-robust variance for "
        "the crossed reader x case design (Cameron, Gelbach &amp; Miller 2011): V = V<sub>reader</sub> + "
        "V<sub>case</sub> - V<sub>reading</sub>, each term from a one-way bootstrap with "
        f"<span id='resample-count'>{result.n_resamples:,}</span> resamples (of readers with all their "
        "readings, of cases with all their readings, of single readings), and t quantiles with "
        "min(readers, cases) - 1 degrees of freedom. For the reading outcomes (every reader reads every case) each "
        "term is computed on values less the main effects of the other dimension (V<sub>reader</sub> less the case "
        "effects, V<sub>case</sub> less the reader effects, V<sub>reading</sub> less both, as in the analysis of "
        "variance of a crossed design): with the arm rotated, a reader's cases differ between arms, and without "
        "this the case effects make V<sub>reader</sub> of an arm difference noisy. Discrepancy by writing-time "
        "interval (a mean of skewed counts over a few tens of readings) has its interval on the log scale. "
        "Why primary: it keeps each reader's cases and arms together, so the balanced arm rotation is respected, "
        "and its coverage was checked by simulation (bench/coverage.py: 93.5-97.0% coverage for every estimate at 10 readers x 75 cases, widths at most 1.18 times what the sampling spread supports). The "
        "paper's percentile bootstrap resampling readers and cases at once is not shown: in this design it counts "
        "the residual variance more than once and gives intervals about twice too wide. Intervals marked readers "
        "'fixed' (time saved by a top-k% stratum of readers) describe those readers; all others generalise to "
        "other readers and cases. An interval with fewer than 2 cases, or whose estimated variance is zero (values "
        "alike, too few readings), is not estimable: its bounds are empty and its ci_note column says why. Mixed "
        "models are shown as a check; a disagreement with the primary interval is stated next to them.</p>")


def write_outputs(result: AnalysisResult, out_dir: Path, docs: dict[str, dict[str, str]]) -> dict[str, Path]:
    """Write CSVs, ``columns.csv``, ``skipped.csv``, figures and ``report.html`` into ``out_dir``.

    Returns:
        {file name: path} of everything written.

    Raises:
        KeyError: an undocumented table column (nothing is written then).
    """
    columns = column_documentation(result.tables, docs)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for name, table in result.tables.items():
        files[f"{name}.csv"] = out_dir / f"{name}.csv"
        write_csv(table, files[f"{name}.csv"])
    files["columns.csv"] = out_dir / "columns.csv"
    write_csv(columns, files["columns.csv"])
    skipped = pd.DataFrame([vars(s) for s in result.skipped], columns=["step", "item", "reason"])
    files["skipped.csv"] = out_dir / "skipped.csv"
    write_csv(skipped, files["skipped.csv"])
    files |= write_figures(result.figures, out_dir / "figures")

    arms = ", ".join(f"{result.label(a)} ({a})" if result.label(a) != a else a for a in result.arms)
    parts = [
        f"<h1>Reader study analysis: {html.escape(result.study_name)}</h1>",
        "<p>" + html.escape(
            f"Arms in design order: {arms}. Reference arm: {result.label(result.reference_arm)}. Discrepancy judge: "
            f"{result.judge}. Template use: {result.similarity_measure}. Skipped items: {len(result.skipped)} (listed "
            f"under 'Left out, and why'), of which practice reads left out: "
            f"{practice_reads_left_out(result.skipped)}; practice judgements left out of the preference rates: "
            f"{practice_judgements_left_out(result.skipped)}.") + "</p>",
        "<p>Units: time in seconds per case (figures: minutes), time saved in minutes per 100 studies, discrepancies "
        "as urgent + emergent corrections per report (mean over the case's other readers), template use as a "
        "similarity from 0 to 1, Likert answers in points of their scale, choices and preferences as shares from "
        "0 to 1.</p>",
        _method(result),
    ]
    if failures := failed_comparisons_note(result.tables["readings"]):
        parts.append(f"<p id='judge-failures'><strong>Warning:</strong> {html.escape(failures)}</p>")
    for index, (name, fig) in enumerate(result.figures.items()):
        parts.append(_section(FIGURE_TITLES.get(name, name), fig.to_html(full_html=False, include_plotlyjs=index == 0)))
    for name, title in TABLE_TITLES.items():
        table = result.tables[name]
        if name == "mixed_models":
            body = _mixed_models_html(_with_labels(table, result)) if len(table) else "<p>No model was fitted.</p>"
        elif name == "preference_rates" and table.empty:
            body = "<p>No submitted blinded comparison judgements in this study.</p>"
        else:
            body = _with_labels(table, result).to_html(index=False, float_format=_number, na_rep="")
        parts.append(_section(title, f"<div id='table-{name}'>{body}</div>"))
    parts.append(_section("Left out, and why", skipped.to_html(index=False) if len(skipped) else "<p>None.</p>"))
    parts.append(_section("What each column means", columns.to_html(index=False)))
    files["report.html"] = out_dir / "report.html"
    files["report.html"].write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Reader study analysis</title></head><body>"
        + "\n".join(parts) + "</body></html>", encoding="utf-8")
    return files
