"""Study archives on real rows and real DICOM files: ``python app.py archive`` writes a BagIt bag holding the
whole study, ``python app.py restore`` loads it as a new study on SQLite and on PostgreSQL, and the restored study's
analysis equals the archived tables cell for cell. Archives with a wrong checksum, a missing file, a newer format
version, rows that do not fit, or a taken study name are refused with a message naming the problem, and the
database is left exactly as it was."""

import hashlib
import json
import shutil
from pathlib import Path

import bagit
import pydicom
import pytest
from sqlalchemy import func, select

from studyapp.cli import main
from studyapp.db.base import Base
from studyapp.db.models import AuditEvent, Case, Instance, ReaderStudy, ReportVersion, Series, SignInSession
from studyapp.db.session import open_database
from studyapp.services import accounts, archive_analysis, restore, study_rows
from studyapp.services.archive_format import FORMAT_VERSION, FORMAT_VERSION_FIELD, ArchiveError, open_archive
from studyapp.services.signins import SessionExpired, SignIns
from tests.services.archived_study import DESIGN_SEED, SET_SEED, SOURCES, build_finished_study
from tests.services.test_signins import Clock

NAME = "chest pilot"


@pytest.fixture(scope="module")
def source(tmp_path_factory, shared_data):
    """The finished study in a SQLite database: ``(url, data folder, work folder)``."""
    work = tmp_path_factory.mktemp("archive")
    url = f"sqlite:///{work / 'source.db'}"
    with open_database(url).begin() as session:
        build_finished_study(session, NAME, shared_data / "dicom" / "cxr", work)
    return url, work / "data", work


def _cli(url: str, data: Path, *args: str) -> int:
    return main(["--database", url, "--data-dir", str(data), *args])


@pytest.fixture(scope="module")
def archived(source):
    """The study archived with its images (through the command line); returns the bag's folder."""
    url, data, work = source
    assert _cli(url, data, "archive", NAME, str(work / "pilot-archive")) == 0
    return work / "pilot-archive"


