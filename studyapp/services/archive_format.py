"""The study archive's format: a BagIt bag (RFC 8493, written and checked by the Library of Congress' ``bagit``
package) with SHA-256 manifests, whose payload is laid out as :data:`LAYOUT` says.

``archive.json`` holds :data:`FORMAT_NAME`, :data:`FORMAT_VERSION`, the study's name, whether the archive is
blinded and holds the images, the database schema revision the rows come from, the number of rows per table, the
software versions and the analysis settings. ``bag-info.txt`` repeats the format version
(``Archive-Format-Version``) so that a reader can tell it before opening anything else.
"""

from __future__ import annotations

import hashlib
import json
import re
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bagit

from studyapp.services.errors import InvalidInput

FORMAT_NAME = "studyapp-reader-study-archive"
#: Raised whenever the layout or the meaning of a file changes; a newer archive is refused by older code.
FORMAT_VERSION = 1
#: bag-info.txt field holding :data:`FORMAT_VERSION`.
FORMAT_VERSION_FIELD = "Archive-Format-Version"
CHECKSUMS = ["sha256"]

MANIFEST = "archive.json"
TABLES = "tables"
IMAGES = "images"
IMAGE_LIST = "images.jsonl"
READS = "reads.jsonl"
BALANCE = "design/balance.txt"
ANALYSIS = "analysis"

#: Payload file (under ``data/``) -> what it holds; written to ``data/README.txt`` of every archive.
LAYOUT = {
    MANIFEST: "format name and version, study, blinded or not, images or not, schema revision, rows per table, "
              "software versions (Python, every installed package, the code's git commit) and analysis settings",
    f"{TABLES}/<table>.jsonl": "the study's database rows, one JSON object per row and line, columns as in the "
                               "schema (studyapp/db/models.py, studyapp/db/comparisons.py); timestamps ISO 8601 UTC. "
                               "reader_studies: study definition (template, questions, seed); arms; cases (practice "
                               "flag); series; instances; drafts with their source; draft_findings; assignments (the "
                               "design); reports; report_versions (every autosave with time and active seconds); "
                               "question_answers; comparison_sets, _pairs, _assignments, _judgements, _comments, "
                               "_submissions; audit_events; users (username, display name, role; no password)",
    IMAGE_LIST: "one line per DICOM file: StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, SHA-256, the file in "
                "the archive (null without images) and the identifying attributes present (DICOM PS3.15 Annex E "
                "Basic Profile: tag, keyword, action; values never listed)",
    f"{IMAGES}/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm": "the DICOM files (absent with "
                                                                             "--no-images)",
    READS: "the reads export (python app.py export): one row per reader x case",
    BALANCE: "the design's balance report (readers x arms, cases x arms; absent when blinded)",
    f"{ANALYSIS}/": "the analysis outputs (python -m analysis, offline judge): tables as CSV, columns.csv, "
                    "skipped.csv, figures, report.html (absent when blinded)",
}


