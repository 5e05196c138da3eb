"""Radiologist experience (paper section 4.3 "User study"): Likert confidence and mental demand by arm, and
the shift of each arm's mean against the reference arm."""

from __future__ import annotations

import pandas as pd

from analysis.skipped import Skipped, reading_label

LIKERT_PREFIX = "likert_"
CHOICE_PREFIX = "choice_"

LIKERT_SUMMARY_COLUMNS: dict[str, str] = {
    "question": "Likert question key",
    "arm": "Arm.code",
    "n": "answers",
    "mean": "mean answer",
    "median": "median answer",
    "scale_min": "lowest value of the scale",
    "scale_max": "highest value of the scale",
}

CHOICE_SUMMARY_COLUMNS: dict[str, str] = {
    "question": "question code (single choice, multiple choice or yes/no)",
    "arm": "Arm.code",
    "choice": "option (yes / no for a yes/no question)",
    "n": "usable readings of the arm that chose it",
    "share": "n / usable readings of the arm that answered the question (a multiple choice can sum above 1)",
}


def choice_summary(readings: pd.DataFrame, choices: pd.DataFrame) -> pd.DataFrame:
    """How often each option of each choice question was chosen per arm, over usable readings.
    Columns: :data:`CHOICE_SUMMARY_COLUMNS`."""
    chosen = choices[choices["assignment_id"].isin(readings["assignment_id"])]
    if chosen.empty:
        return pd.DataFrame(columns=list(CHOICE_SUMMARY_COLUMNS))
    answered = chosen.groupby(["question", "arm"])["assignment_id"].nunique().rename("answered")
    table = chosen.groupby(["question", "arm", "choice"], sort=True).size().rename("n").reset_index()
    table = table.join(answered, on=["question", "arm"])
    table["share"] = table["n"] / table["answered"]
    return table[list(CHOICE_SUMMARY_COLUMNS)]


def attach_choices(readings: pd.DataFrame, choices: pd.DataFrame) -> pd.DataFrame:
    """Add one 0/1 column ``choice_<question>:<option>`` per option chosen at least once: 1.0 where the reading's
    answer to the question includes the option, 0.0 where it answered the question otherwise, NaN where it did not
    answer it (so its arm mean is the ``share`` of :func:`choice_summary`)."""
    chosen = choices[choices["assignment_id"].isin(readings["assignment_id"])]
    columns = {}
    for question, rows in chosen.groupby("question", sort=True):
        answered = readings["assignment_id"].isin(rows["assignment_id"])
        for option, option_rows in rows.groupby("choice", sort=True):
            picked = readings["assignment_id"].isin(option_rows["assignment_id"])
            columns[f"{CHOICE_PREFIX}{question}:{option}"] = picked.astype(float).where(answered)
    return readings.assign(**columns)


def choice_columns(frame: pd.DataFrame) -> list[str]:
    """The ``choice_<question>:<option>`` columns of a per-reading frame."""
    return [column for column in frame.columns if column.startswith(CHOICE_PREFIX)]


def attach_likert(readings: pd.DataFrame, likert: pd.DataFrame) -> tuple[pd.DataFrame, list[Skipped]]:
    """Add one ``likert_<question>`` column per question to the usable readings.

    Returns:
        (readings with the new columns, one :class:`Skipped` per reading missing an answer to a question
        that others answered).
    """
    wide = likert.pivot_table(index="assignment_id", columns="question", values="value", aggfunc="first")
    wide.columns = [f"{LIKERT_PREFIX}{question}" for question in wide.columns]
    merged = readings.merge(wide, left_on="assignment_id", right_index=True, how="left")
    skipped = [Skipped("experience", reading_label(row), f"no answer to Likert question {column[len(LIKERT_PREFIX):]}")
               for column in wide.columns for row in merged[merged[column].isna()].itertuples()]
    return merged, skipped


def likert_summary(readings: pd.DataFrame, likert: pd.DataFrame) -> pd.DataFrame:
    """Answers per question and arm, restricted to usable readings. Columns: :data:`LIKERT_SUMMARY_COLUMNS`."""
    answers = likert[likert["assignment_id"].isin(readings["assignment_id"])]
    table = (answers.groupby(["question", "arm"], sort=True)
             .agg(n=("value", "size"), mean=("value", "mean"), median=("value", "median"),
                  scale_min=("scale_min", "min"), scale_max=("scale_max", "max"))
             .reset_index())
    return table[list(LIKERT_SUMMARY_COLUMNS)]


def likert_columns(frame: pd.DataFrame) -> list[str]:
    """The ``likert_<question>`` columns of a per-reading frame."""
    return [column for column in frame.columns if column.startswith(LIKERT_PREFIX)]
