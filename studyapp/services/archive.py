"""``python app.py archive STUDY OUT``: one self-describing package holding everything needed to check a reader
study's results (:mod:`studyapp.services.archive_format` describes the layout).

The package holds the study's database rows (:mod:`studyapp.services.study_rows`: definition, cases, drafts with
their sources, the design, every report version, answers, comparison sets and judgements, the audit trail), the
DICOM files (or, with ``images=False``, their UIDs and SHA-256 only) with the identifying attributes each file
carries (:mod:`studyapp.services.identifying`), the reads export, the balance report, and the analysis outputs of
the offline judge with the exact software versions. A blinded archive leaves out what
:mod:`studyapp.services.archive_blinding` lists.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bagit
from sqlalchemy.orm import Session

from studyapp.clock import utcnow
from studyapp.db.models import ReaderStudy
from studyapp.db.session import head_revision
from studyapp.services import archive_format as fmt
from studyapp.services import archive_analysis, audit, design, export, identifying, safe_csv, study_rows
from studyapp.services.archive_blinding import BLINDED_READS_COLUMNS, blind_rows
from studyapp.services.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ArchiveSummary:
    """What :func:`write_archive` wrote: ``path``; DICOM files listed, how many were included and how many carry
    Basic Profile attributes other than UIDs; ``identifying``: keyword -> number of files carrying it;
    ``analysis``: the analysis tables written, or why there are none."""

    path: Path
    files: int = 0
    images_included: int = 0
    files_identifying: int = 0
    identifying: Counter[str] = field(default_factory=Counter)
    analysis: str = ""

    def format(self) -> str:
        """Lines for the command line, with the ``--no-images`` suggestion when images with identifying
        attributes were included."""
        lines = [f"wrote {self.path}: {self.files} DICOM file(s) listed, {self.images_included} included; "
                 f"analysis: {self.analysis}"]
        if self.identifying:
            counts = ", ".join(f"{keyword} ({n})" for keyword, n in self.identifying.most_common())
            lines.append(f"{self.files_identifying} of {self.files} DICOM file(s) carry identifying attributes (DICOM "
                         f"PS3.15 Basic Profile, UIDs aside): {counts}; listed per file in data/{fmt.IMAGE_LIST}")
            if self.images_included:
                lines.append("these files would leave the site with the archive: consider --no-images (UIDs and "
                             "SHA-256 only)")
        return "\n".join(lines)


def software_versions() -> dict[str, Any]:
    """The software that made an archive: Python, the platform, every installed distribution's version and the
    code's git commit (``None`` outside a git checkout; ``modified`` when the checkout has uncommitted changes)."""
    packages = {dist.metadata["Name"]: dist.version for dist in importlib.metadata.distributions()
                if dist.metadata["Name"]}
    commit = modified = None
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        modified = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                       capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    return {"python": sys.version, "implementation": platform.python_implementation(),
            "platform": platform.platform(), "git_commit": commit, "modified": modified,
            "packages": dict(sorted(packages.items(), key=lambda item: item[0].lower()))}


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def _images(rows: study_rows.Rows, root: Path, include: bool, summary: ArchiveSummary) -> list[dict[str, Any]]:
    """List every DICOM file (UIDs, SHA-256, identifying attributes), copy it into ``root`` when ``include``, and
    point the instance rows at the copy (``images/...``) or at nothing (``""``): a site's file paths never leave.

    Raises:
        InvalidInput: an instance's file is missing or unreadable (names the file and its SOPInstanceUID).
    """
    series = {s["id"]: s for s in rows["series"]}
    cases = {c["id"]: c for c in rows["cases"]}
    listed = []
    for instance in rows["instances"]:
        source = Path(instance["file_path"])
        one_series = series[instance["series_id"]]
        uids = (cases[one_series["case_id"]]["study_instance_uid"], one_series["series_instance_uid"],
                instance["sop_instance_uid"])
        try:
            sha256, attributes = fmt.file_sha256(source), identifying.file_identifying_attributes(source)
        except Exception as error:  # noqa: BLE001 -- any unreadable file is named, whatever pydicom raised
            raise InvalidInput(f"DICOM file {source} (SOPInstanceUID {uids[2]}) cannot be read: {error}") from None
        relative = None
        if include:
            relative = f"{fmt.IMAGES}/{'/'.join(uids)}.dcm"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, root / relative)
            summary.images_included += 1
        instance["file_path"] = relative or ""
        beyond_uids = {a.keyword for a in identifying.identifying_beyond_uids(attributes)}
        summary.identifying.update(beyond_uids)
        summary.files_identifying += bool(beyond_uids)
        listed.append({"study_instance_uid": uids[0], "series_instance_uid": uids[1], "sop_instance_uid": uids[2],
                       "sha256": sha256, "file": relative,
                       "identifying_attributes": [vars(a) for a in attributes]})
    summary.files = len(listed)
    return listed