#: A UID as ``images.jsonl`` may list it: digits in dot-separated components, at most 64 characters (DICOM PS3.5
#: 9.1; leading zeros, which some sites' UIDs have, are let through). It names folders and files on restore.
UID = re.compile(r"[0-9]+(\.[0-9]+)*")
UID_MAX_CHARS = 64
_SHA256 = re.compile(r"[0-9a-f]{64}")


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path`` as lowercase hex: the checksum ``images.jsonl`` lists per DICOM file.

    Raises:
        OSError: the file cannot be read.
    """
    with Path(path).open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class ArchiveError(InvalidInput):
    """An archive that cannot be restored: not a bag, a wrong checksum, a missing or extra file, a format this
    code does not read, an ``archive.json`` that does not match the bag or its tables, a blinded archive, rows
    this database cannot take."""


@dataclass(frozen=True)
class OpenedArchive:
    """A checked archive: ``root`` its payload folder (``data/``) and ``manifest`` its ``archive.json``."""

    root: Path
    manifest: dict[str, Any]

    def lines(self, relative: str) -> list[dict[str, Any]]:
        """The JSON objects of the JSON Lines file ``relative`` to the payload (empty when there is no such file).

        Raises:
            ArchiveError: a line is not JSON (names the file and line).
        """
        path = self.root / relative
        if not path.exists():
            return []
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ArchiveError(f"data/{relative} line {number} is not JSON: {error}") from None
        return rows

    def table(self, name: str) -> list[dict[str, Any]]:
        """The rows of table ``name`` (empty when the archive has none)."""
        return self.lines(f"{TABLES}/{name}.jsonl")

    def image_list(self) -> list[dict[str, Any]]:
        """The lines of ``images.jsonl``, each checked to be an object with ``study_instance_uid``,
        ``series_instance_uid`` and ``sop_instance_uid`` UID strings (:data:`UID`), a ``sha256`` of 64 lowercase
        hex digits, ``file`` null (an archive without images) or exactly
        ``images/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` of the line's UIDs and present in
        the payload, and ``identifying_attributes`` a list of objects; no SOPInstanceUID twice.

        Raises:
            ArchiveError: the first bad line, naming the file, the line number and the field (a line that is not
                JSON: :meth:`lines`).
        """
        checked, seen = [], {}
        for number, line in enumerate(self.lines(IMAGE_LIST), start=1):
            where = f"data/{IMAGE_LIST} line {number}"
            if not isinstance(line, dict):
                raise ArchiveError(f"{where} is not a JSON object but a {type(line).__name__}")
            problem = _image_line_problem(self.root, line)
            if problem:
                raise ArchiveError(f"{where}: {problem}")
            if line["sop_instance_uid"] in seen:
                raise ArchiveError(f"{where}: sop_instance_uid {line['sop_instance_uid']} repeats line "
                                   f"{seen[line['sop_instance_uid']]}")
            seen[line["sop_instance_uid"]] = number
            checked.append(line)
        return checked


def _image_line_problem(root: Path, line: dict[str, Any]) -> str | None:
    """What is wrong with one object of ``images.jsonl`` (the first field found wrong), or None."""

    def wrong(field: str, expected: str) -> str:
        if field not in line:
            return f"field {field} is missing; expected {expected}"
        value = line[field]
        kind = "null" if value is None else type(value).__name__
        return f"field {field} is {reprlib.repr(value)} ({kind}); expected {expected}"

    for field in ("study_instance_uid", "series_instance_uid", "sop_instance_uid"):
        value = line.get(field)
        if not (isinstance(value, str) and len(value) <= UID_MAX_CHARS and UID.fullmatch(value)):
            return wrong(field, f"a UID string (digits and dots, at most {UID_MAX_CHARS} characters)")
    if not (isinstance(line.get("sha256"), str) and _SHA256.fullmatch(line["sha256"])):
        return wrong("sha256", "the file's SHA-256 as 64 lowercase hex digits")
    expected = f"{IMAGES}/{line['study_instance_uid']}/{line['series_instance_uid']}/{line['sop_instance_uid']}.dcm"
    if "file" not in line or line["file"] not in (None, expected):
        return wrong("file", f"null or {expected!r}")
    target = root / expected
    if line["file"] is not None and (target.is_symlink() or not target.is_file()
                                     or not target.resolve().is_relative_to(root.resolve())):
        return f"field file names {expected}, which is not a file in the archive (missing, or a link)"
    attributes = line.get("identifying_attributes")
    if not (isinstance(attributes, list) and all(isinstance(a, dict) for a in attributes)):
        return wrong("identifying_attributes", "a list of objects (tag, keyword, action)")
    return None


def open_archive(path: str | Path) -> OpenedArchive:
    """Check the bag at ``path`` and read its ``archive.json``.

    Checks, in order: it is a bag; its format version is a number this code reads; every file of the manifests is
    there with its SHA-256 and no other file is in the payload; ``archive.json`` is a JSON object naming this format
    and the same format version; ``data/tables/`` holds exactly the tables that ``archive.json``'s ``rows`` lists,
    each with that many lines.

    Raises:
        ArchiveError: the message names the problem (the missing, unexpected or changed files, the versions).
    """
    path = Path(path)
    if not (path / "bagit.txt").is_file():
        raise ArchiveError(f"{path} is not a study archive: no bagit.txt (a BagIt bag written by "
                           "'python app.py archive')")
    try:
        bag = bagit.Bag(str(path))
    except bagit.BagError as error:
        raise ArchiveError(f"{path} is not a readable BagIt bag: {error}") from None
    version = bag.info.get(FORMAT_VERSION_FIELD)
    if version is None:
        raise ArchiveError(f"{path} has no {FORMAT_VERSION_FIELD} in bag-info.txt: not a study archive")
    if isinstance(version, list):
        raise ArchiveError(f"{path}: bag-info.txt gives {FORMAT_VERSION_FIELD} {len(version)} times ({version})")
    if not version.strip().isdigit():
        raise ArchiveError(f"{path}: bag-info.txt's {FORMAT_VERSION_FIELD} {version!r} is not a number")
    if int(version) > FORMAT_VERSION:
        raise ArchiveError(f"{path} is in archive format version {version}, newer than this program reads "
                           f"({FORMAT_VERSION}): update the platform to restore it")
    try:
        bag.validate()
    except bagit.BagError as error:
        raise ArchiveError(f"{path} fails its checksums: {_problems(bag, error)}") from None
    manifest = _read_manifest(path)
    if manifest["format_version"] != int(version):
        raise ArchiveError(f"{path}: data/{MANIFEST} says format version {manifest['format_version']!r}, "
                           f"bag-info.txt's {FORMAT_VERSION_FIELD} says {version}")
    _check_tables(path, manifest["rows"])
    return OpenedArchive(path / "data", manifest)


def _read_manifest(path: Path) -> dict[str, Any]:
    """The bag's ``data/archive.json``, checked to be a JSON object naming this format, with an integer
    ``format_version``, the study's name and a ``rows`` object of table name -> row count.

    Raises:
        ArchiveError: no such file, not JSON, not an object, another format, or a missing or malformed key.
    """
    where = f"{path}: data/{MANIFEST}"
    file = path / "data" / MANIFEST
    if not file.is_file():
        raise ArchiveError(f"{where} is missing")
    text = file.read_text(encoding="utf-8")
    if not text.strip():
        raise ArchiveError(f"{where} is empty")
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as error:
        raise ArchiveError(f"{where} is not JSON: {error}") from None
    if not isinstance(manifest, dict):
        raise ArchiveError(f"{where} is not a JSON object but a {type(manifest).__name__}")
    if manifest.get("format") != FORMAT_NAME:
        raise ArchiveError(f"{path}: {MANIFEST} names format {manifest.get('format')!r}, not {FORMAT_NAME!r}")
    if type(manifest.get("format_version")) is not int:
        raise ArchiveError(f"{where} has no integer format_version (it has {manifest.get('format_version')!r})")
    if not isinstance(manifest.get("study"), str):
        raise ArchiveError(f"{where} has no study name ('study')")
    rows = manifest.get("rows")
    if rows is None:
        raise ArchiveError(f"{where} has no 'rows' (the row count of each table)")
    if not isinstance(rows, dict) or not all(type(count) is int and count >= 0 for count in rows.values()):
        raise ArchiveError(f"{where}: 'rows' is not an object of table name -> row count (a whole number)")
    return manifest


def _check_tables(path: Path, rows: dict[str, int]) -> None:
    """Check that ``data/tables/`` holds exactly one ``<table>.jsonl`` per table that ``archive.json``'s ``rows``
    lists, each with as many lines as it lists rows.

    Raises:
        ArchiveError: names every unlisted file, listed table without a file, and differing count.
    """
    folder = path / "data" / TABLES
    files = {file.name: file for file in folder.iterdir() if file.is_file()} if folder.is_dir() else {}
    problems = [f"data/{TABLES}/{name} is not listed in {MANIFEST}'s rows"
                for name in sorted(files) if name.removesuffix(".jsonl") not in rows]
    for table, count in rows.items():
        file = files.get(f"{table}.jsonl")
        if file is None:
            problems.append(f"{MANIFEST} lists table {table} ({count} rows) but data/{TABLES}/{table}.jsonl is "
                            "missing")
            continue
        lines = len(file.read_text(encoding="utf-8").splitlines())
        if lines != count:
            problems.append(f"data/{TABLES}/{table}.jsonl has {lines} line(s), {MANIFEST} lists {count} row(s)")
    if problems:
        raise ArchiveError(f"{path}: its tables do not match {MANIFEST}: {'; '.join(problems)}")


def _problems(bag: bagit.Bag, error: bagit.BagError) -> str:
    """The files a failed validation is about: missing and unexpected files (which bagit's size check reports
    only as counts), else bagit's own message (the file whose checksum differs)."""
    missing, unexpected = bag.compare_manifests_with_fs()
    named = [f"missing file {name}" for name in sorted(missing)] + [f"unexpected file {name}"
                                                                      for name in sorted(unexpected)]
    return "; ".join(named) or str(error)
