"""Balanced assignment: design properties, reproducibility, and the Assignment rows written for a study."""

from collections import Counter

import pytest
from sqlalchemy import select

from studyapp.db.models import Arm, Assignment, Case, Draft, ReaderStudy, Report, StudyReader, User
from studyapp.services.design import BalanceReport, DesignError, balanced_design, generate_assignments

ARMS3 = ["template", "llm", "model"]


def tallies(rows):
    """(reader -> Counter(arm), case -> Counter(arm), reader -> positions, reader -> cases list)."""
    per_reader, per_case = {}, {}
    positions, cases = {}, {}
    for row in rows:
        per_reader.setdefault(row.reader_index, Counter())[row.arm] += 1
        per_case.setdefault(row.case, Counter())[row.arm] += 1
        positions.setdefault(row.reader_index, []).append(row.position)
        cases.setdefault(row.reader_index, []).append(row.case)
    return per_reader, per_case, positions, cases


def check_design(rows, n_readers, case_keys, arms, cases_per_reader):
    """Assert the module's four design rules on ``rows``."""
    m = cases_per_reader
    per_reader, per_case, positions, cases = tallies(rows)
    assert len(rows) == n_readers * m
    assert sorted(per_reader) == list(range(n_readers))
    for r in range(n_readers):
        assert len(set(cases[r])) == m, "a reader reads a case at most once"
        assert sorted(positions[r]) == list(range(1, m + 1))
        assert per_reader[r] == {arm: m // len(arms) for arm in arms}
    reads = [sum(per_case.get(c, Counter()).values()) for c in case_keys]
    total = n_readers * m
    assert min(reads) == total // len(case_keys) and max(reads) == -(-total // len(case_keys))
    for c in per_case:
        counts = [per_case[c][arm] for arm in arms]
        assert max(counts) - min(counts) <= 1, (c, counts)


def test_paper_design_10_readers_75_cases():
    case_keys = [f"case{i:03d}" for i in range(75)]
    rows = balanced_design(10, case_keys, ARMS3, seed=2024)
    check_design(rows, 10, case_keys, ARMS3, 75)
    per_reader, per_case, _, _ = tallies(rows)
    assert per_reader[3] == {"template": 25, "llm": 25, "model": 25}
    assert all(sorted(per_case[c].values()) == [3, 3, 4] for c in case_keys)
    extra = Counter(max(per_case[c], key=per_case[c].get) for c in case_keys)
    assert extra == {"template": 25, "llm": 25, "model": 25}, "the extra read rotates evenly over the arms"


@pytest.mark.parametrize(
    "n_readers, n_cases, arms, cases_per_reader",
    [
        (7, 20, ["a", "b"], None),
        (7, 20, ["a", "b", "c", "d"], None),
        (7, 20, ARMS3, 18),  # 20 is not a multiple of 3: everybody reads 18
        (7, 20, ARMS3, 9),  # subset reading: 63 reads over 20 cases, 3 or 4 each
        (4, 30, ["a", "b"], 8),  # 32 reads over 30 cases: 1 or 2 each
        (5, 9, ARMS3, 3),  # 15 reads over 9 cases
        (1, 6, ARMS3, None),
        (11, 13, ["a", "b", "c", "d"], 12),
    ],
)
def test_awkward_sizes(n_readers, n_cases, arms, cases_per_reader):
    case_keys = list(range(100, 100 + n_cases))
    rows = balanced_design(n_readers, case_keys, arms, cases_per_reader, seed=5)
    check_design(rows, n_readers, case_keys, arms, cases_per_reader or n_cases)


def test_subset_reading_covers_cases_evenly():
    rows = balanced_design(7, list(range(20)), ARMS3, cases_per_reader=9, seed=1)
    _, per_case, _, _ = tallies(rows)
    assert sorted(Counter(sum(c.values()) for c in per_case.values()).items()) == [(3, 17), (4, 3)]
    assert all(sorted(per_case[c].values()) == [1, 1, 1] for c in per_case if sum(per_case[c].values()) == 3)


def test_same_seed_same_design_and_other_seed_other_order():
    args = (10, [f"c{i}" for i in range(75)], ARMS3)
    first = balanced_design(*args, seed=42)
    assert balanced_design(*args, seed=42) == first
    other = balanced_design(*args, seed=43)
    order = lambda rows, r: [row.case for row in rows if row.reader_index == r]  # noqa: E731
    assert all(order(first, r) != order(other, r) for r in range(10))
    assert order(first, 0) != order(first, 1), "each reader gets their own order"
    check_design(other, *args, 75)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_readers": 10, "cases": range(20), "arms": ARMS3}, "cases_per_reader=20 is not a multiple of the 3 arms"),
        ({"n_readers": 10, "cases": range(20), "arms": ARMS3}, r"; use 18$"),
        ({"n_readers": 2, "cases": range(2), "arms": ARMS3},
         r"is not a multiple of the 3 arms, .*; no count fits: a design needs at least 3 cases \(one per arm\), "
         r"there are 2$"),
        ({"n_readers": 10, "cases": range(75), "arms": ARMS3, "cases_per_reader": 76}, "between 1 and"),
        ({"n_readers": 0, "cases": range(6), "arms": ARMS3}, "0 readers"),
        ({"n_readers": 2, "cases": [1, 1, 2], "arms": ARMS3}, "distinct"),
    ],
)
def test_bad_sizes_are_refused(kwargs, message):
    with pytest.raises(DesignError, match=message):
        balanced_design(**{**kwargs, "cases": list(kwargs["cases"])})


