"""The LLM judge against a local OpenAI-compatible chat-completions server on 127.0.0.1 (tests/chatserver.py) that
answers from a script: valid and malformed answers, error statuses, bodies that are not chat completions, hangs."""

import json
import random
import re
import socket

import pandas as pd
import pytest

from analysis.consistency import failed_comparisons_note, peer_discrepancies
from analysis.judges import Discrepancy, ErrorCategory, JudgeError, JudgeFailure, LLMJudge, Severity
from analysis.judges.llm import FEW_SHOT, SYSTEM_PROMPT, MalformedAnswer, parse_answer
from tests.chatserver import Hang, Raw, chat_server, pair_prompt  # noqa: F401 (fixture)

VALID = json.dumps({"corrections": [
    {"line": 2, "correction": None, "severity": "urgent", "categories": ["false_finding"], "comment": "no PTX"},
    {"line": None, "correction": "Small left effusion.", "severity": "actionable_nonurgent",
     "categories": ["omission", "wrong_location"], "comment": ""},
]})
CANDIDATE, REFERENCE = "Heart normal. Right pneumothorax. No effusion.", "Heart normal. Small left effusion."


def test_valid_answer_then_cache_hit(chat_server, tmp_path):
    server = chat_server(lambda messages: VALID)
    judge = LLMJudge(server.url, "test-model", cache_dir=tmp_path / "cache")
    first = judge.judge(CANDIDATE, REFERENCE)
    assert [(d.line, d.severity, d.categories) for d in first.discrepancies] == [
        (2, Severity.URGENT, (ErrorCategory.FALSE_FINDING,)),
        (None, Severity.ACTIONABLE_NONURGENT, (ErrorCategory.OMISSION, ErrorCategory.WRONG_LOCATION))]
    assert first.discrepancies[1].category is ErrorCategory.OMISSION
    assert (first.urgent_emergent, first.cached, first.attempts) == (1, False, 1)
    assert (first.prompt_tokens, first.completion_tokens, first.judge) == (100, 20, "llm:test-model")
    request = server.requests[0]
    assert request["model"] == "test-model" and request["temperature"] == 0
    # system instructions, the worked examples as earlier turns, then the pair
    roles = [m["role"] for m in request["messages"]]
    assert roles == ["system"] + ["user", "assistant"] * len(FEW_SHOT) + ["user"]
    assert "1. Heart normal.\n2. Right pneumothorax.\n3. No effusion." in pair_prompt(request["messages"])
    again = judge.judge(CANDIDATE, REFERENCE)
    assert len(server.requests) == 1
    assert again.cached and again.discrepancies == first.discrepancies and again.prompt_tokens == 0
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    # another model name is another cache key
    LLMJudge(server.url, "other-model", cache_dir=tmp_path / "cache").judge(CANDIDATE, REFERENCE)
    assert len(server.requests) == 2


