"""Reading flow: open -> autosave -> submit with the default questions, ownership checks, active-time clamp, export row."""

from datetime import timedelta

import pytest

from studyapp.db.models import Assignment, Case, Draft, QuestionAnswer, Report, ReportVersion, Series
from studyapp.services import accounts, export, reading, studies
from studyapp.services.errors import InvalidInput, PermissionDenied


@pytest.fixture()
def setup(db):
    """One study, one case with an 'llm' draft, two readers; reader1 assigned the case under 'llm'."""
    with db.begin() as s:
        study = studies.create_study(s, "s1", template_text="Normal chest.")
        case = Case(study_id=study.id, case_key="C1", study_instance_uid="1.2.3", indication="cough")
        s.add(case)
        s.flush()
        llm = next(a for a in study.arms if a.code == "llm")
        s.add(Draft(case_id=case.id, arm_id=llm.id, text="Heart normal.", source="gpt-4o-secret"))
        r1 = accounts.add_user(s, "reader1", "orbit-lantern-1")
        accounts.add_user(s, "reader2", "orbit-lantern-2")
        accounts.enroll_reader(s, study, r1)
        a = Assignment(study_id=study.id, reader_id=r1.id, case_id=case.id, arm_id=llm.id, position=1)
        s.add(a)
        s.flush()
        ids = {"study": study.id, "assignment": a.id}
    return db, ids


def test_open_autosave_submit_and_export(setup):
    db, ids = setup
    with db.begin() as s:
        r1 = accounts.get_user(s, "reader1")
        screen = reading.open_case(s, r1, ids["assignment"])
        assert screen.text == "Heart normal."
        assert "gpt-4o-secret" not in repr(screen) and "llm" not in repr(screen)
        assert screen.label == "Case 01" and "C1" not in repr(screen)  # no series yet: position only, never the key
    with db.begin() as s:
        r1 = accounts.get_user(s, "reader1")
        # opened_at is 'now': a claim of 500 s is clamped to wall time since opening (+ slack)
        report = reading.autosave(s, r1, ids["assignment"], "Heart normal. Lungs clear.", 500.0)
        assert report.active_seconds < 10
        report.opened_at -= timedelta(seconds=100)  # pretend the last save was 100 s ago
        report.last_saved_at -= timedelta(seconds=100)
    with db.begin() as s:
        r1 = accounts.get_user(s, "reader1")
        assert reading.open_case(s, r1, ids["assignment"]).text == "Heart normal. Lungs clear."
        with pytest.raises(InvalidInput, match="mental"):
            reading.submit(s, r1, ids["assignment"], "Final.", 40.0, {"confidence": 4})
    with db.begin() as s:
        r1 = accounts.get_user(s, "reader1")
        with pytest.raises(InvalidInput, match="not on the scale"):
            reading.submit(s, r1, ids["assignment"], "Final.", 40.0, {"confidence": 9, "mental_demand": 2})
    with db.begin() as s:
        r1 = accounts.get_user(s, "reader1")
        reading.submit(s, r1, ids["assignment"], "Heart normal. Lungs clear. No effusion.", 40.0,
                       {"confidence": 4, "mental_demand": 2})
    with db() as s:
        report = s.query(Report).one()
        assert report.status == "submitted" and report.active_seconds == 40.0
        assert [v.text for v in s.query(ReportVersion).order_by(ReportVersion.id)] == [
            "Heart normal. Lungs clear.", "Heart normal. Lungs clear. No effusion."]
        assert {(r.question, r.value, r.definition["max"]) for r in s.query(QuestionAnswer)} == {
            ("confidence", 4, 5), ("mental_demand", 2, 5)}
        study = studies.get_study(s, "s1")
        row = export.reads_table(s, study).iloc[0]
        assert (row.reader, row.arm, row.draft_source, row.confidence) == ("reader1", "llm", "gpt-4o-secret", 4)
        assert row.chars_changed == len(" Lungs clear. No effusion.")
        with pytest.raises(InvalidInput, match="already submitted"):
            reading.autosave(s, accounts.get_user(s, "reader1"), ids["assignment"], "late edit", 41.0)


