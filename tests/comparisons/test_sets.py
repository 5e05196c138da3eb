"""Creating comparison sets from database sources and from CSV/JSONL imports; bad input fails, nothing is lost."""

import json
import re

import pytest

from studyapp.db.comparisons import ComparisonPair, ComparisonSet
from studyapp.db.models import Case
from studyapp.services import comparisons, studies
from studyapp.services.errors import InvalidInput
from studyapp.ui.compare_tab import source_choices

from .builders import candidate_text, make_study, reference_text


def test_set_from_reference_and_draft(db):
    with db.begin() as s:
        study, _, _ = make_study(s, 2, 2, 1)
        cset = comparisons.create_comparison_set(s, study, "round 1", "reference", "draft:model", "draft:model",
                                                 case_keys=["C003", "C001"])
    with db() as s:
        pairs = s.query(ComparisonPair).order_by(ComparisonPair.position).all()
        assert [(p.case.case_key, p.source_1_name, p.text_1, p.source_2_name, p.text_2) for p in pairs] == [
            ("C003", "reference", reference_text(3), "draft:model", candidate_text(3)),
            ("C001", "reference", reference_text(1), "draft:model", candidate_text(1)),
        ]
        stored = s.get(ComparisonSet, cset.id)
        assert (stored.seed, stored.candidate_source, stored.readers_per_pair) == (0, "draft:model", 1)


def test_available_sources_are_those_with_texts(db):
    with db.begin() as s:
        study, _, _ = make_study(s, 2, 1, 1)
        # the study's three arms: only 'model' has drafts; nothing is submitted yet, so no final:<arm>
        assert comparisons.available_sources(s, study) == {"reference": 3, "draft:model": 3}
        study.cases[0].reference_report = " "
        assert comparisons.available_sources(s, study) == {"reference": 2, "draft:model": 3}
        study.cases[1].reference_report = ""
        assert source_choices(comparisons.available_sources(s, study)) == [
            ("reference (1 case)", "reference"), ("draft:model (3 cases)", "draft:model")]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"source_2": "draft:nope"}, "has no arm 'nope'"),
        ({"source_2": "final"}, "unknown report source"),
        ({"source_2": "draft:llm"}, "has no report for case"),  # no llm drafts were imported
        ({"source_2": "reference"}, "two different sources"),
        ({"candidate": "draft:llm"}, "not one of the two sources"),
        ({"name": "reference vs AI"}, "readers see the set name"),
        ({"name": "model vs radiologist"}, "'model', which names source 'draft:model'"),
        ({"name": "  "}, "name is empty"),
        ({"case_keys": ["C000", "C999"]}, "unknown case key"),
        ({"readers_per_pair": 0}, "at least 1"),
    ],
)
def test_bad_set_options(db, kwargs, message):
    with db.begin() as s:
        study, _, _ = make_study(s, 1, 1, 1)
    args = {"name": "x", "source_1": "reference", "source_2": "draft:model", "candidate": "reference",
            "case_keys": None, "readers_per_pair": 1} | kwargs
    with db.begin() as s:
        study = studies.get_study(s, "s1")
        with pytest.raises(InvalidInput, match=message):
            comparisons.create_comparison_set(
                s, study, args["name"], args["source_1"], args["source_2"], args["candidate"],
                case_keys=args["case_keys"], readers_per_pair=args["readers_per_pair"])


def test_identical_texts_rejected(db):
    with db.begin() as s:
        study, _, _ = make_study(s, 2, 0, 1)
        case = s.query(Case).filter_by(case_key="C001").one()
        case.reference_report = "  " + candidate_text(1) + "\n"
    with db.begin() as s:
        with pytest.raises(InvalidInput, match=r"identical for case\(s\) \['C001'\]"):
            comparisons.create_comparison_set(s, studies.get_study(s, "s1"), "x", "reference", "draft:model",
                                              "draft:model")


def _rows():
    return [
        {"case_key": "C000", "source_a_name": "radiologist", "text_a": "Heart normal.",
         "source_b_name": "ai", "text_b": "No acute disease."},
        {"case_key": "C001", "source_a_name": "ai", "text_a": "Small effusion.",
         "source_b_name": "radiologist", "text_b": "Left pleural effusion, small."},
    ]


