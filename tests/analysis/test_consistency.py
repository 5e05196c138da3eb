"""Leave-one-out peer discrepancy on a hand-built case read by three readers (offline judge)."""

import pandas as pd
import pytest

from analysis.consistency import peer_discrepancies
from analysis.judges import OfflineJudge

# a: pneumothorax; b: pneumothorax + consolidation; c: normal. Urgent + emergent corrections by hand:
# a vs b: omits consolidation (urgent) = 1; a vs c: false pneumothorax (urgent) = 1 -> mean 1.0
# b vs a: false consolidation = 1; b vs c: false pneumothorax + false consolidation = 2 -> mean 1.5
# c vs a: omits pneumothorax = 1; c vs b: omits pneumothorax + consolidation = 2 -> mean 1.5
READINGS = pd.DataFrame({
    "assignment_id": [1, 2, 3, 4],
    "reader": ["a", "b", "c", "a"],
    "case": ["k1", "k1", "k1", "k2"],
    "arm": ["template", "model", "llm", "model"],
    "final_text": [
        "FINDINGS: Large right pneumothorax. Heart size normal.",
        "FINDINGS: Large right pneumothorax. Right lower lobe consolidation.",
        "FINDINGS: The lungs are clear. No pneumothorax.",
        "FINDINGS: No pneumothorax.",
    ],
})


def test_hand_computed_leave_one_out():
    result = peer_discrepancies(READINGS, OfflineJudge())
    per = result.per_reading[result.per_reading["case"] == "k1"].set_index("reader")
    assert per["peer_discrepancy"].to_dict() == {"a": 1.0, "b": 1.5, "c": 1.5}
    assert per["n_peers"].to_dict() == {"a": 2, "b": 2, "c": 2}
    pairs = result.pairs.set_index(["reader", "peer"])["urgent_emergent"].to_dict()
    assert pairs == {("a", "b"): 1, ("a", "c"): 1, ("b", "a"): 1, ("b", "c"): 2, ("c", "a"): 1, ("c", "b"): 2}
    assert set(result.pairs["judge"]) == {"offline-negex"}


def test_case_read_once_is_skipped_with_reason():
    result = peer_discrepancies(READINGS, OfflineJudge())
    alone = result.per_reading.set_index("assignment_id").loc[4]
    assert (alone["n_peers"], alone["n_peers_failed"]) == (0, 0) and pd.isna(alone["peer_discrepancy"])
    (skip,) = result.skipped
    assert (skip.step, skip.item, skip.reason) == (
        "consistency", "reader a x case k2 (model)", "no other reader's final report of this case")


def test_all_identical_reports_are_named():
    same = READINGS.assign(final_text="FINDINGS: The lungs are clear. No pneumothorax.")
    same.loc[1, "final_text"] = " findings: the lungs are clear.  No pneumothorax. "
    result = peer_discrepancies(same, OfflineJudge())
    assert result.per_reading["peer_discrepancy"].iloc[:3].tolist() == [0.0, 0.0, 0.0]
    assert [(s.item, s.reason.split(":")[0]) for s in result.skipped][0] == (
        "all 6 peer comparisons", "every final report is word for word the same as its peers'")
    assert not any("word for word" in s.reason for s in peer_discrepancies(READINGS, OfflineJudge()).skipped)


def test_empty_readings_give_empty_tables():
    result = peer_discrepancies(READINGS.iloc[:0], OfflineJudge())
    assert result.per_reading.empty and result.pairs.empty and result.skipped == []


@pytest.mark.parametrize("column", ["final_text", "case"])
def test_missing_column_raises(column):
    with pytest.raises((AttributeError, KeyError)):
        peer_discrepancies(READINGS.drop(columns=column), OfflineJudge())
