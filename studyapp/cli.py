"""Command line of the platform: ``python app.py --serve`` or ``python app.py COMMAND ...``.

Every coordinator action of the web app is also a command here, so studies can be scripted. Each command is
one transaction: it either completes or changes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import importlib.util
import io
import os
import sys
from pathlib import Path

from studyapp.config import Settings
from studyapp.services.errors import StudyError


def _lazy(name: str):
    """The module ``name``, executed on its first attribute access (:class:`importlib.util.LazyLoader`), so that
    ``--help`` and the commands that do not need SQLAlchemy, pydicom, highdicom or pandas do not import them."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


(accounts, archive, archive_analysis, cases, design, drafts, export, ingest, pacs, practice, questions, restore,
 structured_reports, studies) = (_lazy(f"studyapp.services.{name}") for name in (
    "accounts", "archive", "archive_analysis", "cases", "design", "drafts", "export", "ingest", "pacs", "practice",
    "questions", "restore", "structured_reports", "studies"))
demo, models = _lazy("studyapp.demo"), _lazy("studyapp.db.models")


def _read_password(args, *, confirm: bool = False) -> str:
    """The password from ``--password-env`` or a prompt; with ``confirm`` (a new account or a new password) the
    prompt asks twice.

    Raises:
        StudyError: the variable is not set, no terminal to prompt on, or the two typed passwords differ.
    """
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise StudyError(f"environment variable {args.password_env} is not set")
        return value
    try:
        password = getpass.getpass(f"Password for {args.username}: ")
        if confirm and getpass.getpass(f"Repeat the password for {args.username}: ") != password:
            raise StudyError(f"the two passwords for {args.username!r} differ; nothing was changed")
        return password
    except EOFError:
        raise StudyError("no password given: run in a terminal, or pass --password-env VARIABLE") from None


