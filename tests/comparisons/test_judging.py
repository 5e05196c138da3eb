"""Reader flow: blinded payloads, revisable judgements, scored passage comments, submission; bad input fails
with a clear error and keeps what was saved."""

import dataclasses
import json

import pytest

from studyapp.db.comparisons import ComparisonComment, ComparisonJudgement
from studyapp.services import accounts, comparison_results, judging
from studyapp.services.errors import InvalidInput, NotFound, PermissionDenied

from .builders import leaked_names


def _reader(s, ids, i=0):
    return accounts.get_user(s, ids["readers"][i])


def test_blinded_payload_has_no_source_names(small):
    db, ids = small
    with db.begin() as s:
        reader = _reader(s, ids)
        pair = judging.blinded_pairs(s, reader, ids["set"])[0]
        judging.save_judgement(s, reader, pair.pair_id, "B")
        judging.add_comment(s, reader, pair.pair_id, 2, "too vague", side="A", start=0, end=9)
        payload = json.dumps([dataclasses.asdict(p) for p in judging.blinded_pairs(s, reader, ids["set"])],
                             ensure_ascii=False)
        summaries = json.dumps([dataclasses.asdict(x) for x in judging.reader_comparison_sets(s, reader)])
    assert set(json.loads(payload)[0]) == {"pair_id", "position", "case_id", "context", "text_a", "text_b",
                                          "choice", "comments"}
    assert leaked_names(payload) == [] and leaked_names(summaries) == []
    assert leaked_names('{"source": "draft:model"}') == ["draft:model", "model"]
    assert "Age: 063Y · Sex: F · Indication: cough" in payload


def test_revise_comment_submit(small):
    db, ids = small
    with db.begin() as s:
        reader = _reader(s, ids)
        pairs = judging.blinded_pairs(s, reader, ids["set"])
        assert [p.position for p in pairs] == list(range(4))  # 6 pairs x 2 readers / 3 readers
        first = pairs[0]
        judging.save_judgement(s, reader, first.pair_id, "A")
        view = judging.save_judgement(s, reader, first.pair_id, "equivalent")
        assert view.choice == "equivalent"
        comment = judging.add_comment(s, reader, first.pair_id, 1, " missed opacity ", side="B",
                                          start=10, end=25)
        assert comment.passage == first.text_b[10:25] and comment.text == "missed opacity"
        judging.add_comment(s, reader, first.pair_id, 5, "overall clear")
    with db.begin() as s:
        reader = _reader(s, ids)
        with pytest.raises(InvalidInput, match=r"position \[2, 3, 4\] have no judgement"):
            judging.submit_comparison_set(s, reader, ids["set"])
    with db.begin() as s:
        reader = _reader(s, ids)
        for pair in judging.blinded_pairs(s, reader, ids["set"])[1:]:
            judging.save_judgement(s, reader, pair.pair_id, "A")
        judging.submit_comparison_set(s, reader, ids["set"])
    with db.begin() as s:
        reader = _reader(s, ids)
        with pytest.raises(InvalidInput, match="already submitted"):
            judging.save_judgement(s, reader, first.pair_id, "B")
        with pytest.raises(InvalidInput, match="already submitted"):
            judging.add_comment(s, reader, first.pair_id, 4)
        summary = judging.reader_comparison_sets(s, reader)
        assert [(x.n_pairs, x.n_judged, x.submitted) for x in summary] == [(4, 4, True)]
    with db() as s:
        judgement = s.query(ComparisonJudgement).filter_by(choice="equivalent").one()
        assert judgement.revisions == 1 and judgement.assignment.pair_id == first.pair_id
        assert sorted((c.side, c.start, c.end, c.score) for c in s.query(ComparisonComment)
                      if c.side) == [("B", 10, 25, 1)]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"score": 3}, InvalidInput, "score 3 is not one of 1, 2, 4, 5"),
        ({"score": 0}, InvalidInput, "score 0 is not one of 1, 2, 4, 5"),
        ({"side": "C"}, InvalidInput, "unknown report side 'C'"),
        ({"start": 0, "end": 4}, InvalidInput, "without a report side"),
        ({"side": "A", "start": 3}, InvalidInput, "both start and end"),
        ({"side": "A", "start": 5, "end": 5}, InvalidInput, "empty or outside Report A"),
        ({"side": "B", "start": 0, "end": 10_000}, InvalidInput, "outside Report B"),
    ],
)
def test_bad_comments_keep_saved_work(small, kwargs, error, message):
    db, ids = small
    with db.begin() as s:
        reader = _reader(s, ids)
        pair = judging.blinded_pairs(s, reader, ids["set"])[0]
        judging.save_judgement(s, reader, pair.pair_id, "A")
        judging.add_comment(s, reader, pair.pair_id, 4, "good", side="A", start=0, end=4)
    args = {"score": 2, "side": None, "start": None, "end": None} | kwargs
    with pytest.raises(error, match=message):
        with db.begin() as s:
            judging.add_comment(s, _reader(s, ids), pair.pair_id, args["score"], "x", side=args["side"],
                                    start=args["start"], end=args["end"])
    with db() as s:
        assert [(c.score, c.passage) for c in s.query(ComparisonComment)] == [(4, pair.text_a[:4])]
        assert s.query(ComparisonJudgement).one().choice == "A"


def test_unassigned_reader_and_unknown_pair(small):
    db, ids = small
    with db.begin() as s:
        r0, r1 = _reader(s, ids, 0), _reader(s, ids, 1)
        own = {p.pair_id for p in judging.blinded_pairs(s, r0, ids["set"])}
        theirs = {p.pair_id for p in judging.blinded_pairs(s, r1, ids["set"])}
        foreign = sorted(theirs - own)[0]
        judging.save_judgement(s, r0, sorted(own)[0], "B")
    with db.begin() as s:
        r0 = _reader(s, ids, 0)
        with pytest.raises(PermissionDenied, match=f"pair {foreign} is not assigned"):
            judging.save_judgement(s, r0, foreign, "A")
        with pytest.raises(NotFound, match="unknown comparison pair 999"):
            judging.save_judgement(s, r0, 999, "A")
        with pytest.raises(InvalidInput, match="unknown choice 'C'"):
            judging.save_judgement(s, r0, sorted(own)[0], "C")
        with pytest.raises(PermissionDenied, match="not a coordinator"):
            comparison_results.comparison_table(s, r0, ids["set"])
    with db() as s:
        assert s.query(ComparisonJudgement).one().choice == "B"


def test_delete_comment(small):
    db, ids = small
    with db.begin() as s:
        reader = _reader(s, ids)
        pair = judging.blinded_pairs(s, reader, ids["set"])[0]
        keep = judging.add_comment(s, reader, pair.pair_id, 4, "keep")
        drop = judging.add_comment(s, reader, pair.pair_id, 1, "drop")
        with pytest.raises(PermissionDenied, match="is not"):
            judging.delete_comment(s, _reader(s, ids, 1), drop.comment_id)
        judging.delete_comment(s, reader, drop.comment_id)
        assert [c.text for c in judging.blinded_pairs(s, reader, ids["set"])[0].comments] == ["keep"]
        assert keep.comment_id != drop.comment_id
