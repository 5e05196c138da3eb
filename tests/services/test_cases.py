"""Case clinical context from CSV/JSONL: only present columns change, bad rows are reported by line."""

import json

import pytest
from sqlalchemy import func, select

from studyapp.db.models import AuditEvent, Case
from studyapp.services import cases, studies
from studyapp.services.rowfiles import RowFileError


@pytest.fixture()
def study(db):
    with db.begin() as s:
        study = studies.create_study(s, "ctx")
        s.add_all([Case(study_id=study.id, case_key=k, study_instance_uid=f"1.2.{i}", indication="from header")
                   for i, k in enumerate(("A", "B", "C"))])
    return db


def test_csv_sets_present_columns_and_reports_bad_rows(study, tmp_path):
    path = tmp_path / "info.csv"
    path.write_text("case_key,comparison,label,reference_report\n"
                    "A,Prior 2019.,Abnormal,FINDINGS: effusion.\n"
                    "B,,normal,\n"
                    "Z,,normal,\n"
                    "C,,maybe,\n"
                    "A,again,normal,\n")
    with study.begin() as s:
        result = cases.import_case_info(s, studies.get_study(s, "ctx"), path)
    assert (result.updated, result.unchanged) == (2, 0)
    assert [(line, msg.split(" ")[0]) for line, msg in result.errors] == [(4, "unknown"), (5, "label"), (6, "case_key")]
    with study() as s:
        rows = {c.case_key: (c.indication, c.comparison, c.label, c.reference_report)
                for c in studies.get_study(s, "ctx").cases}
    assert rows == {"A": ("from header", "Prior 2019.", "abnormal", "FINDINGS: effusion."),
                    "B": ("from header", None, "normal", None),
                    "C": ("from header", None, None, None)}


def test_jsonl_reimport_is_unchanged_and_wrong_types_are_row_errors(study, tmp_path):
    path = tmp_path / "info.jsonl"
    path.write_text(json.dumps({"case_key": "A", "indication": "Fever."}) + "\n"
                    + json.dumps({"case_key": "B", "indication": 5}) + "\n")
    for expected_updated in (1, 0):
        with study.begin() as s:
            result = cases.import_case_info(s, studies.get_study(s, "ctx"), path)
        assert result.updated == expected_updated and result.errors == [(2, "indication must be text")]
    with pytest.raises(RowFileError, match="not UTF-8"):
        bad = tmp_path / "bad.csv"
        bad.write_bytes(b"case_key,indication\nA,caf\xe9\n")
        with study.begin() as s:
            cases.import_case_info(s, studies.get_study(s, "ctx"), bad)


def test_unknown_key_suggests_the_near_match(study, tmp_path):
    path = tmp_path / "info.csv"
    path.write_text("case_key,indication\na,Fever.\nQ,x\n")
    with study.begin() as s:
        result = cases.import_case_info(s, studies.get_study(s, "ctx"), path)
    assert result.errors == [(2, "unknown case_key 'a'; did you mean 'A'?"), (3, "unknown case_key 'Q'")]


def test_dry_run_counts_overwritten_fields_and_writes_nothing(study, tmp_path):
    path = tmp_path / "info.csv"  # A: stored indication replaced; B: stored indication cleared; C: label newly set
    path.write_text("case_key,indication,label\nA,Fever.,\nB,,\nC,from header,normal\n")
    with study.begin() as s:
        preview = cases.import_case_info(s, studies.get_study(s, "ctx"), path, dry_run=True)
    assert (preview.updated, preview.unchanged, preview.overwritten) == (3, 0, 2)
    assert preview.overwritten_fields == {"indication": 2}
    assert preview.overwriting() == "the stored values of 2 case(s) (indication 2)"
    with study() as s:
        assert {(c.indication, c.label) for c in studies.get_study(s, "ctx").cases} == {("from header", None)}
        assert s.scalar(select(func.count(AuditEvent.id))) == 0
    with study.begin() as s:
        result = cases.import_case_info(s, studies.get_study(s, "ctx"), path)
    assert (result.updated, result.overwritten) == (3, 2)
    with study() as s:
        assert {c.case_key: (c.indication, c.label) for c in studies.get_study(s, "ctx").cases} == {
            "A": ("Fever.", None), "B": (None, None), "C": ("from header", "normal")}
        assert s.scalar(select(func.count(AuditEvent.id))) == 1