def _counts(url: str) -> dict[str, int]:
    """Rows per table of the database at ``url``."""
    with open_database(url)() as session:
        return {t.name: session.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_archive_is_a_valid_bag_holding_the_whole_study(source, archived):
    url, _, _ = source
    bag = bagit.Bag(str(archived))
    assert bag.is_valid() and bag.info[FORMAT_VERSION_FIELD] == str(FORMAT_VERSION)
    assert set(bag.algorithms) == {"sha256"}
    manifest = json.loads((archived / "data" / "archive.json").read_text())
    assert manifest["study"] == NAME and manifest["images"] is True and manifest["blinded"] is False
    with open_database(url)() as session:
        study = session.scalar(select(ReaderStudy).where(ReaderStudy.name == NAME))
        rows = study_rows.read_rows(session, study)
        versions = session.scalars(select(ReportVersion).order_by(ReportVersion.id)).all()
    # every table of the study, row for row
    for table, table_rows in rows.items():
        archived_rows = open_archive(archived).table(table)
        if table == "instances":
            assert [r["file_path"] for r in archived_rows] == [
                line["file"] for line in open_archive(archived).lines("images.jsonl")]
            archived_rows = [r | {"file_path": f["file_path"]} for r, f in zip(archived_rows, table_rows)]
        if table == "audit_events":  # then the archives' own events (this one's and other tests')
            assert archived_rows == table_rows[:len(archived_rows)]
            later = table_rows[len(archived_rows):]
            assert {e["kind"] for e in later} == {"study_archived"} and str(archived) in {e["detail"]["folder"]
                                                                                         for e in later}
            continue
        assert archived_rows == table_rows, table
    assert manifest["rows"]["report_versions"] == len(versions) == 23
    first = open_archive(archived).table("report_versions")[0]
    assert first["saved_at"] == versions[0].saved_at.isoformat()
    assert first["active_seconds"] == versions[0].active_seconds
    assert {d["source"] for d in open_archive(archived).table("drafts")} == {*SOURCES.values(), "normal template"}
    assert open_archive(archived).table("reader_studies")[0]["seed"] == DESIGN_SEED
    assert "password_hash" not in open_archive(archived).table("users")[0]
    # the DICOM files, byte for byte, named by their UIDs
    images = open_archive(archived).lines("images.jsonl")
    assert len(images) == 4
    for line in images:
        assert line["file"] == f"images/{line['study_instance_uid']}/{line['series_instance_uid']}/" \
                               f"{line['sop_instance_uid']}.dcm"
        assert _sha256(archived / "data" / line["file"]) == line["sha256"]
    # design, reads export, analysis, software
    assert "max arm imbalance per reader: 0" in (archived / "data" / "design" / "balance.txt").read_text()
    reads = [json.loads(line) for line in (archived / "data" / "reads.jsonl").read_text().splitlines()]
    assert len(reads) == 12 and {r["draft_source"] for r in reads} == {*SOURCES.values(), "normal template"}
    assert manifest["analysis"]["judge"].startswith("offline-negex") and len(manifest["analysis"]["tables"]) == 10
    assert all((archived / "data" / "analysis" / f"{t}.csv").is_file() for t in manifest["analysis"]["tables"])
    packages = manifest["software"]["packages"]
    assert packages["bagit"] == "1.9.0" and packages["pydicom"] == "3.0.2" and packages["SQLAlchemy"] == "2.1.9"
    assert manifest["software"]["python"].split()[0] == ".".join(map(str, __import__("sys").version_info[:3]))


def test_archive_lists_identifying_attributes_and_suggests_no_images(source, capsys):
    url, data, work = source
    assert _cli(url, data, "archive", NAME, str(work / "again")) == 0
    printed = capsys.readouterr().out
    assert "4 of 4 DICOM file(s) carry identifying attributes" in printed and "PatientName (4)" in printed
    assert "consider --no-images" in printed
    dog = next(line for line in open_archive(work / "again").lines("images.jsonl")
               if line["sop_instance_uid"].startswith("1.2.826.0.1.3680043.8.498.424"))
    listed = {a["keyword"]: a["action"] for a in dog["identifying_attributes"]}
    assert listed["PatientName"] == "Z" and listed["PatientID"] == "Z/D" and listed["StudyInstanceUID"] == "U"
    assert "Dog^AVeryGood" not in (work / "again" / "data" / "images.jsonl").read_text()  # never the values


def test_no_images_archive_keeps_uids_and_checksums_only(source, archived, shared_data, tmp_path, capsys):
    url, data, work = source
    out = work / "no-images"
    assert _cli(url, data, "archive", NAME, str(out), "--no-images") == 0
    printed = capsys.readouterr().out
    assert "4 DICOM file(s) listed, 0 included" in printed and "consider --no-images" not in printed
    assert not (out / "data" / "images").exists()
    images = open_archive(out).lines("images.jsonl")
    with open_database(url)() as session:
        stored = {i.sop_instance_uid: i.file_path for i in session.scalars(select(Instance))}
    assert {line["sop_instance_uid"]: line["sha256"] for line in images} == {
        uid: _sha256(Path(path)) for uid, path in stored.items()}
    assert all(line["file"] is None for line in images)
    assert all(row["file_path"] == "" for row in open_archive(out).table("instances"))  # no site paths
    # restored without images: the rows are there, the files are not, and the analysis is the archived one
    target = f"sqlite:///{tmp_path / 'target.db'}"
    assert _cli(target, tmp_path / "data", "restore", str(out), "--as", "pilot without images", "--check") == 0
    printed = capsys.readouterr().out
    assert "analysis reproduced: 10 tables" in printed
    assert ("warning: images not restored: 4 instance(s) have no file; pass --images FOLDER to find them by "
            "SHA-256") in printed
    with open_database(target)() as session:
        assert set(session.scalars(select(Instance.file_path))) == {""}
    # the site's own files, found by their SHA-256 under any names: refused unless every one is there
    site = tmp_path / "site"
    for index, path in enumerate(sorted(shared_data.joinpath("dicom", "cxr").glob("*.dcm"))):
        (site / str(index)).mkdir(parents=True)
        shutil.copyfile(path, site / str(index) / "image")
    removed = site / "3" / "image"
    removed_uid = pydicom.dcmread(removed, stop_before_pixels=True).SOPInstanceUID
    removed.rename(tmp_path / "elsewhere")
    assert _cli(target, tmp_path / "data", "restore", str(out), "--as", "with images", "--images", str(site)) == 1
    assert f"1 of the archive's 4 DICOM file(s) are not under {site} (no file has their SHA-256): " \
           f"SOPInstanceUID {removed_uid}" in capsys.readouterr().err
    (tmp_path / "elsewhere").rename(removed)
    assert _cli(target, tmp_path / "data", "restore", str(out), "--as", "with images", "--images", str(site)) == 0
    printed = capsys.readouterr().out
    assert "4 DICOM file(s)" in printed and "images not restored" not in printed
    with open_database(target)() as session:
        study = session.scalar(select(ReaderStudy).where(ReaderStudy.name == "with images"))
        restored = {i.sop_instance_uid: i.file_path for i in session.scalars(
            select(Instance).join(Instance.series).join(Series.case).where(Case.study_id == study.id))}
    assert {uid: _sha256(Path(path)) for uid, path in restored.items()} == {
        line["sop_instance_uid"]: line["sha256"] for line in images}
    # an archive holding its images takes no --images
    assert _cli(target, tmp_path / "data", "restore", str(work / "pilot-archive"), "--as", "y", "--images",
                str(site)) == 1
    assert "--images is for an archive written with --no-images" in capsys.readouterr().err


def _values(row: dict) -> dict:
    """A row without its ids, references and audit details (which hold ids)."""
    return {k: v for k, v in row.items() if not (k == "id" or k.endswith("_id") or k == "detail")}


def _assignment_ids(archive: Path) -> list[int]:
    return [row["id"] for row in open_archive(archive).table("assignments")]


def _restore_and_compare(url: str, data: Path, archived: Path, name: str) -> restore.RestoreSummary:
    """Restore ``archived`` as ``name`` into ``url``, check the rows and images, and compare the analysis."""
    sessions = open_database(url)
    with sessions.begin() as session:
        summary = restore.restore_study(session, archived, name, data)
    archive = summary.archive
    with sessions() as session:
        study = session.scalar(select(ReaderStudy).where(ReaderStudy.name == name))
        rows = study_rows.read_rows(session, study)
        ids = summary.inserted.ids
        # every archived row is there under its new id, with every value as archived and its references mapped
        for table in archive.manifest["rows"]:
            if table in ("users", "instances", "reader_studies"):
                continue
            restored = {row["id"]: row for row in rows[table]}
            for row in archive.table(table):
                new = restored[ids[table][row["id"]]]
                assert _values(new) == _values(row), table
        for row in archive.table("assignments"):
            new = {r["id"]: r for r in rows["assignments"]}[ids["assignments"][row["id"]]]
            assert (new["reader_id"], new["case_id"], new["arm_id"]) == (
                ids["users"][row["reader_id"]], ids["cases"][row["case_id"]], ids["arms"][row["arm_id"]])
        assert _values(rows["reader_studies"][0]) == _values(archive.table("reader_studies")[0]) | {"name": name}
        paths = {row["sop_instance_uid"]: row["file_path"] for row in rows["instances"]}
        for line in archive.lines("images.jsonl"):
            assert Path(paths[line["sop_instance_uid"]]).is_relative_to(Path(data) / "restored")
            assert _sha256(Path(paths[line["sop_instance_uid"]])) == line["sha256"]
        assert archive_analysis.check_restored(session, archive, study, ids["assignments"]) == []
    return summary


def test_restore_on_sqlite_reproduces_the_analysis(archived, tmp_path):
    url = f"sqlite:///{tmp_path / 'target.db'}"
    summary = _restore_and_compare(url, tmp_path / "data", archived, "pilot restored")
    assert summary.inserted.accounts_created == ["ada", "ben", "cy"]
    assert summary.study.seed == DESIGN_SEED and summary.images == 4


def test_restore_on_postgresql_reproduces_the_analysis(archived, postgresql_url, tmp_path, capsys):
    summary = _restore_and_compare(postgresql_url, tmp_path / "data", archived, "pilot restored on postgres")
    assert summary.images == 4
    # archived again from PostgreSQL and restored on SQLite: the same analysis once more
    again = tmp_path / "from-postgres"
    assert _cli(postgresql_url, tmp_path / "data", "archive", "pilot restored on postgres", str(again)) == 0
    assert archive_analysis.differences(open_archive(archived), again / "data" / "analysis", {
        old: int(new) for old, new in zip(_assignment_ids(archived), _assignment_ids(again))}) == []
    target = f"sqlite:///{tmp_path / 'back.db'}"
    assert _cli(target, tmp_path / "data", "restore", str(again), "--as", "pilot back on sqlite", "--check") == 0
    printed = capsys.readouterr().out
    assert "analysis reproduced: 10 tables" in printed
    assert "4 DICOM file(s)" in printed and "images not restored" not in printed  # the bag carries its images
    # a second copy in the same database reuses the accounts and has its own rows
    second = _restore_and_compare(postgresql_url, tmp_path / "data", archived, "pilot second copy")
    assert second.inserted.accounts_reused == ["ada", "ben", "cy"] and second.study.id != summary.study.id


def test_restore_into_the_source_database_with_check(source, archived, capsys):
    url, data, _ = source
    assert _cli(url, data, "restore", str(archived), "--as", "pilot copy", "--check") == 0
    printed = capsys.readouterr().out
    assert "existing accounts used (the restored reads join their worklists): ada, ben, cy" in printed
    assert "analysis reproduced: 10 tables, columns.csv and skipped.csv equal the archived ones" in printed


def _refused(url: str, data: Path, archive: Path, name: str, capsys) -> str:
    """Run a restore that must be refused; returns its message after checking nothing changed."""
    before, files = _counts(url), set(data.rglob("*"))
    assert _cli(url, data, "restore", str(archive), "--as", name) == 1
    assert _counts(url) == before and set(data.rglob("*")) - files <= {data / "restored"}
    return capsys.readouterr().err


def _copy(archived: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(archived, copy)
    return copy


def test_wrong_checksum_is_refused(archived, tmp_path, capsys):
    copy = _copy(archived, tmp_path)
    versions = copy / "data" / "tables" / "report_versions.jsonl"
    versions.write_text(versions.read_text().replace('"active_seconds": 2', '"active_seconds": 3', 1))
    url = f"sqlite:///{tmp_path / 'target.db'}"
    message = _refused(url, tmp_path / "data", copy, "tampered", capsys)
    assert "fails its checksums" in message and "data/tables/report_versions.jsonl sha256 validation failed" in message


def test_missing_file_is_refused(archived, tmp_path, capsys):
    copy = _copy(archived, tmp_path)
    image = next((copy / "data" / "images").rglob("*.dcm"))
    image.unlink()
    url = f"sqlite:///{tmp_path / 'target.db'}"
    message = _refused(url, tmp_path / "data", copy, "incomplete", capsys)
    assert f"missing file {image.relative_to(copy)}" in message


def test_newer_format_version_is_refused(archived, tmp_path, capsys):
    copy = _copy(archived, tmp_path)
    bag = bagit.Bag(str(copy))
    bag.info[FORMAT_VERSION_FIELD] = str(FORMAT_VERSION + 1)
    bag.save()  # a well-formed bag of a newer format: its tag manifest is rewritten
    assert bag.is_valid()
    url = f"sqlite:///{tmp_path / 'target.db'}"
    message = _refused(url, tmp_path / "data", copy, "from the future", capsys)
    assert f"archive format version {FORMAT_VERSION + 1}, newer than this program reads ({FORMAT_VERSION})" in message


def test_existing_study_name_is_refused(source, archived, capsys):
    url, data, _ = source
    message = _refused(url, data, archived, NAME, capsys)
    assert f"a study named {NAME!r} already exists" in message


def test_rows_that_do_not_fit_roll_back_everything(archived, tmp_path, capsys):
    """A valid bag whose last table has a column this schema lacks: the rows before it and the copied images are
    undone."""
    copy = _copy(archived, tmp_path)
    versions = copy / "data" / "tables" / "report_versions.jsonl"
    versions.write_text(versions.read_text().replace('"active_seconds":', '"keystrokes": 5, "active_seconds":'))
    bagit.Bag(str(copy)).save(manifests=True)
    url = f"sqlite:///{tmp_path / 'target.db'}"
    message = _refused(url, tmp_path / "data", copy, "misfit", capsys)
    assert "does not fit this database: table report_versions has no column(s) keystrokes" in message


def test_images_of_a_rolled_back_restore_are_removed(archived, tmp_path):
    sessions = open_database(f"sqlite:///{tmp_path / 'target.db'}")
    with pytest.raises(RuntimeError, match="a later step failed"), sessions.begin() as session:
        summary = restore.restore_study(session, archived, "rolled back", tmp_path / "data")
        copied = {Path(i.file_path) for i in session.scalars(select(Instance))}
        assert summary.images == 4 and all(path.is_file() for path in copied)
        raise RuntimeError("a later step failed")
    assert not any(path.exists() for path in copied) and list((tmp_path / "data" / "restored").iterdir()) == []
    with sessions.begin() as session:  # committed: the images stay after the session ends
        restore.restore_study(session, archived, "kept", tmp_path / "data")
    with sessions() as session:
        session.rollback()
        assert all(Path(i.file_path).is_file() for i in session.scalars(select(Instance)))


def test_not_an_archive_is_refused(tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    url = f"sqlite:///{tmp_path / 'target.db'}"
    assert "is not a study archive: no bagit.txt" in _refused(url, tmp_path / "data", tmp_path / "folder", "x",
                                                                  capsys)


def test_archive_refuses_an_existing_folder(source, archived, capsys):
    url, data, _ = source
    assert _cli(url, data, "archive", NAME, str(archived)) == 1
    assert f"{archived} already exists" in capsys.readouterr().err


def test_a_study_without_readings_round_trips_and_says_why_it_has_no_analysis(tmp_path, capsys):
    url, data = f"sqlite:///{tmp_path / 'empty.db'}", tmp_path / "data"
    assert _cli(url, data, "create-study", "empty", "--seed", "5") == 0
    assert _cli(url, data, "archive", "empty", str(tmp_path / "empty-archive")) == 0
    printed = capsys.readouterr().out
    assert "0 DICOM file(s) listed, 0 included; analysis: study 'empty' has no usable reading" in printed
    assert _cli(url, data, "restore", str(tmp_path / "empty-archive"), "--as", "empty again", "--check") == 1
    assert "--check: the archive holds no analysis: study 'empty' has no usable reading" in capsys.readouterr().err
    assert _cli(url, data, "restore", str(tmp_path / "empty-archive"), "--as", "empty again") == 0
    with open_database(url)() as session:
        copy = session.scalar(select(ReaderStudy).where(ReaderStudy.name == "empty again"))
        assert copy.seed == 5 and [a.code for a in copy.arms] == ["template", "llm", "model"]


def test_archive_of_a_study_whose_image_is_gone_is_refused_and_leaves_nothing(shared_data, tmp_path, capsys):
    url, data = f"sqlite:///{tmp_path / 'gone.db'}", tmp_path / "data"
    (tmp_path / "images").mkdir()
    image = tmp_path / "images" / "dog.dcm"
    shutil.copyfile(shared_data / "dicom" / "cxr" / "highdicom_dx_image_dog.dcm", image)
    assert _cli(url, data, "create-study", "gone") == 0 and _cli(url, data, "import-dicom", "gone", str(image.parent)) == 0
    image.unlink()
    capsys.readouterr()
    assert _cli(url, data, "archive", "gone", str(tmp_path / "out")) == 1
    assert f"DICOM file {image} (SOPInstanceUID " in capsys.readouterr().err
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(("out", ".out"))]  # no archive, no temp folder


def test_open_archive_raises_named_errors(tmp_path):
    with pytest.raises(ArchiveError, match="no bagit.txt"):
        open_archive(tmp_path)


def test_blinded_archive_leaves_out_every_link_to_arms_and_sources(source, tmp_path, capsys):
    url, data, work = source
    out = work / "blinded"
    assert _cli(url, data, "archive", NAME, str(out), "--blinded", "--no-images") == 0
    assert "analysis: left out of a blinded archive" in capsys.readouterr().out
    archive = open_archive(out)
    assert archive.manifest["blinded"] is True and bagit.Bag(str(out)).is_valid()
    every_text = "\n".join(p.read_text(encoding="utf-8") for p in out.rglob("*") if p.is_file())
    for source_name in SOURCES.values():  # the draft sources, named nowhere
        assert source_name not in every_text
    assert str(DESIGN_SEED) not in every_text and str(SET_SEED) not in every_text
    assert all("arm_id" not in row for row in archive.table("assignments"))
    assert all(set(row) == {"case_id", "text"} for row in archive.table("drafts"))
    assert archive.table("draft_findings") == [] and not (out / "data" / "tables" / "draft_findings.jsonl").exists()
    assert "seed" not in archive.table("reader_studies")[0]
    assert all({"seed", "candidate_source"}.isdisjoint(row) for row in archive.table("comparison_sets"))
    assert all({"source_1_name", "source_2_name"}.isdisjoint(row) for row in archive.table("comparison_pairs"))
    assert all({"arm", "source", "seed"}.isdisjoint(row["detail"]) for row in archive.table("audit_events"))
    reads = archive.lines("reads.jsonl")
    assert len(reads) == 12 and all({"arm", "draft_source", "draft_is_sample"}.isdisjoint(r) for r in reads)
    assert not (out / "data" / "analysis").exists() and not (out / "data" / "design").exists()
    # what reviewers need is there: every report version, answer and judgement
    assert len(archive.table("report_versions")) == 23 and len(archive.table("comparison_judgements")) == 6
    message = _refused(f"sqlite:///{tmp_path / 'target.db'}", tmp_path / "data", out, "unblinded?", capsys)
    assert "a blinded archive cannot be restored" in message


def test_restored_accounts_sign_in_once_set_password_gave_them_one(archived, tmp_path, capsys, monkeypatch):
    url, data = f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path / "data"
    assert _cli(url, data, "restore", str(archived), "--as", "pilot") == 0
    assert ("accounts created without a password (set one with `python app.py set-password USER` before they sign "
            "in): ada, ben, cy") in capsys.readouterr().out
    sessions = open_database(url)
    with sessions() as session:
        assert accounts.authenticate(session, "ada", "") is None  # no usable password yet
    # a reader already signed in (a live session in a running server) is signed out by the new password
    monkeypatch.setenv("PW", "violet-harbour-lantern")
    assert _cli(url, data, "set-password", "ada", "--password-env", "PW") == 0
    assert capsys.readouterr().out == "password of reader 'ada' set\n"
    clock = Clock()
    sign_ins = SignIns(sessions, 600, clock)
    with sessions.begin() as session:
        assert accounts.authenticate(session, "ada", "violet-harbour-lantern").username == "ada"  # sign-in's check
        token = sign_ins.start(session, accounts.get_user(session, "ada"), "10.0.0.7")
    sign_ins.check(token)
    monkeypatch.setenv("PW", "amber-quarry-meadow")
    assert _cli(url, data, "set-password", "ada", "--password-env", "PW") == 0
    assert capsys.readouterr().out == "password of reader 'ada' set; 1 sign-in session(s) ended\n"
    clock.advance(61)  # the server's next activity write finds the session ended
    sign_ins.check(token)
    with pytest.raises(SessionExpired, match="your password was changed"):
        sign_ins.check(token)
    with sessions() as session:
        assert accounts.authenticate(session, "ada", "violet-harbour-lantern") is None
        assert accounts.authenticate(session, "ada", "amber-quarry-meadow").username == "ada"
        assert session.scalar(select(SignInSession.end_reason)) == "password_set"
        events = [(e.kind, e.detail) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.kind.in_(["password_set", "session_ended_password_set"]))
            .order_by(AuditEvent.id))]
    assert events == [("password_set", {"username": "ada", "sessions_ended": 0}),
                      ("session_ended_password_set", {"client": "10.0.0.7"}),
                      ("password_set", {"username": "ada", "sessions_ended": 1})]
    # refused: an unknown account, a weak password, no password; nothing changes
    assert _cli(url, data, "set-password", "nobody", "--password-env", "PW") == 1
    assert "unknown user 'nobody'" in capsys.readouterr().err
    monkeypatch.setenv("PW", "short")
    assert _cli(url, data, "set-password", "ben", "--password-env", "PW") == 1
    assert "password for 'ben' refused: " in capsys.readouterr().err
    assert _cli(url, data, "set-password", "ben", "--password-env", "UNSET_VARIABLE") == 1
    assert "environment variable UNSET_VARIABLE is not set" in capsys.readouterr().err
    with sessions() as session:
        assert session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.kind == "password_set")) == 2
        assert accounts.get_user(session, "ben").password_hash == study_rows.NO_PASSWORD


