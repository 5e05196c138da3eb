"""Drafts import from CSV and JSONL files, row-level errors, immutability, and the study normal template."""

import csv
import json

import pytest
from sqlalchemy import select

from studyapp.db.models import Arm, Assignment, Case, Draft, ReaderStudy, Report, User
from studyapp.services.drafts import (
    TEMPLATE_SOURCE,
    DraftFileError,
    ImportResult,
    add_template_drafts,
    import_drafts,
    set_template,
)
from studyapp.services.errors import InvalidInput

GPT = "gpt-4o-2024-08-06"


@pytest.fixture()
def study_id(db):
    """A study with arms template/llm/model and cases c1..c3."""
    with db.begin() as session:
        study = ReaderStudy(name="drafts")
        session.add(study)
        session.flush()
        session.add_all(Arm(study_id=study.id, code=code) for code in ("template", "llm", "model"))
        session.add_all(Case(study_id=study.id, case_key=f"c{i}", study_instance_uid=f"1.2.{i}") for i in (1, 2, 3))
        return study.id


def run_import(db, study_id, path, replace=False):
    with db.begin() as session:
        return import_drafts(session, session.get(ReaderStudy, study_id), path, replace=replace)


def stored_drafts(db):
    """(case_key, arm code) -> (text, source, is_sample)."""
    with db() as session:
        rows = session.execute(
            select(Case.case_key, Arm.code, Draft.text, Draft.source, Draft.is_sample)
            .join(Case, Draft.case_id == Case.id)
            .join(Arm, Draft.arm_id == Arm.id)
        ).all()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def write_csv(path, rows, header=("case_key", "arm", "text", "source")):
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path, lines):
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


def test_csv_import_stores_rows_and_reimport_is_a_no_op(db, study_id, tmp_path):
    text = "FINDINGS: Small left pleural effusion.\nIMPRESSION: Effusion, no pneumothorax."
    path = write_csv(
        tmp_path / "drafts.csv",
        [["c1", "llm", text, GPT], ["c1", "model", "No acute findings.", "medversa-0.1"], ["c2", "llm", "Clear.", GPT]],
    )
    assert run_import(db, study_id, path) == ImportResult(imported=3)
    assert stored_drafts(db) == {
        ("c1", "llm"): (text, GPT, False),
        ("c1", "model"): ("No acute findings.", "medversa-0.1", False),
        ("c2", "llm"): ("Clear.", GPT, False),
    }
    assert run_import(db, study_id, path) == ImportResult(unchanged=3)
    assert len(stored_drafts(db)) == 3


def test_jsonl_import_with_is_sample(db, study_id, tmp_path):
    path = write_jsonl(
        tmp_path / "drafts.jsonl",
        [
            {"case_key": "c3", "arm": "model", "text": "Cardiomegaly.", "source": "medversa", "is_sample": True},
            "",
            {"case_key": "c2", "arm": "model", "text": "  Normal chest.  ", "source": "medversa", "is_sample": "no"},
        ],
    )
    assert run_import(db, study_id, path) == ImportResult(imported=2)
    assert stored_drafts(db) == {
        ("c3", "model"): ("Cardiomegaly.", "medversa", True),
        ("c2", "model"): ("Normal chest.", "medversa", False),
    }


def test_csv_bad_rows_reported_by_line_and_good_rows_import(db, study_id, tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text(
        "case_key,arm,text,source,is_sample\n"
        'c1,llm,"Multi-line\ndraft.",gpt-4o,\n'  # lines 2-3
        "c9,llm,Text,gpt-4o,\n"  # 4 unknown case
        "c2,gpt,Text,gpt-4o,\n"  # 5 unknown arm
        "c2,llm,   ,gpt-4o,\n"  # 6 empty text
        "c2,model\n"  # 7 missing columns
        "c1,llm,Other text,gpt-4o,\n"  # 8 duplicate of line 2
        "c3,llm,Fine,gpt-4o,maybe\n"  # 9 bad is_sample
        "c3,model,Fine,medversa,yes\n",  # 10 good
        encoding="utf-8",
    )
    result = run_import(db, study_id, path)
    assert (result.imported, result.unchanged) == (2, 0)
    assert [line for line, _ in result.errors] == [4, 5, 6, 7, 8, 9]
    messages = dict(result.errors)
    assert messages[4] == "unknown case_key 'c9'"
    assert messages[5].startswith("unknown arm 'gpt'; the study's arms are llm, model, template")
    assert messages[6] == "empty text"
    assert messages[7] == "missing column(s) text, source"
    assert messages[8] == "duplicate row: case_key 'c1', arm 'llm' already on line 2"
    assert messages[9] == "is_sample 'maybe' is not true/false"
    assert stored_drafts(db) == {
        ("c1", "llm"): ("Multi-line\ndraft.", "gpt-4o", False),
        ("c3", "model"): ("Fine", "medversa", True),
    }


def test_jsonl_bad_lines_reported(db, study_id, tmp_path):
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"case_key": "c1", "arm": "llm", "text": "A", "source": GPT},
            '{"case_key": "c2", "arm": "llm", "text": "B"',  # 2 malformed
            {"case_key": "c2", "arm": "llm", "text": "B"},  # 3 missing source
            "[1, 2]",  # 4 not an object
            {"case_key": "c2", "arm": "llm", "text": 5, "source": GPT},  # 5 text not a string
        ],
    )
    result = run_import(db, study_id, path)
    assert result.imported == 1
    assert [line for line, _ in result.errors] == [2, 3, 4, 5]
    assert result.errors[0][1].startswith("malformed JSON line (Expecting ',' delimiter")
    assert result.errors[1][1] == "missing column(s) source"
    assert result.errors[2][1] == "malformed JSON line (a list, expected an object)"
    assert result.errors[3][1] == "text must be text"
    assert stored_drafts(db) == {("c1", "llm"): ("A", GPT, False)}


