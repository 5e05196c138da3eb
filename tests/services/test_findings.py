"""Draft findings on the demo's real DICOM: run-length masks, the drafts import storing boxes and masks with
their sentences (bad findings refused by line), re-import and replace, and who is shown them."""

import json

import numpy as np
import pytest

from studyapp import demo
from studyapp.config import Settings
from studyapp.db.models import Assignment, Case, Draft, DraftFinding
from studyapp.services import drafts, findings, studies


def test_rle_round_trip_and_bad_counts():
    mask = np.zeros((5, 7), bool)
    mask[1:3, 2:6] = True
    mask[4, 6] = True
    counts = findings.encode_rle(mask)
    assert sum(counts) == 35 and counts[:2] == [9, 4]
    assert np.array_equal(findings.decode_rle(counts, 5, 7), mask)
    assert findings.encode_rle(np.ones((2, 2), bool)) == [0, 4]
    with pytest.raises(ValueError, match="sum to 34"):
        findings.decode_rle([9, 4, 21], 5, 7)
    with pytest.raises(ValueError, match="non-negative"):
        findings.decode_rle([40, -5], 5, 7)


@pytest.fixture()
def demo_study(db, tmp_path):
    with db.begin() as session:
        demo.ensure_demo(session, Settings(data_dir=tmp_path))
    return db


def _line(case, uid, **finding):
    return {"case_key": case, "arm": "model", "text": "FINDINGS: Opacity. IMPRESSION: Pneumonia.",
            "source": "MedVersa test", "findings": [{"type": "box", "sentence": "Opacity.", "sop_instance_uid": uid,
                                                     "xyxy": [0.1, 0.2, 0.3, 0.4], **finding}]}


def _import(db, tmp_path, lines, replace=True):
    path = tmp_path / "drafts.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with db.begin() as session:
        return drafts.import_drafts(session, studies.get_study(session, demo.DEMO_STUDY), path, replace=replace)


def test_import_stores_findings_and_refuses_bad_ones(demo_study, tmp_path):
    db = demo_study
    with db() as session:
        uid = session.query(Case).filter_by(case_key="DEMO-2 (CR)").one().series[0].instances[0].sop_instance_uid
        other = session.query(Case).filter_by(case_key="DEMO-1 (CR)").one().series[0].instances[0].sop_instance_uid
    result = _import(db, tmp_path, [
        _line("DEMO-2 (CR)", uid),
        _line("DEMO-1 (CR)", uid),  # an image of another case
        _line("DEMO-3 (DX)", other, xyxy=[0.5, 0.2, 0.3, 0.4]),
        {**_line("DEMO-4 (CT)", other), "findings": [{"type": "mask", "sentence": "Lesion.", "rows": 4, "columns": 4,
                                                       "slices": [{"sop_instance_uid": other, "rle": [3, 2]}]}]},
    ])
    assert result.replaced == 1
    assert result.errors == [
        (2, f"finding 1 sop_instance_uid {uid!r} is not an image of this case"),
        (3, "finding 1 xyxy [0.5, 0.2, 0.3, 0.4] is not a normalized box (0 <= x0 <= x1 <= 1, 0 <= y0 <= y1 <= 1)"),
        (4, f"finding 1 sop_instance_uid {other!r} is not an image of this case"),
    ]
    with db() as session:
        stored = session.query(DraftFinding).one()
        assert (stored.kind, stored.sentence, stored.position) == ("box", "Opacity.", 1)
        assert stored.geometry == {"sop_instance_uid": uid, "frame": 0, "xyxy": [0.1, 0.2, 0.3, 0.4]}
    assert _import(db, tmp_path, [_line("DEMO-2 (CR)", uid)]).unchanged == 1  # identical re-import
    moved = _import(db, tmp_path, [_line("DEMO-2 (CR)", uid, xyxy=[0.2, 0.2, 0.3, 0.4])], replace=False)
    assert "different findings" in moved.errors[0][1]
    assert _import(db, tmp_path, [_line("DEMO-2 (CR)", uid, xyxy=[0.2, 0.2, 0.3, 0.4])]).replaced == 1
    with db() as session:
        assert session.query(DraftFinding).one().geometry["xyxy"] == [0.2, 0.2, 0.3, 0.4]


