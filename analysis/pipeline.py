"""The whole reader-study analysis (paper section 2.4, 4.3 "User study", 4.6): frames in, tables, figures,
skipped items and files out. :func:`run_analysis` is what the app's coordinator tab and ``python -m analysis``
call."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sqlalchemy.orm import Session, sessionmaker

from analysis import efficiency, experience, figures
from analysis.consistency import peer_discrepancies
from analysis.judges import Judge, OfflineJudge
from analysis.loaders import StudyFrames, load_study
from analysis.report import write_outputs
from analysis.similarity import template_use_measure
from analysis.skipped import Skipped, usable_readings
from analysis.consistency import PAIR_COLUMNS
from analysis.estimates import ArmEstimates
from analysis.statistics import MIXED_MODEL_COLUMNS, N_RESAMPLES, cluster_bootstrap, mixed_model

REFERENCE_ARM = "template"

ARM_SUMMARY_COLUMNS: dict[str, str] = {
    "metric": "active_seconds, template_use, peer_discrepancy or likert_<question>",
    "arm": "Arm.code",
    "n_readings": "readings with a value",
    "estimate": "mean over readings",
    "ci_low": "bootstrap 2.5th percentile (1,000 reader x case cluster resamples)",
    "ci_high": "bootstrap 97.5th percentile",
    "difference": "estimate minus the reference arm's estimate (NaN for the reference arm)",
    "difference_ci_low": "bootstrap 2.5th percentile of the difference",
    "difference_ci_high": "bootstrap 97.5th percentile of the difference",
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
}

_CI_COLUMNS = {"ci_low": "bootstrap 2.5th percentile (1,000 reader x case cluster resamples)",
               "ci_high": "bootstrap 97.5th percentile"}

#: table name -> {column: meaning}; written to ``columns.csv`` and the HTML report.
TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "readings": READINGS_TABLE_COLUMNS,
    "peer_pairs": PAIR_COLUMNS,
    "arm_summary": ARM_SUMMARY_COLUMNS,
    "reader_arm": efficiency.READER_ARM_COLUMNS,
    "time_saved_by_template_use": efficiency.STRATIFIED_COLUMNS | _CI_COLUMNS,
    "discrepancy_by_interval": efficiency.INTERVAL_COLUMNS,
    "likert_summary": experience.LIKERT_SUMMARY_COLUMNS | _CI_COLUMNS,
    "choice_summary": experience.CHOICE_SUMMARY_COLUMNS,
    "mixed_models": MIXED_MODEL_COLUMNS,
}


@dataclass
class AnalysisResult:
    """Everything one analysis produced.

    Attributes:
        study_name: ReaderStudy.name.
        reference_arm: arm that time saved and differences are computed against.
        judge: ``name version`` of the discrepancy judge.
        similarity_measure: template-use measure.
        tables: name -> DataFrame (``readings``, ``peer_pairs``, ``arm_summary``, ``reader_arm``,
            ``time_saved_by_template_use``, ``discrepancy_by_interval``, ``likert_summary``, ``choice_summary``, ``mixed_models``).
        figures: name -> plotly Figure (``fig5b_discrepancy_matrix``, ``fig5c_discrepancy_by_interval``,
            ``fig5d_template_use``, ``fig5e_time_saved``, ``time_by_arm``, ``likert_by_arm``).
        skipped: every left-out item with its reason.
        files: name -> written path (CSV tables, ``columns.csv``, ``skipped.csv``, figures, ``report.html``).
    """

    study_name: str
    reference_arm: str
    judge: str
    similarity_measure: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, go.Figure] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


def _metric_columns(frame: pd.DataFrame) -> list[str]:
    return ["active_seconds", "template_use", "peer_discrepancy", *experience.likert_columns(frame)]


def _arm_summary(frame: pd.DataFrame, cis: pd.DataFrame, metrics: list[str], arms: list[str]) -> pd.DataFrame:
    rows = []
    for metric in metrics:
        counts = frame.dropna(subset=[metric]).groupby("arm").size()
        for arm in arms:
            mean = cis.loc[("mean", metric, arm, 0)]
            diff = cis.loc[("difference", metric, arm, 0)] if ("difference", metric, arm, 0) in cis.index else None
            rows.append({
                "metric": metric, "arm": arm, "n_readings": int(counts.get(arm, 0)), "estimate": mean["estimate"],
                "ci_low": mean["ci_low"], "ci_high": mean["ci_high"],
                "difference": np.nan if diff is None else diff["estimate"],
                "difference_ci_low": np.nan if diff is None else diff["ci_low"],
                "difference_ci_high": np.nan if diff is None else diff["ci_high"],
            })
    return pd.DataFrame(rows, columns=list(ARM_SUMMARY_COLUMNS))


def _mixed_models(frame: pd.DataFrame, metrics: list[str], reference_arm: str) -> tuple[pd.DataFrame, list[Skipped]]:
    fits, skipped = [], []
    for metric in [m for m in metrics if m != "template_use"]:
        data = frame.dropna(subset=[metric])
        try:
            fits.append(mixed_model(data, metric, reference_arm))
        except (ValueError, np.linalg.LinAlgError) as error:
            skipped.append(Skipped("statistics", f"mixed model of {metric}", str(error)))
    table = pd.concat(fits, ignore_index=True) if fits else pd.DataFrame(columns=list(MIXED_MODEL_COLUMNS))
    return table, skipped


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
        n_resamples: bootstrap resamples (paper: 1,000).
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
    skipped += likert_skips
    skipped += efficiency.missing_reader_arms(readings, tuple(arms))

    metrics = _metric_columns(readings)
    estimates = ArmEstimates(readings, metrics, arms, reference_arm)
    cis = cluster_bootstrap(pd.factorize(readings["reader"])[0], pd.factorize(readings["case"])[0], estimates,
                            estimates.names, n_resamples, seed)
    reader_arm = efficiency.reader_arm_table(readings, reference_arm)
    stratified = efficiency.stratified_time_saved(reader_arm, reference_arm)
    saved_ci = cis.loc[[("saved", "saved_minutes_per_100", r.arm, r.top_percent) for r in stratified.itertuples()]]
    stratified = stratified.assign(ci_low=saved_ci["ci_low"].to_numpy(), ci_high=saved_ci["ci_high"].to_numpy())
    likert_summary = experience.likert_summary(readings, frames.likert)
    arm_summary = _arm_summary(readings, cis, metrics, arms)
    likert_cis = arm_summary[arm_summary["metric"].str.startswith(experience.LIKERT_PREFIX)].assign(
        question=lambda t: t["metric"].str.removeprefix(experience.LIKERT_PREFIX))
    likert_summary = likert_summary.merge(likert_cis[["question", "arm", "ci_low", "ci_high"]],
                                          on=["question", "arm"], how="left")
    models, model_skips = _mixed_models(readings, metrics, reference_arm)
    skipped += model_skips
    intervals = efficiency.discrepancy_by_interval(readings)

    table_columns = [c for c in READINGS_TABLE_COLUMNS if c in readings.columns] + experience.likert_columns(readings)
    result = AnalysisResult(
        study_name=frames.study_name, reference_arm=reference_arm, judge=f"{judge.name} {judge.version}",
        similarity_measure=measure.name, skipped=skipped,
        tables={
            "readings": readings[table_columns],
            "peer_pairs": consistency.pairs,
            "arm_summary": arm_summary,
            "reader_arm": reader_arm,
            "time_saved_by_template_use": stratified,
            "discrepancy_by_interval": intervals,
            "likert_summary": likert_summary,
            "choice_summary": experience.choice_summary(readings, frames.choices),
            "mixed_models": models,
        },
        figures={
            "fig5b_discrepancy_matrix": figures.discrepancy_matrix(readings),
            "fig5c_discrepancy_by_interval": figures.discrepancy_by_interval_figure(intervals),
            "fig5d_template_use": figures.template_use_matrix(readings, measure.name),
            "fig5e_time_saved": figures.time_saved_figure(stratified, reference_arm),
            "time_by_arm": figures.time_by_arm_figure(readings),
            "likert_by_arm": figures.likert_figure(likert_summary),
        },
    )
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