def _edit_table(copy: Path, table: str, edit, recount: bool = False) -> None:
    """Rewrite ``data/tables/<table>.jsonl`` of the bag ``copy`` as ``edit(rows)`` returns it; ``recount``: set
    archive.json's row count to match (a tester covering their tracks)."""
    file = copy / "data" / "tables" / f"{table}.jsonl"
    rows = edit([json.loads(line) for line in file.read_text().splitlines()])
    file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    if recount:
        _edit_manifest(copy, lambda m: m | {"rows": m["rows"] | {table: len(rows)}})


def _edit_images(copy: Path, edit) -> None:
    """Rewrite ``data/images.jsonl`` of the bag ``copy`` as ``edit(lines)`` returns it."""
    file = copy / "data" / "images.jsonl"
    lines = edit([json.loads(line) for line in file.read_text().splitlines()])
    file.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _edit_manifest(copy: Path, edit) -> None:
    file = copy / "data" / "archive.json"
    file.write_text(json.dumps(edit(json.loads(file.read_text()))))


def _without(key: str):
    return lambda rows: [{k: v for k, v in rows[0].items() if k != key}, *rows[1:]]


def _set(key: str, value):
    return lambda rows: [rows[0] | {key: value}, *rows[1:]]


def _arm_again(rows: list[dict]) -> list[dict]:
    """A second arm with a new id and the code of the first: unique (study, code) is the database's check."""
    return [*rows, rows[0] | {"id": max(r["id"] for r in rows) + 1}]