def test_prompt_defines_every_severity_and_category_and_examples_are_valid_answers():
    for value in [*(s.value for s in Severity), *(c.value for c in ErrorCategory)]:
        assert f"- {value}:" in SYSTEM_PROMPT
    assert "intensive care unit" in SYSTEM_PROMPT and "tension pneumothorax" in SYSTEM_PROMPT
    severities, multi_category = set(), False
    for cand, ref, answer in FEW_SHOT:
        parsed = parse_answer(json.dumps(answer), len(cand))
        assert len(parsed) == len(answer["corrections"]) and len(ref) > 0
        severities |= {d.severity for d in parsed}
        multi_category |= any(len(d.categories) > 1 for d in parsed)
    assert severities == set(Severity) and multi_category
    assert any(answer == {"corrections": []} for _, _, answer in FEW_SHOT)  # a paraphrase needs nothing


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        # capitalised severity, "urgent error", line as a string, category as one string
        ('{"corrections": [{"line": "2", "severity": "Urgent error", "categories": "Omission"}]}',
         [(2, Severity.URGENT, (ErrorCategory.OMISSION,), None)]),
        # prose and a code fence around the JSON
        ('Here is my review.\n```json\n{"corrections": [{"line": "line 1", "severity": "EMERGENT", '
         '"categories": ["wrong location"], "correction": "Tube in the right mainstem bronchus."}]}\n```\nThanks!',
         [(1, Severity.EMERGENT, (ErrorCategory.WRONG_LOCATION,), "Tube in the right mainstem bronchus.")]),
        # FineRadScore's own field names, category names, "[delete]"; a null line given as a string
        ('{"Corrections": [{"line": 3, "corrections": "[delete]", "clinical severity": "Actionable nonurgent error",'
         ' "error category": ["False prediction of finding", "Incorrect severity of finding"], "comments": "x"},'
         ' {"line": "null", "correction": "Old rib fracture.", "clinical severity": "Not actionable",'
         ' "error category": ["Omission of finding"]}]}',
         [(3, Severity.ACTIONABLE_NONURGENT, (ErrorCategory.FALSE_FINDING, ErrorCategory.WRONG_SEVERITY), None),
          (None, Severity.NOT_ACTIONABLE, (ErrorCategory.OMISSION,), "Old rib fracture.")]),
        # categories by FineRadScore's numbers 1-6, "non-urgent" spelling
        ('{"corrections": [{"line": 1, "severity": "actionable non-urgent", "categories": [5, "6"]}]}',
         [(1, Severity.ACTIONABLE_NONURGENT,
           (ErrorCategory.MENTIONS_COMPARISON, ErrorCategory.OMITS_COMPARISON), None)]),
        # a bare list of corrections after a bracket in prose; an empty answer
        ('I checked [1] line. [{"line": 1, "severity": "urgent", "categories": ["omission"]}]',
         [(1, Severity.URGENT, (ErrorCategory.OMISSION,), None)]),
        ('No corrections needed: {"corrections": []}', []),
        # FineRadScore's own answer format: an object keyed by line number, "None" for an insertion
        ('{"2": {"corrections": "[delete]", "clinical severity": "Urgent error", "comments": "",'
         ' "error category": ["False prediction of finding"]},'
         ' "None": {"corrections": "Small left effusion.", "clinical severity": "Not actionable",'
         ' "error category": ["Omission of finding"]}}',
         [(2, Severity.URGENT, (ErrorCategory.FALSE_FINDING,), None),
          (None, Severity.NOT_ACTIONABLE, (ErrorCategory.OMISSION,), "Small left effusion.")]),
    ],
)
def test_parse_answer_is_lenient_before_the_schema(content, expected):
    parsed = parse_answer(content, n_lines=3)
    assert [(d.line, d.severity, d.categories, d.correction) for d in parsed] == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("I cannot judge these reports.", "not JSON"),
        ('{"corrections": [{"line": 0, "severity": "urgent", "categories": ["omission"]}]}', r"line 0 is not null"),
        ('{"corrections": [{"line": 1, "severity": "severe", "categories": ["omission"]}]}',
         r"corrections\[0\]\.severity.*'severe'"),
        ('{"corrections": [{"line": 1, "severity": "urgent", "categories": ["typo"]}]}', r"categories\[0\].*'typo'"),
        ('{"corrections": [{"line": 1, "severity": "urgent", "categories": []}]}', "at least 1 item"),
        ('{"corrections": [{"line": 1, "severity": "urgent"}]}', r"categories: Field required"),
        ('{"corrections": [{"line": true, "severity": "urgent", "categories": ["omission"]}]}', r"line.*integer"),
        ('{"corrections": [{"line": "two", "severity": "urgent", "categories": ["omission"]}]}', r"line.*'two'"),
        ('{"corrections": [{"line": 1, "severity": "urgent", "categories": [{"a": 1}, {"a": 1}, ["x"]]}]}',
         r"categories\[0\].*\{'a': 1\}"),
        ('{"corrections": [{"line": 1, "severity": null, "categories": ["omission"]}]}', r"severity.*None"),
        ('{"corrections": {"line": 1}}', r"corrections: Input should be a valid list"),
        ('{"fixes": []}', "corrections"),
        ('{"1": {"severity": "urgent"}, "summary": {}}', "corrections"),
        ("[1, 2]", "corrections"),
        ('{"corrections": [{"line": 1, "correction": 5, "severity": "urgent", "categories": ["omission"]}]}',
         "string"),
    ],
)
def test_parse_answer_rejects(content, message):
    with pytest.raises(MalformedAnswer, match=message):
        parse_answer(content, n_lines=2)


