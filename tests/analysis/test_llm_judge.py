"""The LLM judge against a local OpenAI-compatible chat-completions server on 127.0.0.1 (http.server in a
thread) that answers from a script: valid JSON, malformed JSON, slow answers."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from analysis.consistency import peer_discrepancies
from analysis.judges import ErrorCategory, JudgeError, JudgeFailure, LLMJudge, Severity
from analysis.judges.llm import MalformedAnswer, parse_answer

VALID = json.dumps({"corrections": [
    {"line": 2, "correction": None, "severity": "urgent", "category": "false_finding", "comment": "no PTX"},
    {"line": None, "correction": "Small left effusion.", "severity": "actionable_nonurgent",
     "category": "omission", "comment": ""},
]})


class ChatServer:
    """Loopback server; ``answer(messages) -> (content, delay_s)`` decides each reply."""

    def __init__(self, answer):
        self.answer = answer
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    content, delay = server.answer(body["messages"])
                    time.sleep(delay)
                    payload = json.dumps({
                        "choices": [{"message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 20},
                    }).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def serve():
    servers = []

    def start(answer):
        servers.append(ChatServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_valid_answer_then_cache_hit(serve, tmp_path):
    server = serve(lambda messages: (VALID, 0))
    judge = LLMJudge(server.url, "test-model", cache_dir=tmp_path / "cache")
    first = judge.judge("Heart normal. Right pneumothorax. No effusion.", "Heart normal. Small left effusion.")
    assert [(d.line, d.severity, d.category) for d in first.discrepancies] == [
        (2, Severity.URGENT, ErrorCategory.FALSE_FINDING), (None, Severity.ACTIONABLE_NONURGENT, ErrorCategory.OMISSION)]
    assert (first.urgent_emergent, first.cached, first.attempts) == (1, False, 1)
    assert (first.prompt_tokens, first.completion_tokens, first.judge) == (100, 20, "llm:test-model")
    user = server.requests[0]["messages"][1]["content"]
    assert "1. Heart normal.\n2. Right pneumothorax.\n3. No effusion." in user
    assert server.requests[0]["model"] == "test-model"
    again = judge.judge("Heart normal. Right pneumothorax. No effusion.", "Heart normal. Small left effusion.")
    assert len(server.requests) == 1
    assert again.cached and again.discrepancies == first.discrepancies and again.prompt_tokens == 0
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    # another model name is another cache key
    LLMJudge(server.url, "other-model", cache_dir=tmp_path / "cache").judge(
        "Heart normal. Right pneumothorax. No effusion.", "Heart normal. Small left effusion.")
    assert len(server.requests) == 2


def test_malformed_answers_are_retried(serve, tmp_path):
    replies = iter(["not json at all", '```json\n{"corrections": [{"line": 9}]}\n```', "```json\n" + VALID + "\n```"])
    server = serve(lambda messages: (next(replies), 0))
    judgement = LLMJudge(server.url, "m", cache_dir=tmp_path).judge("A. B. C.", "A.")
    assert judgement.attempts == 3 and len(server.requests) == 3
    assert (judgement.prompt_tokens, judgement.completion_tokens) == (300, 60)
    assert len(judgement.discrepancies) == 2


def test_never_valid_gives_judge_error_and_failure(serve):
    server = serve(lambda messages: ("{broken", 0))
    judge = LLMJudge(server.url, "m", max_attempts=3)
    with pytest.raises(JudgeError, match="no valid answer after 3 attempts.*not JSON") as info:
        judge.judge("A.", "B.")
    assert info.value.failure.attempts == 3 and info.value.failure.prompt_tokens == 300
    assert len(server.requests) == 3


def test_timeout_is_a_failure_not_a_crash(serve):
    server = serve(lambda messages: (VALID, 1.0))
    (result,) = LLMJudge(server.url, "m", max_attempts=2, timeout_s=0.2).judge_many([("A. B.", "C.")])
    assert isinstance(result, JudgeFailure) and "Timeout" in result.reason and result.attempts == 2


def test_concurrency_limit(serve):
    server = serve(lambda messages: ('{"corrections": []}', 0.15))
    with LLMJudge(server.url, "m", max_concurrency=2) as judge:
        results = judge.judge_many([(f"Line {i}.", "Ref.") for i in range(6)])
    assert all(r.discrepancies == () for r in results)
    assert server.max_in_flight == 2


def test_peer_discrepancies_lists_failed_pairs(serve):
    """A reader whose report makes the endpoint answer non-JSON: those pairs are skipped and listed, the
    others are averaged over the peers that were judged."""
    def answer(messages):
        candidate = messages[1]["content"].split("Candidate findings (numbered lines):\n")[1]
        return ("<html>oops</html>", 0) if "Broken" in candidate else (VALID, 0)

    server = serve(answer)
    readings = pd.DataFrame({
        "assignment_id": [1, 2, 3], "reader": ["a", "b", "c"], "case": ["k"] * 3, "arm": ["template", "model", "llm"],
        "final_text": ["One. Two.", "Broken one. Two.", "Three. Four."],
    })
    result = peer_discrepancies(readings, LLMJudge(server.url, "m", max_attempts=2))
    per = result.per_reading.set_index("reader")
    assert list(per.index) == ["a", "c"]
    assert per.loc["a", "n_peers"] == 2 and per.loc["a", "peer_discrepancy"] == 1.0
    assert {s.item for s in result.skipped} == {"reader b x case k (model) vs peer a",
                                                "reader b x case k (model) vs peer c",
                                                "reader b x case k (model)"}
    assert len(result.pairs) == 4


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"corrections": [{"line": 0, "severity": "urgent", "category": "omission"}]}', "line=0"),
        ('{"corrections": [{"line": 1, "severity": "severe", "category": "omission"}]}', "severe"),
        ('{"corrections": [{"line": 1, "severity": "urgent", "category": "typo"}]}', "typo"),
        ('{"fixes": []}', "corrections"),
        ('[1, 2]', "corrections"),
        ('{"corrections": [{"line": 1, "correction": 5, "severity": "urgent", "category": "omission"}]}', "string"),
    ],
)
def test_parse_answer_rejects(content, message):
    with pytest.raises(MalformedAnswer, match=message):
        parse_answer(content, n_lines=2)


def test_bad_options():
    with pytest.raises(ValueError, match="max_attempts=0"):
        LLMJudge("http://127.0.0.1:1/v1", "m", max_attempts=0)
    with pytest.raises(ValueError, match="model"):
        LLMJudge("http://127.0.0.1:1/v1", "")


def test_run_analysis_with_llm_judge_lists_what_the_endpoint_failed(serve, db, tmp_path):
    from analysis import run_analysis
    from analysis.simulation import simulate_study, write_study

    write_study(db, simulate_study(n_readers=3, n_cases=6, seed=4, name="llm study"))

    def answer(messages):
        reference = messages[1]["content"].split("\n\nCandidate")[0]
        return ("Sorry, I cannot help.", 0) if "Cardiomediastinal" in reference else ('{"corrections": []}', 0)

    server = serve(answer)
    with LLMJudge(server.url, "local", cache_dir=tmp_path, max_attempts=2) as judge:
        result = run_analysis(db, "llm study", None, judge, n_resamples=100)
    assert result.judge == "llm:local fineradscore-adapted-1"
    failed = [s for s in result.skipped if s.step == "consistency"]
    pairs = result.tables["peer_pairs"]
    # readers 01 and 02 rewrite in their own words ("Cardiomediastinal ..."): judging against them fails
    assert set(pairs["peer"]) == {"reader00"} and (pairs["urgent_emergent"] == 0).all()
    # 6 cases x 4 ordered pairs with reference reader01/02; reader00's 6 readings lost every peer
    pair_failures = [s for s in failed if " vs peer " in s.item]
    assert len(pair_failures) == 24 and all("not JSON" in s.reason for s in pair_failures)
    assert sorted(s.reason for s in failed if " vs peer " not in s.item) == ["every peer comparison failed"] * 6
    assert result.tables["readings"].set_index("reader").loc["reader00", "peer_discrepancy"].isna().all()