REBAGGED = {  # edit of the bag's payload -> what the refusal says; the bag's checksums are recomputed after it
    "table not listed": (lambda c: _edit_manifest(c, lambda m: m | {"rows": {
        t: n for t, n in m["rows"].items() if t != "arms"}}),
        "data/tables/arms.jsonl is not listed in archive.json's rows"),
    "listed table without file": (lambda c: (c / "data" / "tables" / "question_answers.jsonl").unlink(),
                                  "archive.json lists table question_answers (22 rows) but "
                                  "data/tables/question_answers.jsonl is missing"),
    "duplicated user row": (lambda c: _edit_table(c, "users", lambda rows: [*rows, rows[0]]),
                            "data/tables/users.jsonl has 4 line(s), archive.json lists 3 row(s)"),
    "duplicated user row, recounted": (lambda c: _edit_table(c, "users", lambda rows: [*rows, rows[0]], True),
                                       "does not fit this database: table users line 4 repeats id "),
    "format versions differ": (lambda c: _edit_manifest(c, lambda m: m | {"format_version": FORMAT_VERSION + 1}),
                               f"data/archive.json says format version {FORMAT_VERSION + 1}, bag-info.txt's "
                               f"{FORMAT_VERSION_FIELD} says {FORMAT_VERSION}"),
    "archive.json not JSON": (lambda c: (c / "data" / "archive.json").write_text("{\"rows\": "),
                              "data/archive.json is not JSON: Expecting value: line 1 column 10"),
    "archive.json empty": (lambda c: (c / "data" / "archive.json").write_text(""), "data/archive.json is empty"),
    "archive.json a list": (lambda c: (c / "data" / "archive.json").write_text("[]"),
                            "data/archive.json is not a JSON object but a list"),
    "archive.json without rows": (lambda c: _edit_manifest(c, lambda m: {k: v for k, v in m.items() if k != "rows"}),
                                  "data/archive.json has no 'rows' (the row count of each table)"),
    "unknown role": (lambda c: _edit_table(c, "users", _set("role", "superuser")),
                     "does not fit this database: table users line 1: unknown role 'superuser' (this platform's "
                     "roles: reader, coordinator)"),
    "case without case_key": (lambda c: _edit_table(c, "cases", _without("case_key")),
                              "does not fit this database: table cases line 1: column case_key is missing; it is "
                              "required"),
    "user without username": (lambda c: _edit_table(c, "users", _set("username", None)),
                              "does not fit this database: table users line 1: column username is null; it is "
                              "required"),
    "arm code twice": (lambda c: _edit_table(c, "arms", _arm_again, True),
                       "does not fit this database: table arms: UNIQUE constraint failed: arms.study_id, arms.code"),
    "UID longer than its column": (lambda c: _edit_table(c, "cases", _set("study_instance_uid", "1." * 35)),
                                   "does not fit this database: table cases line 1: column study_instance_uid holds "
                                   "70 characters; it takes at most 64"),
    "image UID a number": (lambda c: _edit_images(c, lambda lines: [*lines[:1], lines[1] | {"sop_instance_uid": 5},
                                                                    *lines[2:]]),
                           "data/images.jsonl line 2: field sop_instance_uid is 5 (int); expected a UID string "
                           "(digits and dots, at most 64 characters)"),
    "image without sha256": (lambda c: _edit_images(c, _without("sha256")),
                             "data/images.jsonl line 1: field sha256 is missing; expected the file's SHA-256 as 64 "
                             "lowercase hex digits"),
    "image UID leading out of the folder": (lambda c: _edit_images(c, _set("series_instance_uid", "../..")),
                                            "data/images.jsonl line 1: field series_instance_uid is '../..' (str); "
                                            "expected a UID string"),
    "image file outside the archive": (lambda c: _edit_images(c, _set("file", "/etc/passwd")),
                                       "data/images.jsonl line 1: field file is '/etc/passwd' (str); expected null "
                                       "or 'images/"),
    "image line a list": (lambda c: _edit_images(c, lambda lines: [[1, 2], *lines[1:]]),
                          "data/images.jsonl line 1 is not a JSON object but a list"),
    "image line twice": (lambda c: _edit_images(c, lambda lines: [*lines, lines[0]]),
                         "data/images.jsonl line 5: sop_instance_uid "),
}