def test_csv_header_without_required_column(db, study_id, tmp_path):
    path = write_csv(tmp_path / "noheader.csv", [["c1", "llm", "A"]], header=("case_key", "arm", "text"))
    assert run_import(db, study_id, path) == ImportResult(errors=[(1, "missing column(s) source in the header")])
    assert stored_drafts(db) == {}


def open_report(db, study_id, case_key, arm_code):
    """A reader opens a report on (case, arm)."""
    with db.begin() as session:
        case = session.scalar(select(Case).where(Case.case_key == case_key))
        arm = session.scalar(select(Arm).where(Arm.code == arm_code))
        user = User(username=f"reader-{case_key}-{arm_code}", password_hash="x")
        session.add(user)
        session.flush()
        assignment = Assignment(study_id=study_id, reader_id=user.id, case_id=case.id, arm_id=arm.id, position=1)
        session.add(assignment)
        session.flush()
        session.add(Report(assignment_id=assignment.id, draft_text="d", current_text="d"))


def test_changed_draft_is_a_conflict_unless_replaced_and_unread(db, study_id, tmp_path):
    run_import(db, study_id, write_csv(tmp_path / "v1.csv", [["c1", "llm", "Old.", GPT], ["c2", "llm", "Old.", GPT]]))
    v2 = write_csv(tmp_path / "v2.csv", [["c1", "llm", "New.", GPT], ["c2", "llm", "Old.", "gpt-4o-mini"]])

    result = run_import(db, study_id, v2)
    assert (result.imported, result.replaced) == (0, 0)
    assert [(line, msg.split(";")[0]) for line, msg in result.errors] == [
        (2, "conflict: a stored draft for this case and arm has a different text"),
        (3, "conflict: a stored draft for this case and arm has a different source"),
    ]
    assert stored_drafts(db)[("c1", "llm")] == ("Old.", GPT, False)

    open_report(db, study_id, "c2", "llm")
    result = run_import(db, study_id, v2, replace=True)
    assert result.replaced == 1
    assert result.errors == [(3, "cannot replace: readers already opened 1 report(s) on this draft")]
    assert stored_drafts(db)[("c1", "llm")] == ("New.", GPT, False)
    assert stored_drafts(db)[("c2", "llm")] == ("Old.", GPT, False)


def test_dry_run_counts_what_would_be_replaced_and_writes_nothing(db, study_id, tmp_path):
    run_import(db, study_id, write_csv(tmp_path / "v1.csv", [["c1", "llm", "Old.", GPT], ["c1", "model", "Old.", "mv"],
                                                             ["c2", "model", "Old.", "mv"]]))
    set_template_now = "IMPRESSION: Normal."
    with db.begin() as session:
        set_template(session, session.get(ReaderStudy, study_id), set_template_now)
    before = stored_drafts(db)
    v2 = write_csv(tmp_path / "v2.csv", [["c1", "llm", "New.", GPT], ["c1", "model", "New.", "mv"],
                                         ["c2", "model", "New.", "mv"], ["c3", "llm", "Fresh.", GPT],
                                         ["c9", "llm", "x", GPT]])
    with db() as session:
        study = session.get(ReaderStudy, study_id)
        preview = import_drafts(session, study, v2, replace=True, dry_run=True)
        template_preview = set_template(session, study, "IMPRESSION: Changed.", dry_run=True)
        assert not session.new and not session.dirty
        session.commit()
    assert (preview.imported, preview.replaced, preview.replaced_per_arm) == (1, 3, {"llm": 1, "model": 2})
    assert preview.replacing() == "3 stored draft(s) (llm 1, model 2)"
    assert [line for line, _ in preview.errors] == [6]
    assert template_preview == ImportResult(replaced=3, replaced_per_arm={"template": 3})
    assert stored_drafts(db) == before
    with db() as session:
        assert session.get(ReaderStudy, study_id).template_text == set_template_now

    result = run_import(db, study_id, v2, replace=True)
    assert (result.imported, result.replaced, result.replaced_per_arm) == (1, 3, {"llm": 1, "model": 2})
    assert stored_drafts(db)[("c2", "model")] == ("New.", "mv", False)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("drafts.txt", b"case_key,arm,text,source\n", r"drafts.txt: drafts must be a .csv or .jsonl file, not '.txt'"),
        ("latin1.csv", "case_key,arm,text,source\nc1,llm,Épaule,gpt\n".encode("latin-1"), "latin1.csv: not UTF-8"),
        ("binary.jsonl", b"\x00\x01\x02\x03", r"binary.jsonl: binary content"),
        ("empty.csv", b"", r"empty.csv: empty file"),
        ("header.csv", b"case_key,arm,text,source\n", r"header.csv: no drafts rows in the file"),
        ("blank.jsonl", b"\n\n", r"blank.jsonl: no drafts rows in the file"),
    ],
)
def test_malformed_file_is_one_error_naming_it(db, study_id, tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DraftFileError, match=message):
        run_import(db, study_id, tmp_path / name)
    assert stored_drafts(db) == {}