def _confirm(args, change: str) -> None:
    """Go on only once the coordinator agreed to ``change`` (what would be removed or overwritten, with counts):
    ``--yes``, or ``y`` typed at the question asked on a terminal (stderr, so not held with the output). Run
    without a terminal (a script) and without ``--yes``, the command changes nothing. Commands ask before their
    first write (the counts come from dry runs), so an open question holds no database lock.

    Raises:
        StudyError: not confirmed; the command's transaction is rolled back, nothing was changed.
    """
    if args.yes:
        return
    question = f"{change[0].upper()}{change[1:]}."
    if sys.stdin.isatty() and sys.stderr.isatty():
        sys.stderr.write(f"{question} Go on? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() in ("y", "yes"):
            return
        raise StudyError("not confirmed: nothing was changed")
    raise StudyError(f"{question} Nothing was changed: add --yes to confirm (or run it in a terminal to be asked)")


def _removes_assignment(session, study) -> str:
    counts = design.assignment_counts(session, study)
    return (f"the generated assignment of {study.name!r}: {counts.assignments} assignment(s) of {counts.readers} "
            "reader(s)")


def _cmd_create_study(session, args):
    template = Path(args.template_file).read_text(encoding="utf-8") if args.template_file else ""
    study = studies.create_study(session, args.name, template_text=template, seed=args.seed)
    print(f"created study {study.name!r} with arms {', '.join(a.code for a in study.arms)}")


def _cmd_import_dicom(session, args):
    study = studies.get_study(session, args.study)
    if args.follow_links_outside:
        print(f"following symbolic links that lead outside {args.folder} (--follow-links-outside)", file=sys.stderr)
    report = ingest.import_folder(session, study, Path(args.folder), follow_links_outside=args.follow_links_outside)
    drafts.add_template_drafts(session, study)
    print(report.summary())
    if report.case_ids:
        print("case_key (use it in drafts and case-information files) | modality | images | StudyInstanceUID")
        print("\n".join("  " + line for line in cases.describe_cases(session, report.case_ids)))
    return 1 if report.counts["failed"] else 0


def _print_row_errors(errors: list[tuple[int, str]]) -> int:
    """Print row errors; the exit status is 1 when any row was refused (the valid rows are still stored)."""
    for line, message in errors:
        print(f"  line {line}: {message}")
    return 1 if errors else 0


def _print_import(result: drafts.ImportResult) -> int:
    print(f"imported {result.imported}, unchanged {result.unchanged}, replaced {result.replaced}, "
          f"errors {len(result.errors)}")
    return _print_row_errors(result.errors)


def _cmd_import_drafts(session, args):
    study, path = studies.get_study(session, args.study), Path(args.file)
    if args.replace:
        preview = drafts.import_drafts(session, study, path, replace=True, dry_run=True)
        if preview.replaced:
            _confirm(args, f"importing {path.name} overwrites {preview.replacing()} of {study.name!r}")
    return _print_import(drafts.import_drafts(session, study, path, replace=args.replace))


def _cmd_show_findings(session, args):
    arm = studies.show_findings(session, studies.get_study(session, args.study), args.arm, shown=not args.off,
                                require_findings=True)
    with_findings, drafts = studies.draft_findings_count(session, arm)
    print(f"arm {arm.code!r}: readers {'see' if arm.shows_findings else 'do not see'} the drafts' findings on the image "
          f"({with_findings} of {drafts} draft(s) carry findings)")
    return 0


def _cmd_set_template(session, args):
    text = Path(args.file).read_text(encoding="utf-8")
    study = studies.get_study(session, args.study)
    preview = drafts.set_template(session, study, text, dry_run=True)
    if preview.replaced:
        _confirm(args, f"the new template overwrites {preview.replacing()} of {study.name!r}")
    return _print_import(drafts.set_template(session, study, text))


def _cmd_import_case_info(session, args):
    study, path = studies.get_study(session, args.study), Path(args.file)
    preview = cases.import_case_info(session, study, path, dry_run=True)
    if preview.overwritten:
        _confirm(args, f"importing {path.name} overwrites {preview.overwriting()} of {study.name!r}")
    result = cases.import_case_info(session, study, path)
    print(f"updated {result.updated}, unchanged {result.unchanged}, errors {len(result.errors)}")
    return _print_row_errors(result.errors)


def _cmd_mark_practice(session, args):
    if args.file and (args.case_keys or args.unmark):
        raise StudyError("give either case keys or --file (a file only marks cases as practice), not both")
    study = studies.get_study(session, args.study)

    def change(dry_run: bool) -> practice.PracticeResult:
        if args.file:
            return practice.import_practice_list(session, study, Path(args.file), dry_run=dry_run)
        return practice.set_practice(session, study, [(0, key) for key in args.case_keys], practice=not args.unmark,
                                     dry_run=dry_run)

    if change(dry_run=True).removed_assignments:
        _confirm(args, f"changing the practice cases removes {_removes_assignment(session, study)} (generate it "
                       "again afterwards)")
    result = change(dry_run=False)
    print(result.summary())
    for line, message in result.errors:
        print(f"  {'line ' + str(line) if line else 'argument'}: {message}")
    return 1 if result.errors else 0


def _cmd_cases(session, args):
    study = studies.get_study(session, args.study)
    words = [word.lower() for word in args.search]
    found = [(label, key) for label, key in cases.case_choices(session, study)
             if all(word in label.lower() for word in words)]
    for label, key in found:
        print(key if args.keys else label)
    if not found:
        print(f"no case of {study.name!r}" + (f" matches {' '.join(args.search)!r}" if words else ""), file=sys.stderr)
    return 0 if found else 1


def _print_questions(study) -> None:
    for index, question in enumerate(study.questions, start=1):
        print(f"{index}. {question['code']}: {questions.describe(question)}")


def _cmd_set_questions(session, args):
    study = studies.get_study(session, args.study)
    questions.set_questions(session, study, questions.read_questions_file(args.file))
    print(f"study {study.name!r} now asks {len(study.questions)} question(s) after each report:")
    _print_questions(study)


def _cmd_questions(session, args):
    _print_questions(studies.get_study(session, args.study))


def _cmd_add_user(session, args):
    role = models.ROLE_COORDINATOR if args.coordinator else models.ROLE_READER
    study = studies.get_study(session, args.study) if args.study else None
    user = accounts.add_user(session, args.username, _read_password(args, confirm=True), role=role, display_name=args.display_name)
    if study is not None:
        accounts.enroll_reader(session, study, user)
    print(f"added {role} {user.username!r}" + (f", a reader of {study.name!r}" if study else ""))


def _cmd_set_password(session, args):
    user = accounts.get_user(session, args.username)  # an unknown account is refused before the prompt
    user, ended = accounts.set_password(session, user.username, _read_password(args, confirm=True))
    # before the commit: should it fail, a working password missing from the list beats a stale one shown
    dropped = demo.drop_credentials(Path(args.data_dir), user.username)
    print(f"password of {user.role} {user.username!r} set" + (f"; {ended} sign-in session(s) ended" if ended else "")
          + (f"; its line in {Path(args.data_dir) / demo.CREDENTIALS_FILE} removed" if dropped else ""))


def _cmd_add_reader(session, args):
    study = studies.get_study(session, args.study)
    accounts.enroll_reader(session, study, accounts.get_user(session, args.username))
    print(f"{args.username!r} is a reader of {study.name!r}")


def _cmd_assign(session, args):
    study = studies.get_study(session, args.study)
    if design.assignment_counts(session, study).assignments:
        _confirm(args, f"generating again removes and replaces {_removes_assignment(session, study)}")
    report = design.generate_assignments(session, study, seed=args.seed, cases_per_reader=args.cases_per_reader)
    print(report.format())


def _cmd_progress(session, args):
    table = export.progress_table(session, studies.get_study(session, args.study))
    print(table.to_string(index=False) if not table.empty else "no assignments yet")


def _cmd_export(session, args):
    table = export.export_reads_csv(session, studies.get_study(session, args.study), Path(args.out))
    print(f"wrote {len(table)} rows to {args.out}")


def _cmd_archive(session, args):
    if session.get_bind().dialect.name == "postgresql":
        # every query of the archive sees one snapshot while readers may still be saving (SQLite's read
        # transaction does so already)
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    summary = archive.write_archive(session, studies.get_study(session, args.study), Path(args.out),
                                    images=not args.no_images, blinded=args.blinded)
    print(summary.format())


def _cmd_restore(session, args):
    summary = restore.restore_study(session, Path(args.archive), args.name, args.data_dir, images=args.images)
    print(summary.format())
    if not args.check:
        return 0
    try:
        found = archive_analysis.check_restored(session, summary.archive, summary.study,
                                                summary.inserted.ids["assignments"])
    except ValueError as error:
        raise StudyError(f"--check: {error}") from None
    if found:
        print("the restored study's analysis differs from the archived one (the study is restored):")
        print("\n".join(f"  {line}" for line in found))
        return 1
    tables = summary.archive.manifest["analysis"]["tables"]
    print(f"analysis reproduced: {len(tables)} tables, columns.csv and skipped.csv equal the archived ones")
    return 0


def _connection(args, url: str | None = None) -> pacs.PacsConnection:
    """The PACS of ``--url``/``url`` with the credentials of --username (password from --password-env or a prompt)
    or --token-env."""
    password = token = None
    if args.username:
        password = _read_password(args)
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            raise StudyError(f"environment variable {args.token_env} is not set")
    return pacs.PacsConnection(url or "", args.username, password, token, timeout=args.timeout)


def _criteria(args) -> pacs.SearchCriteria:
    accessions = pacs.read_accession_numbers(args.accessions_csv) if args.accessions_csv else ()
    return pacs.SearchCriteria(accessions, args.date_from or "", args.date_to or "", args.modality or "",
                               args.description or "")


def _cmd_pacs_search(session, args):
    result = pacs.search_studies(_connection(args, args.url), _criteria(args))
    print(result.summary())


def _cmd_pacs_import(session, args):
    study = studies.get_study(session, args.study)
    connection = _connection(args, args.url)
    uids = args.study_uid or []
    if not uids:
        criteria = _criteria(args)
        if criteria == pacs.SearchCriteria():
            raise StudyError("name the studies: --study-uid UID, or search criteria (--accessions-csv, --date-from, "
                             "--date-to, --modality, --description)")
        result = pacs.search_studies(connection, criteria)
        print(result.summary())
        uids = [hit.study_instance_uid for hit in result.hits if not hit.problem]
        if not uids:
            raise StudyError("no importable study matches the search")
    report = pacs.import_studies(session, study, connection, uids, Path(args.data_dir))
    drafts.add_template_drafts(session, study)
    print(report.summary())
    return 1 if report.failed or any(o.report and o.report.counts["failed"] for o in report.studies) else 0


def _cmd_export_sr(session, args):
    study = studies.get_study(session, args.study)
    report = structured_reports.export_srs(session, study, Path(args.folder), case_keys=args.case,
                                           unblinded=args.unblinded, allow_empty_impression=args.allow_empty_impression)
    print(report.summary())
    status = 1 if report.problems else 0
    if args.send:
        sent = pacs.send_to_origin(session, study, [w.path for w in report.written], _connection(args))
        print(sent.summary())
        status = status or (1 if sent.errors else 0)
    return status


def _cmd_send_to_pacs(session, args):
    paths = []
    for name in args.paths:
        path = Path(name)
        paths += pacs.dicom_files(path) if path.is_dir() else [path]
    report = pacs.send_to_origin(session, studies.get_study(session, args.study), paths, _connection(args))
    print(report.summary())
    return 1 if report.errors else 0


def _add_yes(p: argparse.ArgumentParser, change: str) -> None:
    p.add_argument("--yes", "-y", action="store_true",
                   help=f"confirm {change} without being asked (scripts); without it the command asks on a terminal "
                        "and, run from a script, changes nothing")


def _add_pacs_auth(p: argparse.ArgumentParser) -> None:
    p.add_argument("--username", help="basic authentication user (password from --password-env or a prompt)")
    p.add_argument("--password-env", help="environment variable holding the password")
    p.add_argument("--token-env", help="environment variable holding a bearer token (instead of a username)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each answer (default 30)")


def _add_pacs_search(p: argparse.ArgumentParser) -> None:
    p.add_argument("--accessions-csv", help="CSV with an accession_number column (or a single column)")
    p.add_argument("--date-from", help="first study date, YYYYMMDD")
    p.add_argument("--date-to", help="last study date, YYYYMMDD")
    p.add_argument("--modality", help="modality in the study, e.g. CR, CT")
    p.add_argument("--description", help="part of the study description (case-insensitive)")


def _cmd_demo(session, args):
    print(demo.describe(demo.ensure_demo(session, Settings(data_dir=Path(args.data_dir)))))


def _port(text: str) -> int:
    """A TCP port number from the command line or ``GRADIO_SERVER_PORT``."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r} (0-65535)")
    return port


class _CommandParser(argparse.ArgumentParser):
    """The parser of one sub-command: options may stand anywhere among its positionals (argparse's intermixed
    parsing), so ``mark-practice STUDY --yes KEY1 KEY2`` and ``mark-practice STUDY KEY1 --unmark KEY2`` read as
    meant; arguments it does not know are an error printed with this command's own usage (argparse otherwise
    hands them to the top-level parser, whose usage does not show the command's arguments)."""

    _parsing_intermixed = False

    def parse_known_args(self, args=None, namespace=None):
        """Intermixed parsing, which calls this method again for its two passes (answered by argparse's own).

        Raises:
            SystemExit: status 2 after printing this command's usage and the unrecognized arguments.
        """
        if self._parsing_intermixed:
            return super().parse_known_args(args, namespace)
        self._parsing_intermixed = True
        try:
            namespace, extras = self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing_intermixed = False
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: ``--serve`` and one sub-command per coordinator action."""
    parser = argparse.ArgumentParser(
        # the installed command names itself; ``python app.py`` (and a test calling main) shows app.py
        prog="studyapp" if Path(sys.argv[0]).name == "studyapp" else "app.py",
        description="Reader-study platform for AI-assisted radiology reporting (MedVersa).",
    )
    parser.add_argument("--serve", action="store_true", help="serve the web app (builds the demo study on first run)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
                        help="address to serve on (default $GRADIO_SERVER_NAME or 127.0.0.1; 0.0.0.0 for every "
                             "interface)")
    parser.add_argument("--port", type=_port, default=os.environ.get("GRADIO_SERVER_PORT") or "7860",
                        help="port to serve on (default $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--no-demo", action="store_true", help="with --serve: do not create the demo study")
    parser.add_argument("--data-dir", default=str(Settings().data_dir), help="data folder (default %(default)s)")
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default sqlite in the data folder)")
    parser.add_argument("--session-idle-minutes", type=float, default=None,
                        help="with --serve: sign-in sessions end after this long without activity (default "
                             "$STUDYAPP_SESSION_IDLE_MINUTES or 30)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)

    p = sub.add_parser("create-study", help="create a reader study with the arms template / llm / model")
    p.add_argument("name")
    p.add_argument("--template-file", help="text file with the normal template")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_cmd_create_study)

    p = sub.add_parser("import-dicom", help="import a DICOM folder (recursive) as cases of a study")
    p.add_argument("study")
    p.add_argument("folder")
    p.add_argument("--follow-links-outside", action="store_true",
                   help="also follow symbolic links whose target lies outside FOLDER (skipped by default)")
    p.set_defaults(run=_cmd_import_dicom)

    p = sub.add_parser("import-drafts", help="import drafts from CSV/JSONL (case_key, arm, text, source)")
    p.add_argument("study")
    p.add_argument("file")
    p.add_argument("--replace", action="store_true", help="replace drafts no reader has opened (asks first)")
    _add_yes(p, "overwriting drafts")
    p.set_defaults(run=_cmd_import_drafts)

    p = sub.add_parser("show-findings", help="readers of an arm see its drafts' boxes and masks on the image "
                       "(\"model draft with findings\")")
    p.add_argument("study")
    p.add_argument("arm")
    p.add_argument("--off", action="store_true", help="hide them again")
    p.set_defaults(run=_cmd_show_findings)

    p = sub.add_parser("import-case-info", help="set indication, comparison, label, reference report per case "
                       "from CSV/JSONL (case_key + any of those columns)")
    p.add_argument("study")
    p.add_argument("file")
    _add_yes(p, "overwriting stored case information")
    p.set_defaults(run=_cmd_import_case_info)

    p = sub.add_parser("set-template", help="set the normal template text (arm 'template') from a file")
    p.add_argument("study")
    p.add_argument("file")
    _add_yes(p, "overwriting the template drafts")
    p.set_defaults(run=_cmd_set_template)

    p = sub.add_parser("cases", help="list the study's cases (modalities, description, date, label, practice, "
                       "case_key), those matching every SEARCH word (case-insensitive) if given")
    p.add_argument("study")
    p.add_argument("search", nargs="*", metavar="SEARCH")
    p.add_argument("--keys", action="store_true", help="print only the case keys (e.g. for mark-practice)")
    p.set_defaults(run=_cmd_cases)

    p = sub.add_parser("mark-practice", help="mark cases as practice cases (read first by every reader, never "
                       "counted); before generating assignments")
    p.add_argument("study")
    p.add_argument("case_keys", nargs="*", metavar="CASE_KEY")
    p.add_argument("--file", help="CSV (with a case_key column) or JSONL listing the practice cases")
    p.add_argument("--unmark", action="store_true", help="make the named cases counted cases again")
    _add_yes(p, "removing the generated assignment")
    p.set_defaults(run=_cmd_mark_practice)

    p = sub.add_parser("set-questions", help="set the questions readers answer after each report from a JSON or "
                       "YAML file (refused once a reader has answered; format: studyapp/services/questions.py)")
    p.add_argument("study")
    p.add_argument("file")
    p.set_defaults(run=_cmd_set_questions)

    p = sub.add_parser("questions", help="list the questions of a study (code, kind, scale or choices)")
    p.add_argument("study")
    p.set_defaults(run=_cmd_questions)

    p = sub.add_parser("add-user", help="add a reader or coordinator account (password prompted)")
    p.add_argument("username")
    p.add_argument("--coordinator", action="store_true")
    p.add_argument("--display-name", default="")
    p.add_argument("--study", help="also make the new reader a reader of this study")
    p.add_argument("--password-env", help="read the password from this environment variable instead of a prompt")
    p.set_defaults(run=_cmd_add_user)

    p = sub.add_parser("set-password", help="set a new password for an existing account (one restored from an "
                       "archive has none; a forgotten one); ends the account's sign-in sessions (password prompted)")
    p.add_argument("username")
    p.add_argument("--password-env", help="read the password from this environment variable instead of a prompt")
    p.set_defaults(run=_cmd_set_password)

    p = sub.add_parser("add-reader", help="make an existing reader account a reader of a study")
    p.add_argument("study")
    p.add_argument("username")
    p.set_defaults(run=_cmd_add_reader)

    p = sub.add_parser("assign", help="generate the balanced reader x case x arm assignment and print its balance")
    p.add_argument("study")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--cases-per-reader", type=int, default=None)
    _add_yes(p, "replacing the current assignment")
    p.set_defaults(run=_cmd_assign)

    p = sub.add_parser("progress", help="progress per reader")
    p.add_argument("study")
    p.set_defaults(run=_cmd_progress)

    p = sub.add_parser("export", help="export the reads (one row per reader x case): CSV with formula cells "
                                      "neutralised, or JSON Lines with the texts verbatim when OUT ends in .jsonl")
    p.add_argument("study")
    p.add_argument("out", help="file to write: NAME.csv or NAME.jsonl")
    p.set_defaults(run=_cmd_export)

    p = sub.add_parser("archive", help="write the whole study (definition, cases, drafts, design, report versions, "
                       "answers, comparisons, audit trail, analysis with software versions) as one BagIt package")
    p.add_argument("study")
    p.add_argument("out", help="new folder for the package")
    p.add_argument("--no-images", action="store_true", help="leave the DICOM files out: their UIDs and SHA-256 only")
    p.add_argument("--blinded", action="store_true", help="leave out which arm and source each reading, draft and "
                   "comparison came from (and the analysis), for reviewers before unblinding; cannot be restored")
    p.set_defaults(run=_cmd_archive)

    p = sub.add_parser("restore", help="load a package written by 'archive' into the database as a new study "
                       "(checksums, files and format checked first; nothing is changed when refused)")
    p.add_argument("archive", help="the package folder")
    p.add_argument("--as", dest="name", required=True, metavar="NAME", help="name of the new study")
    p.add_argument("--images", metavar="FOLDER", help="for an archive written with --no-images: a folder holding its "
                   "DICOM files (found by their SHA-256; every one must be there)")
    p.add_argument("--check", action="store_true", help="then run the analysis on the restored study and compare "
                   "its tables with the archived ones (exit status 1 when they differ)")
    p.set_defaults(run=_cmd_restore)

    p = sub.add_parser("pacs-search", help="search a PACS over DICOMweb (QIDO-RS) and list the studies found")
    p.add_argument("url", help="DICOMweb base URL, e.g. http://pacs:8042/dicom-web")
    _add_pacs_search(p)
    _add_pacs_auth(p)
    p.set_defaults(run=_cmd_pacs_search)

    p = sub.add_parser("pacs-import", help="retrieve studies from a PACS (WADO-RS) into the data folder and import "
                       "them as cases; re-running resumes")
    p.add_argument("study")
    p.add_argument("url", help="DICOMweb base URL")
    p.add_argument("--study-uid", action="append", help="StudyInstanceUID to import (repeatable); without it, "
                   "every study the search criteria find")
    _add_pacs_search(p)
    _add_pacs_auth(p)
    p.set_defaults(run=_cmd_pacs_import)

    p = sub.add_parser("export-sr", help="write submitted final reports as DICOM SR files; --send stores those of "
                       "PACS cases back in their PACS (STOW-RS)")
    p.add_argument("study")
    p.add_argument("folder")
    p.add_argument("--case", action="append", help="case_key to export (repeatable; default every case)")
    p.add_argument("--unblinded", action="store_true", help="research export: also write the arm and draft source")
    p.add_argument("--send", action="store_true", help="send the SRs of cases imported from a PACS back to it")
    p.add_argument("--allow-empty-impression", action="store_true",
                   help="also export reports without an IMPRESSION section (their SR has no impression; listed as "
                        "warnings); by default they are listed as not exported")
    _add_pacs_auth(p)
    p.set_defaults(run=_cmd_export_sr)

    p = sub.add_parser("send-to-pacs", help="send DICOM files (e.g. the engine's SEG) to the PACS their case came "
                       "from (STOW-RS), matched by StudyInstanceUID")
    p.add_argument("study")
    p.add_argument("paths", nargs="+", help="DICOM files or folders (*.dcm inside, recursively)")
    _add_pacs_auth(p)
    p.set_defaults(run=_cmd_send_to_pacs)

    p = sub.add_parser("demo", help="create the demo study from the DICOM shipped in assets/ (idempotent)")
    p.set_defaults(run=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit status (0 ok, 1 refused or some rows/files refused, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = Settings(data_dir=Path(args.data_dir), database_url=args.database or "",
                        **({} if args.session_idle_minutes is None else {"session_idle_minutes": args.session_idle_minutes}))
    if not settings.session_idle_minutes > 0:
        parser.error(f"--session-idle-minutes must be positive, got {settings.session_idle_minutes:g}")
    if not args.serve and args.command is None:
        parser.print_help()
        return 2
    from sqlalchemy.exc import ArgumentError as SQLAlchemyArgumentError

    from studyapp.db.session import open_database

    printed = io.StringIO()
    try:
        sessions = open_database(settings.database_url)
        status = 0
        if args.command is not None:
            # the command's output is held until its transaction has committed: output cut short (``| head``)
            # never shows a result that was not stored, and a failed command prints what it had found
            try:
                with contextlib.redirect_stdout(printed), sessions.begin() as session:
                    status = args.run(session, args) or 0
            finally:
                _print_held(printed.getvalue())
        if args.serve:
            return serve(sessions, settings, args)
        return status
    except (StudyError, OSError, UnicodeDecodeError, SQLAlchemyArgumentError) as error:
        # refused requests, unreadable paths or files the user named, a database URL that cannot be used
        print(f"error: {error}", file=sys.stderr)
        return 1


def _print_held(text: str) -> None:
    """Print ``text``; a reader that closed the pipe early (``| head``) ends the output quietly (Python's
    documented SIGPIPE recipe: stdout is pointed at /dev/null so that the interpreter's final flush is silent)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def serve(sessions, settings: Settings, args) -> int:
    """Create the demo study unless told not to, print how to sign in, and serve until SIGTERM or SIGINT (then
    finish the saves in progress and return 0; ``studyapp.web.server``)."""
    from studyapp.ui.context import UIContext
    from studyapp.web.server import serve as serve_web

    if not args.no_demo:
        with sessions.begin() as session:
            info = demo.ensure_demo(session, settings)
        print(demo.describe(info))
    return serve_web(UIContext(sessions, settings), host=args.host, port=args.port)
