"""Clinical consistency (paper section 2.4, Fig. 5b/c): each final report's findings against every other
reader's final report of the same case (leave-one-out over peers), counting urgent + emergent corrections with
a FineRadScore-style judge, averaged over the peers."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.judges.base import Judge, JudgeFailure
from analysis.skipped import Skipped, reading_label

PAIR_COLUMNS: dict[str, str] = {
    "case": "Case.case_key",
    "reader": "reader whose final report is the candidate",
    "arm": "candidate's arm",
    "peer": "reader whose final report is the reference",
    "peer_arm": "reference's arm",
    "urgent_emergent": "urgent + emergent corrections the candidate needs (FineRadScore severities)",
    "n_discrepancies": "all corrections, any severity",
    "judge": "judge name (offline-negex or llm:<model>)",
    "judge_version": "lexicon or prompt version of the judge",
    "cached": "answer from the LLM judge's on-disk cache",
    "prompt_tokens": "LLM prompt tokens spent (0 offline or cached)",
    "completion_tokens": "LLM completion tokens spent (0 offline or cached)",
}
READING_CONSISTENCY_COLUMNS: dict[str, str] = {
    "assignment_id": "Assignment.id",
    "reader": "reader",
    "case": "Case.case_key",
    "arm": "Arm.code",
    "n_peers": "peer reports judged successfully",
    "n_peers_failed": "peer comparisons the judge failed on (listed in skipped.csv)",
    "peer_discrepancy": "mean urgent + emergent corrections over the judged peers (NaN when none)",
}


@dataclass(frozen=True)
class Consistency:
    """Result of :func:`peer_discrepancies`: ``pairs`` (:data:`PAIR_COLUMNS`), ``per_reading``
    (:data:`READING_CONSISTENCY_COLUMNS`) and what was skipped."""

    pairs: pd.DataFrame
    per_reading: pd.DataFrame
    skipped: list[Skipped]


def peer_discrepancies(readings: pd.DataFrame, judge: Judge) -> Consistency:
    """Leave-one-out peer discrepancy for every usable reading.

    Args:
        readings: usable readings (:func:`analysis.skipped.usable_readings`) with ``assignment_id``,
            ``reader``, ``case``, ``arm``, ``final_text``.
        judge: any :class:`analysis.judges.Judge`; each pair it fails on is listed as skipped, and the
            reading's mean is taken over the remaining peers with ``n_peers_failed`` saying how many failed
            and a skipped entry for the reading ("peer discrepancy over 7 of 9 peers").

    Returns:
        :class:`Consistency`; ``per_reading`` has one row per reading. A reading whose case has no other
        usable report, or whose every peer comparison failed, has ``n_peers`` 0, a NaN ``peer_discrepancy``
        and a skipped entry saying which. A study whose final reports are all identical to their peers' gets
        one skipped entry saying so (its zero discrepancies are kept, the denominator does not shrink).
    """
    meta, pairs = [], []
    for _, group in readings.groupby("case", sort=True):
        rows = list(group.itertuples())
        for cand in rows:
            for ref in rows:
                if ref.reader != cand.reader:
                    meta.append((cand, ref))
                    pairs.append((cand.final_text, ref.final_text))
    results = judge.judge_many(pairs)
    skipped, pair_rows = [], []
    if pairs and all(" ".join(c.split()).lower() == " ".join(r.split()).lower() for c, r in pairs):
        skipped.append(Skipped("consistency", f"all {len(pairs)} peer comparisons",
                               "every final report is word for word the same as its peers': the peer discrepancy "
                               "is 0 by construction and its arm differences say nothing about the reports"))
    for (cand, ref), result in zip(meta, results):
        if isinstance(result, JudgeFailure):
            skipped.append(Skipped("consistency", f"{reading_label(cand)} vs peer {ref.reader}", result.reason))
            continue
        pair_rows.append({
            "case": cand.case, "reader": cand.reader, "arm": cand.arm, "peer": ref.reader, "peer_arm": ref.arm,
            "urgent_emergent": result.urgent_emergent, "n_discrepancies": len(result.discrepancies),
            "judge": result.judge, "judge_version": result.judge_version, "cached": result.cached,
            "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "_assignment_id": cand.assignment_id,
        })
    pair_frame = pd.DataFrame(pair_rows, columns=[*PAIR_COLUMNS, "_assignment_id"])
    failed = pd.Series([cand.assignment_id for (cand, _), r in zip(meta, results)
                        if isinstance(r, JudgeFailure)], dtype="int64").value_counts()
    judged = pair_frame.groupby("_assignment_id")["urgent_emergent"].agg(["size", "mean"])
    per_reading = []
    for row in readings.itertuples():
        n_failed = int(failed.get(row.assignment_id, 0))
        n_judged = int(judged.loc[row.assignment_id, "size"]) if row.assignment_id in judged.index else 0
        if not n_judged:
            reason = ("every peer comparison failed" if n_failed
                      else "no other reader's final report of this case")
            skipped.append(Skipped("consistency", reading_label(row), reason))
        elif n_failed:
            skipped.append(Skipped("consistency", reading_label(row),
                                   f"peer discrepancy over {n_judged} of {n_judged + n_failed} peers: "
                                   f"{n_failed} comparison(s) failed"))
        per_reading.append({
            "assignment_id": row.assignment_id, "reader": row.reader, "case": row.case, "arm": row.arm,
            "n_peers": n_judged, "n_peers_failed": n_failed,
            "peer_discrepancy": float(judged.loc[row.assignment_id, "mean"]) if n_judged else float("nan"),
        })
    return Consistency(
        pair_frame.drop(columns="_assignment_id"),
        pd.DataFrame(per_reading, columns=list(READING_CONSISTENCY_COLUMNS)),
        skipped,
    )


def failed_comparisons_note(readings: pd.DataFrame) -> str:
    """One sentence on the peer comparisons the judge failed on, for the report and the app; "" when none.

    Args:
        readings: frame with ``n_peers`` and ``n_peers_failed`` per reading (:data:`READING_CONSISTENCY_COLUMNS`;
            the analysis's ``readings`` table).
    """
    failed = readings["n_peers_failed"].fillna(0)
    if not failed.sum():
        return ""
    judged = readings["n_peers"].fillna(0)
    partial, none = int(((failed > 0) & (judged > 0)).sum()), int(((failed > 0) & (judged == 0)).sum())
    return (f"The discrepancy judge failed on {int(failed.sum())} peer comparison(s): {partial} reading(s) have a "
            f"peer discrepancy over fewer peers and {none} have none; each is listed among the left-out items.")