def test_missing_file(db, study_id, tmp_path):
    with pytest.raises(DraftFileError, match="no such file"):
        run_import(db, study_id, tmp_path / "absent.csv")


def test_set_template_creates_updates_and_protects_read_drafts(db, study_id):
    template = "FINDINGS: Lungs are clear. No pleural effusion or pneumothorax.\nIMPRESSION: No acute process."
    with db.begin() as session:
        result = set_template(session, session.get(ReaderStudy, study_id), template)
    assert result == ImportResult(imported=3)
    drafts = stored_drafts(db)
    assert {k: v for k, v in drafts.items() if k[1] == "template"} == {
        (f"c{i}", "template"): (template, TEMPLATE_SOURCE, False) for i in (1, 2, 3)
    }
    with db.begin() as session:
        assert session.get(ReaderStudy, study_id).template_text == template
        assert set_template(session, session.get(ReaderStudy, study_id), template) == ImportResult(unchanged=3)
        result = set_template(session, session.get(ReaderStudy, study_id), "IMPRESSION: Normal.")
    assert result == ImportResult(replaced=3, replaced_per_arm={"template": 3})
    assert stored_drafts(db)[("c2", "template")] == ("IMPRESSION: Normal.", TEMPLATE_SOURCE, False)

    open_report(db, study_id, "c2", "template")
    with pytest.raises(InvalidInput, match="readers already opened 1 report"):
        with db.begin() as session:
            set_template(session, session.get(ReaderStudy, study_id), "Changed.")
    with db() as session:
        assert session.get(ReaderStudy, study_id).template_text == "IMPRESSION: Normal."
    assert stored_drafts(db)[("c1", "template")][0] == "IMPRESSION: Normal."


def test_set_template_refuses_empty_text_and_missing_arm(db, study_id):
    with db.begin() as session:
        study = session.get(ReaderStudy, study_id)
        with pytest.raises(InvalidInput, match="normal template is empty"):
            set_template(session, study, "  \n")
        other = ReaderStudy(name="no template arm")
        session.add(other)
        session.flush()
        with pytest.raises(InvalidInput, match="has no arm 'template'"):
            set_template(session, other, "Normal.")


def test_oversized_and_nul_texts_are_row_errors_in_jsonl(db, tmp_path):
    from studyapp.services.reading import MAX_REPORT_CHARS

    with db.begin() as session:
        study = ReaderStudy(name="limits")
        session.add(study)
        session.flush()
        session.add_all([Arm(study_id=study.id, code="llm"), Arm(study_id=study.id, code="model"),
                         Case(study_id=study.id, case_key="C1", study_instance_uid="1.2.9")])
    path = tmp_path / "drafts.jsonl"
    rows = [{"case_key": "C1", "arm": "llm", "text": "x" * (MAX_REPORT_CHARS + 1), "source": "s"},
            {"case_key": "C1", "arm": "model", "text": "a\x00b", "source": "s"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with db.begin() as session:
        result = import_drafts(session, session.scalar(select(ReaderStudy)), path)
    assert result.imported == 0
    assert [line for line, _ in result.errors] == [1, 2]
    assert "the limit is 100,000" in result.errors[0][1] and "NUL" in result.errors[1][1]


def test_imports_add_missing_template_drafts_and_never_change_stored_ones(db, study_id, tmp_path):
    # a per-case template draft from a file survives later imports (set_template would have overwritten it)
    run_import(db, study_id, write_csv(tmp_path / "t.csv", [["c1", "template", "Custom template for c1.", "site"]]))
    open_report(db, study_id, "c1", "template")
    with db.begin() as session:
        study = session.get(ReaderStudy, study_id)
        assert add_template_drafts(session, study) == 0  # no study template: nothing to add
        study.template_text = "IMPRESSION: Normal."
        assert add_template_drafts(session, study) == 2
        assert add_template_drafts(session, study) == 0
    templates = {key: text for (key, arm), (text, _, _) in stored_drafts(db).items() if arm == "template"}
    assert templates == {"c1": "Custom template for c1.", "c2": "IMPRESSION: Normal.", "c3": "IMPRESSION: Normal."}
