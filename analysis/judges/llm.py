"""LLM judge over any OpenAI-compatible chat-completions endpoint (GPT-4o as in the paper, or a local server).

Follows FineRadScore (Huang et al., arXiv 2405.20613; paper section 2.4 uses it adapted, with GPT-4o): the
instructions (in our words) define the four clinical severities with examples for an ICU setting and the six
error categories, a line may carry several categories, and worked examples (written by us, as FineRadScore
gives five) precede the pair as earlier user/assistant turns. The candidate findings are given as numbered
lines, the reference as plain text, and the model answers JSON::

    {"corrections": [{"line": 2 | null, "correction": "new text" | null,
                      "severity": "not_actionable" | "actionable_nonurgent" | "urgent" | "emergent",
                      "categories": ["false_finding" | "omission" | "wrong_location" | "wrong_severity" |
                                     "mentions_comparison_absent_from_reference" | "omits_comparison", ...],
                      "comment": "..."}]}

``line`` null means "insert a line"; ``correction`` null means "delete the line".

Parsing is lenient first (:func:`normalise_answer`: prose or a code fence around the JSON, any letter case,
"Urgent error", FineRadScore's own field and category names, a line number as a string, ``[delete]``), then
strict (:class:`AnswerSchema`, pydantic). A malformed answer is retried with the answer and the parse error
added to the conversation (FineRadScore retried up to 5 times); a pair that still fails becomes a
:class:`~analysis.judges.base.JudgeFailure` whose reason names the problem (endpoint timed out, unreachable,
refused, answered something that is not a chat completion, or never gave a valid answer). After
``max_endpoint_failures`` pairs in a row lost to the endpoint itself, the remaining pairs are not sent and fail
with a reason saying so. Valid answers are cached on disk, keyed by model, prompt version and input, so
re-running an analysis asks only for what is missing. Token counts come from the endpoint's ``usage`` field.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Optional

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from analysis.judges.base import (
    Discrepancy,
    ErrorCategory,
    Judgement,
    JudgeError,
    JudgeFailure,
    Severity,
)
from analysis.reports import findings_lines, numbered

PROMPT_VERSION = "fineradscore-adapted-2"

SYSTEM_PROMPT = """\
You are an experienced radiologist checking a candidate chest X-ray findings section against a reference \
findings section written for the same examination. The aim is to judge the candidate, giving priority to \
clinically actionable and urgent findings. The candidate's sentences are numbered; the reference is plain text.

For every candidate line that needs a change, and for every finding the candidate leaves out, give one \
correction:
1. The corrected text: for a line to change, the full new line; for a line to remove, null; for a finding to \
add, a new line with "line": null.
2. The clinical severity of leaving the error uncorrected. Assume the patient is in an intensive care unit.
   - emergent: the finding calls for immediate intervention and strongly affects the patient's health. \
Examples: a tension pneumothorax missed or wrongly reported, free intraperitoneal air, an endotracheal tube \
far out of position (in a mainstem bronchus or the oesophagus).
   - urgent: not acting may harm the patient; the finding needs attention soon though not immediately, and \
left alone it is likely to worsen and lead to an adverse outcome. Examples: a missed pneumonia, an \
endotracheal tube slightly out of position, a pleural effusion reported on the wrong side, pulmonary edema \
reported when there is none (diuretics could be started).
   - actionable_nonurgent: probably no action is needed in the short term, but if never acted on it may \
reasonably affect the patient's health. Examples: a lung nodule that needs follow-up, emphysema, a wrong \
number of nodules.
   - not_actionable: would reasonably not change the patient's management. A reference to a prior study that \
does not exist, with otherwise correct content, belongs here. Examples: a chronic rib fracture, a \
consolidation called "stable" when there is no prior, edema described as asymmetric rather than bilateral.
3. One or more error categories:
   - false_finding: the candidate reports a finding the reference does not have.
   - omission: the candidate leaves out a finding of the reference.
   - wrong_location: the finding's side, location or a device's position is wrong.
   - wrong_severity: the finding's size, extent or grade is wrong.
   - mentions_comparison_absent_from_reference: the candidate compares with a prior study the reference \
