"""Writing an analysis to disk: one CSV per table, ``columns.csv`` documenting every column, ``skipped.csv``,
the figures (HTML + PNG) and one self-contained ``report.html``. CSVs are written by
:func:`studyapp.services.safe_csv.write_csv` (cells a spreadsheet would run as a formula neutralised)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from analysis.consistency import failed_comparisons_note
from analysis.figures import write_figures
from analysis.skipped import practice_reads_left_out
from studyapp.services.safe_csv import write_csv

if TYPE_CHECKING:
    from analysis.pipeline import AnalysisResult


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
            if meaning is None:
                raise KeyError(f"column {column!r} of table {name!r} is not documented")
            rows.append({"table": name, "column": column, "meaning": meaning})
    return pd.DataFrame(rows, columns=["table", "column", "meaning"])


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}\n"


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

    parts = [
        f"<h1>Reader study analysis: {html.escape(result.study_name)}</h1>",
        "<p>" + html.escape(
            f"Reference arm: {result.reference_arm}. Discrepancy judge: {result.judge}. Template use: "
            f"{result.similarity_measure}. CIs: 1,000 bootstrap resamples of readers and cases, 2.5th/97.5th "
            f"percentiles. Skipped items: {len(result.skipped)} (listed at the end), of which practice reads left "
            f"out: {practice_reads_left_out(result.skipped)}.") + "</p>",
    ]
    if failures := failed_comparisons_note(result.tables["readings"]):
        parts.append(f"<p id='judge-failures'><strong>Warning:</strong> {html.escape(failures)}</p>")
    for index, (name, fig) in enumerate(result.figures.items()):
        parts.append(_section(name, fig.to_html(full_html=False, include_plotlyjs=index == 0)))
    for name in ("arm_summary", "time_saved_by_template_use", "discrepancy_by_interval", "likert_summary", "choice_summary",
                 "mixed_models", "reader_arm"):
        parts.append(_section(name, result.tables[name].to_html(index=False, float_format="%.3f", na_rep="")))
    parts.append(_section("Skipped items", skipped.to_html(index=False) if len(skipped) else "<p>None.</p>"))
    parts.append(_section("Columns", columns.to_html(index=False)))
    files["report.html"] = out_dir / "report.html"
    files["report.html"].write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Reader study analysis</title></head><body>"
        + "\n".join(parts) + "</body></html>", encoding="utf-8")
    return files
