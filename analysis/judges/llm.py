"""LLM judge over any OpenAI-compatible chat-completions endpoint (GPT-4o as in the paper, or a local server).

The prompt follows FineRadScore (Huang et al., arXiv 2405.20613): the candidate findings are given as numbered
lines, the reference as plain text, and the model answers JSON::

    {"corrections": [{"line": 2 | null, "correction": "new text" | null,
                      "severity": "not_actionable" | "actionable_nonurgent" | "urgent" | "emergent",
                      "category": "false_finding" | "omission" | "wrong_location" | "wrong_severity" |
                                  "mentions_comparison_absent_from_reference" | "omits_comparison",
                      "comment": "..."}]}

``line`` null means "insert a line"; ``correction`` null means "delete the line". Answers that are not valid
JSON of that shape are retried (FineRadScore retried up to 5 times). Valid answers are cached on disk, keyed by
model, prompt version and input, so re-running an analysis costs nothing. Token counts come from the
endpoint's ``usage`` field.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import httpx

from analysis.judges.base import (
    Discrepancy,
    ErrorCategory,
    Judgement,
    JudgeError,
    JudgeFailure,
    Severity,
)
from analysis.reports import findings_lines, numbered

PROMPT_VERSION = "fineradscore-adapted-1"

SYSTEM_PROMPT = (
    "You are an expert radiologist reviewing a candidate chest X-ray findings section against a reference "
    "findings section written for the same study. List every correction the candidate needs so that it "
    "agrees with the reference. For each correction give: line (the candidate line number to replace or "
    "delete, or null to insert a new line), correction (the new line text, or null to delete the line), "
    "severity of leaving it uncorrected in an ICU setting (emergent: needs immediate intervention, e.g. tension "
    "pneumothorax, pneumoperitoneum, significantly malpositioned endotracheal tube; urgent: failure to act may "
    "harm, needs attention soon but not immediately, e.g. missed pneumonia, mildly malpositioned tube; "
    "actionable_nonurgent; not_actionable), category (false_finding, omission, wrong_location, wrong_severity, "
    "mentions_comparison_absent_from_reference, omits_comparison) and a short comment. Ignore differences in "
    "wording that do not change meaning. Answer with JSON only: "
    '{"corrections": [{"line": 1, "correction": "...", "severity": "...", "category": "...", "comment": "..."}]}'
    ' and {"corrections": []} when none are needed.'
)

_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.IGNORECASE)


class MalformedAnswer(ValueError):
    """The model's answer is not JSON of the expected shape."""


def user_prompt(candidate_lines: list[str], reference_lines: list[str]) -> str:
    """The user message: reference findings, then the candidate's numbered lines."""
    return (
        "Reference findings:\n" + " ".join(reference_lines)
        + "\n\nCandidate findings (numbered lines):\n" + (numbered(candidate_lines) or "(empty)")
    )


def parse_answer(content: str, n_lines: int) -> tuple[Discrepancy, ...]:
    """Validate a model answer and turn it into discrepancies.

    Args:
        content: the message content (JSON, optionally inside a Markdown code fence).
        n_lines: number of candidate lines; ``line`` must be in ``1..n_lines`` or null.

    Raises:
        MalformedAnswer: not JSON, not an object with a ``corrections`` list, or an item with a missing or
            invalid field (the message names it).
    """
    try:
        answer = json.loads(_FENCE.sub("", content))
    except json.JSONDecodeError as error:
        raise MalformedAnswer(f"answer is not JSON: {error}") from error
    if not isinstance(answer, dict) or not isinstance(answer.get("corrections"), list):
        raise MalformedAnswer('answer must be an object with a "corrections" list')
    out = []
    for index, item in enumerate(answer["corrections"]):
        if not isinstance(item, dict):
            raise MalformedAnswer(f"corrections[{index}] is not an object")
        line = item.get("line")
        if line is not None and (not isinstance(line, int) or isinstance(line, bool) or not 1 <= line <= n_lines):
            raise MalformedAnswer(f"corrections[{index}].line={line!r} is not null or in 1..{n_lines}")
        correction = item.get("correction")
        if correction is not None and not isinstance(correction, str):
            raise MalformedAnswer(f"corrections[{index}].correction must be a string or null")
        try:
            severity = Severity(item.get("severity"))
            category = ErrorCategory(item.get("category"))
        except ValueError as error:
            raise MalformedAnswer(f"corrections[{index}]: {error}") from error
        out.append(Discrepancy(line, correction, severity, category, str(item.get("comment", ""))))
    return tuple(out)


