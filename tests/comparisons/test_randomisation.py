"""Seeded balanced assignment: every pair judged by N readers, even loads, A side balanced per reader,
reproducible from the seed, and the stored order maps every judgement back to its source."""

from collections import Counter

import pytest

from studyapp.db.comparisons import ComparisonAssignment
from studyapp.services import accounts, comparison_results, comparisons, judging, studies
from studyapp.services.errors import InvalidInput

from .builders import candidate_text, make_study


def _design(db, seed: int, n_pairs=21, n_readers=4, per_pair=2):
    with db.begin() as s:
        study, _, _ = make_study(s, n_pairs, 0, n_readers)
        cset = comparisons.create_comparison_set(s, study, "round", "reference", "draft:model", "draft:model",
                                                 seed=seed, readers_per_pair=per_pair)
        comparisons.assign_readers(s, cset)
    with db() as s:
        return sorted(
            (a.pair.case.case_key, a.reader.username, a.position, a.a_source)
            for a in s.query(ComparisonAssignment)
        )


def test_balance(db):
    design = _design(db, seed=11)
    per_pair = Counter(case for case, _, _, _ in design)
    assert set(per_pair.values()) == {2} and len(per_pair) == 21
    load = Counter(reader for _, reader, _, _ in design)
    assert sorted(load.values()) == [10, 10, 11, 11]  # 42 judgements over 4 readers
    for reader, k in load.items():
        own = [(position, a_source) for _, r, position, a_source in design if r == reader]
        assert sorted(p for p, _ in own) == list(range(k))
        n_source_1_as_a = sum(a_source == 1 for _, a_source in own)
        assert n_source_1_as_a in (k // 2, (k + 1) // 2)
        # the sides are shuffled, not alternating: no pattern in position order
        sides = [a for _, a in sorted(own)]
        assert sides != [1, 2] * (k // 2) + [1] * (k % 2) and sides != [2, 1] * (k // 2) + [2] * (k % 2)


def test_reproducible_from_seed(tmp_path):
    from studyapp.db.session import open_database

    first = _design(open_database(f"sqlite:///{tmp_path / 'a.db'}"), seed=5)
    again = _design(open_database(f"sqlite:///{tmp_path / 'b.db'}"), seed=5)
    other = _design(open_database(f"sqlite:///{tmp_path / 'c.db'}"), seed=6)
    assert first == again
    assert first != other


def test_sides_balanced_over_many_seeds(tmp_path):
    """Over seeds, the A side of a given reader x pair is source 1 about half the time (no fixed pattern)."""
    from studyapp.db.session import open_database

    db = open_database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.begin() as s:
        study, _, _ = make_study(s, 4, 0, 2)
        for seed in range(60):
            cset = comparisons.create_comparison_set(s, study, f"round {seed}", "reference", "draft:model",
                                                     "draft:model", seed=seed, readers_per_pair=2)
            comparisons.assign_readers(s, cset)
    with db() as s:
        by_cell = Counter((a.pair.case.case_key, a.reader.username) for a in s.query(ComparisonAssignment)
                          if a.a_source == 1)
    # 8 reader x case cells, 60 draws each; binomial(60, 0.5) lies in [15, 45] with probability > 0.9999
    assert len(by_cell) == 8 and all(15 <= n <= 45 for n in by_cell.values()), by_cell


def test_stored_order_maps_judgements_back(small):
    db, ids = small
    candidates = {candidate_text(i) for i in range(6)}
    with db.begin() as s:
        for username in ids["readers"]:
            reader = accounts.get_user(s, username)
            for pair in judging.blinded_pairs(s, reader, ids["set"]):
                assert {pair.text_a, pair.text_b} & candidates
                # this reader always prefers the candidate report, wherever it was shown
                judging.save_judgement(s, reader, pair.pair_id, "A" if pair.text_a in candidates else "B")
    with db() as s:
        table = comparison_results.comparison_table(s, accounts.get_user(s, ids["coordinator"]), ids["set"])
        judged = table[table.record == "judgement"]
        assert len(judged) == 12
        assert set(judged.preferred_source) == {"draft:model"}
        assert set(judged.candidate_outcome) == {"better"}
        # both side orders occurred, so the mapping was exercised in both directions
        assert set(judged.choice) == {"A", "B"}
        assert (judged.report_a_source == "draft:model").sum() == (judged.choice == "A").sum()


def test_assignment_errors(small):
    db, ids = small
    with db.begin() as s:
        study = studies.get_study(s, "s1")
        cset = comparisons.get_comparison_set(s, ids["set"])
        with pytest.raises(InvalidInput, match="already has reader assignments"):
            comparisons.assign_readers(s, cset)
        other = comparisons.create_comparison_set(s, study, "second", "reference", "draft:model", "draft:model")
        with pytest.raises(InvalidInput, match="between 1 and 3"):
            comparisons.assign_readers(s, other, readers_per_pair=4)
        with pytest.raises(InvalidInput, match="coordinator account"):
            comparisons.assign_readers(s, other, readers=[accounts.get_user(s, ids["coordinator"])])
        outsider = accounts.add_user(s, "outsider", "orbit-lantern-42")
        with pytest.raises(InvalidInput, match="'outsider' is not a reader of this study"):
            comparisons.assign_readers(s, other, readers=[outsider])