@pytest.mark.parametrize("case", REBAGGED)
def test_edited_and_rebagged_archive_is_refused_and_changes_nothing(case, source, archived, tmp_path, capsys):
    """A valid bag (checksums recomputed after the edit) whose archive.json, tables or rows are wrong: refused
    before or inside the one transaction, with a one-line message naming the problem; no table gains a row."""
    edit, expected = REBAGGED[case]
    copy = _copy(archived, tmp_path)
    edit(copy)
    bagit.Bag(str(copy)).save(manifests=True)
    assert bagit.Bag(str(copy)).is_valid()
    url, data, _ = source  # the source database: its accounts, arms and cases are there to collide with
    message = _refused(url, data, copy, f"edited: {case}", capsys)
    assert expected in message and message.count("\n") == 1 and "Traceback" not in message


def test_a_format_version_that_is_not_a_number_is_named(archived, tmp_path, capsys):
    copy = _copy(archived, tmp_path)
    bag = bagit.Bag(str(copy))
    bag.info[FORMAT_VERSION_FIELD] = "abc"
    bag.save()
    message = _refused(f"sqlite:///{tmp_path / 'target.db'}", tmp_path / "data", copy, "abc", capsys)
    assert f"bag-info.txt's {FORMAT_VERSION_FIELD} 'abc' is not a number" in message
    assert "has no" not in message


