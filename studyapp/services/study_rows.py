"""A reader study as plain rows: every database row that belongs to one study, read out as JSON-ready dicts, and
written back as a new study with new ids.

Which tables belong to a study follows from the schema's foreign keys (:func:`study_tables`): ``reader_studies``,
then every table with a foreign key to a table already in the study (arms, cases, series, instances, drafts and
their findings, assignments, reports, report versions, answers, comparison sets, pairs, assignments, judgements,
comments and submissions, and the audit events of the study). Accounts are global: the study's rows name them
by id, and the accounts they name are read out as ``users`` rows with username, display name and role only
(never a password hash). Sign-in sessions belong to no study and are never read.

Values are JSON-ready: timestamps as ISO 8601 text with their UTC offset (microseconds kept), JSON columns as
they are, floats as Python floats (JSON keeps every bit of a double). :func:`insert_rows` reverses this exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, Table, insert, or_, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from studyapp.db import comparisons as _comparisons  # noqa: F401 (registers the comparison tables)
from studyapp.db.base import Base, UTCDateTime
from studyapp.db.models import ROLES, ReaderStudy, User

STUDY_TABLE = "reader_studies"
ACCOUNT_TABLE = "users"
#: The columns of an account that are read out (no password hash, no sign-in data).
ACCOUNT_COLUMNS = ("id", "username", "display_name", "role")
#: Password hash of an account created by :func:`insert_rows`: no Argon2 hash, so no password signs in with it
#: until a coordinator sets one (``studyapp.services.accounts.authenticate`` refuses it).
NO_PASSWORD = "!"
#: Audit event detail keys that hold the id of another row of the study: key -> table.
DETAIL_REFERENCES = {"comparison_set_id": "comparison_sets", "pair_id": "comparison_pairs",
                     "comment_id": "comparison_comments"}

Rows = dict[str, list[dict[str, Any]]]


def study_tables() -> list[Table]:
    """The tables holding a study's rows, parents before children (``reader_studies`` first)."""
    tables, names = [], {STUDY_TABLE}
    for table in Base.metadata.sorted_tables:
        if table.name == STUDY_TABLE or any(fk.column.table.name in names for fk in table.foreign_keys):
            tables.append(table)
            names.add(table.name)
    return tables


def _references(table: Table) -> dict[str, str]:
    """``{column: referred table}`` of ``table``'s foreign keys."""
    return {fk.parent.name: fk.column.table.name for fk in table.foreign_keys}


def _study_ids(study_id: int) -> dict[str, Select]:
    """Per study table, a ``SELECT id`` of the study's rows: those whose foreign key to a study table points at one
    of its rows (any of them: an audit event may name the study, an assignment, or both)."""
    ids: dict[str, Select] = {}
    for table in study_tables():
        if table.name == STUDY_TABLE:
            ids[table.name] = select(table.c.id).where(table.c.id == study_id)
            continue
        links = [table.c[column].in_(ids[parent]) for column, parent in _references(table).items() if parent in ids]
        ids[table.name] = select(table.c.id).where(or_(*links))
    return ids


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def read_rows(session: Session, study: ReaderStudy) -> Rows:
    """Every row of ``study``, by table name (:func:`study_tables` order, then ``users``), each table's rows in id
    order; a row is ``{column: JSON-ready value}`` with every column (accounts: :data:`ACCOUNT_COLUMNS`)."""
    rows: Rows = {}
    ids = _study_ids(study.id)
    user_ids: set[int] = set()
    for table in study_tables():
        result = session.execute(select(table).where(table.c.id.in_(ids[table.name])).order_by(table.c.id))
        rows[table.name] = [{key: _plain(value) for key, value in row.items()} for row in result.mappings()]
        for column, parent in _references(table).items():
            if parent == ACCOUNT_TABLE:
                user_ids |= {row[column] for row in rows[table.name] if row[column] is not None}
    accounts = session.execute(select(*(User.__table__.c[c] for c in ACCOUNT_COLUMNS))
                               .where(User.id.in_(user_ids)).order_by(User.id))
    rows[ACCOUNT_TABLE] = [dict(row) for row in accounts.mappings()]
    return rows