def test_other_reader_cannot_open(setup):
    db, ids = setup
    with db.begin() as s:
        with pytest.raises(PermissionDenied, match="reader2"):
            reading.open_case(s, accounts.get_user(s, "reader2"), ids["assignment"])


def test_refused_submission_keeps_autosaved_text(setup):
    db, ids = setup
    with db.begin() as s:
        r1 = accounts.get_user(s, "reader1")
        reading.open_case(s, r1, ids["assignment"])
        reading.autosave(s, r1, ids["assignment"], "typed so far", 1.0)
    with pytest.raises(InvalidInput):
        with db.begin() as s:
            reading.submit(s, accounts.get_user(s, "reader1"), ids["assignment"], "typed more", 2.0, {})
    with db() as s:
        assert s.query(Report).one().current_text == "typed so far"


def test_accounts_hash_and_reject(db):
    with db.begin() as s:
        user = accounts.add_user(s, "coord", "long-coordinator-pass", role="coordinator")
        assert "long-coordinator-pass" not in user.password_hash and user.password_hash.startswith("$argon2id$")
        assert accounts.authenticate(s, "coord", "long-coordinator-pass").id == user.id
        assert accounts.authenticate(s, "coord", "wrong") is None
        assert accounts.authenticate(s, "nobody", "long-coordinator-pass") is None
        with pytest.raises(InvalidInput, match="already taken"):
            accounts.add_user(s, "coord", "long-coordinator-pass")
        with pytest.raises(InvalidInput, match="shorter than 8"):
            accounts.add_user(s, "x", "short")


def test_rapid_saves_cannot_inflate_active_time(setup):
    """Fifty saves claiming a huge total in well under a second stay within wall time since opening + slack."""
    db, ids = setup
    with db.begin() as s:
        r1 = accounts.get_user(s, "reader1")
        reading.open_case(s, r1, ids["assignment"])
        for _ in range(50):
            report = reading.autosave(s, r1, ids["assignment"], "t", 1e9)
        wall = (report.last_saved_at - report.opened_at).total_seconds()
        assert report.active_seconds <= wall + reading.ACTIVE_TIME_SLACK_S


@pytest.mark.parametrize(
    "text, seconds, message",
    [
        (None, 1.0, "must be text"),
        (123, 1.0, "must be text"),
        ("x" * (reading.MAX_REPORT_CHARS + 1), 1.0, "the limit is"),
        ("bad\x00byte", 1.0, "NUL"),
        ("ok", "abc", "non-negative number"),
        ("ok", True, "non-negative number"),
        ("ok", float("nan"), "non-negative number"),
        ("ok", -1.0, "non-negative number"),
    ],
)
def test_autosave_rejects_bad_values(setup, text, seconds, message):
    db, ids = setup
    with db.begin() as s:
        reading.open_case(s, accounts.get_user(s, "reader1"), ids["assignment"])
    with pytest.raises(InvalidInput, match=message):
        with db.begin() as s:
            reading.autosave(s, accounts.get_user(s, "reader1"), ids["assignment"], text, seconds)


def test_boolean_likert_answer_is_refused(setup):
    db, ids = setup
    with db.begin() as s:
        r1 = accounts.get_user(s, "reader1")
        reading.open_case(s, r1, ids["assignment"])
        with pytest.raises(InvalidInput, match="not on the scale"):
            reading.submit(s, r1, ids["assignment"], "Final.", 1.0, {"confidence": True, "mental_demand": 2})
        with pytest.raises(InvalidInput, match="missing"):
            reading.submit(s, r1, ids["assignment"], "Final.", 1.0, None)


