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
from scipy import stats
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
#: the study's labels of the simulated arms (Arm.label), as a coordinator would name them
ARM_LABELS = {"template": "Normal template", "llm": "GPT-4o draft", "model": "MedVersa draft"}
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
    """A complete simulated study as :class:`StudyFrames` (all readings submitted, all Likert answered; arms
    labelled as in :data:`ARM_LABELS`).

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
                       pd.DataFrame(likert, columns=list(LIKERT_COLUMNS)),
                       arm_labels={arm: ARM_LABELS[arm] for arm in arms if arm in ARM_LABELS})


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
        arms = {code: Arm(study=study, code=code, label=frames.arm_label(code)) for code in frames.arms}
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


@dataclass(frozen=True)
class CrossedEffects:
    """Known effects of a numeric simulated study (:func:`simulate_outcomes`), for checking interval coverage.

    Every outcome has a reader and a case random effect (normal, independent between outcomes) and a residual;
    the arm is rotated as in :func:`simulate_study` (``(reader + case) % n_arms``).

    Attributes:
        arm_seconds: arm -> mean active seconds per case (the first arm is the reference: the normal template).
        reader_sd / case_sd / residual_sd: standard deviations of the time effects, s.
        high_factor / low_factor: a high (low) template user's saving is this multiple of the arm's mean saving;
            each reader is a high user with probability 1/2, so the factors average 1 over readers.
        saving_sd: standard deviation of each reader x arm's own deviation from that saving, s.
        discrepancy: arm -> mean urgent + emergent discrepancies per peer comparison (Poisson mean).
        discrepancy_reader_sd / discrepancy_case_sd: log-scale reader and case effects on that mean.
        likert: question -> arm -> latent mean; answers are the latent (mean + reader + case + residual effects)
            rounded and clipped to 1..5.
        likert_sds: (reader, case, residual) standard deviations of the Likert latent.
        choice_probit: arm -> probit mean of answering 'yes' to the yes/no question ``would_sign``.
        choice_sds: (reader, case) standard deviations on the probit scale.
        preference_probit: case label -> probit mean of the candidate being judged equivalent or better.
        preference_sds: (reader, pair) standard deviations on the probit scale (pairs judged by several readers
            are clustered by pair and by reader).
    """

    arm_seconds: dict[str, float] = field(default_factory=lambda: {"template": 360.0, "llm": 330.0, "model": 288.0})
    reader_sd: float = 60.0
    case_sd: float = 45.0
    residual_sd: float = 45.0
    high_factor: float = 1.5
    low_factor: float = 0.5
    saving_sd: float = 15.0
    discrepancy: dict[str, float] = field(default_factory=lambda: {"template": 0.5, "llm": 0.45, "model": 0.4})
    discrepancy_reader_sd: float = 0.3
    discrepancy_case_sd: float = 0.6
    likert: dict[str, dict[str, float]] = field(default_factory=lambda: {
        "confidence": {"template": 3.0, "llm": 3.2, "model": 3.6},
        "mental_demand": {"template": 3.2, "llm": 3.0, "model": 2.6}})
    likert_sds: tuple[float, float, float] = (0.5, 0.4, 0.7)
    choice_probit: dict[str, float] = field(default_factory=lambda: {"template": -0.5, "llm": 0.0, "model": 0.4})
    choice_sds: tuple[float, float] = (0.5, 0.5)
    preference_probit: dict[str, float] = field(default_factory=lambda: {"normal": 1.6, "abnormal": 0.25})
    preference_sds: tuple[float, float] = (0.4, 1.0)


@dataclass(frozen=True)
class SimulatedOutcomes:
    """Result of :func:`simulate_outcomes`.

    Attributes:
        readings: one row per reading: ``assignment_id``, ``reader``, ``case``, ``arm``, ``active_seconds`` (s),
            ``template_use`` (0..1), ``peer_discrepancy`` (mean over the case's other readers),
            ``likert_<question>`` (1..5), ``choice_would_sign:yes`` / ``choice_would_sign:no`` (0/1).
        judgements: one row per blinded comparison judgement: ``reader``, ``case``, ``case_label``, ``practice``
            (False), ``candidate_outcome`` (better / equivalent / worse), ``submitted`` (True).
        reader_saving: true seconds saved per case by each reader x non-reference arm (``reader``, ``arm``,
            ``seconds``): the truth of time saved for a stratum of fixed readers.
    """

    readings: pd.DataFrame
    judgements: pd.DataFrame
    reader_saving: pd.DataFrame


def simulate_outcomes(
    n_readers: int = 10,
    n_cases: int = 75,
    effects: CrossedEffects = CrossedEffects(),
    judges_per_pair: int = 4,
    normal_share: float = 0.4,
    seed: int = 0,
    cases_per_reader: int | None = None,
) -> SimulatedOutcomes:
    """A numeric reader study with known truth (:func:`crossed_truth`), without report texts (no judge needed).

    By default every reader reads every case. With ``cases_per_reader`` k < ``n_cases``, reader ``r`` reads the k
    cases ``(floor(r * n_cases / n_readers) + j) % n_cases``, ``j < k`` (consecutive cases, so each reader sees the
    arms in turn and readers share cases with their neighbours); a case read by one reader only has no peer
    discrepancy (NaN), and a case read by nobody has no reading. The same seed gives the same random effects
    whatever k.

    Each reader is a high template user with probability 1/2 (a property of the reader population, not of the
    design). Blinded comparison: each case is normal with probability ``normal_share`` (cases are a sample from a
    population with that mix); case ``c`` is judged by readers ``(c + j) % n_readers``, ``j < judges_per_pair``.

    Raises:
        ValueError: fewer than 2 readers or cases, ``judges_per_pair`` not in 1..n_readers, or
            ``cases_per_reader`` not in 1..n_cases.
    """
    if n_readers < 2 or n_cases < 2 or not 1 <= judges_per_pair <= n_readers:
        raise ValueError(f"need >= 2 readers and cases and 1..n_readers judges per pair; got {n_readers}, "
                         f"{n_cases}, {judges_per_pair}")
    if cases_per_reader is not None and not 1 <= cases_per_reader <= n_cases:
        raise ValueError(f"cases_per_reader={cases_per_reader} must be in 1..n_cases={n_cases}")
    rng = np.random.default_rng(seed)
    arms = list(effects.arm_seconds)
    reference = arms[0]
    high = rng.random(n_readers) < 0.5
    factor = np.where(high, effects.high_factor, effects.low_factor)
    saving = {arm: (effects.arm_seconds[reference] - effects.arm_seconds[arm]) * factor
              + rng.normal(0, effects.saving_sd, n_readers) for arm in arms[1:]}
    saving[reference] = np.zeros(n_readers)
    reader_time, case_time = rng.normal(0, effects.reader_sd, n_readers), rng.normal(0, effects.case_sd, n_cases)
    use_reader = rng.normal(0, 0.05, n_readers)
    disc_reader = rng.normal(0, effects.discrepancy_reader_sd, n_readers)
    disc_case = rng.normal(0, effects.discrepancy_case_sd, n_cases)
    disc_shift = -(effects.discrepancy_reader_sd ** 2 + effects.discrepancy_case_sd ** 2) / 2
    likert_effects = {q: (rng.normal(0, effects.likert_sds[0], n_readers),
                          rng.normal(0, effects.likert_sds[1], n_cases)) for q in effects.likert}
    choice_reader = rng.normal(0, effects.choice_sds[0], n_readers)
    choice_case = rng.normal(0, effects.choice_sds[1], n_cases)

    reader, case = np.repeat(np.arange(n_readers), n_cases), np.tile(np.arange(n_cases), n_readers)
    k = n_cases if cases_per_reader is None else cases_per_reader
    read = (case - (reader * n_cases) // n_readers) % n_cases < k  # reader r reads k cases from its offset on
    peers = np.bincount(case[read], minlength=n_cases)[case] - 1.0
    arm_index = (reader + case) % len(arms)
    arm = np.array(arms)[arm_index]
    n = reader.size
    saved = np.stack([saving[a] for a in arms])[arm_index, reader]
    seconds = (effects.arm_seconds[reference] - saved + reader_time[reader] + case_time[case]
               + rng.normal(0, effects.residual_sd, n))
    use = np.where(arm == reference, 0.5, np.where(high[reader], 0.8, 0.35)) + use_reader[reader]
    rate = np.array([effects.discrepancy[a] for a in arm]) * np.exp(disc_reader[reader] + disc_case[case] + disc_shift)
    frame = pd.DataFrame({
        "assignment_id": np.arange(n) + 1, "reader": [f"reader{r:02d}" for r in reader],
        "case": [f"case{c:03d}" for c in case], "arm": arm, "active_seconds": np.maximum(seconds, 5.0),
        "template_use": np.clip(use + rng.normal(0, 0.1, n), 0, 1),
        "peer_discrepancy": rng.poisson(rate * np.maximum(peers, 0)) / np.where(peers > 0, peers, np.nan),
    })
    for question, means in effects.likert.items():
        r_eff, c_eff = likert_effects[question]
        latent = (np.array([means[a] for a in arm]) + r_eff[reader] + c_eff[case]
                  + rng.normal(0, effects.likert_sds[2], n))
        frame[f"likert_{question}"] = np.clip(np.round(latent), 1, 5)
    probit = np.array([effects.choice_probit[a] for a in arm]) + choice_reader[reader] + choice_case[case]
    yes = (probit + rng.normal(0, 1, n) > 0).astype(float)
    frame["choice_would_sign:yes"], frame["choice_would_sign:no"] = yes, 1 - yes

    frame = frame[read].reset_index(drop=True)
    labels = np.where(rng.random(n_cases) < normal_share, "normal", "abnormal")
    pair_reader = rng.normal(0, effects.preference_sds[0], n_readers)
    pair_case = rng.normal(0, effects.preference_sds[1], n_cases)
    judge_case = np.repeat(np.arange(n_cases), judges_per_pair)
    judge_reader = (judge_case + np.tile(np.arange(judges_per_pair), n_cases)) % n_readers
    latent = (np.array([effects.preference_probit[label] for label in labels[judge_case]])
              + pair_reader[judge_reader] + pair_case[judge_case] + rng.normal(0, 1, judge_case.size))
    better = rng.random(judge_case.size) < 0.5
    judgements = pd.DataFrame({
        "reader": [f"reader{r:02d}" for r in judge_reader], "case": [f"case{c:03d}" for c in judge_case],
        "case_label": labels[judge_case], "practice": False,
        "candidate_outcome": np.where(latent > 0, np.where(better, "better", "equivalent"), "worse"),
        "submitted": True,
    })
    reader_saving = pd.DataFrame([{"reader": f"reader{r:02d}", "arm": a, "seconds": float(saving[a][r])}
                                  for a in arms[1:] for r in range(n_readers)])
    return SimulatedOutcomes(frame, judgements, reader_saving)


def _likert_mean(mean: float, sd: float) -> float:
    """E[clip(round(X), 1, 5)] for X ~ N(mean, sd^2)."""
    upper = stats.norm.cdf((np.arange(1.5, 5.0, 1.0) - mean) / sd)  # P(X < 1.5), ..., P(X < 4.5)
    probabilities = np.diff(np.concatenate([[0.0], upper, [1.0]]))
    return float(probabilities @ np.arange(1, 6))


def crossed_truth(effects: CrossedEffects = CrossedEffects(), normal_share: float = 0.4) -> dict[tuple, float]:
    """Population values of the estimates of :func:`simulate_outcomes` (readers and cases random).

    Returns:
        {(kind, metric, arm, stratum): value} with the keys of :class:`analysis.estimates.ArmEstimates` (means
        and differences of time, peer discrepancy, Likert and choice shares; time saved by all readers, minutes
        per 100 studies; discrepancy by interval, the arm's mean as it does not depend on time) and of
        :class:`analysis.preferences.PreferenceEstimates` (``("preference", unit, group)``). Time saved by a
        stratum of fixed readers depends on the readers: use ``reader_saving`` of the simulation.
    """
    arms = list(effects.arm_seconds)
    reference = arms[0]
    means: dict[str, dict[str, float]] = {"active_seconds": dict(effects.arm_seconds),
                                          "peer_discrepancy": dict(effects.discrepancy)}
    likert_sd = float(np.sqrt(np.sum(np.square(effects.likert_sds))))
    for question, by_arm in effects.likert.items():
        means[f"likert_{question}"] = {a: _likert_mean(by_arm[a], likert_sd) for a in arms}
    choice_scale = float(np.sqrt(1 + np.sum(np.square(effects.choice_sds))))
    means["choice_would_sign:yes"] = {a: float(stats.norm.cdf(effects.choice_probit[a] / choice_scale)) for a in arms}
    truth: dict[tuple, float] = {}
    for metric, by_arm in means.items():
        for a in arms:
            truth[("mean", metric, a, 0)] = by_arm[a]
            if a != reference:
                truth[("difference", metric, a, 0)] = by_arm[a] - by_arm[reference]
    for a in arms[1:]:
        truth[("saved", "saved_minutes_per_100", a, 100)] = (effects.arm_seconds[reference]
                                                             - effects.arm_seconds[a]) * 100 / 60
    for a in arms:
        for label in ("[0, 5)", "[5, 10)", "[10, inf)"):
            truth[("interval", "peer_discrepancy", a, label)] = effects.discrepancy[a]
    scale = float(np.sqrt(1 + np.sum(np.square(effects.preference_sds))))
    by_label = {label: float(stats.norm.cdf(mu / scale)) for label, mu in effects.preference_probit.items()}
    overall = normal_share * by_label["normal"] + (1 - normal_share) * by_label["abnormal"]
    for unit in ("per case", "per judgement"):
        truth[("preference", unit, "overall")] = overall
        for label, value in by_label.items():
            truth[("preference", unit, label)] = value
    return truth