def test_report_format_lists_readers_cases_and_imbalance():
    report = BalanceReport.from_rows(
        [("ann", "c1", "llm"), ("ann", "c2", "model"), ("bob", "c1", "model"), ("bob", "c2", "model")],
        ["llm", "model"],
        seed=9,
        cases=["c1", "c2", "c3"],
    )
    assert report.per_reader == {"ann": {"llm": 1, "model": 1}, "bob": {"llm": 0, "model": 2}}
    assert report.per_case["c3"] == {"llm": 0, "model": 0}
    assert (report.reader_imbalance, report.case_imbalance, report.max_imbalance) == (2, 2, 2)
    text = report.format()
    assert "seed 9" in text and "2 readers, 3 cases, 2 arms" in text
    assert [line.split() for line in text.splitlines() if line.startswith("bob")] == [["bob", "0", "2", "2"]]
    assert "max arm imbalance per case:   2" in text


def make_study(Session, n_readers=10, n_cases=75, arm_codes=ARMS3, drafts=True):
    with Session.begin() as session:
        study = ReaderStudy(name="paper")
        session.add(study)
        session.flush()
        arms = [Arm(study_id=study.id, code=code) for code in arm_codes]
        cases = [Case(study_id=study.id, case_key=f"case{i:03d}", study_instance_uid=f"1.2.3.{i}") for i in range(n_cases)]
        session.add_all(arms + cases)
        session.flush()
        if drafts:
            session.add_all(Draft(case_id=c.id, arm_id=a.id, text=f"{c.case_key} {a.code}", source="test")
                            for c in cases for a in arms)
        for r in range(n_readers):
            user = User(username=f"reader{r:02d}", password_hash="x")
            session.add(user)
            session.flush()
            session.add(StudyReader(study_id=study.id, user_id=user.id))
        return study.id


def test_generate_assignments_round_trip(db):
    study_id = make_study(db)
    with db.begin() as session:
        report = generate_assignments(session, session.get(ReaderStudy, study_id), seed=77)
    assert report.seed == 77 and report.max_imbalance == 1
    assert report.per_reader["reader04"] == {"template": 25, "llm": 25, "model": 25}
    assert sorted(report.per_case["case010"].values()) == [3, 3, 4]
    assert "reader09" in report.format()

    with db() as session:
        assert session.get(ReaderStudy, study_id).seed == 77
        stored = session.execute(
            select(User.username, Case.case_key, Arm.code, Assignment.position)
            .join(User, Assignment.reader_id == User.id)
            .join(Case, Assignment.case_id == Case.id)
            .join(Arm, Assignment.arm_id == Arm.id)
            .where(Assignment.study_id == study_id)
        ).all()
    assert len(stored) == 750
    assert BalanceReport.from_rows([s[:3] for s in stored], ARMS3, 77) == report
    expected = balanced_design(10, [f"case{i:03d}" for i in range(75)], ARMS3, seed=77)
    assert sorted((f"reader{e.reader_index:02d}", e.case, e.arm, e.position) for e in expected) == sorted(stored)


def test_regenerate_replaces_unopened_assignments_and_refuses_once_read(db):
    study_id = make_study(db, n_readers=3, n_cases=6)
    with db.begin() as session:
        generate_assignments(session, session.get(ReaderStudy, study_id), seed=1)
    with db.begin() as session:
        report = generate_assignments(session, session.get(ReaderStudy, study_id), cases_per_reader=3)
        new_seed = report.seed
    with db() as session:
        assert session.get(ReaderStudy, study_id).seed == new_seed
        assert len(session.scalars(select(Assignment)).all()) == 9

    with db.begin() as session:
        assignment = session.scalars(select(Assignment).order_by(Assignment.id)).first()
        session.add(Report(assignment_id=assignment.id, draft_text="d", current_text="d"))
    with pytest.raises(DesignError, match="already has 1 opened report"):
        with db.begin() as session:
            generate_assignments(session, session.get(ReaderStudy, study_id), seed=2)
    with db() as session:
        assert len(session.scalars(select(Assignment)).all()) == 9
        assert session.get(ReaderStudy, study_id).seed == new_seed


def test_generate_needs_readers(db):
    study_id = make_study(db, n_readers=0, n_cases=3)
    with pytest.raises(DesignError, match="has 0 readers, 3 cases, 3 arms"):
        with db.begin() as session:
            generate_assignments(session, session.get(ReaderStudy, study_id), seed=1)


def test_generate_refuses_cases_without_drafts(db):
    study_id = make_study(db, n_readers=3, n_cases=3, drafts=False)
    with pytest.raises(DesignError, match="9 assigned case x arm pair.* have no draft"):
        with db.begin() as session:
            generate_assignments(session, session.get(ReaderStudy, study_id), seed=1)
    with db() as session:
        assert session.scalars(select(Assignment)).all() == []


def test_size_suggestions_stay_within_the_cases():
    with pytest.raises(DesignError, match=r"use 15\b(?! or)"):
        balanced_design(2, list(range(16)), ARMS3, cases_per_reader=16)