def test_two_tabs_cannot_overwrite_each_other(setup):
    db, ids = setup
    with db.begin() as s:
        r1 = accounts.get_user(s, "reader1")
        first_tab = reading.open_case(s, r1, ids["assignment"]).version
        second_tab = reading.open_case(s, r1, ids["assignment"]).version
    with db.begin() as s:
        first_tab = reading.autosave(s, accounts.get_user(s, "reader1"), ids["assignment"], "Tab one text.", 0.0,
                                     first_tab).version
    assert first_tab == second_tab + 1
    with db.begin() as s:
        r1 = accounts.get_user(s, "reader1")
        # the second tab still unchanged: its save of the same text is fine, brings it up to date and moves no version
        assert reading.autosave(s, r1, ids["assignment"], "Tab one text.", 0.0, second_tab).version == first_tab
        with pytest.raises(reading.StaleSave, match=r"Not saved: Case 01 was saved from another tab .* \(version 2\)"):
            reading.autosave(s, r1, ids["assignment"], "Tab two text.", 0.0, second_tab)
        with pytest.raises(reading.StaleSave):
            reading.submit(s, r1, ids["assignment"], "Tab two text.", 0.0, {"confidence": 1, "mental_demand": 1},
                           second_tab)
    with db() as s:
        report = s.query(Report).one()
        assert report.current_text == "Tab one text." and report.version == 2
        assert [v.text for v in report.versions] == ["Tab one text."]


def test_concurrent_saves_of_one_version_cannot_both_win(setup):
    db, ids = setup
    with db.begin() as s:
        reading.open_case(s, accounts.get_user(s, "reader1"), ids["assignment"])
    with db() as late:
        reader = accounts.get_user(late, "reader1")
        assert reading.own_assignment(late, reader, ids["assignment"]).report.version == 1  # read before the save
        with db.begin() as s:
            reading.autosave(s, accounts.get_user(s, "reader1"), ids["assignment"], "first", 0.0, 1)
        with pytest.raises(reading.StaleSave):  # its UPDATE ... WHERE version = 1 matches no row any more
            reading.autosave(late, reader, ids["assignment"], "second", 0.0, 1)
    with db() as s:
        assert s.query(Report).one().current_text == "first"


def test_case_label_is_position_and_modality_body_part_never_the_key(setup):
    db, ids = setup
    with db.begin() as s:
        case = s.get(Assignment, ids["assignment"]).case
        s.add_all([Series(case_id=case.id, series_instance_uid="1.2.3.1", modality="CT", body_part="ABDOMEN"),
                   Series(case_id=case.id, series_instance_uid="1.2.3.2", modality="CT", body_part="ABDOMEN")])
    with db.begin() as s:
        r1 = accounts.get_user(s, "reader1")
        [item] = reading.worklist(s, r1, studies.get_study(s, "s1"))
        assert item.label == "Case 01 · CT abdomen"
        assert reading.open_case(s, r1, ids["assignment"]).label == item.label
        reading.submit(s, r1, ids["assignment"], "Final.", 1.0, {"confidence": 4, "mental_demand": 2})
        with pytest.raises(InvalidInput, match="report of Case 01 · CT abdomen is already submitted"):
            reading.autosave(s, r1, ids["assignment"], "Again.", 2.0)


def test_case_progress_counts_reads_per_arm_and_median_time(setup):
    db, ids = setup
    with db.begin() as s:
        table = export.case_progress_table(s, studies.get_study(s, "s1"))
        assert table.columns.tolist() == ["case_key", "assigned", "submitted_llm", "submitted_model",
                                          "submitted_template", "submitted", "median_active_seconds"]
        assert table.iloc[0][["case_key", "assigned", "submitted_llm", "submitted"]].tolist() == ["C1", 1, 0, 0]
        assert table.iloc[0]["median_active_seconds"] != table.iloc[0]["median_active_seconds"]  # NaN: none yet
        r1 = accounts.get_user(s, "reader1")
        reading.open_case(s, r1, ids["assignment"])
        s.get(Assignment, ids["assignment"]).report.opened_at -= timedelta(seconds=60)
        reading.submit(s, r1, ids["assignment"], "Final.", 30.0, {"confidence": 4, "mental_demand": 2})
        row = export.case_progress_table(s, studies.get_study(s, "s1")).iloc[0]
        assert row[["submitted_llm", "submitted_model", "submitted", "median_active_seconds"]].tolist() == [1, 0, 1, 30.0]


