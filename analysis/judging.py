"""The judge command: ``python -m analysis judge --pairs PAIRS.jsonl --out OUT.jsonl [--judge offline|llm ...]``.

Judges (candidate, reference) report pairs outside any reader study, so that a site can measure a judge on its
own radiologist-annotated pairs before trusting it (issue 17, item 4).

Input: one JSON object per line with ``id`` (string or integer, unique), ``reference`` and ``candidate``
(report texts; a FINDINGS section is compared, the IMPRESSION when a report has none); blank lines are
ignored. The whole file is checked before any pair is judged; every bad line is named.

Output: one JSON object per input pair, in input order: ``id``, ``urgent_emergent`` (int, the paper's Fig. 5b
count), ``discrepancies`` (list of :meth:`analysis.judges.Discrepancy.as_record`: ``{line, category, severity,
comment, categories, correction}``, FineRadScore's corrections, ``line`` 1-based in the candidate's findings or
null for a line to insert) and ``judge``
(``{name, version}``). A pair the judge failed on (an LLM endpoint that timed out or answered garbage) gets
``urgent_emergent`` null, ``discrepancies`` null and ``error`` (the reason) instead.

Exit status: 0 every pair judged; 1 refused (unreadable or malformed pairs file, or an ``--out`` that is a
folder, the pairs file itself or in a folder that does not exist; nothing judged, nothing written) or some pairs
failed (their lines carry ``error``); 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from analysis.judges import Judge, JudgeFailure, LLMJudge, OfflineJudge

MAX_NAMED_PROBLEMS = 20


class PairsFileError(ValueError):
    """The pairs file cannot be read or has malformed lines; the message names every bad line (up to
    :data:`MAX_NAMED_PROBLEMS`)."""


@dataclass(frozen=True)
class Pair:
    """One input line: ``id`` as given (str or int), the report texts and the 1-based line number."""

    id: str | int
    reference: str
    candidate: str
    line: int


def read_pairs(path: Path) -> list[Pair]:
    """Read and check a pairs JSONL file.

    Raises:
        PairsFileError: unreadable file, no pairs, or lines that are not JSON objects with a unique string or
            integer ``id`` and string ``reference`` and ``candidate`` (each named as ``PATH line N: problem``).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PairsFileError(f"{path}: cannot be read ({error})") from error
    pairs, problems, seen = [], [], {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as error:
            problems.append(f"line {number}: not valid JSON ({error.msg} at column {error.colno})")
            continue
        if not isinstance(item, dict):
            problems.append(f"line {number}: expected a JSON object, got {type(item).__name__}")
            continue
        missing = [key for key in ("id", "reference", "candidate") if key not in item]
        if missing:
            problems.append(f"line {number}: missing {', '.join(repr(k) for k in missing)}")
            continue
        if isinstance(item["id"], bool) or not isinstance(item["id"], (str, int)):
            problems.append(f"line {number}: 'id' must be a string or an integer, got {json.dumps(item['id'])}")
            continue
        wrong = [key for key in ("reference", "candidate") if not isinstance(item[key], str)]
        if wrong:
            problems.append(f"line {number}: {', '.join(repr(k) for k in wrong)} must be a string (report text)")
            continue
        if item["id"] in seen:
            problems.append(f"line {number}: id {json.dumps(item['id'])} repeats line {seen[item['id']]}")
            continue
        seen[item["id"]] = number
        pairs.append(Pair(item["id"], item["reference"], item["candidate"], number))
    if problems:
        shown = problems[:MAX_NAMED_PROBLEMS]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise PairsFileError(f"{path}: {len(problems)} malformed line(s):\n  " + "\n  ".join(shown) + more)
    if not pairs:
        raise PairsFileError(f"{path}: no pairs (the file is empty)")
    return pairs


def output_problem(out: Path, pairs_path: Path) -> str | None:
    """Why ``out`` cannot take the judged pairs of ``pairs_path`` (checked before any pair is judged), or None:
    it is a folder, it is the pairs file itself (it would be overwritten), or its folder does not exist."""
    if out.is_dir():
        return f"--out {out}: is a folder; give the output JSONL file's path"
    if out.exists() and pairs_path.exists() and out.samefile(pairs_path):
        return f"--out {out}: is the pairs file (--pairs); it would be overwritten"
    if not out.parent.is_dir():
        return f"--out {out}: folder {out.parent} does not exist"
    return None


def judge_pairs(pairs: list[Pair], judge: Judge) -> list[dict]:
    """Output records (see module docstring) of ``pairs`` in order; a failed pair carries ``error``."""
    results = judge.judge_many([(pair.candidate, pair.reference) for pair in pairs])
    records = []
    for pair, result in zip(pairs, results):
        identity = {"name": judge.name, "version": judge.version}
        if isinstance(result, JudgeFailure):
            records.append({"id": pair.id, "urgent_emergent": None, "discrepancies": None, "judge": identity,
                            "error": result.reason})
        else:
            records.append({"id": pair.id, "urgent_emergent": result.urgent_emergent,
                            "discrepancies": [d.as_record() for d in result.discrepancies],
                            "judge": {"name": result.judge, "version": result.judge_version}})
    return records


def add_judge_options(parser: argparse.ArgumentParser, cache_default: str) -> None:
    """Add the judge's options (``--judge offline|llm``, ``--llm-url``, ``--llm-model``, ``--llm-cache``,
    ``--llm-concurrency``, ``--llm-timeout`` in seconds) to ``parser``; ``cache_default`` describes what no
    ``--llm-cache`` means. Shared by ``python -m analysis`` and ``python -m analysis judge``."""
    parser.add_argument("--judge", choices=["offline", "llm"], default="offline")
    parser.add_argument("--llm-url", help="OpenAI-compatible base URL, e.g. https://api.openai.com/v1")
    parser.add_argument("--llm-model", default="gpt-4o")
    parser.add_argument("--llm-cache", type=Path, help=f"answer cache folder (default: {cache_default})")
    parser.add_argument("--llm-concurrency", type=int, default=4)
    parser.add_argument("--llm-timeout", type=float, default=60.0, help="seconds per request")


def judge_from_options(parser: argparse.ArgumentParser, args: argparse.Namespace,
                       cache_dir: Path | None) -> Judge:
    """The judge that the options of :func:`add_judge_options` ask for; the LLM judge caches its answers in
    ``cache_dir`` (None: no cache). The caller closes an :class:`~analysis.judges.LLMJudge`.

    Raises:
        SystemExit: through ``parser.error`` (exit status 2) for ``--judge llm`` without ``--llm-url`` or with
            options the LLM judge refuses (the message names them).
    """
    if args.judge == "offline":
        return OfflineJudge()
    if not args.llm_url:
        parser.error("--judge llm needs --llm-url")
    try:
        return LLMJudge(args.llm_url, args.llm_model, cache_dir=cache_dir, max_concurrency=args.llm_concurrency,
                        timeout_s=args.llm_timeout)
    except ValueError as error:
        parser.error(str(error))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m analysis judge``."""
    parser = argparse.ArgumentParser(prog="python -m analysis judge", description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True, type=Path, help="input JSONL: id, reference, candidate")
    parser.add_argument("--out", required=True, type=Path, help="output JSONL")
    add_judge_options(parser, "none")
    return parser


def main(argv: list[str]) -> int:
    """Run the judge command on ``argv`` (the arguments after ``judge``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if problem := output_problem(args.out, args.pairs):
        print(f"error: {problem}", file=sys.stderr)
        return 1
    judge = judge_from_options(parser, args, args.llm_cache)
    try:
        pairs = read_pairs(args.pairs)
    except PairsFileError as error:
        print(f"error: {error}", file=sys.stderr)
        if isinstance(judge, LLMJudge):
            judge.close()
        return 1
    try:
        records = judge_pairs(pairs, judge)
    finally:
        if isinstance(judge, LLMJudge):
            judge.close()
    with open(args.out, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    failed = [r for r in records if "error" in r]
    urgent = sum(r["urgent_emergent"] or 0 for r in records)
    print(f"judged {len(records) - len(failed)} of {len(records)} pairs with {judge.name} {judge.version}; "
          f"urgent/emergent discrepancies: {urgent}; written to {args.out}")
    for record in failed[:MAX_NAMED_PROBLEMS]:
        line = next(p.line for p in pairs if p.id == record["id"])
        print(f"error: pair {json.dumps(record['id'])} (line {line}) not judged: {record['error']}", file=sys.stderr)
    return 1 if failed else 0