does not mention.
   - omits_comparison: the candidate leaves out a change from a prior study that the reference describes.
4. A short comment on why.

Only differences in meaning are errors: "no pleural effusion" and "no pleural effusion is seen" agree, and so \
do findings given in another order or other words. Wrong sizes, grades, sides and locations are errors. \
Remove or correct findings the reference does not support; add findings the candidate misses.

Answer with one JSON object and nothing else:
{"corrections": [{"line": 2, "correction": "corrected line or null", "severity": "urgent", \
"categories": ["omission"], "comment": "why"}]}
Answer {"corrections": []} when the candidate needs no correction."""

#: Worked examples (ours), sent as earlier conversation turns: (candidate lines, reference lines, answer).
FEW_SHOT: tuple[tuple[tuple[str, ...], tuple[str, ...], dict], ...] = (
    (
        ("Heart size is normal.", "Small left pleural effusion.", "No pneumothorax."),
        ("Heart size is normal.", "Small right pleural effusion.",
         "Large right pneumothorax with leftward mediastinal shift."),
        {"corrections": [
            {"line": 2, "correction": "Small right pleural effusion.", "severity": "urgent",
             "categories": ["wrong_location"], "comment": "effusion reported on the wrong side"},
            {"line": 3, "correction": "Large right pneumothorax with leftward mediastinal shift.",
             "severity": "emergent", "categories": ["omission"],
             "comment": "missed tension pneumothorax needs immediate decompression"},
        ]},
    ),
    (
        ("Endotracheal tube tip is 4 cm above the carina.", "Enteric tube courses into the stomach.",
         "Moderate pulmonary edema, worse than on the prior study.", "Lungs otherwise clear."),
        ("Endotracheal tube tip in the right mainstem bronchus.", "Enteric tube tip in the stomach.",
         "Mild pulmonary edema.", "Lungs otherwise clear."),
        {"corrections": [
            {"line": 1, "correction": "Endotracheal tube tip in the right mainstem bronchus.",
             "severity": "emergent", "categories": ["wrong_location"],
             "comment": "mainstem intubation needs the tube pulled back now"},
            {"line": 3, "correction": "Mild pulmonary edema.", "severity": "actionable_nonurgent",
             "categories": ["wrong_severity", "mentions_comparison_absent_from_reference"],
             "comment": "edema overgraded; the reference mentions no prior"},
        ]},
    ),
    (
        ("The lungs are clear.", "Heart size is normal.", "2 cm nodule in the right upper lobe.",
         "No acute osseous abnormality."),
        ("Right lower lobe consolidation concerning for pneumonia.", "Heart size is normal.",
         "Old healed left rib fractures."),
        {"corrections": [
            {"line": 1, "correction": "Right lower lobe consolidation concerning for pneumonia.",
             "severity": "urgent", "categories": ["omission"], "comment": "missed pneumonia"},
            {"line": 3, "correction": None, "severity": "actionable_nonurgent", "categories": ["false_finding"],
             "comment": "a nodule the reference does not report would lead to needless follow-up"},
            {"line": None, "correction": "Old healed left rib fractures.", "severity": "not_actionable",
             "categories": ["omission"], "comment": "chronic fractures do not change management"},
        ]},
    ),
    (
        ("No focal consolidation, pleural effusion or pneumothorax.",
         "The cardiomediastinal silhouette is within normal limits."),
        ("Normal heart size and mediastinal contours.", "Lungs are clear without effusion or pneumothorax."),
        {"corrections": []},
    ),
)

RETRY_PROMPT = ("Your answer could not be used: {problem}. Answer again with only the JSON object in the format "
                "described, with a severity from emergent, urgent, actionable_nonurgent, not_actionable and "
                "categories from the six given.")


class MalformedAnswer(ValueError):
    """The model's answer is not JSON of the expected shape, even after :func:`normalise_answer`."""


def user_prompt(candidate_lines: list[str] | tuple[str, ...], reference_lines: list[str] | tuple[str, ...]) -> str:
    """The user message: reference findings, then the candidate's numbered lines."""
    return (
        "Reference findings:\n" + " ".join(reference_lines)
        + "\n\nCandidate findings (numbered lines):\n" + (numbered(list(candidate_lines)) or "(empty)")
    )