def test_parse_answer_raises_only_malformed_answer_on_arbitrary_json():
    """2,000 random JSON values built from the answer's own keys and odd values: each one parses or raises
    MalformedAnswer, never another exception (which would escape the judge's retry loop)."""
    rng = random.Random(17)
    keys = ["corrections", "Corrections", "line", "severity", "clinical severity", "categories", "category",
            "error category", "correction", "comment", "1", "None", "x"]
    leaves = [None, True, 0, 1, 2, 9, -1, 1.5, "2", "line 1", "urgent", "Urgent error", "omission", "3", "[delete]",
              "", "null", [], {}]

    def value(depth):
        kind = rng.random()
        if depth > 3 or kind < 0.4:
            return rng.choice(leaves)
        if kind < 0.7:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(keys): value(depth + 1) for _ in range(rng.randint(0, 5))}

    outcomes = {"parsed": 0, "malformed": 0}
    for _ in range(2000):
        content = rng.choice(["", "Answer: ", "```json\n"]) + json.dumps(value(0)) + rng.choice(["", " done", "\n```"])
        try:
            parse_answer(content, n_lines=3)
            outcomes["parsed"] += 1
        except MalformedAnswer:
            outcomes["malformed"] += 1
    assert outcomes["parsed"] > 0 and outcomes["malformed"] > 0


def test_malformed_answer_is_retried_with_the_parse_error_in_the_conversation(chat_server, tmp_path):
    replies = iter(["not json at all", '{"corrections": [{"line": 9, "severity": "urgent", "categories": ["omission"]}]}',
                    "```json\n" + VALID + "\n```"])
    server = chat_server(lambda messages: next(replies))
    judgement = LLMJudge(server.url, "m", cache_dir=tmp_path).judge("A. B. C.", "A.")
    assert judgement.attempts == 3 and len(server.requests) == 3
    assert (judgement.prompt_tokens, judgement.completion_tokens) == (300, 60)
    assert len(judgement.discrepancies) == 2
    first, second, third = (r["messages"] for r in server.requests)
    assert second[:len(first)] == first and third[:len(second)] == second
    assert second[len(first)] == {"role": "assistant", "content": "not json at all"}
    assert second[-1]["role"] == "user" and "not JSON" in second[-1]["content"]
    assert "line 9 is not null or in 1..3" in third[-1]["content"]


def test_never_valid_gives_a_named_failure(chat_server):
    server = chat_server(lambda messages: "{broken")
    judge = LLMJudge(server.url, "m", max_attempts=3)
    with pytest.raises(JudgeError, match=r"llm:m: no valid answer after 3 attempt\(s\); last: malformed answer: "
                                         r"answer is not JSON") as info:
        judge.judge("A.", "B.")
    assert info.value.failure.attempts == 3 and info.value.failure.prompt_tokens == 300
    assert len(server.requests) == 3


def test_a_hanging_endpoint_times_out_into_a_failure(chat_server):
    server = chat_server(lambda messages: Hang())
    (result,) = LLMJudge(server.url, "m", max_attempts=2, timeout_s=0.3).judge_many([("A. B.", "C.")])
    assert isinstance(result, JudgeFailure) and result.attempts == 2
    assert result.reason == "llm:m: no valid answer after 2 attempt(s); last: endpoint timed out (no answer within 0.3 s)"
    assert len(server.wait_for_requests(2)) == 2


