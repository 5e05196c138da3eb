"""Reading row files (UTF-8 CSV with a header row, or JSON lines) for imports, with row-level errors.

A file that cannot be read at all raises :class:`RowFileError` naming the file; a bad row is reported with its line
number and the other rows are still returned, so an import stores what is valid and lists the rest.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
from pathlib import Path

from studyapp.services.errors import InvalidInput

SUFFIXES = (".csv", ".jsonl", ".ndjson")


class RowFileError(InvalidInput):
    """The file as a whole cannot be read: missing, not CSV/JSONL, not UTF-8 text, empty or binary."""


def read_rows(path: str | Path, columns: tuple[str, ...], what: str, errors: list[tuple[int, str]]
              ) -> list[tuple[int, dict]]:
    """The rows of a ``.csv`` (header row, UTF-8, optional BOM) or ``.jsonl``/``.ndjson`` file.

    Args:
        columns: columns every CSV header must have (a missing one is one error on line 1 and no rows).
        what: what the file holds, for messages (e.g. "drafts").
        errors: receives ``(line, message)`` for malformed rows.

    Returns:
        ``(starting line, row)`` pairs; CSV values are strings, JSON values as parsed; a CSV row with more values
        than header columns has them under ``"__extra__"``.

    Raises:
        RowFileError: the file is missing, has another extension, is not UTF-8 text, is binary, or holds no row at
            all (an empty file, a CSV header without rows, blank lines): importing nothing is always a mistake.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise RowFileError(f"{path.name}: {what} must be a .csv or .jsonl file, not {suffix or 'no extension'!r}")
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise RowFileError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        raise RowFileError(f"{path.name}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    if "\x00" in content:
        raise RowFileError(f"{path.name}: binary content, not a {suffix[1:].upper()} text file")
    found = len(errors)
    rows = _csv_rows(content, path.name, columns, errors) if suffix == ".csv" else _jsonl_rows(content, errors)
    if not rows and len(errors) == found:
        raise RowFileError(f"{path.name}: no {what} rows in the file (it is empty or holds only a header)")
    return rows


def _csv_rows(content: str, name: str, columns: tuple[str, ...], errors: list[tuple[int, str]]) -> list[tuple[int, dict]]:
    """``(starting line, row)`` pairs of a CSV text; a missing header column is one error on line 1."""
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise RowFileError(f"{name}: empty file, expected a header row {','.join(columns)}") from None
    except csv.Error as err:
        raise RowFileError(f"{name}: not a CSV file ({err})") from None
    missing = [c for c in columns if c not in header]
    if missing:
        errors.append((1, f"missing column(s) {', '.join(missing)} in the header"))
        return []
    rows, line = [], reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return rows
        except csv.Error as err:
            errors.append((line, f"malformed CSV row ({err})"))
            return rows
        if any(v.strip() for v in values):
            row = dict(zip(header, values))
            if len(values) > len(header):
                row["__extra__"] = values[len(header):]
            rows.append((line, row))
        line = reader.line_num + 1


def _jsonl_rows(content: str, errors: list[tuple[int, str]]) -> list[tuple[int, dict]]:
    """``(line, object)`` pairs of a JSON-lines text; malformed lines go to ``errors``."""
    rows = []
    for line, text in enumerate(content.splitlines(), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as err:
            errors.append((line, f"malformed JSON line ({err.msg} at column {err.colno})"))
            continue
        if not isinstance(row, dict):
            errors.append((line, f"malformed JSON line (a {type(row).__name__}, expected an object)"))
            continue
        rows.append((line, row))
    return rows


def unknown_key_message(key: object, known: list[str]) -> str:
    """``unknown case_key 'x'`` with the closest known key (letter case ignored) when there is one."""
    message = f"unknown case_key {key!r}"
    if isinstance(key, str):
        lowered = {k.lower(): k for k in known}
        close = difflib.get_close_matches(key.strip().lower(), list(lowered), n=1, cutoff=0.75)
        if close:
            message += f"; did you mean {lowered[close[0]]!r}?"
    return message
