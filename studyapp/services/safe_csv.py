"""CSV files safe to open in a spreadsheet program (CSV or formula injection, CWE-1236).

Spreadsheet programs (Excel, LibreOffice Calc, Google Sheets) run a cell that starts with ``=``, ``+``, ``-`` or
``@`` as a formula (``=HYPERLINK(...)`` sends data out, ``+cmd|' /C calc'!A0`` starts a program through DDE); a
leading tab, carriage return or line feed can hide such a start, and some locales read the full-width forms of the
four signs as well. Following OWASP's CSV-injection guidance (and ASVS 5.0 requirement 1.2.10), every CSV the project
writes goes through :func:`write_csv`: a text cell whose first character (after any spaces) is one of
:data:`FORMULA_TRIGGERS` gets a leading apostrophe ``'``, which spreadsheets take as "show as text" and hide; quoting
follows RFC 4180 (Python's ``csv`` module). Numbers stay numbers: numeric columns, and text cells that are a plain
decimal number such as ``-0.5``, are written as they are (a spreadsheet reads them as a number, never a formula).

The apostrophe changes the text; the verbatim texts are in the JSONL exports (``.jsonl``, one JSON object per row),
which nothing neutralises.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

#: First characters that make a spreadsheet evaluate a cell (OWASP CSV injection; ASVS 1.2.10 adds NUL), with the
#: full-width equals, plus, minus and at signs.
FORMULA_TRIGGERS = frozenset("=+-@\t\r\n\0\uff1d\uff0b\uff0d\uff20")

_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise_cell(value):
    """``value`` with a leading ``'`` when it is a string a spreadsheet would evaluate as a formula.

    A string is neutralised when its first character after leading spaces is in :data:`FORMULA_TRIGGERS`, unless
    the whole string is a plain decimal number (``-0.5``, ``+3``, ``1e-3``). Anything that is not a ``str``
    (numbers, booleans, ``None``, NaN, timestamps) is returned unchanged.
    """
    if not isinstance(value, str):
        return value
    first = value.lstrip(" ")[:1]
    if first and first in FORMULA_TRIGGERS and not _PLAIN_NUMBER.fullmatch(value.strip(" ")):
        return "'" + value
    return value


def neutralise_table(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` with :func:`neutralise_cell` applied to every cell of its non-numeric columns and to
    its column names (a column named after a question code or an arm comes from user input too)."""
    safe = table.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(neutralise_cell, na_action="ignore")
    safe.columns = [neutralise_cell(c) for c in safe.columns]
    return safe


def write_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write ``table`` (without its index) to ``path`` as UTF-8 CSV with formula cells neutralised
    (:func:`neutralise_table`); returns ``path``. The project's one way of writing a CSV file."""
    path = Path(path)
    neutralise_table(table).to_csv(path, index=False, encoding="utf-8")
    return path


def write_jsonl(table: pd.DataFrame, path: str | Path) -> Path:
    """Write ``table`` to ``path`` as JSON Lines (one object per row, UTF-8, texts verbatim, missing values as
    ``null``, timestamps ISO 8601); returns ``path``. The lossless companion of :func:`write_csv`."""
    path = Path(path)
    table.to_json(path, orient="records", lines=True, force_ascii=False, date_format="iso")
    return path