@pytest.mark.parametrize(
    ("reply", "requests", "message"),
    [
        (Raw(200, "<html>Welcome to nginx</html>"), 2, "endpoint answer is not a chat completion .*Welcome to nginx"),
        (Raw(200, '{"error": "model loading"}'), 2, "endpoint answer is not a chat completion .*KeyError"),
        (Raw(503, "overloaded"), 2, "endpoint answered HTTP 503: 'overloaded'"),
        (Raw(401, "bad key"), 1, "endpoint answered HTTP 401: 'bad key'"),  # retrying cannot help
    ],
)
def test_endpoint_errors_are_named_failures(chat_server, reply, requests, message):
    server = chat_server(lambda messages: reply)
    (result,) = LLMJudge(server.url, "m", max_attempts=2).judge_many([("A.", "B.")])
    assert isinstance(result, JudgeFailure)
    assert result.prompt_tokens == 0
    assert re.search(message, result.reason), result.reason
    assert len(server.wait_for_requests(requests)) == requests == result.attempts


def test_a_server_without_json_mode_is_asked_again_without_it(chat_server):
    server = chat_server(lambda messages: VALID, json_mode=False)
    judge = LLMJudge(server.url, "m", max_attempts=1)
    assert judge.judge(CANDIDATE, REFERENCE).attempts == 1 and judge.judge("A. B.", "C.").attempts == 1
    assert ["response_format" in r for r in server.requests] == [True, False, False]
    assert not judge.json_mode


def test_unreachable_endpoint_is_a_named_failure():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (result,) = LLMJudge(f"http://127.0.0.1:{port}/v1", "m", max_attempts=2).judge_many([("A.", "B.")])
    assert isinstance(result, JudgeFailure) and "endpoint unreachable (ConnectError" in result.reason


def test_after_repeated_endpoint_failures_the_rest_is_not_sent(chat_server):
    server = chat_server(lambda messages: Hang())
    judge = LLMJudge(server.url, "m", max_attempts=1, timeout_s=0.3, max_concurrency=1, max_endpoint_failures=2)
    results = judge.judge_many([(f"Line {i}.", "Ref.") for i in range(5)])
    assert all(isinstance(r, JudgeFailure) for r in results)
    assert ["timed out" in r.reason for r in results] == [True, True, True, True, True]
    assert [r.reason.startswith("llm:m: not sent: the endpoint failed 2 comparisons in a row") for r in results] == [
        False, False, True, True, True]
    assert len(server.wait_for_requests(2)) == 2


def test_a_malformed_answer_does_not_count_as_an_endpoint_failure(chat_server):
    replies = {"Line 0.": "{broken", "Line 1.": "{broken", "Line 2.": VALID}

    def answer(messages):
        return next(reply for line, reply in replies.items() if line in pair_prompt(messages))

    server = chat_server(answer)
    judge = LLMJudge(server.url, "m", max_attempts=1, max_concurrency=1, max_endpoint_failures=1)
    results = judge.judge_many([("Line 0.", "Ref."), ("Line 1.", "Ref."), ("Line 2. B.", "Ref.")])
    assert [type(r).__name__ for r in results] == ["JudgeFailure", "JudgeFailure", "Judgement"]
    assert len(server.requests) == 3


def test_concurrency_limit(chat_server):
    server = chat_server(lambda messages: '{"corrections": []}', delay_s=0.15)
    with LLMJudge(server.url, "m", max_concurrency=2) as judge:
        results = judge.judge_many([(f"Line {i}.", "Ref.") for i in range(6)])
    assert all(r.discrepancies == () for r in results)
    assert server.max_in_flight == 2