def conversation(candidate_lines: list[str], reference_lines: list[str]) -> list[dict]:
    """Chat messages for one pair: the system instructions, the :data:`FEW_SHOT` examples as user/assistant
    turns, then the pair itself."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for cand, ref, answer in FEW_SHOT:
        messages += [{"role": "user", "content": user_prompt(cand, ref)},
                     {"role": "assistant", "content": json.dumps(answer)}]
    return messages + [{"role": "user", "content": user_prompt(candidate_lines, reference_lines)}]


def _words(value: str) -> str:
    """Lower case, every run of non-letters/digits one space: ``"Actionable non-urgent Error"`` ->
    ``"actionable non urgent error"``."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", value.lower()).split())


_SEVERITY_WORDS: dict[str, Severity] = {
    "emergent": Severity.EMERGENT, "emergency": Severity.EMERGENT,
    "urgent": Severity.URGENT,
    "actionable nonurgent": Severity.ACTIONABLE_NONURGENT, "actionable non urgent": Severity.ACTIONABLE_NONURGENT,
    "nonurgent actionable": Severity.ACTIONABLE_NONURGENT, "non urgent actionable": Severity.ACTIONABLE_NONURGENT,
    "not actionable": Severity.NOT_ACTIONABLE, "non actionable": Severity.NOT_ACTIONABLE,
    "nonactionable": Severity.NOT_ACTIONABLE,
}
#: our category codes, FineRadScore's category names and short forms, as :func:`_words` writes them
_CATEGORY_WORDS: dict[str, ErrorCategory] = {
    **{_words(c.value): c for c in ErrorCategory},
    "false prediction of finding": ErrorCategory.FALSE_FINDING, "false prediction": ErrorCategory.FALSE_FINDING,
    "omission of finding": ErrorCategory.OMISSION,
    "incorrect location position of finding": ErrorCategory.WRONG_LOCATION,
    "incorrect location of finding": ErrorCategory.WRONG_LOCATION,
    "incorrect position of finding": ErrorCategory.WRONG_LOCATION, "wrong position": ErrorCategory.WRONG_LOCATION,
    "incorrect severity of finding": ErrorCategory.WRONG_SEVERITY,
    "mention of comparison that is not present in the reference": ErrorCategory.MENTIONS_COMPARISON,
    "mention of comparison that is not present in the reference impression": ErrorCategory.MENTIONS_COMPARISON,
    "mention of comparison that is not present in the reference report": ErrorCategory.MENTIONS_COMPARISON,
    "mentions comparison": ErrorCategory.MENTIONS_COMPARISON,
    "omission of comparison describing a change from a previous study": ErrorCategory.OMITS_COMPARISON,
    "omission of comparison": ErrorCategory.OMITS_COMPARISON,
}
#: FineRadScore numbers its six categories 1..6 in this order
_CATEGORY_NUMBERS = dict(zip(range(1, 7), ErrorCategory))
_KEY_ALIASES = {"clinical_severity": "severity", "error_category": "categories", "error_categories": "categories",
                "category": "categories", "comments": "comment", "corrections": "correction",
                "line_number": "line", "line_id": "line", "id": "line"}
_LINE = re.compile(r"(?:line\s*)?\[?(\d+)\]?\.?", re.IGNORECASE)
_NO_LINE = {"", "null", "none", "new", "insert", "n/a"}
_DELETE = {"[delete]", "delete", "(delete)", "<delete>"}
_JSON_START = re.compile(r"[{\[]")


