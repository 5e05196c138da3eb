"""The whole reader-study analysis (paper section 2.4, 4.3 "User study", 4.6): frames in, tables, figures,
skipped items and files out. :func:`run_analysis` is what the app's coordinator tab and ``python -m analysis``
call."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from analysis import efficiency, experience, figures
from analysis.consistency import PAIR_COLUMNS, peer_discrepancies
from analysis.estimates import arm_intervals
from analysis.intervals import N_RESAMPLES
from analysis.judges import Judge, OfflineJudge
from analysis.loaders import StudyFrames, load_study
from analysis.preferences import PREFERENCE_COLUMNS, preference_rates
from analysis.report import write_outputs
from analysis.result import AnalysisResult
from analysis.similarity import template_use_measure
from analysis.skipped import Skipped, practice_judgements, usable_readings
from analysis.statistics import MIXED_MODEL_COLUMNS, mixed_model

REFERENCE_ARM = "template"

#: unit of each metric (``likert_*``: points on the question's scale; ``choice_*``: share of answers)
UNITS = {"active_seconds": "seconds per case", "template_use": "similarity 0-1",
         "peer_discrepancy": "urgent + emergent discrepancies per report"}

_CI = "95% CI, two-way reader x case cluster-robust (analysis.intervals)"
ARM_SUMMARY_COLUMNS: dict[str, str] = {
    "metric": "active_seconds, template_use, peer_discrepancy, likert_<question> or choice_<question>:<option>",
    "unit": "unit of estimate and difference",
    "arm": "Arm.code",
    "arm_label": "the study's label of the arm",
    "n_readings": "readings with a value",
    "estimate": "mean over readings",
    "ci_low": f"{_CI}, lower bound",
    "ci_high": f"{_CI}, upper bound",
    "difference": "estimate minus the reference arm's estimate (NaN for the reference arm)",
    "difference_ci_low": f"{_CI} of the difference, lower bound",
    "difference_ci_high": f"{_CI} of the difference, upper bound",
    "ci_note": "empty, or 'not estimable: <why>' where ci_low / ci_high are NaN (e.g. 1 reader, 1 case)",
    "difference_ci_note": "the same for the difference's bounds",
}
READINGS_TABLE_COLUMNS: dict[str, str] = {
    "assignment_id": "Assignment.id",
    "reader": "reader",
    "case": "Case.case_key",
    "case_label": "normal / abnormal / <NA>",
    "arm": "Arm.code",
    "active_seconds": "active reading time, seconds",
    "template_use": "draft-to-final similarity (similarity_measure)",
    "similarity_measure": "measure used for template_use",
    "peer_discrepancy": "mean urgent + emergent corrections against the other readers of the case",
    "n_peers": "peer reports the judge compared this reading with successfully",
    "n_peers_failed": "peer comparisons the judge failed on (each listed in skipped.csv)",
    "likert_<question>": "Likert answer per question (e.g. likert_confidence, likert_mental_demand)",
    "choice_<question>:<option>": "1 when the answer includes the option, 0 when not, empty when not answered",
}

_CI_COLUMNS = {"ci_low": f"{_CI}, lower bound", "ci_high": f"{_CI}, upper bound",
               "ci_note": ARM_SUMMARY_COLUMNS["ci_note"]}

#: table name -> {column: meaning}; written to ``columns.csv`` and the HTML report.
TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "readings": READINGS_TABLE_COLUMNS,
    "peer_pairs": PAIR_COLUMNS,
    "arm_summary": ARM_SUMMARY_COLUMNS,
    "reader_arm": efficiency.READER_ARM_COLUMNS,
    "time_saved_by_template_use": efficiency.STRATIFIED_COLUMNS | _CI_COLUMNS | {
        "readers": "'fixed' for a top-k% stratum (the interval describes these readers), 'random' for all readers "
                   "(the interval generalises to other readers)"},
    "discrepancy_by_interval": efficiency.INTERVAL_COLUMNS | _CI_COLUMNS,
    "likert_summary": experience.LIKERT_SUMMARY_COLUMNS | _CI_COLUMNS,
    "choice_summary": experience.CHOICE_SUMMARY_COLUMNS | _CI_COLUMNS,
    "preference_rates": {"set": "ComparisonSet.name", "candidate_source": "the set's candidate (AI) source",
                         **PREFERENCE_COLUMNS},
    "mixed_models": MIXED_MODEL_COLUMNS,
}


def unit(metric: str) -> str:
    """Unit of a per-reading metric (:data:`UNITS`; Likert points, share of answers)."""
    if metric.startswith(experience.LIKERT_PREFIX):
        return "Likert points"
    if metric.startswith(experience.CHOICE_PREFIX):
        return "share of answers"
    return UNITS[metric]


def value_range(metric: str) -> tuple[float, float]:
    """The range a per-reading metric's mean can take; Wald bounds are clipped to it (coverage is unchanged: the
    truth lies inside)."""
    if metric == "template_use" or metric.startswith(experience.CHOICE_PREFIX):
        return 0.0, 1.0
    if metric.startswith(experience.LIKERT_PREFIX):
        return -np.inf, np.inf
    return 0.0, np.inf


def _metric_columns(frame: pd.DataFrame) -> list[str]:
    return ["active_seconds", "template_use", "peer_discrepancy", *experience.likert_columns(frame),
            *experience.choice_columns(frame)]


def _arm_summary(frame: pd.DataFrame, cis: pd.DataFrame, metrics: list[str], arms: list[str],
                 labels: dict[str, str]) -> pd.DataFrame:
    rows = []
    for metric in metrics:
        counts = frame.dropna(subset=[metric]).groupby("arm").size()
        for arm in arms:
            mean = cis.loc[("mean", metric, arm, 0)]
            diff = cis.loc[("difference", metric, arm, 0)] if ("difference", metric, arm, 0) in cis.index else None
            low, high = value_range(metric)
            rows.append({
                "metric": metric, "unit": unit(metric), "arm": arm, "arm_label": labels.get(arm) or arm,
                "n_readings": int(counts.get(arm, 0)), "estimate": mean["estimate"],
                "ci_low": max(mean["ci_low"], low), "ci_high": min(mean["ci_high"], high),
                "difference": np.nan if diff is None else diff["estimate"],
                "difference_ci_low": np.nan if diff is None else diff["ci_low"],
                "difference_ci_high": np.nan if diff is None else diff["ci_high"],
                "ci_note": mean["note"], "difference_ci_note": "" if diff is None else diff["note"],
            })
    return pd.DataFrame(rows, columns=list(ARM_SUMMARY_COLUMNS))


def _mixed_models(frame: pd.DataFrame, metrics: list[str], reference_arm: str,
                  arm_summary: pd.DataFrame) -> tuple[pd.DataFrame, list[Skipped]]:
    """Mixed models of every metric but template use, checked against the primary intervals (``agreement``)."""
    fits, skipped = [], []
    for metric in [m for m in metrics if m != "template_use"]:
        data = frame.dropna(subset=[metric])
        try:
            fits.append(mixed_model(data, metric, reference_arm))
        except (ValueError, np.linalg.LinAlgError) as error:
            skipped.append(Skipped("statistics", f"mixed model of {metric}", str(error)))
    table = pd.concat(fits, ignore_index=True) if fits else pd.DataFrame(columns=list(MIXED_MODEL_COLUMNS))
    primary = arm_summary.set_index(["metric", "arm"])
    agreement = []
    for row in table.itertuples():
        if not row.converged or row.warnings or pd.isna(row.se):
            agreement.append("not comparable: fit not trustworthy")
            continue
        low, high = primary.loc[(row.outcome, row.arm), ["difference_ci_low", "difference_ci_high"]]
        primary_zero, model_zero = low <= 0 <= high, row.ci_low <= 0 <= row.ci_high
        agreement.append("agrees" if primary_zero == model_zero else
                         f"DISAGREES: primary 95% CI [{low:.3g}, {high:.3g}] "
                         f"{'includes' if primary_zero else 'excludes'} 0, the mixed model's "
                         f"{'includes' if model_zero else 'excludes'} it")
    return table.assign(agreement=agreement), skipped


def _preferences(judgements: pd.DataFrame, n_resamples: int, seed: int) -> tuple[pd.DataFrame, list[Skipped]]:
    """Preference rates per comparison set over submitted judgements of counted cases; practice cases' judgements
    (one entry per set, :func:`analysis.skipped.practice_judgements`) and unsubmitted ones are listed as skipped,
    and so are a set's single reader or case (intervals for that reader only, or none) and its cases counted in
    overall only (no normal / abnormal label)."""
    practice = judgements["practice"].eq(True)
    skipped = [practice_judgements(f"set {s}", len(g)) for s, g in judgements[practice].groupby("set", sort=False)]
    judgements = judgements[~practice]
    skipped += [Skipped("preferences", f"set {s} x reader {r}", f"{len(g)} judgement(s): the set is not submitted")
                for (s, r), g in judgements[~judgements["submitted"].astype(bool)].groupby(["set", "reader"])]
    tables = []
    for name, group in judgements.groupby("set", sort=False):
        counted = group[group["submitted"].astype(bool)]
        if counted.empty:
            skipped.append(Skipped("preferences", f"set {name}", "no submitted judgement: no preference rate"))
            continue
        if counted["reader"].nunique() < 2:
            skipped.append(Skipped("preferences", f"set {name}", "one reader: its intervals describe that reader "
                                                                  "only (readers fixed)"))
        if counted["case"].nunique() < 2:
            skipped.append(Skipped("preferences", f"set {name}", "one case: no interval can be computed"))
        unlabelled = counted.loc[~counted["case_label"].isin(["normal", "abnormal"]), "case"].nunique()
        if unlabelled:
            skipped.append(Skipped("preferences", f"set {name}", f"{unlabelled} case(s) labelled neither normal nor "
                                                                  "abnormal: counted in overall only"))
        table = preference_rates(counted, n_resamples, seed)
        tables.append(table.assign(set=name, candidate_source=group["candidate_source"].iloc[0]))
    columns = list(TABLE_COLUMNS["preference_rates"])
    return (pd.concat(tables, ignore_index=True)[columns] if tables else pd.DataFrame(columns=columns)), skipped


def analyse_frames(
    frames: StudyFrames,
    out_dir: Optional[Path] = None,
    judge: Optional[Judge] = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    ratescore_dir: Optional[Path] = None,
) -> AnalysisResult:
    """Run every step on ``frames``; write outputs to ``out_dir`` when given.

    Args:
        frames: the study as tidy frames (:func:`analysis.loaders.load_study`).
        out_dir: folder for CSV tables, figures (HTML + PNG) and ``report.html``; None writes nothing.
        judge: discrepancy judge; the offline judge when None.
        n_resamples: resamples of each one-way bootstrap behind the intervals (:mod:`analysis.intervals`).
        seed: bootstrap seed.
        ratescore_dir: local RaTEScore folder for template use; ROUGE-L F1 when None
            (:func:`analysis.similarity.template_use_measure`).

    Raises:
        ValueError: the study has no usable reading at all (the message gives the skip reasons' counts), or
            ``ratescore_dir`` is not a loadable RaTEScore folder.
    """
    judge = judge or OfflineJudge()
    measure = template_use_measure(ratescore_dir)
    readings, skipped = usable_readings(frames.readings)
    if readings.empty:
        reasons = pd.Series([s.reason for s in skipped]).value_counts().to_dict()
        raise ValueError(f"study {frames.study_name!r} has no usable reading: {reasons}")
    arms = [arm for arm in frames.arms if arm in set(readings["arm"])]
    skipped += [Skipped("readings", f"arm {arm}", "no usable reading in this arm")
                for arm in frames.arms if arm not in arms]
    reference_arm = REFERENCE_ARM if REFERENCE_ARM in arms else arms[0]
    if reference_arm != REFERENCE_ARM:
        skipped.append(Skipped("efficiency", f"arm {REFERENCE_ARM}",
                               f"no usable reading in a {REFERENCE_ARM!r} arm; differences are against {reference_arm!r}"))
    readings = readings.assign(
        template_use=measure.score([draft or "" for draft in readings["draft_text"]],
                                   list(readings["final_text"])),
        similarity_measure=measure.name,
    )
    consistency = peer_discrepancies(readings, judge)
    skipped += consistency.skipped
    readings = readings.merge(consistency.per_reading[["assignment_id", "peer_discrepancy", "n_peers", "n_peers_failed"]],
                              on="assignment_id", how="left")
    readings, likert_skips = experience.attach_likert(readings, frames.likert)
    readings = experience.attach_choices(readings, frames.choices)
    skipped += likert_skips
    skipped += efficiency.missing_reader_arms(readings, tuple(arms))
    if readings["reader"].nunique() < 2:
        skipped.append(Skipped("statistics", "intervals", "one reader: every interval describes this reader only "
                                                          "(readers fixed), none generalises to other readers; "
                                                          "where the variance is zero there is none"))
    if readings["case"].nunique() < 2:
        skipped.append(Skipped("statistics", "intervals", "one case: no interval can be computed"))

    metrics = _metric_columns(readings)
    _, cis = arm_intervals(readings, metrics, arms, reference_arm, n_resamples, seed)
    reader_arm = efficiency.reader_arm_table(readings, reference_arm)
    stratified = efficiency.stratified_time_saved(reader_arm, reference_arm)
    saved_ci = cis.loc[[("saved", "saved_minutes_per_100", r.arm, r.top_percent) for r in stratified.itertuples()]]
    stratified = stratified.assign(ci_low=saved_ci["ci_low"].to_numpy(), ci_high=saved_ci["ci_high"].to_numpy(),
                                   ci_note=saved_ci["note"].to_numpy(), readers=saved_ci["readers"].to_numpy())
    arm_summary = _arm_summary(readings, cis, metrics, arms, frames.arm_labels)
    summary_cis = arm_summary[["metric", "arm", "ci_low", "ci_high", "ci_note"]]
    likert_summary = experience.likert_summary(readings, frames.likert)
    likert_summary = likert_summary.assign(metric=experience.LIKERT_PREFIX + likert_summary["question"]).merge(
        summary_cis, on=["metric", "arm"], how="left").drop(columns="metric")
    choice_summary = experience.choice_summary(readings, frames.choices)
    choice_summary = choice_summary.assign(metric=experience.CHOICE_PREFIX + choice_summary["question"].astype(str)
                                           + ":" + choice_summary["choice"].astype(str)).merge(
        summary_cis, on=["metric", "arm"], how="left").drop(columns="metric")
    models, model_skips = _mixed_models(readings, metrics, reference_arm, arm_summary)
    skipped += model_skips
    intervals = efficiency.discrepancy_by_interval(readings)
    interval_cis = cis.loc[[("interval", "peer_discrepancy", r.arm, r.interval) for r in intervals.itertuples()]]
    intervals = intervals.assign(ci_low=interval_cis["ci_low"].clip(lower=0).to_numpy(),
                                 ci_high=interval_cis["ci_high"].to_numpy(), ci_note=interval_cis["note"].to_numpy())
    preferences, preference_skips = _preferences(frames.judgements, n_resamples, seed)
    skipped += preference_skips
    labels = {arm: frames.arm_label(arm) for arm in arms}

    table_columns = ([c for c in READINGS_TABLE_COLUMNS if c in readings.columns] + experience.likert_columns(readings)
                     + experience.choice_columns(readings))
    result = AnalysisResult(
        study_name=frames.study_name, reference_arm=reference_arm, judge=f"{judge.name} {judge.version}",
        similarity_measure=measure.name, arms=arms, arm_labels=labels, n_resamples=n_resamples, skipped=skipped,
        tables={
            "readings": readings[table_columns],
            "peer_pairs": consistency.pairs,
            "arm_summary": arm_summary,
            "reader_arm": reader_arm,
            "time_saved_by_template_use": stratified,
            "discrepancy_by_interval": intervals,
            "likert_summary": likert_summary,
            "choice_summary": choice_summary,
            "preference_rates": preferences,
            "mixed_models": models,
        },
        figures={
            "fig5b_discrepancy_matrix": figures.discrepancy_matrix(readings, labels),
            "fig5c_discrepancy_by_interval": figures.discrepancy_by_interval_figure(intervals, labels),
            "fig5d_template_use": figures.template_use_matrix(readings, measure.name, labels),
            "fig5e_time_saved": figures.time_saved_figure(stratified, labels, reference_arm),
            "time_by_arm": figures.time_by_arm_figure(arm_summary, labels),
            "likert_by_arm": figures.likert_figure(likert_summary, labels),
        },
    )
    if len(preferences):
        result.figures["preference_rates"] = figures.preference_figure(preferences)
    if out_dir is not None:
        result.files = write_outputs(result, Path(out_dir), TABLE_COLUMNS)
    return result


def run_analysis(
    session_factory: sessionmaker[Session],
    study_name: str | int,
    out_dir: Optional[Path] = None,
    judge: Optional[Judge] = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    ratescore_dir: Optional[Path] = None,
) -> AnalysisResult:
    """Load the study ``study_name`` (name, or id when an int) and run :func:`analyse_frames` on it.

    Raises:
        LookupError: no such study.
        ValueError: no usable reading in the study, or ``ratescore_dir`` is not a loadable RaTEScore folder.
    """
    return analyse_frames(load_study(session_factory, study_name), out_dir, judge, n_resamples, seed, ratescore_dir)