def test_peer_discrepancies_report_failed_comparisons_per_reading(chat_server):
    """Comparisons with reader b's report (either side) make the endpoint answer non-JSON: each failed pair is
    listed, and each reading says over how many peers its mean was taken."""
    def answer(messages):
        return "<html>oops</html>" if "Broken" in pair_prompt(messages) else VALID

    server = chat_server(answer)
    readings = pd.DataFrame({
        "assignment_id": [1, 2, 3], "reader": ["a", "b", "c"], "case": ["k"] * 3, "arm": ["template", "model", "llm"],
        "final_text": ["One. Two.", "Broken one. Two.", "Three. Four."],
    })
    result = peer_discrepancies(readings, LLMJudge(server.url, "m", max_attempts=2))
    per = result.per_reading.set_index("reader")
    assert per["n_peers"].to_dict() == {"a": 1, "b": 0, "c": 1}
    assert per["n_peers_failed"].to_dict() == {"a": 1, "b": 2, "c": 1}
    assert per.loc["a", "peer_discrepancy"] == 1.0 and pd.isna(per.loc["b", "peer_discrepancy"])
    reasons = {s.item: s.reason for s in result.skipped}
    assert reasons["reader a x case k (template)"] == "peer discrepancy over 1 of 2 peers: 1 comparison(s) failed"
    assert reasons["reader b x case k (model)"] == "every peer comparison failed"
    failed_pairs = {item for item in reasons if " vs peer " in item}
    assert failed_pairs == {"reader a x case k (template) vs peer b", "reader b x case k (model) vs peer a",
                            "reader b x case k (model) vs peer c", "reader c x case k (llm) vs peer b"}
    assert all("malformed answer: answer is not JSON" in reasons[item] for item in failed_pairs)
    assert len(result.pairs) == 2


def test_bad_options():
    with pytest.raises(ValueError, match="max_attempts=0"):
        LLMJudge("http://127.0.0.1:1/v1", "m", max_attempts=0)
    with pytest.raises(ValueError, match="max_endpoint_failures=0"):
        LLMJudge("http://127.0.0.1:1/v1", "m", max_endpoint_failures=0)
    with pytest.raises(ValueError, match="timeout_s=0"):
        LLMJudge("http://127.0.0.1:1/v1", "m", timeout_s=0)
    with pytest.raises(ValueError, match="model"):
        LLMJudge("http://127.0.0.1:1/v1", "")
    for url in ("localhost:8000/v1", "ftp://host/v1", "http:///v1"):
        with pytest.raises(ValueError, match="must be an http:// or https:// URL with a host"):
            LLMJudge(url, "m")


def test_command_line_refuses_a_bad_endpoint_url(db, tmp_path, capsys):
    from analysis.__main__ import main

    with pytest.raises(SystemExit) as usage:
        main(["--database", str(db.kw["bind"].url), "--study", "s", "--out", str(tmp_path), "--judge", "llm",
              "--llm-url", "localhost:8000/v1"])
    assert usage.value.code == 2
    assert "base_url 'localhost:8000/v1' must be an http:// or https:// URL" in capsys.readouterr().err


def test_discrepancy_record_shape():
    d = Discrepancy(2, None, Severity.URGENT, ErrorCategory.OMISSION, "missed",
                    (ErrorCategory.OMISSION, ErrorCategory.WRONG_SEVERITY))
    assert d.as_record() == {"line": 2, "category": "omission", "severity": "urgent", "comment": "missed",
                             "categories": ["omission", "wrong_severity"], "correction": None}
    assert Discrepancy(None, "x", Severity.URGENT, ErrorCategory.OMISSION).categories == (ErrorCategory.OMISSION,)
    with pytest.raises(ValueError, match="must start with category"):
        Discrepancy(1, None, Severity.URGENT, ErrorCategory.OMISSION, "", (ErrorCategory.FALSE_FINDING,))


