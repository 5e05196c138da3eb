"""Argilla interop: the exported folder has argilla 2.x's ``Dataset.to_disk`` layout and the SDK's own settings
serialisation; exporting, answering in Argilla's record format and importing reproduces the judgements."""

import json
import uuid
from pathlib import Path

import pytest

from studyapp.db.comparisons import ComparisonComment, ComparisonJudgement, ComparisonSubmission
from studyapp.services import accounts, argilla_io, comparison_results, judging
from studyapp.services.errors import InvalidInput, PermissionDenied

from .builders import candidate_text, leaked_names

# written by argilla 2.8.0's own ``Settings.to_json`` for the same fields/questions (see test docstring below)
SDK_SETTINGS = Path(__file__).parent / "data" / "argilla-2.8.0-settings.json"


def _export(db, ids, path):
    with db() as s:
        return argilla_io.export_argilla_dataset(s, accounts.get_user(s, ids["coordinator"]), ids["set"], path)


def test_export_structure(small, tmp_path):
    """settings.json equals what ``argilla.Settings(...).to_json`` (SDK 2.8.0) wrote for these fields and questions
    (``rg.TextField`` x3, ``rg.LabelQuestion(labels=PREFERENCE_LABELS)``, ``rg.TextQuestion(required=False)``,
    ``rg.TermsMetadataProperty("reader")``, ``rg.TaskDistribution(min_submitted=1)``)."""
    db, ids = small
    folder = _export(db, ids, tmp_path / "ds")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        ".argilla/dataset.json", ".argilla/settings.json", "records.json"]
    settings = json.loads((folder / ".argilla" / "settings.json").read_text())
    assert settings == json.loads(SDK_SETTINGS.read_text())
    assert [f["name"] for f in settings["fields"]] == ["context", "report_a", "report_b"]
    preference = settings["questions"][0]
    assert (preference["type"], [o["value"] for o in preference["settings"]["options"]]) == (
        "label_selection", ["A", "B", "equivalent"])
    assert (settings["questions"][1]["type"], settings["questions"][1]["required"]) == ("text", False)
    dataset = json.loads((folder / ".argilla" / "dataset.json").read_text())
    assert (dataset["name"], dataset["status"], dataset["workspace_id"]) == (f"comparison-{ids['set']}", "draft", None)

    records = json.loads((folder / "records.json").read_text())
    assert len(records) == 12  # 6 pairs x 2 readers
    assert all(set(r) == {"id", "fields", "metadata", "suggestions", "responses", "vectors", "status", "_server_id"}
               for r in records)
    with db() as s:
        reader = accounts.get_user(s, ids["readers"][0])
        views = judging.blinded_pairs(s, reader, ids["set"])
    own = [r for r in records if r["metadata"] == {"reader": reader.username}]
    assert [(r["fields"]["report_a"], r["fields"]["report_b"], r["fields"]["context"]) for r in own] == [
        (v.text_a, v.text_b, v.context) for v in views]
    assert leaked_names("".join(p.read_text() for p in folder.rglob("*.json"))) == []


def _answer(records, choose, comment_for=None):
    """Fill responses the way Argilla's ``Record.to_dict`` writes them: question -> [{value, user_id}]."""
    user_ids = {}
    for record in records:
        user = user_ids.setdefault(record["metadata"]["reader"], str(uuid.uuid4()))
        answer = {"preference": [{"value": choose(record), "user_id": user}]}
        if comment_for and comment_for(record):
            answer["comments"] = [{"value": comment_for(record), "user_id": user}]
        record["responses"] = answer
    return records


CANDIDATES = {candidate_text(i) for i in range(6)}