class LLMJudge:
    """FineRadScore-style judge calling ``{base_url}/chat/completions``.

    Args:
        base_url: endpoint root, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``.
        model: model name sent in the request and part of the cache key (``gpt-4o`` in the paper).
        cache_dir: folder for cached answers (one JSON file per input); None disables the cache.
        api_key: bearer token; defaults to the ``OPENAI_API_KEY`` environment variable, may be empty for a
            local server.
        max_attempts: calls per pair before giving up on malformed answers or transport errors (>= 1).
        max_concurrency: requests in flight at once in :meth:`judge_many` (>= 1).
        timeout_s: per-request timeout in seconds.
        json_mode: send ``response_format={"type": "json_object"}``.

    Raises:
        ValueError: ``max_attempts`` or ``max_concurrency`` below 1, or an empty ``model``.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        cache_dir: Optional[Path] = None,
        api_key: Optional[str] = None,
        max_attempts: int = 5,
        max_concurrency: int = 4,
        timeout_s: float = 60.0,
        json_mode: bool = True,
    ):
        if max_attempts < 1 or max_concurrency < 1:
            raise ValueError(f"max_attempts={max_attempts} and max_concurrency={max_concurrency} must be >= 1")
        if not model:
            raise ValueError("model must be a non-empty model name")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"llm:{model}"
        self.version = PROMPT_VERSION
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.max_attempts = max_attempts
        self.max_concurrency = max_concurrency
        self.json_mode = json_mode
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> LLMJudge:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def cache_key(self, candidate_lines: list[str], reference_lines: list[str]) -> str:
        """sha256 hex digest of model, prompt version and both inputs."""
        payload = json.dumps([self.model, PROMPT_VERSION, candidate_lines, reference_lines])
        return hashlib.sha256(payload.encode()).hexdigest()

    def _cached(self, key: str) -> Optional[dict]:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def _store(self, key: str, content: str) -> None:
        if self.cache_dir is None:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=self.cache_dir, delete=False, suffix=".tmp") as handle:
            json.dump({"model": self.model, "prompt_version": PROMPT_VERSION, "content": content}, handle)
        os.replace(handle.name, self.cache_dir / f"{key}.json")

    def judge(self, candidate: str, reference: str) -> Judgement:
        """Ask the endpoint for the corrections ``candidate`` needs; use the cache when it has the answer.

        Raises:
            JudgeError: no valid answer after ``max_attempts`` calls (the message gives the last problem,
                e.g. a timeout or the JSON error), with attempts and tokens spent in ``error.failure``.
        """
        cand_lines, ref_lines = findings_lines(candidate), findings_lines(reference)
        key = self.cache_key(cand_lines, ref_lines)
        hit = self._cached(key)
        if hit is not None:
            return Judgement(parse_answer(hit["content"], len(cand_lines)), self.name, self.version, cached=True)
        messages = [{"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": user_prompt(cand_lines, ref_lines)}]
        body = {"model": self.model, "messages": messages, "temperature": 0}
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        prompt_tokens = completion_tokens = 0
        problem = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._client.post(f"{self.base_url}/chat/completions", json=body)
                response.raise_for_status()
                data = response.json()
                usage = data.get("usage") or {}
                prompt_tokens += int(usage.get("prompt_tokens", 0))
                completion_tokens += int(usage.get("completion_tokens", 0))
                content = data["choices"][0]["message"]["content"]
                discrepancies = parse_answer(content, len(cand_lines))
            except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as error:
                problem = f"{type(error).__name__}: {error}"
                continue
            self._store(key, content)
            return Judgement(discrepancies, self.name, self.version, prompt_tokens, completion_tokens,
                             cached=False, attempts=attempt)
        reason = f"{self.name}: no valid answer after {self.max_attempts} attempts; last: {problem}"
        raise JudgeError(JudgeFailure(reason, self.max_attempts, prompt_tokens, completion_tokens))

    def _judge_or_failure(self, pair: tuple[str, str]) -> Judgement | JudgeFailure:
        try:
            return self.judge(*pair)
        except JudgeError as error:
            return error.failure

    def judge_many(self, pairs: list[tuple[str, str]]) -> list[Judgement | JudgeFailure]:
        """Judge all pairs with at most ``max_concurrency`` requests in flight; failures come back as
        :class:`JudgeFailure` in their pair's place."""
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(self._judge_or_failure, pairs))
