"""A study's post-report questions: what a reader answers after each report (grand-challenge Reader Studies parity).

A question set is an ordered list of definitions (stored as JSON in ``ReaderStudy.questions``; each answer stores
the definition it was given on, ``QuestionAnswer.definition``). A definition is a dict with

- ``code``: stable identifier (letters, digits, ``_``), the column name in the reads export;
- ``kind``: ``likert`` (``min``, ``max`` integers, optional ``labels``, one per value), ``single_choice`` or
  ``multiple_choice`` (``choices``: list of texts), ``yes_no``, ``number`` (optional ``unit``, ``min``, ``max``),
  ``text`` (optional ``max_chars``);
- ``question``: the text the reader sees; ``required`` (default true).

Answers: likert int, single_choice one of the choices, multiple_choice a list of choices, yes_no bool, number float,
text str. The default set is the paper's two Likert items, confidence and mental demand (section 4.3, "User
study"); the paper's analysis reads them by these codes.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from studyapp.db.models import DEFAULT_QUESTIONS, Assignment, QuestionAnswer, ReaderStudy, Report
from studyapp.services import audit
from studyapp.services.errors import InvalidInput
from studyapp.services.reads_columns import READS_COLUMNS

KINDS = ("likert", "single_choice", "multiple_choice", "yes_no", "number", "text")
#: kinds whose answers are categories, summarised by arm in the analysis
CATEGORICAL_KINDS = ("likert", "single_choice", "multiple_choice", "yes_no")
MAX_TEXT_CHARS = 10_000
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_KEYS = {"code", "kind", "question", "required", "min", "max", "labels", "choices", "unit", "max_chars"}


def _texts(value, what: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidInput(f"{what} must be a non-empty list of non-empty texts")
    texts = [v.strip() for v in value]
    if len(set(texts)) != len(texts):
        raise InvalidInput(f"{what} repeat a value")
    return texts


def _number(value, what: str, integer: bool = False):
    ok = isinstance(value, int) if integer else isinstance(value, (int, float)) and math.isfinite(value)
    if isinstance(value, bool) or not ok:
        raise InvalidInput(f"{what} must be {'an integer' if integer else 'a number'}, got {value!r}")
    return value


def normalize_question(raw: Any, index: int) -> dict:
    """One checked definition in canonical form (see the module docstring).

    Raises:
        InvalidInput: naming the question (position ``index``, 1-based) and the problem.
    """
    where = f"question {index}"
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: must be an object with code, kind and question")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown field(s) {unknown}; allowed: {sorted(_KEYS)}")
    code = raw.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        raise InvalidInput(f"{where}: code {code!r} must start with a letter and use only letters, digits and _")
    where = f"question {index} ({code})"
    kind = raw.get("kind")
    if kind not in KINDS:
        raise InvalidInput(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    text = raw.get("question")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"{where}: the question text is missing")
    required = raw.get("required", True)
    if not isinstance(required, bool):
        raise InvalidInput(f"{where}: required must be true or false")
    out = {"code": code, "kind": kind, "question": text.strip(), "required": required}
    if kind == "likert":
        low, high = (_number(raw.get(k), f"{where}: {k}", integer=True) for k in ("min", "max"))
        if high <= low:
            raise InvalidInput(f"{where}: max ({high}) must be greater than min ({low})")
        out.update(min=low, max=high)
        if raw.get("labels") is not None:
            labels = _texts(raw["labels"], f"{where}: labels")
            if len(labels) != high - low + 1:
                raise InvalidInput(f"{where}: {len(labels)} labels for the {high - low + 1} values {low}..{high}")
            out["labels"] = labels
    elif kind in ("single_choice", "multiple_choice"):
        out["choices"] = _texts(raw.get("choices"), f"{where}: choices")
    elif kind == "number":
        if raw.get("unit") is not None:
            if not isinstance(raw["unit"], str):
                raise InvalidInput(f"{where}: unit must be text")
            out["unit"] = raw["unit"].strip()
        for key in ("min", "max"):
            if raw.get(key) is not None:
                out[key] = _number(raw[key], f"{where}: {key}")
        if "min" in out and "max" in out and out["max"] < out["min"]:
            raise InvalidInput(f"{where}: max is below min")
    elif kind == "text":
        out["max_chars"] = _number(raw.get("max_chars", MAX_TEXT_CHARS), f"{where}: max_chars", integer=True)
    extra = sorted(k for k in set(raw) - {"code", "kind", "question", "required"} if k not in out)
    if extra:
        raise InvalidInput(f"{where}: field(s) {extra} do not apply to a {kind} question")
    return out


def normalize_questions(raw: Any) -> list[dict]:
    """Check a whole question set (a list of definitions, or ``{"questions": [...]}``); returns canonical dicts.

    Raises:
        InvalidInput: not a non-empty list, a bad definition, or a repeated code.
    """
    if isinstance(raw, dict) and set(raw) == {"questions"}:
        raw = raw["questions"]
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("a question set is a non-empty list of questions")
    questions = [normalize_question(q, i) for i, q in enumerate(raw, start=1)]
    codes = [q["code"] for q in questions]
    taken = sorted(set(codes) & set(READS_COLUMNS))
    if taken:
        raise InvalidInput(f"question code(s) {taken} name columns of the reads export; choose other codes")
    repeated = sorted({c for c in codes if codes.count(c) > 1})
    if repeated:
        raise InvalidInput(f"question code(s) used twice: {repeated}")
    return questions


def read_questions_file(path: str | Path) -> list[dict]:
    """Read and check a question set from a ``.json`` or ``.yaml``/``.yml`` file.

    Raises:
        InvalidInput: an unparsable file, another extension, or an invalid set (see :func:`normalize_questions`).
        OSError: the file cannot be read.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            raw = yaml.safe_load(text)
        else:
            raise InvalidInput(f"{path.name}: questions are read from .json, .yaml or .yml files")
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise InvalidInput(f"{path.name}: not valid {path.suffix[1:].upper()}: {error}") from None
    try:
        return normalize_questions(raw)
    except InvalidInput as error:
        raise InvalidInput(f"{path.name}: {error}") from None


