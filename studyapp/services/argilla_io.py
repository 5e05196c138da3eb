"""Argilla interop for comparison sets (the paper ran its evaluation on Argilla, section 4.3).

The built-in comparison screen is the default; this module writes a set as an Argilla 2.x dataset folder exactly as
``argilla.Dataset.to_disk`` writes it (``.argilla/dataset.json``, ``.argilla/settings.json``, ``records.json``;
structure taken from the argilla 2.8 SDK source: ``datasets/_io/_disk.py``, ``Settings.serialize``,
``Record.to_dict``), pushes it to a server with the SDK's own ``Dataset.from_disk`` when a URL and API key are
given, and imports responses back.

One Argilla record per reader x pair (record id ``cmp-<assignment id>``): its fields are that reader's blinded view
(context, Report A, Report B in the stored side order); the terms metadata ``reader`` lets each reader filter their
own records. Questions: label question ``preference`` (``A`` / ``B`` / ``equivalent``) and text question
``comments``, one comment per line in the form ``<A|B|-> <score> ["quoted passage"][: comment]``, e.g.
``B 1 "no effusion": misses the left effusion``; the passage is located in that report to store its offsets.

The ``argilla`` SDK is optional and imported only by :func:`push_to_argilla` / :func:`pull_from_argilla`.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from studyapp.db.comparisons import (
    CHOICE_EQUIVALENT,
    COMMENT_SCORES,
    SIDE_A,
    SIDE_B,
    SIDES,
    ComparisonComment,
    ComparisonJudgement,
)
from studyapp.db.models import User
from studyapp.services.comparison_results import set_assignments, submitted_reader_ids
from studyapp.services.comparisons import get_comparison_set, require_coordinator, side_texts
from studyapp.services.judging import clinical_context, submit_comparison_set
from studyapp.services.errors import InvalidInput, StudyError

RECORD_PREFIX = "cmp-"
QUESTION_PREFERENCE = "preference"
QUESTION_COMMENTS = "comments"
PREFERENCE_LABELS = {
    SIDE_A: "Report A is better",
    SIDE_B: "Report B is better",
    CHOICE_EQUIVALENT: "Clinically equivalent",
}
GUIDELINES = (
    "You see the clinical context and two reports of the same study, Report A and Report B, in random order. "
    "Choose which report is better, or whether they are clinically equivalent. Comment on specific parts, one "
    "comment per line: side (A, B, or - for both), score, optionally a quoted passage, then your comment. Scores: "
    + "; ".join(f"{score} = {meaning}" for score, meaning in COMMENT_SCORES.items())
    + '. Example: B 1 "no pleural effusion": misses the left effusion'
)
COMMENTS_DESCRIPTION = 'One per line: <A|B|-> <1|2|4|5> ["quoted passage"][: comment]'
_COMMENT_LINE = re.compile(r'^(?P<side>[AB-])\s+(?P<score>\d+)(?:\s+"(?P<passage>[^"]+)")?\s*(?::\s*(?P<text>.*))?$')


def _text_field(name: str, title: str) -> dict:
    return {
        "id": None, "inserted_at": None, "updated_at": None, "name": name,
        "settings": {"type": "text", "use_markdown": False},
        "title": title, "required": True, "description": None, "dataset_id": None, "type": "text",
    }


def argilla_settings() -> dict:
    """The dataset settings as ``argilla.Settings.serialize()`` (SDK 2.8) returns them.

    Fields ``context``, ``report_a``, ``report_b``; a label question ``preference`` with the three choices; an
    optional text question ``comments``; terms metadata ``reader``; overlap distribution, one submission per record.
    """
    return {
        "guidelines": GUIDELINES,
        "questions": [
            {
                "id": None, "inserted_at": None, "updated_at": None, "name": QUESTION_PREFERENCE,
                "settings": {
                    "type": "label_selection",
                    "options": [{"text": text, "value": value} for value, text in PREFERENCE_LABELS.items()],
                    "visible_options": len(PREFERENCE_LABELS),
                },
                "title": "Which report is better?", "description": None, "required": True, "dataset_id": None,
                "type": "label_selection",
            },
            {
                "id": None, "inserted_at": None, "updated_at": None, "name": QUESTION_COMMENTS,
                "settings": {"type": "text", "use_markdown": False},
                "title": "Comments", "description": COMMENTS_DESCRIPTION, "required": False, "dataset_id": None,
                "type": "text",
            },
        ],
        "fields": [
            _text_field("context", "Clinical context"),
            _text_field("report_a", "Report A"),
            _text_field("report_b", "Report B"),
        ],
        "vectors": [],
        "metadata": [
            {
                "id": None, "inserted_at": None, "updated_at": None, "name": "reader",
                "settings": {"visible_for_annotators": True, "type": "terms", "values": None},
                "title": "reader", "visible_for_annotators": True, "dataset_id": None,
            }
        ],
        "allow_extra_metadata": False,
        "distribution": {"strategy": "overlap", "min_submitted": 1},
        "mapping": None,
    }


def _dataset_model(name: str) -> dict:
    """``DatasetModel.model_dump()`` of a dataset not yet on a server (``from_disk`` sets the workspace)."""
    return {
        "id": None, "inserted_at": None, "updated_at": None, "name": name, "status": "draft", "guidelines": None,
        "allow_extra_metadata": True, "distribution": None, "workspace_id": None, "last_activity_at": None,
    }


def export_argilla_dataset(
    session: Session, coordinator: User, set_id: int, path: str | Path, dataset_name: str | None = None
) -> Path:
    """Write set ``set_id`` as an Argilla dataset folder (the layout of ``argilla.Dataset.to_disk``).

    Args:
        path: an empty or not yet existing folder.
        dataset_name: default ``comparison-<set id>`` (the set's own name stays in the platform).

    Returns:
        ``path``, holding ``.argilla/dataset.json``, ``.argilla/settings.json`` and ``records.json`` (one record
        per reader x pair, no responses).

    Raises:
        PermissionDenied: not a coordinator. NotFound: no such set.
        InvalidInput: the set has no reader assignments, or ``path`` is a non-empty folder or a file.
    """
    require_coordinator(coordinator)
    get_comparison_set(session, set_id)
    assignments = set_assignments(session, set_id)
    if not assignments:
        raise InvalidInput(f"comparison set {set_id} has no reader assignments to export")
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidInput(f"{path} is not an empty folder; Argilla datasets are written to a new folder")
    (path / ".argilla").mkdir(parents=True, exist_ok=True)
    records = []
    for assignment in assignments:
        text_a, text_b = side_texts(assignment)
        records.append(
            {
                "id": f"{RECORD_PREFIX}{assignment.id}",
                "fields": {"context": clinical_context(assignment.pair.case), "report_a": text_a, "report_b": text_b},
                "metadata": {"reader": assignment.reader.username},
                "suggestions": {},
                "responses": {},
                "vectors": {},
                "status": "pending",
                "_server_id": None,
            }
        )
    (path / ".argilla" / "dataset.json").write_text(json.dumps(_dataset_model(dataset_name or f"comparison-{set_id}")))
    (path / ".argilla" / "settings.json").write_text(json.dumps(argilla_settings()))
    (path / "records.json").write_text(json.dumps(records))
    return path


@dataclass(frozen=True)
class ParsedComment:
    """One comment line of the ``comments`` text question, located in its report."""

    side: str | None
    score: int
    start: int | None
    end: int | None
    passage: str
    text: str


def parse_comment_lines(value: str, text_a: str, text_b: str) -> list[ParsedComment]:
    """Parse the ``comments`` answer: lines ``<A|B|-> <score> ["quoted passage"][: comment]``; blank lines skipped.

    A quoted passage is located (first occurrence) in that side's report to give half-open character offsets.

    Raises:
        InvalidInput: a line that does not follow the form, a score outside {1, 2, 4, 5}, a passage with side
            ``-``, or a passage not found in the report.
    """
    comments = []
    for number, line in enumerate(value.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        match = _COMMENT_LINE.match(line)
        if match is None:
            raise InvalidInput(f"comment line {number} {line!r} is not '<A|B|-> <score> [\"passage\"][: comment]'")
        score = int(match["score"])
        if score not in COMMENT_SCORES:
            raise InvalidInput(f"comment line {number}: score {score} is not one of 1, 2, 4, 5")
        side = None if match["side"] == "-" else match["side"]
        passage = match["passage"] or ""
        start = end = None
        if passage:
            if side is None:
                raise InvalidInput(f"comment line {number}: a quoted passage needs side A or B")
            report = (text_a, text_b)[SIDES.index(side)]
            start = report.find(passage)
            if start < 0:
                raise InvalidInput(f"comment line {number}: passage {passage!r} is not in Report {side}")
            end = start + len(passage)
        comments.append(ParsedComment(side, score, start, end, passage, (match["text"] or "").strip()))
    return comments


def format_comment_line(comment: ParsedComment) -> str:
    """The line :func:`parse_comment_lines` reads back into ``comment`` (the passage quoted, if any)."""
    passage = f' "{comment.passage}"' if comment.passage else ""
    text = f": {comment.text}" if comment.text else ""
    return f"{comment.side or '-'} {comment.score}{passage}{text}"


def _single_value(record_id: str, responses: dict, question: str):
    answers = responses.get(question) or []
    users = {answer.get("user_id") for answer in answers}
    if len(users) > 1:
        raise InvalidInput(f"record {record_id}: {len(users)} users answered {question!r}; expected one reader")
    return answers[0]["value"] if answers else None


@dataclass(frozen=True)
class ArgillaImport:
    """What :func:`import_argilla_responses` stored: judgements set, comments added, readers submitted."""

    judgements: int
    comments: int
    submitted_readers: tuple[str, ...]


def import_argilla_responses(
    session: Session, coordinator: User, set_id: int, path: str | Path, *, submit: bool = True
) -> ArgillaImport:
    """Store responses from an Argilla records file, mapping A/B back through the stored side order.

    Args:
        path: ``records.json`` as ``Dataset.records.to_json`` / ``to_disk`` writes it, or the folder holding it.
        submit: submit the set for every reader whose pairs are then all judged.

    Records without a ``preference`` answer are skipped (``records.json`` carries no response status: export
    only submitted answers, as :func:`pull_from_argilla` does). A new answer replaces the stored choice (counted as a
    revision); comments identical to stored ones are not added twice. Everything is validated before writing.

    Raises:
        PermissionDenied: not a coordinator. NotFound: no such set.
        InvalidInput: unreadable file, a record id not of this set, several users answering one record, an
            unknown choice, a malformed comment line, or a reader who already submitted the set.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "records.json"
    try:
        records = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidInput(f"cannot read Argilla records from {path}: {error}") from error
    if not isinstance(records, list):
        raise InvalidInput(f"{path}: expected a JSON list of records")
    return import_argilla_records(session, coordinator, set_id, records, submit=submit)


def import_argilla_records(
    session: Session, coordinator: User, set_id: int, records: list[dict], *, submit: bool = True
) -> ArgillaImport:
    """Store responses of Argilla record dicts (``Record.to_dict`` form); see :func:`import_argilla_responses`.

    Raises:
        as :func:`import_argilla_responses`.
    """
    require_coordinator(coordinator)
    get_comparison_set(session, set_id)
    by_record = {f"{RECORD_PREFIX}{a.id}": a for a in set_assignments(session, set_id)}
    submitted = submitted_reader_ids(session, set_id)

    planned = []
    for record in records:
        record_id = str(record.get("id"))
        assignment = by_record.get(record_id)
        if assignment is None:
            raise InvalidInput(f"record {record_id!r} is not a reader x pair of comparison set {set_id}")
        responses = record.get("responses") or {}
        choice = _single_value(record_id, responses, QUESTION_PREFERENCE)
        if choice is None:
            continue
        if choice not in PREFERENCE_LABELS:
            raise InvalidInput(f"record {record_id}: unknown choice {choice!r}; expected {list(PREFERENCE_LABELS)}")
        if assignment.reader_id in submitted:
            raise InvalidInput(f"record {record_id}: {assignment.reader.username!r} already submitted this set")
        try:
            comments = parse_comment_lines(
                _single_value(record_id, responses, QUESTION_COMMENTS) or "", *side_texts(assignment)
            )
        except InvalidInput as error:
            raise InvalidInput(f"record {record_id}: {error}") from error
        planned.append((assignment, choice, comments))

    n_comments = 0
    for assignment, choice, comments in planned:
        judgement = assignment.judgement
        if judgement is None:
            assignment.judgement = ComparisonJudgement(choice=choice)
        elif judgement.choice != choice:
            judgement.choice = choice
            judgement.revisions += 1
        stored = {(c.side, c.start, c.end, c.score, c.text) for c in assignment.comments}
        for c in comments:
            if (c.side, c.start, c.end, c.score, c.text) not in stored:
                assignment.comments.append(
                    ComparisonComment(
                        side=c.side, start=c.start, end=c.end, passage=c.passage, score=c.score, text=c.text
                    )
                )
                n_comments += 1
    session.flush()

    newly_submitted = []
    if submit:
        readers = {a.reader_id: a.reader for a in by_record.values()}
        for reader_id, reader in sorted(readers.items()):
            own = [a for a in by_record.values() if a.reader_id == reader_id]
            if reader_id not in submitted and all(a.judgement is not None for a in own):
                submit_comparison_set(session, reader, set_id)
                newly_submitted.append(reader.username)
    return ArgillaImport(len(planned), n_comments, tuple(newly_submitted))


def _argilla_client(api_url: str, api_key: str):
    try:
        import argilla as rg
    except ImportError as error:
        raise StudyError(
            "the Argilla SDK is not installed; `pip install argilla==2.8.0` to use an Argilla server"
        ) from error
    if not api_url or not api_key:
        raise InvalidInput("an Argilla server needs both a URL and an API key")
    return rg, rg.Argilla(api_url=api_url, api_key=api_key)


def push_to_argilla(
    session: Session, coordinator: User, set_id: int, api_url: str, api_key: str, workspace: str | None = None,
    dataset_name: str | None = None,
) -> str:
    """Export the set (:func:`export_argilla_dataset`) and create it on an Argilla server with ``Dataset.from_disk``.

    Returns:
        the dataset name on the server.

    Raises:
        StudyError: the ``argilla`` SDK is not installed. InvalidInput: URL or API key missing; see also
        :func:`export_argilla_dataset`. Errors of the SDK (connection, authentication) propagate.
    """
    rg, client = _argilla_client(api_url, api_key)
    with tempfile.TemporaryDirectory() as folder:
        export_argilla_dataset(session, coordinator, set_id, folder, dataset_name)
        dataset = rg.Dataset.from_disk(folder, workspace=workspace, client=client)
    return dataset.name


def pull_from_argilla(
    session: Session, coordinator: User, set_id: int, api_url: str, api_key: str, dataset_name: str,
    workspace: str | None = None, *, submit: bool = True,
) -> ArgillaImport:
    """Fetch a dataset's records with responses from an Argilla server and import them (see
    :func:`import_argilla_responses`).

    Raises:
        StudyError, InvalidInput: as for :func:`push_to_argilla`; InvalidInput also when the dataset is not found.
    """
    require_coordinator(coordinator)
    _, client = _argilla_client(api_url, api_key)
    dataset = client.datasets(name=dataset_name, workspace=workspace)
    if dataset is None:
        raise InvalidInput(f"no Argilla dataset named {dataset_name!r}")
    records = []
    for record in dataset.records(with_responses=True):
        # only submitted answers count; drafts and discarded answers stay on the server
        responses: dict[str, list[dict]] = {}
        for response in record.responses:
            if response.status is not None and response.status.value == "submitted":
                responses.setdefault(response.question_name, []).append(
                    {"value": response.value, "user_id": str(response.user_id)}
                )
        records.append({"id": record.id, "responses": responses})
    return import_argilla_records(session, coordinator, set_id, records, submit=submit)
