"""``python app.py restore OUT --as NAME``: load a study archive (:mod:`studyapp.services.archive`) into the
database as a new study.

Everything is checked before the first row is written (the bag's checksums and files, the format version, that
``archive.json`` agrees with the bag and its tables, that the archive is not blinded, that no study is named
``NAME``, that every row has its required columns, unique ids, known roles and texts that fit their columns, that
every ``images.jsonl`` line has well-typed UIDs, checksum and file), and the rows go in the caller's one
transaction: a refused or failed restore changes nothing in the database. The archived DICOM files are copied to
``DATA_DIR/restored/study-<id>-<random>/``; an archive written without them gets them from a folder named by the
caller, each found by its SHA-256, or else its instances have no file (the analysis does not need them; the summary
warns, and the viewer says that no image file is stored).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import bindparam, event, select, update
from sqlalchemy.orm import Session

from studyapp.db.models import Instance, ReaderStudy
from studyapp.services import audit, study_rows
from studyapp.services.archive_format import ArchiveError, OpenedArchive, file_sha256, open_archive
from studyapp.services.errors import InvalidInput

#: Folder under the data folder that receives the images of restored studies.
RESTORED_DIR = "restored"


@dataclass(frozen=True)
class RestoreSummary:
    """What :func:`restore_study` did: the new ``study``, the checked ``archive``, the id maps and accounts
    (:class:`studyapp.services.study_rows.InsertedRows`), the DICOM files copied and the instances left without a
    file (a ``--no-images`` archive restored without ``--images``: the viewer says no image file is stored)."""

    study: ReaderStudy
    archive: OpenedArchive
    inserted: study_rows.InsertedRows
    images: int
    without_file: int

    def format(self) -> str:
        """One line per fact, for the command line."""
        rows = sum(len(ids) for ids in self.inserted.ids.values())
        lines = [f"restored {self.archive.manifest['study']!r} as {self.study.name!r} (study id {self.study.id}): "
                 f"{rows} rows, {self.images} DICOM file(s)"]
        if self.without_file:
            lines.append(f"warning: images not restored: {self.without_file} instance(s) have no file; pass --images "
                         "FOLDER to find them by SHA-256")
        if self.inserted.accounts_created:
            lines.append(f"accounts created without a password (set one with `python app.py set-password USER` before "
                         f"they sign in): "
                         f"{', '.join(self.inserted.accounts_created)}")
        if self.inserted.accounts_reused:
            lines.append(f"existing accounts used (the restored reads join their worklists): "
                         f"{', '.join(self.inserted.accounts_reused)}")
        return "\n".join(lines)


def _check(archive: OpenedArchive, session: Session, name: str) -> None:
    """Refuse a blinded archive and a name that is taken.

    Raises:
        ArchiveError: a blinded archive.
        InvalidInput: an empty name or one already used.
    """
    if archive.manifest.get("blinded"):
        raise ArchiveError("a blinded archive cannot be restored: it does not say which arm each reading was under; "
                           "restore the unblinded archive")
    if not name.strip():
        raise InvalidInput("the new study's name is empty")
    if session.scalar(select(ReaderStudy.id).where(ReaderStudy.name == name)) is not None:
        raise InvalidInput(f"a study named {name!r} already exists; restore under another name (--as)")


def _remove_on_rollback(session: Session, folder: Path) -> None:
    """Remove ``folder`` if the session's transaction rolls back; keep it once it commits."""

    def remove(_session):
        shutil.rmtree(folder, ignore_errors=True)

    def keep(_session):
        event.remove(session, "after_rollback", remove)

    event.listen(session, "after_rollback", remove, once=True)
    event.listen(session, "after_commit", keep, once=True)