def test_round_trip_reproduces_judgements(small, tmp_path):
    """Argilla answers 'candidate better' except 'equivalent' on normal cases; imported results say exactly that,
    whichever side each reader saw the candidate on; comments keep their passage offsets."""
    db, ids = small
    folder = _export(db, ids, tmp_path / "ds")
    records = json.loads((folder / "records.json").read_text())

    def choose(record):
        if "case 0" in record["fields"]["report_a"]:
            return "equivalent"
        return "A" if record["fields"]["report_a"] in CANDIDATES else "B"

    def comment_for(record):
        if record["fields"]["report_a"] in CANDIDATES:
            return 'A 4 "no focal consolidation": clear\n- 5: concise overall'
        return None

    (folder / "records.json").write_text(json.dumps(_answer(records, choose, comment_for)))
    with db.begin() as s:
        summary = argilla_io.import_argilla_responses(s, accounts.get_user(s, ids["coordinator"]), ids["set"], folder)
    assert summary.judgements == 12 and summary.submitted_readers == tuple(ids["readers"])
    with db() as s:
        table = comparison_results.comparison_table(s, accounts.get_user(s, ids["coordinator"]), ids["set"])
        judged = table[table.record == "judgement"]
        assert len(judged) == 12 and judged.submitted.all()
        expected = ["equivalent" if key == "C000" else "better" for key in judged.case_key]
        assert judged.candidate_outcome.tolist() == expected
        assert set(judged.loc[judged.case_key != "C000", "preferred_source"]) == {"draft:model"}
        passage_rows = table[(table.record == "comment") & (table.comment_side == "A")]
        n_candidate_a = sum(r["fields"]["report_a"] in CANDIDATES for r in records)
        assert len(passage_rows) == n_candidate_a > 0
        for row in passage_rows.itertuples():
            assert row.comment_source == "draft:model" and row.score == 4
            assert candidate_text(int(row.case_key[1:]))[row.start:row.end] == "no focal consolidation"
        assert s.query(ComparisonComment).filter(ComparisonComment.side.is_(None)).count() == n_candidate_a
    # importing the same answers again changes nothing
    with db.begin() as s:
        coordinator = accounts.get_user(s, ids["coordinator"])
        with pytest.raises(InvalidInput, match="already submitted"):
            argilla_io.import_argilla_responses(s, coordinator, ids["set"], folder)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda recs: recs[0].update(id="cmp-9999"), "record 'cmp-9999' is not a reader x pair"),
        (lambda recs: recs[1]["responses"]["preference"][0].update(value="C"), "unknown choice 'C'"),
        (lambda recs: recs[1]["responses"].update(comments=[{"value": "A 3: meh", "user_id": "u"}]),
         "score 3 is not one of 1, 2, 4, 5"),
        (lambda recs: recs[1]["responses"].update(comments=[{"value": "looks fine", "user_id": "u"}]),
         "comment line 1 'looks fine' is not"),
        (lambda recs: recs[1]["responses"].update(comments=[{"value": 'B 1 "not there": x', "user_id": "u"}]),
         "passage 'not there' is not in Report B"),
        (lambda recs: recs[1]["responses"]["preference"].append({"value": "A", "user_id": "someone-else"}),
         "2 users answered 'preference'"),
    ],
)
def test_bad_responses_save_nothing(small, tmp_path, mutate, message):
    db, ids = small
    with db.begin() as s:
        reader = accounts.get_user(s, ids["readers"][0])
        kept = judging.blinded_pairs(s, reader, ids["set"])[0]
        judging.save_judgement(s, reader, kept.pair_id, "equivalent")
    folder = _export(db, ids, tmp_path / "ds")
    records = _answer(json.loads((folder / "records.json").read_text()), lambda r: "A")
    mutate(records)
    (folder / "records.json").write_text(json.dumps(records))
    with pytest.raises(InvalidInput, match=message):
        with db.begin() as s:
            argilla_io.import_argilla_responses(s, accounts.get_user(s, ids["coordinator"]), ids["set"], folder)
    with db() as s:
        assert [j.choice for j in s.query(ComparisonJudgement)] == ["equivalent"]
        assert s.query(ComparisonComment).count() == 0 and s.query(ComparisonSubmission).count() == 0


def test_comment_line_format_round_trip():
    text_a, text_b = "Heart normal. Small left effusion.", "No acute disease."
    lines = 'A 1 "Small left effusion": overcalled\nB 2: no mention of heart\n\n- 5'
    parsed = argilla_io.parse_comment_lines(lines, text_a, text_b)
    assert [(c.side, c.score, c.start, c.end, c.text) for c in parsed] == [
        ("A", 1, 14, 33, "overcalled"), ("B", 2, None, None, "no mention of heart"), (None, 5, None, None, "")]
    assert "\n".join(argilla_io.format_comment_line(c) for c in parsed) == lines.replace("\n\n", "\n")


def test_export_refuses_readers_and_used_folders(small, tmp_path):
    db, ids = small
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x.txt").write_text("keep me")
    with db() as s:
        with pytest.raises(PermissionDenied):
            argilla_io.export_argilla_dataset(s, accounts.get_user(s, ids["readers"][0]), ids["set"], tmp_path / "a")
        with pytest.raises(InvalidInput, match="not an empty folder"):
            argilla_io.export_argilla_dataset(s, accounts.get_user(s, ids["coordinator"]), ids["set"],
                                              tmp_path / "used")
    assert (tmp_path / "used" / "x.txt").read_text() == "keep me"


def test_push_without_sdk_or_key(small):
    """The SDK is optional: without it (or without a key) pushing fails with a clear message."""
    db, ids = small
    with db() as s:
        coordinator = accounts.get_user(s, ids["coordinator"])
        try:
            import argilla  # noqa: F401
        except ImportError:
            with pytest.raises(Exception, match="pip install argilla"):
                argilla_io.push_to_argilla(s, coordinator, ids["set"], "http://127.0.0.1:6900", "key")
        else:
            with pytest.raises(InvalidInput, match="URL and an API key"):
                argilla_io.push_to_argilla(s, coordinator, ids["set"], "http://127.0.0.1:6900", "")
