"""Cases from a PACS over DICOMweb (DICOM PS3.18): search studies with QIDO-RS, retrieve their instances with
WADO-RS into the data folder, and import them exactly like a folder import (``studyapp.services.ingest``).

HTTP is dicomweb-client's. Retrieved files are written under ``DATA_DIR/pacs/<host>/<StudyInstanceUID>/`` one file
per SOP Instance UID (atomically), so a re-run retrieves only what is missing and the folder import skips what is
already in the study. Every study succeeds or fails on its own: one unreachable or missing study, or a frame that
does not decode, is listed with the reason while the others import. Credentials are never stored.
"""

from __future__ import annotations

import csv
import os
import re
import socket
import ssl
import tempfile
from datetime import datetime
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

import pydicom
import requests
from dicomweb_client import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_user_pass
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from studyapp.db.models import Case, ReaderStudy
from studyapp.dicom import display, geometry
from studyapp.services import audit, ingest
from studyapp.services.errors import InvalidInput, StudyError

NON_IMAGE_MODALITIES = ("SR", "SEG", "KO", "PR", "DOC", "RTSTRUCT")
"""Instances of these modalities (reports, segmentations, key objects, presentation states) are not retrieved."""

_STUDY_FIELDS = ("StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "PatientID")
_ANY_TRANSFER_SYNTAX = (("application/dicom", "*"),)  # as stored; no transcoding by the server (PS3.18 8.7.3.5)


class PacsError(StudyError):
    """The PACS cannot be used: unreachable, credentials refused, an answer that is not DICOMweb."""


@dataclass(frozen=True)
class PacsConnection:
    """A DICOMweb service and how to sign in to it.

    Attributes:
        url: base URL of the DICOMweb API, e.g. ``http://pacs:8042/dicom-web`` (QIDO-RS, WADO-RS and STOW-RS
            below it).
        username, password: HTTP basic authentication, or ``None``.
        token: an OAuth bearer token (``Authorization: Bearer``), or ``None``; not together with a username.
        timeout: seconds to wait for each HTTP answer.
    """

    url: str
    username: str | None = None
    password: str | None = None
    token: str | None = None
    timeout: float = 30.0

    def client(self) -> DICOMwebClient:
        """A dicomweb-client for this service (no retries: a failure is reported at once).

        Raises:
            InvalidInput: the URL is not http(s), or both a username and a token are given.
        """
        parsed = urlparse(self.url or "")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInput(f"DICOMweb URL must start with http:// or https:// and name a host, got {self.url!r}")
        if self.username and self.token:
            raise InvalidInput("give either a username and password or a bearer token, not both")
        session = (create_session_from_user_pass(self.username, self.password or "") if self.username
                   else requests.Session())
        if self.token:
            session.headers["Authorization"] = f"Bearer {self.token}"
        client = DICOMwebClient(self.url.rstrip("/"), session=session, timeout=self.timeout)
        client.set_http_retry_params(retry=False)
        return client

    def describe(self, error: Exception) -> str:
        """A sentence naming this PACS and what went wrong in ``error`` (an exception from requests)."""
        if isinstance(error, requests.HTTPError) and error.response is not None:
            status = error.response.status_code
            if status in (401, 403):
                return f"the PACS at {self.url} refused the credentials (HTTP {status}): check the username and " \
                       "password or the token"
            return f"the PACS at {self.url} answered HTTP {status} {error.response.reason} for {error.request.url}"
        if isinstance(error, requests.Timeout):
            return f"the PACS at {self.url} did not answer within {self.timeout:g} s"
        if isinstance(error, requests.ConnectionError):
            return f"the PACS at {self.url} cannot be reached: {connection_problem(self.url, error)}"
        return f"the PACS at {self.url} gave an answer that cannot be read: {type(error).__name__}: {error}"


def _causes(error: BaseException):
    """``error`` and the exceptions under it (``__cause__``/``__context__``, urllib3's ``reason``, requests'
    wrapped first argument), outermost first."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        wrapped = getattr(error, "reason", None)
        if not isinstance(wrapped, BaseException):
            wrapped = error.args[0] if error.args and isinstance(error.args[0], BaseException) else None
        error = error.__cause__ or wrapped or error.__context__


def connection_problem(url: str, error: BaseException) -> str:
    """One sentence for a connection that failed: "cannot connect to pacs:8042: connection refused" (the host and
    port of ``url`` and the likeliest cause read from the exception chain of ``error``), instead of urllib3's
    ``HTTPConnectionPool(...): Max retries exceeded ... NewConnectionError`` text."""
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    where = f"{parts.hostname}:{port}"
    for cause in _causes(error):
        if isinstance(cause, socket.gaierror):
            return f"cannot connect to {where}: the name {parts.hostname!r} is not known (check the host name)"
        if isinstance(cause, ConnectionRefusedError):
            return f"cannot connect to {where}: connection refused (nothing listens there: check the port and " \
                   "that the PACS runs)"
        if isinstance(cause, ssl.SSLError):
            return f"cannot connect to {where}: the TLS handshake failed ({cause.reason or cause}); check http/https"
        if isinstance(cause, (TimeoutError, socket.timeout)):
            return f"cannot connect to {where}: no answer to the connection (a firewall, or the host is down)"
        if isinstance(cause, ConnectionResetError):
            return f"cannot connect to {where}: the connection was reset (a proxy or http/https mix-up)"
        if isinstance(cause, OSError) and cause.strerror:
            return f"cannot connect to {where}: {cause.strerror.lower()}"
    return f"cannot connect to {where}"


def _is_calendar_date(value: str) -> bool:
    """Whether ``value`` is a DICOM DA date ``YYYYMMDD`` that exists in the calendar (PS3.5 6.2)."""
    if not re.fullmatch(r"\d{8}", value):
        return False
    try:
        datetime.strptime(value, "%Y%m%d")
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class SearchCriteria:
    """A QIDO-RS study search (PS3.18 10.6); empty criteria are not sent.

    Attributes:
        accession_numbers: one search per (0008,0050) Accession Number; hits of all of them are combined.
        date_from, date_to: (0008,0020) Study Date range, ``YYYYMMDD`` (either end may be open).
        modality: (0008,0061) Modalities in Study, e.g. ``CR``.
        description: matched as a case-insensitive part of (0008,1030) Study Description; matched here, not by
            the PACS, because wildcard matching differs between PACS.
    """

    accession_numbers: tuple[str, ...] = ()
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    description: str = ""

    def filters(self) -> dict[str, str]:
        """The QIDO-RS query parameters other than the accession number.

        Raises:
            InvalidInput: a date is not a calendar date ``YYYYMMDD`` or the range is reversed.
        """
        for name, value in (("from", self.date_from), ("to", self.date_to)):
            if value and not _is_calendar_date(value):
                raise InvalidInput(f"study date {name} must be a calendar date YYYYMMDD, got {value!r}")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise InvalidInput(f"study date range is reversed: {self.date_from} is after {self.date_to}")
        filters = {}
        if self.date_from or self.date_to:
            filters["StudyDate"] = f"{self.date_from}-{self.date_to}"
        if self.modality.strip():
            filters["ModalitiesInStudy"] = self.modality.strip().upper()
        return filters


@dataclass(frozen=True)
class StudyHit:
    """One study in a QIDO-RS answer. ``problem`` says why it cannot be imported (e.g. no Study Instance UID)."""

    study_instance_uid: str
    accession_number: str = ""
    study_date: str = ""
    study_description: str = ""
    modalities: str = ""
    patient_id: str = ""
    instances: int | None = None
    problem: str = ""


@dataclass
class SearchResult:
    """Hits in answer order without duplicates, and accession numbers that found nothing."""

    hits: list[StudyHit] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line per hit, then the accession numbers without a study."""
        lines = [f"{len(self.hits)} stud{'y' if len(self.hits) == 1 else 'ies'} found"]
        for hit in self.hits:
            lines.append(f"  {hit.study_instance_uid or '(no StudyInstanceUID)'} | {hit.accession_number} | "
                         f"{hit.study_date} | {hit.modalities} | {hit.study_description} | "
                         f"{'' if hit.instances is None else hit.instances} instance(s)"
                         + (f" | cannot be imported: {hit.problem}" if hit.problem else ""))
        lines += [f"  no study with accession number {number!r}" for number in self.not_found]
        return "\n".join(lines)


def _value(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def hits_from_qido(answer: list[dict]) -> list[StudyHit]:
    """The studies of a QIDO-RS JSON answer (PS3.18 F.2 DICOM JSON model).

    A study without (0020,000D) Study Instance UID is kept with a ``problem`` (the coordinator sees it but cannot
    import it); so is one whose JSON cannot be parsed.
    """
    hits = []
    for number, item in enumerate(answer, start=1):
        try:
            ds = Dataset.from_json(item)
        except Exception as exc:  # pydicom raises several types for malformed DICOM JSON
            hits.append(StudyHit("", problem=f"study {number} of the answer is not valid DICOM JSON: {exc}"))
            continue
        count = _value(ds, "NumberOfStudyRelatedInstances")
        hits.append(StudyHit(
            study_instance_uid=_value(ds, "StudyInstanceUID"),
            accession_number=_value(ds, "AccessionNumber"),
            study_date=_value(ds, "StudyDate"),
            study_description=_value(ds, "StudyDescription"),
            modalities=_value(ds, "ModalitiesInStudy"),
            patient_id=_value(ds, "PatientID"),
            instances=int(count) if count.isdigit() else None,
            problem="" if _value(ds, "StudyInstanceUID") else
            f"the QIDO-RS answer gives no (0020,000D) Study Instance UID for study {number} "
            f"(accession {_value(ds, 'AccessionNumber') or 'none'})",
        ))
    return hits


def read_accession_numbers(path: str | os.PathLike) -> tuple[str, ...]:
    """Accession numbers from a CSV file: the ``accession_number`` (or ``AccessionNumber``) column, or the only
    column of a file without that header. Empty cells and repeats are left out.

    Raises:
        InvalidInput: the file is missing, not UTF-8, has several columns but none of those names, or holds no
            accession number.
    """
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the accession number file {path}: {exc}") from exc
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise InvalidInput(f"{path} holds no accession numbers")
    header = [cell.strip() for cell in rows[0]]
    named = [i for i, name in enumerate(header) if name.lower().replace("_", "") == "accessionnumber"]
    if named:
        column, rows = named[0], rows[1:]
    elif len(header) == 1:
        column = 0
    else:
        raise InvalidInput(f"{path}: no accession_number column in the header {', '.join(header)}")
    numbers = tuple(dict.fromkeys(row[column].strip() for row in rows if len(row) > column and row[column].strip()))
    if not numbers:
        raise InvalidInput(f"{path} holds no accession numbers")
    return numbers


def search_studies(connection: PacsConnection, criteria: SearchCriteria) -> SearchResult:
    """Search the PACS for studies (QIDO-RS ``GET {url}/studies``).

    Returns:
        The hits (with Study Instance UID, accession, date, description, modalities, patient ID, instance count);
        accession numbers that matched no study are listed in ``not_found``.

    Raises:
        InvalidInput: invalid criteria or URL.
        PacsError: the PACS is unreachable, refuses the credentials, or answers with an error or non-JSON.
    """
    client, filters = connection.client(), criteria.filters()
    queries = [dict(filters, AccessionNumber=number) for number in criteria.accession_numbers] or [filters]
    result, seen = SearchResult(), set()
    for query in queries:
        try:
            answer = client.search_for_studies(search_filters=query, fields=list(_STUDY_FIELDS))
        except (requests.RequestException, ValueError) as exc:
            raise PacsError(f"study search failed: {connection.describe(exc)}") from exc
        hits = hits_from_qido(answer)
        needle = criteria.description.strip().lower()
        hits = [hit for hit in hits if needle in hit.study_description.lower()]
        if not hits and "AccessionNumber" in query:
            result.not_found.append(query["AccessionNumber"])
        for hit in hits:
            key = hit.study_instance_uid or id(hit)
            if key not in seen:
                seen.add(key)
                result.hits.append(hit)
    return result


@dataclass
class StudyRetrieval:
    """What happened to one study: instances retrieved now, already on disk, left out (not images), the errors
    (each naming the study) and the folder import of what is on disk."""

    study_instance_uid: str
    retrieved: int = 0
    already_retrieved: int = 0
    not_images: int = 0
    errors: list[str] = field(default_factory=list)
    report: ingest.ImportReport | None = None

    @property
    def status(self) -> str:
        """``imported`` (no error), ``partial`` (errors, but some instances are on disk and imported) or
        ``failed`` (errors and no instance of the study retrieved, now or before)."""
        if not self.errors:
            return "imported"
        return "partial" if self.retrieved + self.already_retrieved else "failed"


@dataclass
class PacsImportReport:
    """Per-study outcomes of one PACS import."""

    url: str
    studies: list[StudyRetrieval] = field(default_factory=list)

    @property
    def failed(self) -> list[StudyRetrieval]:
        """Studies with at least one error."""
        return [outcome for outcome in self.studies if outcome.errors]

    def summary(self) -> str:
        """Multi-line text: one block per study with its counts, errors and folder import summary."""
        lines = [f"PACS {self.url}: {len(self.studies)} stud{'y' if len(self.studies) == 1 else 'ies'}, "
                 f"{len(self.failed)} with errors (run the import again to retry them)"]
        for outcome in self.studies:
            lines.append(f"study {outcome.study_instance_uid}: {outcome.status}; {outcome.retrieved} instance(s) "
                         f"retrieved, {outcome.already_retrieved} already retrieved, {outcome.not_images} not "
                         "images (SR/SEG/...) left out")
            lines += [f"  error: {error}" for error in outcome.errors]
            if outcome.report is not None:
                lines += ["  " + line for line in outcome.report.summary().splitlines()]
        return "\n".join(lines)


def study_folder(data_dir: str | os.PathLike, url: str, study_instance_uid: str) -> Path:
    """Where the instances of a study from ``url`` are kept: ``data_dir/pacs/<host_port>/<StudyInstanceUID>``."""
    host = re.sub(r"[^A-Za-z0-9.-]+", "_", urlparse(url).netloc) or "pacs"
    return Path(data_dir) / "pacs" / host / study_instance_uid


def _write_atomically(ds: Dataset, target: Path) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".part-", suffix=".dcm")
    os.close(handle)
    try:
        ds.save_as(temporary, enforce_file_format=True)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise


def _image_problem(ds: Dataset) -> str | None:
    """Why a retrieved image must not be kept, or ``None``: its header does not match its pixel data or declares
    too large a frame (``geometry.pixel_data_problem``, the folder import's check), or its first frame does not
    decode. Checked before the file is written, so a bad one is refused now, not in front of a reader."""
    if "PixelData" not in ds:
        return None
    try:
        problem = geometry.pixel_data_problem(ds)
        if problem is not None:
            return f"its header does not fit its pixel data: {problem}"
        display.decode_frame(ds, 0)
    except (ValueError, display.UndecodableImageError) as exc:
        return f"its pixel data does not decode: {exc}"
    return None


def _retrieve_study(client: DICOMwebClient, connection: PacsConnection, folder: Path,
                    outcome: StudyRetrieval) -> None:
    uid = outcome.study_instance_uid
    try:
        listing = client.search_for_instances(study_instance_uid=uid, fields=["Modality"])
    except (requests.RequestException, ValueError) as exc:
        outcome.errors.append(f"study {uid}: the instance list cannot be had: {connection.describe(exc)}")
        return
    if not listing:
        outcome.errors.append(f"study {uid}: the PACS at {connection.url} lists no instances for it")
        return
    folder.mkdir(parents=True, exist_ok=True)
    for number, item in enumerate(listing, start=1):
        try:
            ds = Dataset.from_json(item)
        except Exception as exc:  # pydicom raises several types for malformed DICOM JSON
            outcome.errors.append(f"study {uid}: instance {number} of the QIDO-RS answer is not valid DICOM JSON: "
                                  f"{exc}")
            continue
        series, sop = _value(ds, "SeriesInstanceUID"), _value(ds, "SOPInstanceUID")
        if not series or not sop:
            missing = " and ".join(n for n, v in (("(0020,000E) Series", series), ("(0008,0018) SOP", sop)) if not v)
            outcome.errors.append(f"study {uid}: the QIDO-RS answer gives no {missing} Instance UID for instance "
                                  f"{number}; it cannot be retrieved")
            continue
        if _value(ds, "Modality").upper() in NON_IMAGE_MODALITIES:
            outcome.not_images += 1
            continue
        target = folder / f"{sop}.dcm"
        if target.exists():
            outcome.already_retrieved += 1
            continue
        try:
            instance = client.retrieve_instance(uid, series, sop, media_types=_ANY_TRANSFER_SYNTAX)
        except (requests.ConnectionError, requests.Timeout) as exc:
            outcome.errors.append(f"study {uid}: retrieval stopped at instance {sop}: {connection.describe(exc)}")
            return
        except (requests.RequestException, ValueError) as exc:
            outcome.errors.append(f"study {uid}: instance {sop} cannot be retrieved: {connection.describe(exc)}")
            continue
        problem = _image_problem(instance)
        if problem is not None:
            outcome.errors.append(f"study {uid}: instance {sop} was retrieved but {problem}; it was not kept")
            continue
        _write_atomically(instance, target)
        outcome.retrieved += 1


def import_studies(session: Session, study: ReaderStudy, connection: PacsConnection, study_instance_uids,
                   data_dir: str | os.PathLike, decode: bool = False) -> PacsImportReport:
    """Retrieve the studies (WADO-RS, per instance) into the data folder and import them into ``study``.

    Each study: QIDO-RS lists its instances; non-image instances (``NON_IMAGE_MODALITIES``) are left out; each
    instance not yet on disk is retrieved in its stored transfer syntax, checked like a folder import (header
    against pixel data, frame size) and its first frame decoded (a bad one is refused and listed) and written; then the study folder is imported with
    ``ingest.import_folder`` (same idempotence and report) and its cases get ``pacs_url``. Errors are collected
    per study; a connection failure stops only that study. Re-running retrieves only what is missing.

    Args:
        session: open session; the caller commits.
        study: the reader study receiving the cases.
        connection: the PACS.
        study_instance_uids: StudyInstanceUIDs to import (from ``search_studies``).
        data_dir: the platform's data folder (``Settings.data_dir``).
        decode: as ``ingest.import_folder`` (the app's PACS panel: decoded in the background for the viewer).

    Returns:
        A ``PacsImportReport`` with one ``StudyRetrieval`` per UID, in the order given.

    Raises:
        InvalidInput: no UIDs, or an invalid URL or credentials combination.
    """
    uids = list(dict.fromkeys(uid.strip() for uid in study_instance_uids if uid and uid.strip()))
    if not uids:
        raise InvalidInput("choose at least one study (StudyInstanceUID) to import from the PACS")
    client = connection.client()
    report = PacsImportReport(connection.url)
    for uid in uids:
        outcome = StudyRetrieval(uid)
        report.studies.append(outcome)
        folder = study_folder(data_dir, connection.url, uid)
        _retrieve_study(client, connection, folder, outcome)
        if outcome.retrieved + outcome.already_retrieved:
            outcome.report = ingest.import_folder(session, study, folder, decode=decode)
            for case_id in outcome.report.case_ids:
                session.get(Case, case_id).pacs_url = connection.url
    session.flush()
    audit.record(session, "pacs_imported", study_id=study.id, url=connection.url,
                 studies={o.study_instance_uid: o.status for o in report.studies})
    return report


@dataclass
class SendReport:
    """Files sent with STOW-RS (path -> PACS URL), files kept only in their folder (case not from a PACS), and
    errors naming the file and study."""

    sent: dict[str, str] = field(default_factory=dict)
    not_from_pacs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Counts, then the errors."""
        lines = [f"{len(self.sent)} file(s) sent with STOW-RS, {len(self.not_from_pacs)} kept in the folder only "
                 f"(case not from a PACS), {len(self.errors)} error(s)"]
        lines += [f"  sent: {path} -> {url}" for path, url in self.sent.items()]
        lines += [f"  error: {error}" for error in self.errors]
        return "\n".join(lines)


def store(connection: PacsConnection, ds: Dataset) -> None:
    """Send one instance with STOW-RS (``POST {url}/studies``, PS3.18 10.5).

    Raises:
        PacsError: the PACS cannot be reached, refuses the credentials, or lists the instance as failed
            (Failed SOP Sequence, PS3.18 10.5.3).
    """
    try:
        answer = connection.client().store_instances([ds])
    except (requests.RequestException, ValueError) as exc:
        raise PacsError(connection.describe(exc)) from exc
    failed = answer.get("FailedSOPSequence") if answer is not None else None
    if failed:
        reason = failed[0].get("FailureReason")
        raise PacsError(f"the PACS at {connection.url} refused the instance (Failure Reason {reason})")


def dicom_files(folder: str | os.PathLike) -> list[Path]:
    """The ``*.dcm`` files in ``folder`` and its subfolders, sorted.

    Raises:
        InvalidInput: ``folder`` is empty text or not a folder, or holds no ``*.dcm`` file (the message names
            what it holds).
    """
    if not str(folder).strip():
        raise InvalidInput("give the folder of DICOM files to send")
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInput(f"folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*.dcm") if p.is_file())
    if not files:
        others = sorted(p.name for p in folder.rglob("*") if p.is_file())
        raise InvalidInput(f"no DICOM file (*.dcm) in {folder} to send" +
                           (f"; it holds {', '.join(others[:5])}" + (" ..." if len(others) > 5 else "")
                            if others else ", it is empty"))
    return files


def send_to_origin(session: Session, study: ReaderStudy, paths, credentials: PacsConnection) -> SendReport:
    """Send DICOM files (SR, SEG) to the PACS their case came from, matched by Study Instance UID.

    Args:
        session: open session (only read).
        study: the reader study whose cases the files belong to.
        paths: DICOM files.
        credentials: username/password or token for the PACS; its ``url`` is replaced by each case's
            ``pacs_url``.

    Returns:
        A ``SendReport``: each file is sent, kept (its case was imported from a folder), or listed with an error
        (unreadable file, no case of this study with its Study Instance UID, the PACS refused it).
    """
    report = SendReport()
    origins = {uid: url for uid, url in session.execute(
        select(Case.study_instance_uid, Case.pacs_url).where(Case.study_id == study.id))}
    for path in map(str, paths):
        try:
            ds = pydicom.dcmread(path)
        except pydicom.errors.InvalidDicomError:
            report.errors.append(f"{path}: not a DICOM file (no DICM prefix after the 128-byte preamble, PS3.10 7.1)")
            continue
        except OSError as exc:
            report.errors.append(f"{path}: cannot be read: {exc}")
            continue
        uid = str(ds.get("StudyInstanceUID", ""))
        if uid not in origins:
            report.errors.append(f"{path}: study {study.name!r} has no case with StudyInstanceUID {uid or '(none)'}")
        elif not origins[uid]:
            report.not_from_pacs.append(path)
        else:
            try:
                store(replace(credentials, url=origins[uid]), ds)
            except PacsError as exc:
                report.errors.append(f"{path} (study {uid}): {exc}")
            else:
                report.sent[path] = origins[uid]
    audit.record(session, "pacs_sent", study_id=study.id, sent=len(report.sent), errors=len(report.errors))
    return report