@dataclass
class InsertedRows:
    """What :func:`insert_rows` wrote: ``ids[table][archived id] = new id`` for every table (accounts included),
    ``accounts_created`` and ``accounts_reused`` (usernames)."""

    ids: dict[str, dict[int, int]] = field(default_factory=dict)
    accounts_created: list[str] = field(default_factory=list)
    accounts_reused: list[str] = field(default_factory=list)

    @property
    def study_id(self) -> int:
        """The new study's id."""
        return next(iter(self.ids[STUDY_TABLE].values()))


def _typed(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with ISO timestamps of ``UTCDateTime`` columns parsed back to aware datetimes."""
    return {key: datetime.fromisoformat(value) if isinstance(value, str) and isinstance(table.c[key].type, UTCDateTime)
            else value for key, value in row.items()}


class RowsError(ValueError):
    """Rows that cannot be inserted; the message names the table and, when known, the row (line, counted from 1)
    and the column."""


def check_rows(rows: Rows, replace: dict[str, dict[str, Any]] | None = None) -> None:
    """Refuse rows :func:`insert_rows` cannot insert, before anything is written: a table that holds no study rows
    in this schema, a row that is not an object, a missing, non-integer or repeated ``id``, a column the schema
    lacks, a required (NOT NULL) column that is null or missing without a default, a text longer than its
    ``String(n)`` column (PostgreSQL refuses it, SQLite would store it), an account role outside
    :data:`studyapp.db.models.ROLES`, and not exactly one ``reader_studies`` row.

    Args:
        rows: rows by table name, each table's rows in line order (``data/tables/<table>.jsonl``).
        replace: as for :func:`insert_rows`: these values count as set.

    Raises:
        RowsError: the first problem, naming table, line and column.
    """
    replace = replace or {}
    tables = {table.name: table for table in study_tables()} | {ACCOUNT_TABLE: User.__table__}
    unknown_tables = sorted(set(rows) - set(tables))
    if unknown_tables:
        raise RowsError(f"no table {', '.join(unknown_tables)} holds a study's rows in this database")
    for name, table_rows in rows.items():
        table = tables[name]
        columns = ACCOUNT_COLUMNS if name == ACCOUNT_TABLE else tuple(table.c.keys())
        seen: dict[int, int] = {}
        for line, row in enumerate(table_rows, start=1):
            where = f"table {name} line {line}"
            if not isinstance(row, dict):
                raise RowsError(f"{where} is not a JSON object")
            unknown = sorted(set(row) - set(columns))
            if unknown:
                raise RowsError(f"table {name} has no column(s) {', '.join(unknown)} in this database")
            row_id = row.get("id")
            if type(row_id) is not int:
                raise RowsError(f"{where}: id {row_id!r} is not an integer")
            if row_id in seen:
                raise RowsError(f"{where} repeats id {row_id} of line {seen[row_id]}")
            seen[row_id] = line
            values = row | replace.get(name, {})
            for column in (table.c[key] for key in columns):
                if column.nullable or column.primary_key:
                    continue
                if column.name in values and values[column.name] is None:
                    raise RowsError(f"{where}: column {column.name} is null; it is required")
                if column.name not in values and column.default is None and column.server_default is None:
                    raise RowsError(f"{where}: column {column.name} is missing; it is required")
            for key, value in values.items():
                length = table.c[key].type.length if isinstance(table.c[key].type, String) else None
                if isinstance(value, str) and length is not None and len(value) > length:
                    raise RowsError(f"{where}: column {key} holds {len(value)} characters; it takes at most {length}")
            if name == ACCOUNT_TABLE and values.get("role", ROLES[0]) not in ROLES:
                raise RowsError(f"{where}: unknown role {values['role']!r} (this platform's roles: "
                                f"{', '.join(ROLES)})")
    if len(rows.get(STUDY_TABLE, [])) != 1:
        raise RowsError(f"table {STUDY_TABLE} has {len(rows.get(STUDY_TABLE, []))} rows; a study archive holds one")


def insert_rows(session: Session, rows: Rows, replace: dict[str, dict[str, Any]] | None = None) -> InsertedRows:
    """Insert a study read by :func:`read_rows` as a new study; every foreign key is pointed at the new rows. Does
    not commit.

    Accounts are matched by username: an existing account is used as it is (its reads join that account's
    worklist), a missing one is created as a reader with no usable password (:data:`NO_PASSWORD`).

    Args:
        rows: rows by table name; a table missing from ``rows`` has no rows.
        replace: ``{table: {column: value}}`` set on every row of that table (the new study's name, say).

    Returns:
        The id maps and the accounts created and reused.

    Raises:
        RowsError: rows :func:`check_rows` refuses (nothing is written), or a row the database refuses (a
            constraint, a value of the wrong type or out of range: SQLAlchemy's ``IntegrityError`` or ``DataError``),
            named by its table with the database's message on one line; the caller must roll the transaction back.
        KeyError: a foreign key names a row that is not in ``rows`` (an inconsistent archive; the message names it).
    """
    replace = replace or {}
    check_rows(rows, replace)
    inserted = InsertedRows()
    accounts = inserted.ids[ACCOUNT_TABLE] = {}
    for account in rows.get(ACCOUNT_TABLE, []):
        existing = session.scalar(select(User).where(User.username == account["username"]))
        if existing is None:
            existing = User(**{key: account[key] for key in ACCOUNT_COLUMNS[1:] if key in account},
                            password_hash=NO_PASSWORD)
            session.add(existing)
            with _refused_by_database(ACCOUNT_TABLE):
                session.flush()
            inserted.accounts_created.append(existing.username)
        else:
            inserted.accounts_reused.append(existing.username)
        accounts[account["id"]] = existing.id
    for table in study_tables():
        table_rows = rows.get(table.name, [])
        references = _references(table)
        new_rows = []
        for row in table_rows:
            new = {key: value for key, value in row.items() if key != "id"}
            for column, parent in references.items():
                if new.get(column) is not None:
                    new[column] = _new_id(inserted.ids, parent, new[column], f"{table.name}.{column}")
            if table.name == "audit_events":
                new["detail"] = _detail(inserted.ids, new.get("detail") or {})
            new.update(replace.get(table.name, {}))
            new_rows.append(_typed(table, new))
        if not new_rows:
            inserted.ids[table.name] = {}
            continue
        with _refused_by_database(table.name):
            result = session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True),
                                     new_rows)
        inserted.ids[table.name] = dict(zip((row["id"] for row in table_rows), result.scalars().all()))
    return inserted


@contextmanager
def _refused_by_database(table: str) -> Iterator[None]:
    """Turn the database's refusal of a row of ``table`` (SQLAlchemy's ``IntegrityError``: a constraint;
    ``DataError``: a value of the wrong type, too long or out of range) into a :class:`RowsError` naming the table,
    with the database's message on one line."""
    try:
        yield
    except (IntegrityError, DataError) as error:
        raise RowsError(f"table {table}: {' '.join(str(error.orig).split())}") from error


def _new_id(ids: dict[str, dict[int, int]], table: str, old: int, where: str) -> int:
    try:
        return ids[table][old]
    except KeyError:
        raise KeyError(f"{where} names {table} row {old}, which is not in the archive") from None


def _detail(ids: dict[str, dict[int, int]], detail: dict[str, Any]) -> dict[str, Any]:
    """An audit event's detail with the row ids of :data:`DETAIL_REFERENCES` pointed at the new rows (``None``
    for a row no longer there, such as a deleted comment)."""
    return {key: ids.get(DETAIL_REFERENCES[key], {}).get(value) if key in DETAIL_REFERENCES and value is not None
            else value for key, value in detail.items()}