def set_questions(session: Session, study: ReaderStudy, questions: list[dict]) -> list[dict]:
    """Replace the study's question set (checked with :func:`normalize_questions`). Does not commit.

    Raises:
        InvalidInput: an invalid set, or a reader has already answered questions in this study (answers must keep
            meaning what they were asked as).
    """
    questions = normalize_questions(questions)
    answered = session.scalar(
        select(func.count(func.distinct(QuestionAnswer.report_id))).join(Report).join(Assignment).where(Assignment.study_id == study.id))
    if answered:
        raise InvalidInput(f"study {study.name!r} already has {answered} answered report(s): its questions cannot change "
                           "once a reader has answered")
    study.questions = questions
    session.flush()
    audit.record(session, "questions_set", study_id=study.id, codes=[q["code"] for q in questions])
    return questions


def default_questions() -> list[dict]:
    """A fresh copy of the paper's two Likert items (confidence, mental demand)."""
    return [dict(q) for q in DEFAULT_QUESTIONS]


def _check_answer(q: dict, value: Any) -> Any:
    where = f"{q['question']}"
    kind = q["kind"]
    if kind == "likert":
        if isinstance(value, bool) or not isinstance(value, int) or not q["min"] <= value <= q["max"]:
            raise InvalidInput(f"{where}: {value!r} is not on the scale {q['min']}..{q['max']}")
    elif kind == "single_choice":
        if value not in q["choices"]:
            raise InvalidInput(f"{where}: {value!r} is not one of the choices")
    elif kind == "multiple_choice":
        if not isinstance(value, list) or any(v not in q["choices"] for v in value) or len(set(value)) != len(value):
            raise InvalidInput(f"{where}: {value!r} is not a selection of the choices")
        value = [c for c in q["choices"] if c in value]  # stored in the definition's order
    elif kind == "yes_no":
        if not isinstance(value, bool):
            raise InvalidInput(f"{where}: answer yes or no")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidInput(f"{where}: {value!r} is not a number")
        if ("min" in q and value < q["min"]) or ("max" in q and value > q["max"]):
            raise InvalidInput(f"{where}: {value:g} is outside {q.get('min', '')}..{q.get('max', '')}")
        value = float(value)
    elif kind == "text":
        if not isinstance(value, str) or "\x00" in value:
            raise InvalidInput(f"{where}: the answer must be text")
        if len(value) > q["max_chars"]:
            raise InvalidInput(f"{where}: {len(value):,} characters; the limit is {q['max_chars']:,}")
    return value


def _is_empty(value: Any) -> bool:
    return value is None or value == [] or (isinstance(value, str) and not value.strip())


def validate_answers(questions: list[dict], answers: dict[str, Any]) -> dict[str, Any]:
    """Check answers against a question set; returns the answers to store (empty optional ones left out).

    Raises:
        InvalidInput: an unanswered required question (all named, in order), an unknown code, or a value that does
            not fit its question.
    """
    if not isinstance(answers, dict):
        raise InvalidInput("the answers to the questions are missing")
    by_code = {q["code"]: q for q in questions}
    unknown = sorted(set(answers) - set(by_code))
    if unknown:
        raise InvalidInput(f"unknown question(s): {unknown}")
    missing = [q["question"] for q in questions if q["required"] and _is_empty(answers.get(q["code"]))]
    if missing:
        raise InvalidInput("Please answer: " + " ".join(missing))
    return {q["code"]: _check_answer(q, answers[q["code"]]) for q in questions
            if not _is_empty(answers.get(q["code"]))}


def export_value(value: Any) -> Any:
    """An answer as one CSV cell: a multiple choice as ``"a; b"``, yes/no as ``"yes"``/``"no"``, others as they are."""
    if isinstance(value, list):
        return "; ".join(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def describe(question: dict) -> str:
    """One line naming a question's kind, scale or choices, unit and whether it is required (coordinator views)."""
    kind = question["kind"]
    if kind == "likert":
        detail = f"Likert {question['min']}-{question['max']}" + (
            f": {', '.join(question['labels'])}" if question.get("labels") else "")
    elif kind in ("single_choice", "multiple_choice"):
        detail = f"{kind.replace('_', ' ')}: {', '.join(question['choices'])}"
    elif kind == "number":
        detail = "number" + (f" ({question['unit']})" if question.get("unit") else "")
    else:
        detail = kind.replace("_", "/") if kind == "yes_no" else "free text"
    return f"{question['question']} [{detail}; {'required' if question['required'] else 'optional'}]"