def _image_sources(archive: OpenedArchive, images: Path | None) -> dict[str, tuple[dict, Path]]:
    """SOPInstanceUID -> (its ``images.jsonl`` line, the file to copy): the archive's own files, or, for an archive
    written without them, the files under ``images`` whose SHA-256 the archive lists.

    Raises:
        ArchiveError: a malformed ``images.jsonl`` line (:meth:`OpenedArchive.image_list`), ``images`` given for an
            archive that holds its images, or some listed files are not under ``images`` (the message counts them
            and names the first SOPInstanceUIDs).
    """
    listed = archive.image_list()
    if images is None:
        return {line["sop_instance_uid"]: (line, archive.root / line["file"]) for line in listed if line["file"]}
    if any(line["file"] for line in listed):
        raise ArchiveError("--images is for an archive written with --no-images; this one holds its DICOM files")
    wanted = {line["sha256"]: line for line in listed}
    found: dict[str, tuple[dict, Path]] = {}
    for path in sorted(p for p in Path(images).rglob("*") if p.is_file()):
        line = wanted.get(file_sha256(path))
        if line is not None:
            found.setdefault(line["sop_instance_uid"], (line, path))
    missing = [line["sop_instance_uid"] for line in listed if line["sop_instance_uid"] not in found]
    if missing:
        raise ArchiveError(f"{len(missing)} of the archive's {len(listed)} DICOM file(s) are not under {images} (no "
                           f"file has their SHA-256): SOPInstanceUID {', '.join(missing[:3])}"
                           + (", ..." if len(missing) > 3 else ""))
    return found


def _copy_images(session: Session, sources: dict[str, tuple[dict, Path]], instances: list[dict],
                 instance_ids: dict[int, int], parent: Path, study_id: int) -> int:
    """Copy the DICOM files of ``sources`` (:func:`_image_sources`) to a new folder
    ``parent/study-<study_id>-<random>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` and point the
    new instance rows at them; the folder is removed again when the transaction rolls back. Returns the files
    copied."""
    if not sources:
        return 0
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"study-{study_id}-", dir=parent))  # never another study's folder
    _remove_on_rollback(session, folder)
    paths = []
    for row in instances:
        if row["sop_instance_uid"] not in sources:
            continue
        line, source = sources[row["sop_instance_uid"]]
        target = folder / line["study_instance_uid"] / line["series_instance_uid"] / f"{line['sop_instance_uid']}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        paths.append({"instance_id": instance_ids[row["id"]], "file_path": str(target)})
    table = Instance.__table__  # a Core UPDATE run once per file (executemany)
    session.execute(update(table).where(table.c.id == bindparam("instance_id"))
                    .values(file_path=bindparam("file_path")), paths)
    return len(paths)


def restore_study(session: Session, path: str | Path, name: str, data_dir: str | Path,
                  images: str | Path | None = None) -> RestoreSummary:
    """Check the archive at ``path`` and load it as the new study ``name``. Does not commit.

    Args:
        data_dir: the data folder; the images go to a new folder ``data_dir/restored/study-<new id>-<random>/``.
        images: for an archive written with ``--no-images``: a folder holding its DICOM files, found by the SHA-256
            the archive lists (any names, any depth); every file must be there.

    Raises:
        ArchiveError: not an archive, a wrong checksum, a missing or unexpected file, a newer format version, an
            ``archive.json`` that does not match the bag or its tables, a blinded archive, rows that do not fit
            this database (:func:`studyapp.services.study_rows.check_rows`, or a row the database refuses: a
            constraint, a value of the wrong type or out of range; the transaction must then be rolled back), a
            malformed ``images.jsonl`` line (file, line, field), or ``images`` without every listed file (the
            message names the problem).
        InvalidInput: ``name`` is empty or already used.
    """
    archive = open_archive(path)
    name = name.strip()
    _check(archive, session, name)
    sources = _image_sources(archive, Path(images) if images is not None else None)
    rows = {table: archive.table(table) for table in archive.manifest["rows"]}
    try:
        # no instance keeps the archive's file path: only the files copied below are pointed at (never a path on
        # this machine that an edited archive names)
        inserted = study_rows.insert_rows(session, rows, {"reader_studies": {"name": name},
                                                          "instances": {"file_path": ""}})
    except (KeyError, study_rows.RowsError) as error:  # the database's refusals too: the caller's rollback undoes all
        raise ArchiveError(f"{path} does not fit this database: {error.args[0]}") from None
    study = session.get(ReaderStudy, inserted.study_id)
    copied = _copy_images(session, sources, rows.get("instances", []), inserted.ids["instances"],
                          Path(data_dir) / RESTORED_DIR, study.id)
    audit.record(session, "study_restored", study_id=study.id, archive=str(path),
                 archived_study=archive.manifest["study"], format_version=archive.manifest["format_version"],
                 accounts_created=inserted.accounts_created)
    return RestoreSummary(study, archive, inserted, copied, len(rows.get("instances", [])) - copied)