def write_archive(session: Session, study: ReaderStudy, out: str | Path, images: bool = True,
                  blinded: bool = False) -> ArchiveSummary:
    """Write the archive of ``study`` to the new folder ``out`` (a BagIt bag) and record it in the audit trail.

    The package is built in a temporary folder beside ``out`` and renamed at the end: ``out`` appears complete
    or not at all.

    Args:
        images: include the DICOM files; when False only their UIDs and SHA-256 (``--no-images``).
        blinded: leave out which arm and source each reading, draft and comparison came from
            (:mod:`studyapp.services.archive_blinding`), the balance report and the analysis (``--blinded``).

    Raises:
        InvalidInput: ``out`` exists, or a DICOM file of the study is missing or unreadable.
    """
    out = Path(out)
    if out.exists():
        raise InvalidInput(f"{out} already exists; name a new folder for the archive")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        summary = ArchiveSummary(out)
        rows = study_rows.read_rows(session, study)
        image_list = _images(rows, work, images, summary)
        if blinded:
            rows = blind_rows(rows)
        for table, table_rows in rows.items():
            _write_jsonl(work / fmt.TABLES / f"{table}.jsonl", table_rows)
        _write_jsonl(work / fmt.IMAGE_LIST, image_list)
        reads = export.reads_table(session, study)
        safe_csv.write_jsonl(reads.drop(columns=BLINDED_READS_COLUMNS) if blinded else reads, work / fmt.READS)
        if blinded:
            analysis = {"tables": [], "not_run": "left out of a blinded archive: every table is per arm"}
        else:
            (work / fmt.BALANCE).parent.mkdir(parents=True, exist_ok=True)
            (work / fmt.BALANCE).write_text(design.written_balance(session, study).format() + "\n", encoding="utf-8")
            analysis = archive_analysis.run_analysis(session, study, work / fmt.ANALYSIS)
        summary.analysis = (f"{len(analysis['tables'])} table(s)" if analysis["tables"]
                            else analysis["not_run"])
        manifest = {
            "format": fmt.FORMAT_NAME, "format_version": fmt.FORMAT_VERSION, "created_at": utcnow().isoformat(),
            "study": study.name, "blinded": blinded, "images": images, "schema_revision": head_revision(),
            "rows": {table: len(table_rows) for table, table_rows in rows.items()},
            "analysis": analysis, "software": software_versions(),
        }
        (work / fmt.MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (work / "README.txt").write_text(
            f"Reader study archive {study.name!r} ({fmt.FORMAT_NAME} version {fmt.FORMAT_VERSION}); restore with "
            "'python app.py restore FOLDER --as NAME'.\n\n"
            + "".join(f"{name}\n    {meaning}\n" for name, meaning in fmt.LAYOUT.items()), encoding="utf-8")
        bagit.make_bag(str(work), bag_info={
            "Source-Organization": "studyapp reader-study platform", "External-Description":
                f"Reader study {study.name!r}" + (" (blinded)" if blinded else "") + ", see data/README.txt",
            fmt.FORMAT_VERSION_FIELD: str(fmt.FORMAT_VERSION)}, checksums=fmt.CHECKSUMS)
        work.chmod(0o755)  # mkdtemp's folder is private; the archive is meant to be shared
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    audit.record(session, "study_archived", study_id=study.id, folder=str(out), images=images, blinded=blinded,
                 files=summary.files)
    return summary