def test_preview_is_blinded_read_only_and_for_coordinators(setup):
    db, ids = setup
    with db.begin() as s:
        coordinator = accounts.add_user(s, "coord", "orbit-lantern-42", role="coordinator")
        screen = reading.preview_case(s, coordinator, ids["assignment"])
        assert (screen.text, screen.status, screen.label) == ("Heart normal.", "new", "Case 01")
        assert "gpt-4o-secret" not in repr(screen) and "llm" not in repr(screen)
        assert s.query(Report).count() == 0  # nothing opened
        with pytest.raises(PermissionDenied, match="only coordinators preview"):
            reading.preview_case(s, accounts.get_user(s, "reader2"), ids["assignment"])
        reading.open_case(s, accounts.get_user(s, "reader1"), ids["assignment"])
        reading.autosave(s, accounts.get_user(s, "reader1"), ids["assignment"], "Edited.", 0.0)
        assert reading.preview_case(s, coordinator, ids["assignment"]).text == "Edited."


def test_saves_of_one_tab_never_conflict_and_a_late_older_snapshot_changes_nothing(setup):
    db, ids = setup
    tab = "ab" * 16
    with db.begin() as s:
        base = reading.open_case(s, accounts.get_user(s, "reader1"), ids["assignment"]).version
    # the timer's save and the typing save of one page, both sent from the same base version
    with db.begin() as s:
        reading.autosave(s, accounts.get_user(s, "reader1"), ids["assignment"], "Heart", 1.0, base,
                         reading.TabSave(tab, 2))
    with db.begin() as s:  # an older snapshot of the same page arriving late: no refusal, no change
        report = reading.autosave(s, accounts.get_user(s, "reader1"), ids["assignment"], "Hea", 1.0, base,
                                  reading.TabSave(tab, 1))
        assert report.current_text == "Heart"
    with db.begin() as s:  # a newer snapshot of the same page from the same old base: stored, not "another tab"
        report = reading.autosave(s, accounts.get_user(s, "reader1"), ids["assignment"], "Heart normal.", 2.0, base,
                                  reading.TabSave(tab, 3))
        assert (report.current_text, report.saved_by_tab, report.tab_sequence) == ("Heart normal.", tab, 3)
    with db.begin() as s:  # another page from that base is refused
        with pytest.raises(reading.StaleSave):
            reading.autosave(s, accounts.get_user(s, "reader1"), ids["assignment"], "Other tab.", 2.0, base,
                             reading.TabSave("cd" * 16, 9))
    with db() as s:
        report = s.query(Report).one()
        assert [v.text for v in report.versions] == ["Heart", "Heart normal."]


def test_a_save_of_unchanged_text_stores_the_time_and_leaves_the_version(setup):
    db, ids = setup
    with db.begin() as s:
        version = reading.open_case(s, accounts.get_user(s, "reader1"), ids["assignment"]).version
    with db.begin() as s:
        report = reading.autosave(s, accounts.get_user(s, "reader1"), ids["assignment"], "Typed.", 0.5, version)
        version = report.version
    with db.begin() as s:  # a periodic save of an idle tab
        reading.autosave(s, accounts.get_user(s, "reader1"), ids["assignment"], "Typed.", 1.5, version)
    with db() as s:
        report = s.query(Report).one()
        assert report.version == version and report.active_seconds == pytest.approx(1.5, abs=0.01)