def test_bad_geometry_is_refused_with_the_reason(demo_study, tmp_path):
    db = demo_study
    with db() as session:
        case = session.query(Case).filter_by(case_key="DEMO-2 (CR)").one()
        uid = case.series[0].instances[0].sop_instance_uid
        assert findings.parse_findings([{"type": "box", "sentence": "A.", "sop_instance_uid": uid,
                                         "xyxy": [0.5, 0.1, 0.2, 0.3]}], case).startswith("finding 1 xyxy")
        assert findings.parse_findings([{"type": "line", "sentence": "A."}], case).startswith("finding 1 type")
        assert findings.parse_findings([{"type": "box", "sentence": " ", "sop_instance_uid": uid,
                                         "xyxy": [0, 0, 1, 1]}], case) == "finding 1 has no sentence"
        bad_rle = findings.parse_findings([{"type": "mask", "sentence": "A.", "rows": 2, "columns": 2, "slices": [
            {"sop_instance_uid": uid, "rle": [1, 2]}]}], case)
        assert bad_rle == f"finding 1 rle of {uid}: run lengths sum to 3, not rows x columns = 4"
        assert findings.parse_findings([{"type": "box", "sentence": "A.", "sop_instance_uid": uid, "frame": 1,
                                         "xyxy": [0, 0, 1, 1]}], case).startswith("finding 1 frame 1 is not a frame")
        assert findings.parse_findings("not json", case).startswith("findings is not JSON")


def test_only_the_reader_of_a_findings_arm_is_shown_them(demo_study, tmp_path):
    db = demo_study
    with db() as session:
        case = session.query(Case).filter_by(case_key="DEMO-2 (CR)").one()
        uid = case.series[0].instances[0].sop_instance_uid
    assert _import(db, tmp_path, [_line("DEMO-2 (CR)", uid)]).replaced == 1
    with db.begin() as session:
        readers = {a.arm.code: a.reader for a in session.query(Assignment).filter_by(case_id=case.id)}
        assert findings.shown_findings(session, readers["model"], case.id) == []  # the arm does not show them yet
        studies.show_findings(session, studies.get_study(session, demo.DEMO_STUDY), "model")
    with db() as session:
        shown = findings.shown_findings(session, readers["model"], case.id)
        assert shown == [{"sentence": "Opacity.", "kind": "box", "stack": 0, "slice": 0, "xyxy": [0.1, 0.2, 0.3, 0.4]}]
        assert findings.shown_findings(session, readers["llm"], case.id) == []
        assert session.query(Draft).filter(Draft.findings.any()).count() == 1
    with db.begin() as session, pytest.raises(Exception, match="has no arm 'gpt'"):
        studies.show_findings(session, studies.get_study(session, demo.DEMO_STUDY), "gpt")


def test_show_findings_command_counts_and_refuses_an_arm_without_findings(tmp_path, capsys):
    from studyapp.cli import main
    from studyapp.db.session import open_database

    url = f"sqlite:///{tmp_path / 'study.db'}"
    db = open_database(url)
    with db.begin() as session:
        demo.ensure_demo(session, Settings(data_dir=tmp_path))
        case = session.query(Case).filter_by(case_key="DEMO-2 (CR)").one()
        uid = case.series[0].instances[0].sop_instance_uid
        drafts_of_model = session.query(Draft).join(Draft.arm).filter_by(code="model").count()
    assert main(["--database", url, "show-findings", demo.DEMO_STUDY, "model"]) == 1
    assert f"none of the {drafts_of_model} draft(s) of arm 'model' carries findings" in capsys.readouterr().err
    with db() as session:  # the refused command changed nothing
        model_arm = next(a for a in studies.get_study(session, demo.DEMO_STUDY).arms if a.code == "model")
        assert not model_arm.shows_findings
    _import(db, tmp_path, [_line("DEMO-2 (CR)", uid)])
    assert main(["--database", url, "show-findings", demo.DEMO_STUDY, "model"]) == 0
    assert f"readers see the drafts' findings on the image (1 of {drafts_of_model} draft(s) carry findings)" in \
        capsys.readouterr().out
    assert main(["--database", url, "show-findings", demo.DEMO_STUDY, "model", "--off"]) == 0
