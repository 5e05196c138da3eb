"""Simulated reader studies with known effects, as frames or as rows in a study database: for tests, the
benchmark and demonstrations. Nothing here reads real data.

Design (paper section 2.4): every reader reads every case once; the arm rotates as ``(reader + case) % n_arms``,
so with 75 cases and 3 arms each reader has 25 cases per arm. Readers ``0 .. n_high-1`` are high template users
(they edit the draft in its own wording); the others rewrite in their own wording. Times and Likert answers
follow :class:`SimulatedEffects`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from analysis.loaders import LIKERT_COLUMNS, READING_COLUMNS, StudyFrames
from studyapp.db.models import (
    DEFAULT_QUESTIONS,
    STATUS_SUBMITTED,
    Arm,
    Assignment,
    Case,
    Draft,
    QuestionAnswer,
    ReaderStudy,
    Report,
    StudyReader,
    User,
)

#: (concept, wording used in drafts and by high template users, wording of readers who rewrite)
FINDINGS = (
    ("pneumothorax", "Large right pneumothorax.", "There is a large pneumothorax on the right."),
    ("pleural effusion", "Moderate left pleural effusion.", "There is a moderate pleural effusion on the left."),
    ("consolidation", "Right lower lobe consolidation.", "Consolidation in the right lower lobe."),
    ("edema", "Mild pulmonary edema.", "Findings of mild pulmonary edema."),
)
NORMAL_TEMPLATE = ("The heart size is normal. The mediastinal contours are normal. The lungs are clear. "
                   "There is no pneumothorax. There is no pleural effusion.")
_DRAFT_OPENING = ["The heart size is normal.", "The mediastinal contours are normal."]
_REWRITE_OPENING = ["Cardiomediastinal silhouette within normal limits."]


@dataclass(frozen=True)
class SimulatedEffects:
    """Known effects of a simulated study.

    Attributes:
        base_seconds: mean active seconds per case.
        reader_sd / case_sd / noise_sd: standard deviations of reader, case and residual time effects, s.
        saving_seconds: arm -> seconds saved per case by high template users (low users save nothing).
        likert_shift: question -> arm -> shift of the answer from 3 (before noise in {-1, 0, 1}).
        miss_probability: chance that a reader misses each true finding.
    """

    base_seconds: float = 240.0
    reader_sd: float = 30.0
    case_sd: float = 20.0
    noise_sd: float = 10.0
    saving_seconds: dict[str, float] = field(default_factory=lambda: {"model": 30.0})
    likert_shift: dict[str, dict[str, int]] = field(default_factory=lambda: {
        "confidence": {"model": 1}, "mental_demand": {"model": -1}})
    miss_probability: float = 0.1


def _report(findings: list[int], rewrite: bool) -> str:
    sentences = list(_REWRITE_OPENING if rewrite else _DRAFT_OPENING)
    sentences += [FINDINGS[i][2 if rewrite else 1] for i in findings]
    absent = [FINDINGS[i][0] for i in range(len(FINDINGS)) if i not in findings and i < 2]
    sentences += [f"No {name} identified." if rewrite else f"There is no {name}." for name in absent]
    return "FINDINGS: " + " ".join(sentences)


def simulate_study(
    n_readers: int = 10,
    n_cases: int = 75,
    arms: tuple[str, ...] = ("template", "llm", "model"),
    n_high: int | None = None,
    effects: SimulatedEffects = SimulatedEffects(),
    seed: int = 0,
    name: str = "simulated",
) -> StudyFrames:
    """A complete simulated study as :class:`StudyFrames` (all readings submitted, all Likert answered).

    Args:
        n_high: number of high template users (default half the readers, rounded down).

    Raises:
        ValueError: fewer than 2 readers or cases, or no ``template`` arm.
    """
    if n_readers < 2 or n_cases < 2 or "template" not in arms:
        raise ValueError(f"need >= 2 readers and cases and a 'template' arm; got {n_readers}, {n_cases}, {arms}")
    n_high = n_readers // 2 if n_high is None else n_high
    rng = np.random.default_rng(seed)
    reader_offset = rng.normal(0, effects.reader_sd, n_readers)
    case_offset = rng.normal(0, effects.case_sd, n_cases)
    truth = [sorted(rng.choice(len(FINDINGS), size=rng.integers(0, 3), replace=False).tolist())
             for _ in range(n_cases)]
    start = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)
    readings, likert = [], []
    for reader in range(n_readers):
        high = reader < n_high
        for case in range(n_cases):
            arm = arms[(reader + case) % len(arms)]
            draft = NORMAL_TEMPLATE if arm == "template" else _report(truth[case], rewrite=False)
            seen = [f for f in truth[case] if rng.random() >= effects.miss_probability]
            final = _report(seen, rewrite=not high)
            seconds = (effects.base_seconds + reader_offset[reader] + case_offset[case]
                       + rng.normal(0, effects.noise_sd) - (effects.saving_seconds.get(arm, 0.0) if high else 0.0))
            seconds = max(seconds, 5.0)
            assignment_id = reader * n_cases + case + 1
            opened = start + timedelta(minutes=10 * case)
            readings.append({
                "assignment_id": assignment_id, "report_id": assignment_id, "reader": f"reader{reader:02d}",
                "case": f"case{case:03d}", "case_label": "abnormal" if truth[case] else "normal", "arm": arm,
                "position": case, "practice": False, "status": STATUS_SUBMITTED, "draft_text": draft, "final_text": final,
                "active_seconds": float(seconds), "opened_at": opened,
                "submitted_at": opened + timedelta(seconds=float(seconds)),
            })
            for question, shifts in effects.likert_shift.items():
                value = int(np.clip(3 + shifts.get(arm, 0) + rng.integers(-1, 2), 1, 5))
                likert.append({"assignment_id": assignment_id, "reader": f"reader{reader:02d}",
                               "case": f"case{case:03d}", "arm": arm, "question": question, "value": value,
                               "scale_min": 1, "scale_max": 5})
    return StudyFrames(name, tuple(arms), pd.DataFrame(readings, columns=list(READING_COLUMNS)),
                       pd.DataFrame(likert, columns=list(LIKERT_COLUMNS)))


def write_study(session_factory: sessionmaker[Session], frames: StudyFrames) -> int:
    """Insert ``frames`` as a reader study (users, arms, cases, drafts, assignments, reports, Likert answers).

    Readings with status ``new`` get an assignment but no report. Returns the new ReaderStudy.id.

    Raises:
        sqlalchemy.exc.IntegrityError: a study of that name (or a clashing user) already exists.
    """
    with session_factory.begin() as session:
        study = ReaderStudy(name=frames.study_name, template_text=NORMAL_TEMPLATE)
        session.add(study)
        session.flush()
        arms = {code: Arm(study=study, code=code, label=code) for code in frames.arms}
        users = {name: User(username=name, password_hash="-") for name in frames.readings["reader"].unique()}
        session.add_all([*arms.values(), *users.values()])
        session.add_all([StudyReader(study=study, user=user) for user in users.values()])
        cases = {}
        for row in frames.readings.drop_duplicates("case").itertuples():
            cases[row.case] = Case(study=study, case_key=row.case, label=row.case_label,
                                   study_instance_uid=f"2.25.{abs(hash((frames.study_name, row.case))) % 10**30}")
        session.add_all(cases.values())
        for row in frames.readings.drop_duplicates(["case", "arm"]).dropna(subset=["draft_text"]).itertuples():
            session.add(Draft(case=cases[row.case], arm=arms[row.arm], text=row.draft_text, source="simulation"))
        answers = frames.likert.groupby("assignment_id")
        defaults = {q["code"]: q for q in DEFAULT_QUESTIONS}
        answered = set(frames.likert["assignment_id"])
        for row in frames.readings.itertuples():
            assignment = Assignment(study_id=study.id, reader=users[row.reader], case=cases[row.case],
                                    arm=arms[row.arm], position=row.position)
            session.add(assignment)
            if row.status == "new":
                continue
            report = Report(
                assignment=assignment, draft_text=row.draft_text, status=row.status,
                current_text=row.final_text if isinstance(row.final_text, str) else row.draft_text,
                final_text=row.final_text if isinstance(row.final_text, str) else None,
                opened_at=row.opened_at, submitted_at=None if pd.isna(row.submitted_at) else row.submitted_at,
                active_seconds=row.active_seconds,
            )
            session.add(report)
            if row.assignment_id in answered:
                for answer in answers.get_group(row.assignment_id).itertuples():
                    definition = dict(defaults.get(answer.question, {"code": answer.question, "kind": "likert",
                                                                     "question": answer.question, "required": True}),
                                      min=int(answer.scale_min), max=int(answer.scale_max))
                    session.add(QuestionAnswer(report=report, question=answer.question, value=int(answer.value),
                                               definition=definition))
        session.flush()
        return study.id
