"""What one reader-study analysis produced (:class:`AnalysisResult`): built by :mod:`analysis.pipeline`, written by
:mod:`analysis.report`, shown by the app's analysis tab."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from analysis.skipped import Skipped


@dataclass
class AnalysisResult:
    """Everything one analysis produced.

    Attributes:
        study_name: ReaderStudy.name.
        reference_arm: arm that time saved and differences are computed against.
        judge: ``name version`` of the discrepancy judge.
        similarity_measure: template-use measure.
        arms: arm codes in design order (the study's arm creation order), arms without readings left out.
        arm_labels: arm code -> the study's label (Arm.label), the code where there is none.
        n_resamples: resamples of each one-way bootstrap behind the intervals.
        tables: name -> DataFrame (``readings``, ``peer_pairs``, ``arm_summary``, ``reader_arm``,
            ``time_saved_by_template_use``, ``discrepancy_by_interval``, ``likert_summary``, ``choice_summary``,
            ``preference_rates``, ``mixed_models``).
        figures: name -> plotly Figure (``fig5b_discrepancy_matrix``, ``fig5c_discrepancy_by_interval``,
            ``fig5d_template_use``, ``fig5e_time_saved``, ``time_by_arm``, ``likert_by_arm``, and
            ``preference_rates`` when the study has submitted comparison judgements).
        skipped: every left-out item with its reason.
        files: name -> written path (CSV tables, ``columns.csv``, ``skipped.csv``, figures, ``report.html``).
    """

    study_name: str
    reference_arm: str
    judge: str
    similarity_measure: str
    arms: list[str] = field(default_factory=list)
    arm_labels: dict[str, str] = field(default_factory=dict)
    n_resamples: int = 0
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, go.Figure] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    def label(self, arm: str) -> str:
        """The study's label of ``arm`` (its code where it has none)."""
        return self.arm_labels.get(arm) or arm