def test_a_constraint_postgresql_refuses_is_one_named_line_and_changes_nothing(archived, postgresql_url, tmp_path,
                                                                              capsys):
    """PostgreSQL aborts the transaction at the failed INSERT; the restore names the constraint and rolls back."""
    copy = _copy(archived, tmp_path)
    _edit_table(copy, "arms", _arm_again, True)
    bagit.Bag(str(copy)).save(manifests=True)
    message = _refused(postgresql_url, tmp_path / "data", copy, "arm code twice", capsys)
    assert "does not fit this database: table arms: duplicate key value violates unique constraint" in message
    assert message.count("\n") == 1 and "Traceback" not in message


@pytest.mark.parametrize("table, edit, expected", [
    ("series", _set("series_number", 2**31),  # PostgreSQL's DataError: the Integer column is 32 bits
     "does not fit this database: table series: integer out of range"),
    ("cases", _set("study_instance_uid", "1." * 35),  # refused before PostgreSQL would (SQLite would store it)
     "does not fit this database: table cases line 1: column study_instance_uid holds 70 characters; it takes at "
     "most 64"),
])
def test_a_value_postgresql_refuses_is_one_named_line_and_changes_nothing(table, edit, expected, archived,
                                                                         postgresql_url, tmp_path, capsys):
    copy = _copy(archived, tmp_path)
    _edit_table(copy, table, edit)
    bagit.Bag(str(copy)).save(manifests=True)
    message = _refused(postgresql_url, tmp_path / "data", copy, f"{table} value", capsys)
    assert expected in message and message.count("\n") == 1 and "Traceback" not in message