def test_run_analysis_with_llm_judge_lists_what_the_endpoint_failed(chat_server, db, tmp_path):
    from analysis import run_analysis
    from analysis.simulation import simulate_study, write_study

    write_study(db, simulate_study(n_readers=3, n_cases=6, seed=4, name="llm study"))

    def answer(messages):
        reference = pair_prompt(messages).split("\n\nCandidate")[0]
        return "Sorry, I cannot help." if "Cardiomediastinal" in reference else '{"corrections": []}'

    server = chat_server(answer)
    with LLMJudge(server.url, "local", cache_dir=tmp_path, max_attempts=2) as judge:
        result = run_analysis(db, "llm study", tmp_path / "out", judge, n_resamples=100)
    assert result.judge == "llm:local fineradscore-adapted-2"
    failed = [s for s in result.skipped if s.step == "consistency"]
    pairs = result.tables["peer_pairs"]
    # readers 01 and 02 rewrite in their own words ("Cardiomediastinal ..."): judging against them fails
    assert set(pairs["peer"]) == {"reader00"} and (pairs["urgent_emergent"] == 0).all()
    # 6 cases x 4 ordered pairs with reference reader01/02; reader00's 6 readings lost every peer
    pair_failures = [s for s in failed if " vs peer " in s.item]
    assert len(pair_failures) == 24 and all("malformed answer: answer is not JSON" in s.reason for s in pair_failures)
    per_reading = sorted(s.reason for s in failed if " vs peer " not in s.item)
    assert per_reading == ["every peer comparison failed"] * 6 + ["peer discrepancy over 1 of 2 peers: "
                                                                   "1 comparison(s) failed"] * 12
    table = result.tables["readings"].set_index("reader")
    assert table.loc["reader00", "peer_discrepancy"].isna().all()
    assert (table.loc["reader00", "n_peers"] == 0).all() and (table.loc["reader00", "n_peers_failed"] == 2).all()
    assert (table.loc[["reader01", "reader02"], ["n_peers", "n_peers_failed"]] == 1).all().all()
    written = pd.read_csv(result.files["skipped.csv"])
    assert (written["reason"] == "every peer comparison failed").sum() == 6
    assert {"n_peers", "n_peers_failed"} <= set(pd.read_csv(result.files["readings.csv"]).columns)
    note = ("The discrepancy judge failed on 24 peer comparison(s): 12 reading(s) have a peer discrepancy over fewer "
            "peers and 6 have none; each is listed among the left-out items.")
    assert failed_comparisons_note(result.tables["readings"]) == note
    assert f"<strong>Warning:</strong> {note}" in result.files["report.html"].read_text()


def test_command_line_with_an_endpoint_answering_garbage(chat_server, db, tmp_path, capsys):
    """``python -m analysis --judge llm`` against a server that answers an HTML page: the analysis completes,
    every comparison is a named skipped entry, and the command warns."""
    from analysis.__main__ import main
    from analysis.simulation import simulate_study, write_study

    write_study(db, simulate_study(n_readers=3, n_cases=4, seed=2, name="garbage study"))
    server = chat_server(lambda messages: Raw(200, "<html>Welcome to nginx</html>"))
    out = tmp_path / "out"
    assert main(["--database", str(db.kw["bind"].url), "--study", "garbage study", "--out", str(out), "--judge", "llm",
                 "--llm-url", server.url, "--llm-model", "local", "--llm-concurrency", "1", "--resamples", "50"]) == 0
    printed = capsys.readouterr().out
    assert "warning: The discrepancy judge failed on 24 peer comparison(s): 0 reading(s) have a peer discrepancy " \
           "over fewer peers and 12 have none" in printed
    skipped = pd.read_csv(out / "skipped.csv")
    pairs = skipped[skipped["item"].str.contains(" vs peer ")]
    assert len(pairs) == 24
    # 5 pairs lost to the endpoint (5 attempts each), the other 19 not sent
    assert pairs["reason"].str.contains("endpoint answer is not a chat completion .*Welcome to nginx").all()
    assert pairs["reason"].str.startswith("llm:local: no valid answer after 5 attempt(s); last: endpoint").sum() == 5
    assert pairs["reason"].str.startswith("llm:local: not sent: the endpoint failed 5 comparisons in a row").sum() == 19
    assert len(server.requests) == 25