def _severity(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    words = _words(value)
    words = re.sub(r"\s*errors?$", "", words)
    return _SEVERITY_WORDS.get(words, value)


def _category(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int):
        return _CATEGORY_NUMBERS.get(value, value)
    if isinstance(value, str):
        return _CATEGORY_WORDS.get(_words(value), value)
    return value


def _line(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        if value.strip().lower() in _NO_LINE:
            return None
        match = _LINE.fullmatch(value.strip())
        return int(match.group(1)) if match else value
    return value


def _item(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    out: dict[str, Any] = {}
    for key, value in item.items():
        key = _words(str(key)).replace(" ", "_")
        out[_KEY_ALIASES.get(key, key)] = value
    if "line" in out:
        out["line"] = _line(out["line"])
    if "severity" in out:
        out["severity"] = _severity(out["severity"])
    if "categories" in out:
        values = out["categories"] if isinstance(out["categories"], list) else [out["categories"]]
        categories: list[Any] = []
        for category in map(_category, values):
            if category not in categories:  # == rather than a hash: a value may be a list or an object
                categories.append(category)
        out["categories"] = categories
    correction = out.get("correction")
    if isinstance(correction, str) and correction.strip().lower() in _DELETE:
        out["correction"] = None
    return out


def _json_values(content: str):
    """Every outermost JSON object or array embedded in ``content``, in order (prose, Markdown fences and other
    text around them skipped; values nested in one already found are not yielded again)."""
    decoder = json.JSONDecoder()
    start = 0
    while (match := _JSON_START.search(content, start)) is not None:
        try:
            value, start = decoder.raw_decode(content, match.start())
        except json.JSONDecodeError:
            start = match.start() + 1
            continue
        yield value


def normalise_answer(content: str) -> Any:
    """The lenient half of parsing: find the answer's JSON and bring it to :class:`AnswerSchema`'s shape.

    Finds the first JSON object with a ``corrections`` key (any case) anywhere in ``content``, else the first
    JSON array of objects (taken as the corrections list) or object keyed by line number (FineRadScore's own
    format: ``{"2": {...}, "None": {...}}``); then, per correction, maps FineRadScore's field names (``clinical severity``, ``error
    category``, ``comments``), any letter case and a trailing "error" of severities ("Urgent error" ->
    ``urgent``), category names, numbers 1-6 or one category given as a string, a line number given as a
    string (``"3"``, ``"line 3"``) or as ``"null"``, and ``[delete]`` as the correction. Values it cannot map
    are left for the schema to reject.

    Raises:
        MalformedAnswer: no JSON object or array in ``content``, or none that holds a corrections list.
    """
    values = list(_json_values(content))
    if not values:
        raise MalformedAnswer("answer is not JSON: no JSON object found in it")
    for value in values:
        keys = {_words(str(k)): k for k in value} if isinstance(value, dict) else {}
        if "corrections" in keys:
            corrections = value[keys["corrections"]]
            return {"corrections": [_item(i) for i in corrections] if isinstance(corrections, list) else corrections}
    for value in values:
        if isinstance(value, list) and all(isinstance(i, dict) for i in value):
            return {"corrections": [_item(i) for i in value]}
        if (isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())
                and all(_LINE.fullmatch(str(k).strip()) or str(k).strip().lower() in _NO_LINE for k in value)):
            return {"corrections": [_item({**item, "line": key}) for key, item in value.items()]}
    raise MalformedAnswer('answer must be a JSON object with a "corrections" list')


class CorrectionSchema(BaseModel):
    """One correction after :func:`normalise_answer` (strict types; ``line`` checked against the candidate's
    line count passed as validation context ``{"n_lines": n}``)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    line: Optional[int]
    correction: Optional[str] = None
    severity: Annotated[Severity, Field(strict=False)]
    categories: Annotated[list[Annotated[ErrorCategory, Field(strict=False)]], Field(min_length=1)]
    comment: str = ""

    @field_validator("line")
    @classmethod
    def _line_in_range(cls, line: Optional[int], info: ValidationInfo) -> Optional[int]:
        n_lines = (info.context or {}).get("n_lines")
        if line is not None and n_lines is not None and not 1 <= line <= n_lines:
            raise ValueError(f"line {line} is not null or in 1..{n_lines}")
        return line


class AnswerSchema(BaseModel):
    """A whole answer: ``{"corrections": [CorrectionSchema, ...]}``."""

    model_config = ConfigDict(strict=True, extra="ignore")

    corrections: list[CorrectionSchema]


def _describe(error: ValidationError) -> str:
    parts = []
    for problem in error.errors()[:3]:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem["loc"]).lstrip(".")
        parts.append(f"{where}: {problem['msg']} (got {problem.get('input')!r})")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_answer(content: str, n_lines: int) -> tuple[Discrepancy, ...]:
    """Turn a model answer into discrepancies: :func:`normalise_answer`, then :class:`AnswerSchema`.

    Args:
        content: the message content.
        n_lines: number of candidate lines; ``line`` must be in ``1..n_lines`` or null.

    Raises:
        MalformedAnswer: no usable JSON, or a correction with a missing or invalid field (the message names the
            field, e.g. ``corrections[0].severity``, and the value given).
    """
    try:
        answer = AnswerSchema.model_validate(normalise_answer(content), context={"n_lines": n_lines})
    except ValidationError as error:
        raise MalformedAnswer(_describe(error)) from error
    return tuple(
        Discrepancy(c.line, c.correction, c.severity, c.categories[0], c.comment,
                    tuple(dict.fromkeys(c.categories)))
        for c in answer.corrections
    )


class _EndpointProblem(Exception):
    """The endpoint failed (not the model's answer); ``final`` when retrying cannot help."""

    def __init__(self, message: str, final: bool = False):
        super().__init__(message)
        self.final = final


class LLMJudge:
    """FineRadScore-style judge calling ``{base_url}/chat/completions`` (see module docstring).

    Args:
        base_url: endpoint root, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``.
        model: model name sent in the request and part of the cache key (``gpt-4o`` in the paper).
        cache_dir: folder for cached answers (one JSON file per input); None disables the cache.
        api_key: bearer token; defaults to the ``OPENAI_API_KEY`` environment variable, may be empty for a
            local server.
        max_attempts: calls per pair before giving up on malformed answers or endpoint errors (>= 1).
        max_concurrency: requests in flight at once in :meth:`judge_many` (>= 1).
        timeout_s: per-request timeout in seconds (> 0).
        json_mode: send ``response_format={"type": "json_object"}`` (turned off by itself when the server
            refuses it with an HTTP 400 naming ``response_format``).
        max_endpoint_failures: after this many pairs in a row lost to the endpoint (timeouts, connection or
            HTTP errors, answers that are not chat completions), the remaining pairs are not sent (>= 1).

    Raises:
        ValueError: ``max_attempts``, ``max_concurrency`` or ``max_endpoint_failures`` below 1, ``timeout_s``
            not positive, an empty ``model``, or a ``base_url`` that is not an http(s) URL with a host.
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
        max_endpoint_failures: int = 5,
    ):
        if min(max_attempts, max_concurrency, max_endpoint_failures) < 1:
            raise ValueError(f"max_attempts={max_attempts}, max_concurrency={max_concurrency} and "
                             f"max_endpoint_failures={max_endpoint_failures} must be >= 1")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s} must be positive")
        if not model:
            raise ValueError("model must be a non-empty model name")
        try:
            url = httpx.URL(base_url)
        except (httpx.InvalidURL, TypeError) as error:
            raise ValueError(f"base_url {base_url!r} is not a URL: {error}") from error
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url {base_url!r} must be an http:// or https:// URL with a host, "
                             "e.g. http://127.0.0.1:8000/v1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"llm:{model}"
        self.version = PROMPT_VERSION
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.max_attempts = max_attempts
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.json_mode = json_mode
        self.max_endpoint_failures = max_endpoint_failures
        self._endpoint_failures = 0
        self._last_endpoint_problem = ""
        self._lock = threading.Lock()
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

    def _cached(self, key: str, n_lines: int) -> Optional[tuple[Discrepancy, ...]]:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key}.json"
        if not path.is_file():
            return None
        try:
            return parse_answer(json.loads(path.read_text())["content"], n_lines)
        except (ValueError, KeyError, TypeError):
            return None  # an unreadable cache entry is asked again and overwritten

    def _store(self, key: str, content: str) -> None:
        if self.cache_dir is None:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=self.cache_dir, delete=False, suffix=".tmp") as handle:
            json.dump({"model": self.model, "prompt_version": PROMPT_VERSION, "content": content}, handle)
        os.replace(handle.name, self.cache_dir / f"{key}.json")

    def _post(self, body: dict) -> httpx.Response:
        try:
            return self._client.post(f"{self.base_url}/chat/completions", json=body)
        except httpx.TimeoutException as error:
            raise _EndpointProblem(f"endpoint timed out (no answer within {self.timeout_s:g} s)") from error
        except httpx.TransportError as error:
            raise _EndpointProblem(f"endpoint unreachable ({type(error).__name__}: {error})") from error

    def _complete(self, messages: list[dict]) -> tuple[str, int, int]:
        """One chat completion: (content, prompt tokens, completion tokens). Raises _EndpointProblem.

        A server that refuses ``response_format`` (HTTP 400 naming it) is asked again without it, and JSON mode
        stays off for this judge: the instructions ask for JSON anyway."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0}
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        response = self._post(body)
        if response.status_code == 400 and "response_format" in body and "response_format" in response.text:
            self.json_mode = False
            del body["response_format"]
            response = self._post(body)
        if response.status_code >= 400:
            final = response.status_code < 500 and response.status_code not in (408, 429)
            raise _EndpointProblem(f"endpoint answered HTTP {response.status_code}: {response.text[:200]!r}", final)
        try:
            data = response.json()
            content = data["choices"][0]["message"]["content"]
            if not isinstance(content, str):
                raise TypeError(f"message content is {type(content).__name__}")
            usage = data.get("usage") or {}
            return content, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
            raise _EndpointProblem(f"endpoint answer is not a chat completion ({type(error).__name__}: {error}; "
                                   f"body starts {response.text[:80]!r})") from error

    def _count_endpoint_failure(self, problem: Optional[str]) -> None:
        with self._lock:
            if problem is None:
                self._endpoint_failures = 0
            else:
                self._endpoint_failures += 1
                self._last_endpoint_problem = problem

    def judge(self, candidate: str, reference: str) -> Judgement:
        """Ask the endpoint for the corrections ``candidate`` needs; use the cache when it has the answer.

        A malformed answer is sent back with the parse error for another try; endpoint errors are retried
        with the same messages (an HTTP 4xx other than 408/429 is not retried).

        Raises:
            JudgeError: no valid answer after ``max_attempts`` calls, a refused request, or the endpoint
                already failed ``max_endpoint_failures`` pairs in a row; ``error.failure`` holds the reason
                (naming the problem, e.g. ``endpoint timed out``), attempts and tokens spent.
        """
        cand_lines, ref_lines = findings_lines(candidate), findings_lines(reference)
        key = self.cache_key(cand_lines, ref_lines)
        hit = self._cached(key, len(cand_lines))
        if hit is not None:
            return Judgement(hit, self.name, self.version, cached=True)
        with self._lock:
            if self._endpoint_failures >= self.max_endpoint_failures:
                raise JudgeError(JudgeFailure(
                    f"{self.name}: not sent: the endpoint failed {self._endpoint_failures} comparisons in a row "
                    f"(last: {self._last_endpoint_problem})"))
        messages = conversation(cand_lines, ref_lines)
        prompt_tokens = completion_tokens = attempts = 0
        problem, endpoint_problem = "", None
        while attempts < self.max_attempts:
            attempts += 1
            try:
                content, used_prompt, used_completion = self._complete(messages)
            except _EndpointProblem as error:
                problem = endpoint_problem = str(error)
                if error.final:
                    break
                continue
            endpoint_problem = None
            prompt_tokens += used_prompt
            completion_tokens += used_completion
            try:
                discrepancies = parse_answer(content, len(cand_lines))
            except MalformedAnswer as error:
                problem = f"malformed answer: {error}"
                messages = [*messages, {"role": "assistant", "content": content},
                            {"role": "user", "content": RETRY_PROMPT.format(problem=error)}]
                continue
            self._count_endpoint_failure(None)
            self._store(key, content)
            return Judgement(discrepancies, self.name, self.version, prompt_tokens, completion_tokens,
                             cached=False, attempts=attempts)
        self._count_endpoint_failure(endpoint_problem)
        reason = f"{self.name}: no valid answer after {attempts} attempt(s); last: {problem}"
        raise JudgeError(JudgeFailure(reason, attempts, prompt_tokens, completion_tokens))

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