def _write(path, rows):
    if path.suffix == ".csv":
        import pandas as pd

        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_import_canonicalises_source_order(db, tmp_path, suffix):
    path = tmp_path / f"pairs{suffix}"
    _write(path, _rows())
    with db.begin() as s:
        study, _, _ = make_study(s, 2, 0, 1)
        comparisons.import_comparison_set(s, study, "imported", path, "ai", seed=3)
    with db() as s:
        pairs = s.query(ComparisonPair).order_by(ComparisonPair.position).all()
        assert [(p.case.case_key, p.source_1_name, p.text_1, p.source_2_name, p.text_2) for p in pairs] == [
            ("C000", "radiologist", "Heart normal.", "ai", "No acute disease."),
            ("C001", "radiologist", "Left pleural effusion, small.", "ai", "Small effusion."),
        ]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"case_key": "C404"}, "line 3: unknown case key 'C404'"),
        ({"source_a_name": "gpt"}, "line 3: unknown source 'gpt'"),
        ({"source_b_name": "ai"}, "line 3: both reports come from source 'ai'"),
        ({"text_a": "No acute disease.", "text_b": "No acute disease."}, r"identical for case\(s\) \['C001'\]"),
        ({"case_key": "C000"}, "line 3: case 'C000' is listed twice"),
        ({"text_b": None}, "line 3: a report text is empty"),
    ],
)
def test_bad_import_rows_keep_existing_data(db, tmp_path, change, message):
    with db.begin() as s:
        study, _, _ = make_study(s, 2, 0, 1)
        comparisons.create_comparison_set(s, study, "existing", "reference", "draft:model", "draft:model")
    rows = _rows()
    rows[1] = rows[1] | change
    path = tmp_path / "pairs.csv"
    _write(path, rows)
    with pytest.raises(InvalidInput, match=message):
        with db.begin() as s:
            comparisons.import_comparison_set(s, studies.get_study(s, "s1"), "imported", path, "ai")
    with db() as s:
        assert [c.name for c in s.query(ComparisonSet)] == ["existing"]
        assert s.query(ComparisonPair).count() == 2


def test_import_missing_column_and_format(db, tmp_path):
    with db.begin() as s:
        make_study(s, 2, 0, 1)
    bad = tmp_path / "pairs.csv"
    bad.write_text("case_key,text_a,text_b\nC000,a,b\n")
    other = tmp_path / "pairs.xlsx"
    other.write_text("")
    with db.begin() as s:
        study = studies.get_study(s, "s1")
        with pytest.raises(InvalidInput, match=r"missing column\(s\) \['source_a_name', 'source_b_name'\]"):
            comparisons.import_comparison_set(s, study, "x", bad, "ai")
        with pytest.raises(InvalidInput, match="unsupported import format '.xlsx'"):
            comparisons.import_comparison_set(s, study, "x", other, "ai")


def test_final_reports_as_source(db):
    """``final:<arm>`` takes the first submitted final report of that arm for each case."""
    from datetime import timedelta

    from studyapp.clock import utcnow
    from studyapp.db.models import Assignment, Report

    with db.begin() as s:
        study, readers, _ = make_study(s, 1, 0, 2)
        case = s.query(Case).one()
        arm = next(a for a in study.arms if a.code == "llm")
        now = utcnow()
        for position, (reader, text, when) in enumerate(
            [(readers[0], "Late final.", now), (readers[1], "Early final.", now - timedelta(minutes=5))]
        ):
            a = Assignment(study_id=study.id, reader_id=reader.id, case_id=case.id, arm_id=arm.id, position=position)
            s.add(a)
            s.flush()
            s.add(Report(assignment_id=a.id, draft_text="d", current_text=text, final_text=text,
                         status="submitted", submitted_at=when))
        s.flush()
        assert comparisons.source_texts(s, study, "final:llm") == {case.id: "Early final."}


@pytest.mark.parametrize(
    "suffix, content, message",
    [
        (".csv", "caf\xe9".encode("latin-1"), "cannot be read as UTF-8 CSV"),
        (".csv", b"", "cannot be read as UTF-8 CSV"),
        (".jsonl", b"not json\n", "cannot be read as UTF-8 JSONL"),
        (".csv", b"\x00\x01\x02\xff\xfe", "cannot be read as UTF-8 CSV"),
    ],
)
def test_unreadable_import_files_are_named(db, tmp_path, suffix, content, message):
    with db.begin() as s:
        make_study(s, 1, 1, 1)
    path = tmp_path / f"pairs{suffix}"
    path.write_bytes(content)
    with db.begin() as s:
        with pytest.raises(InvalidInput, match=f"pairs{re.escape(suffix)}: {message}"):
            comparisons.import_comparison_set(s, studies.get_study(s, "s1"), "x", path, "ai")


def test_practice_cases_are_left_out_unless_included(db):
    with db.begin() as s:
        study, _, _ = make_study(s, 2, 2, 1)
        s.query(Case).filter(Case.case_key == "C001").one().is_practice = True
        s.flush()
        default = comparisons.create_comparison_set(s, study, "default", "reference", "draft:model", "draft:model")
        assert [p.case.case_key for p in default.pairs] == ["C000", "C002", "C003"]
        with pytest.raises(InvalidInput, match=r"case\(s\) \['C001'\] are practice cases"):
            comparisons.create_comparison_set(s, study, "named", "reference", "draft:model", "draft:model",
                                              case_keys=["C001", "C002"])
        included = comparisons.create_comparison_set(s, study, "all", "reference", "draft:model", "draft:model",
                                                     include_practice=True)
        assert [p.case.case_key for p in included.pairs] == ["C000", "C001", "C002", "C003"]
        for case in study.cases:
            case.is_practice = True
        s.flush()
        with pytest.raises(InvalidInput, match="has no case to compare"):
            comparisons.create_comparison_set(s, study, "none", "reference", "draft:model", "draft:model")