def test_an_instance_file_path_the_archive_names_is_never_restored(archived, tmp_path, capsys):
    """An edited archive whose instance row names a file on this machine (and whose images.jsonl leaves that
    instance out): the restored instance has no file rather than that path, which the viewer would read."""
    secret = tmp_path / "elsewhere.dcm"
    shutil.copyfile(next((archived / "data" / "images").rglob("*.dcm")), secret)
    copy = _copy(archived, tmp_path)
    _edit_table(copy, "instances", _set("file_path", str(secret)))
    sop = json.loads((copy / "data" / "tables" / "instances.jsonl").read_text().splitlines()[0])["sop_instance_uid"]
    _edit_images(copy, lambda lines: [line for line in lines if line["sop_instance_uid"] != sop])
    bagit.Bag(str(copy)).save(manifests=True)
    url = f"sqlite:///{tmp_path / 'target.db'}"
    assert _cli(url, tmp_path / "data", "restore", str(copy), "--as", "edited paths") == 0
    assert "1 instance(s) have no file" in capsys.readouterr().out
    with open_database(url)() as session:
        paths = dict(session.execute(select(Instance.sop_instance_uid, Instance.file_path)).all())
    assert paths[sop] == "" and len(paths) == 4
    assert all(Path(path).is_relative_to(tmp_path / "data" / "restored") for uid, path in paths.items() if uid != sop)
