"""The coordinator's tab: create a study, import DICOM (folder or PACS) and drafts, set the template, add readers,
generate the balanced assignment, watch progress and export the reads CSV. Unblinded; coordinators only."""

import re
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from studyapp.db.models import ROLE_COORDINATOR, ROLE_READER
from studyapp.services import accounts, cases, design, drafts, export, ingest, practice, questions, studies
from studyapp.ui.context import UIContext, follow_study_choice, shows_errors, user_action
from studyapp.ui.inert import inert
from studyapp.ui.preview import ReaderPreview
from studyapp.ui.pacs_panel import PacsPanel


class CoordinatorTab:
    """Builds the coordinator tab inside the caller's Blocks and wires its events."""

    def __init__(self, ctx: UIContext):
        self.ctx = ctx
        with gr.Row():
            self.study = gr.Dropdown(label="Study", choices=[], elem_id="coord-study", scale=3)
            self.refresh = gr.Button("Refresh", scale=1, elem_id="coord-refresh")
        self.status = gr.Markdown(elem_id="coord-status")
        with gr.Accordion("New study", open=False):
            self.new_name = gr.Textbox(label="Study name")
            self.new_template = gr.Textbox(label="Normal template (starting text of arm 'template')", lines=6)
            self.new_seed = gr.Number(label="Seed", value=0, precision=0)
            self.create = gr.Button("Create study")
        with gr.Accordion("Import DICOM folder", open=False):
            self.folder = gr.Textbox(label="Folder on the server (searched recursively)")
            self.import_dicom = gr.Button("Import")
        self.pacs = PacsPanel(ctx, self.study)
        with gr.Accordion("Drafts and template", open=False):
            self.drafts_file = gr.File(label="Drafts (CSV or JSONL: case_key, arm, text, source)",
                                       file_types=[".csv", ".jsonl", ".ndjson"], elem_id="coord-drafts-file")
            with gr.Row():
                self.replace = gr.Checkbox(label="Replace drafts no reader has opened yet", value=False,
                                           elem_id="coord-drafts-replace")
                self.import_drafts = gr.Button("Import drafts", elem_id="coord-import-drafts")
                self.drafts_confirm = gr.Checkbox(label="Yes, overwrite the stored drafts", value=False,
                                                  elem_id="coord-drafts-confirm")
            self.drafts_status = gr.Markdown(elem_id="coord-drafts-status")
            self.case_info_file = gr.File(label="Case information (CSV or JSONL: case_key + indication, comparison, "
                                                "label, reference_report)", file_types=[".csv", ".jsonl", ".ndjson"])
            self.import_case_info = gr.Button("Import case information")
            self.template = gr.Textbox(label="Normal template", lines=6, elem_id="coord-template")
            with gr.Row():
                self.save_template = gr.Button("Save template for every case", elem_id="coord-save-template")
                self.template_confirm = gr.Checkbox(label="Yes, overwrite the template drafts", value=False,
                                                    elem_id="coord-template-confirm")
            self.template_status = gr.Markdown(elem_id="coord-template-status")
        with gr.Accordion("Practice cases", open=False):
            gr.Markdown("Every reader reads the practice cases first; they are stored but never counted. "
                        "Set them before generating the assignment.")
            self.practice_pick = gr.Dropdown(
                label="Cases (type to search by modality, description, date, label or case key)", choices=[],
                value=[], multiselect=True, filterable=True, elem_id="coord-practice-pick")
            self.practice_keys = gr.Textbox(label="...or case keys (separated by commas or new lines)", lines=2,
                                            elem_id="coord-practice-keys")
            self.practice_file = gr.File(label="...or a list (CSV with a case_key column, or JSONL)",
                                         file_types=[".csv", ".jsonl", ".ndjson"])
            with gr.Row():
                self.mark_practice = gr.Button("Mark as practice", elem_id="coord-mark-practice")
                self.unmark_practice = gr.Button("Make counted again")
                self.practice_confirm = gr.Checkbox(label="Yes, remove the generated assignment", value=False,
                                                    elem_id="coord-practice-confirm")
            self.practice_status = gr.Markdown(elem_id="coord-practice-status")
        with gr.Accordion("Questions after each report", open=False):
            self.questions = gr.Markdown(elem_id="coord-questions")
            self.questions_file = gr.File(label="Question set (JSON or YAML; cannot change once a reader answered)",
                                          file_types=[".json", ".yaml", ".yml"], elem_id="coord-questions-file")
            self.set_questions = gr.Button("Set questions", elem_id="coord-set-questions")
        with gr.Accordion("Readers and assignment", open=False):
            with gr.Row():
                self.username = gr.Textbox(label="Username")
                self.password = gr.Textbox(label="Password (at least 8 characters)", type="password")
                self.role = gr.Radio([ROLE_READER, ROLE_COORDINATOR], value=ROLE_READER, label="Role")
            self.add_user = gr.Button("Add account (readers join the selected study)")
            with gr.Row():
                self.existing = gr.Dropdown(label="Existing reader account", choices=[], scale=3,
                                            elem_id="coord-existing-reader")
                self.add_existing = gr.Button("Add to the selected study", scale=1, elem_id="coord-add-existing")
            self.readers = gr.Markdown(elem_id="coord-readers")
            with gr.Row():
                self.seed = gr.Number(label="Seed (recorded with the design)", value=0, precision=0)
                self.cases_per_reader = gr.Number(label="Cases per reader (0: all)", value=0, precision=0)
            with gr.Row():
                self.assign = gr.Button("Generate balanced assignment", elem_id="coord-assign")
                self.assign_confirm = gr.Checkbox(label="Yes, replace the current assignment", value=False,
                                                  elem_id="coord-assign-confirm")
            self.assign_status = gr.Markdown(elem_id="coord-assign-status")
            self.balance = gr.Code(label="Balance report", language=None)
        gr.Markdown("### Progress")
        self.progress_note = gr.Markdown(elem_id="coord-progress-note")
        with gr.Tabs():
            with gr.Tab("Per reader"):
                self.progress = gr.Dataframe(interactive=False, elem_id="coord-progress")
            with gr.Tab("Per case"):
                self.case_progress = gr.Dataframe(interactive=False, elem_id="coord-case-progress")
        self.export = gr.Button("Export reads CSV", elem_id="coord-export")
        self.export_file = gr.File(label="Reads CSV", interactive=False, elem_id="coord-export-file")
        self.preview = ReaderPreview(ctx, self.study)
        self._wire()

    def _wire(self):
        private = {"api_visibility": "private"}
        overview = self.on_load_outputs
        self.refresh.click(self._refresh, [self.study], overview, **private)
        self.study.input(self._refresh, [self.study], overview, **private)
        self.create.click(self._create_study, [self.new_name, self.new_template, self.new_seed], overview, **private)
        self.import_dicom.click(self._import_folder, [self.study, self.folder], overview, **private)
        self.pacs.imported.then(self._refresh, [self.study], overview, **private)
        self.import_drafts.click(self._import_draft_file,
                                 [self.study, self.drafts_file, self.replace, self.drafts_confirm],
                                 overview + [self.drafts_status, self.drafts_confirm], **private)
        self.import_case_info.click(self._case_info, [self.study, self.case_info_file], overview, **private)
        self.save_template.click(self._set_template, [self.study, self.template, self.template_confirm],
                                 overview + [self.template_status, self.template_confirm], **private)
        practice_inputs = [self.study, self.practice_pick, self.practice_keys, self.practice_file,
                           self.practice_confirm]
        practice_outputs = overview + [self.practice_status, self.practice_confirm]
        self.mark_practice.click(self._set_practice(True), practice_inputs, practice_outputs, **private)
        self.unmark_practice.click(self._set_practice(False), practice_inputs, practice_outputs, **private)
        self.set_questions.click(self._set_questions, [self.study, self.questions_file], overview, **private)
        self.add_user.click(self._add_account, [self.study, self.username, self.password, self.role],
                            overview + [self.password], **private)
        self.add_existing.click(self._add_existing, [self.study, self.existing], overview, **private)
        self.assign.click(self._generate, [self.study, self.seed, self.cases_per_reader, self.assign_confirm],
                          overview + [self.balance, self.assign_status, self.assign_confirm], **private)
        self.export.click(self._export_csv, [self.study], [self.export_file], **private)

    @property
    def on_load_outputs(self) -> list:
        """Components :meth:`on_load` and the overview refreshes update."""
        return [self.study, self.progress, self.case_progress, self.template, self.questions, self.status,
                self.existing, self.readers, self.practice_pick, self.progress_note,
                *self.preview.outputs]

    def on_load(self, session, user) -> dict:
        """Updates for page load (only called for coordinators)."""
        return self._overview(session, None, "", user)

    def follow(self, tab: gr.Tab, chosen: gr.State) -> None:
        """Show the coordinator's shared study choice ``chosen`` whenever ``tab`` (this tab) is selected."""
        follow_study_choice(chosen, tab, self.study, self._refresh, self.on_load_outputs)

    def _overview(self, session, name: str | None, message: str, user=None) -> dict:
        names = [s.name for s in studies.list_studies(session)]
        name = name if name in names else (names[0] if names else None)
        study = studies.get_study(session, name) if name else None
        preview = self.preview.overview(session, user, study) if user is not None else {}
        enrolled = [u.username for u in accounts.study_readers(session, study)] if study else []
        others = [u for u in accounts.list_users(session, role=ROLE_READER) if u.username not in enrolled]
        progress = export.progress_table(session, study) if study else None
        return preview | {
            self.study: gr.update(choices=names, value=name),
            self.progress: readable_headers(progress) if study else None,
            self.progress_note: (NO_ASSIGNMENT if progress is not None and progress.empty else ""),
            self.case_progress: readable_headers(export.case_progress_table(session, study)) if study else None,
            self.existing: gr.update(choices=[u.username for u in others], value=None),
            self.practice_pick: gr.update(choices=cases.case_choices(session, study) if study else [], value=[]),
            self.readers: (f"Readers of {name} ({len(enrolled)}): {', '.join(enrolled)}" if enrolled
                           else f"{name} has no readers yet." if study else ""),
            self.template: study.template_text if study else "",
            self.questions: questions_markdown(study.questions) if study else "",
            self.status: message,
        }

    @shows_errors
    def _refresh(self, name, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, user):
            return self._overview(session, name, "", user)

    @shows_errors
    def _create_study(self, name, template, seed, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            study = studies.create_study(session, name or "", template_text=template or "", seed=int(seed or 0))
            return self._overview(session, study.name, f"Created study **{study.name}**.")

    @shows_errors
    def _import_folder(self, name, folder, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            study = studies.get_study(session, name or "")
            report = ingest.import_folder(session, study, Path(folder or ""), decode=True)
            drafts.add_template_drafts(session, study)
            listing = "\n".join(f"- {line}" for line in cases.describe_cases(session, report.case_ids))
            return self._overview(session, name, f"{report.summary()}\n\nCases (case_key | modality | images | "
                                                 f"StudyInstanceUID):\n{listing}")

    @shows_errors
    def _import_draft_file(self, name, upload, replace, confirmed, request: gr.Request):
        if upload is None:
            raise gr.Error("choose a CSV or JSONL file first")
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            study = studies.get_study(session, name or "")
            if replace and not confirmed:
                preview = drafts.import_drafts(session, study, upload, replace=True, dry_run=True)
                if preview.replaced:
                    return self._ask(self.drafts_status, self.drafts_confirm, (
                        f"**Not imported yet.** This file overwrites {preview.replacing()} (drafts no reader has "
                        f"opened). Tick *Yes, overwrite the stored drafts* and press *Import drafts* again."))
            message = _import_summary(drafts.import_drafts(session, study, upload, replace=bool(replace)))
            return {**self._overview(session, name, message), self.drafts_status: message, self.drafts_confirm: False}

    @shows_errors
    def _case_info(self, name, upload, request: gr.Request):
        if upload is None:
            raise gr.Error("choose a CSV or JSONL file first")
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            result = cases.import_case_info(session, studies.get_study(session, name or ""), upload)
            lines = [f"Case information: updated {result.updated}, unchanged {result.unchanged}."]
            lines += [f"- line {line}: {message}" for line, message in result.errors]
            return self._overview(session, name, "\n".join(lines))

    @shows_errors
    def _set_template(self, name, text, confirmed, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            study = studies.get_study(session, name or "")
            if not confirmed:
                preview = drafts.set_template(session, study, text or "", dry_run=True)
                if preview.replaced:
                    return self._ask(self.template_status, self.template_confirm, (
                        f"**Not saved yet.** The new template overwrites {preview.replacing()}: every case's "
                        f"template draft. Tick *Yes, overwrite the template drafts* and press the button again."))
            message = _import_summary(drafts.set_template(session, study, text or ""))
            return {**self._overview(session, name, message), self.template_status: message,
                    self.template_confirm: False}

    @staticmethod
    def _ask(status: gr.Markdown, confirm: gr.Checkbox, question: str) -> dict:
        """Updates that change nothing but show ``question`` (what the action would remove, with counts) next to
        the button, where the ``confirm`` tick box answers it."""
        return {status: question, confirm: gr.update()}

    def _set_practice(self, mark: bool):
        @shows_errors
        def handler(name, picked, keys, upload, confirmed, request: gr.Request):
            typed = [(0, key) for key in picked or []]
            typed += [(0, key.strip()) for key in re.split(r"[,\n]", keys or "") if key.strip()]
            if upload is not None and (typed or not mark):
                raise gr.Error("give either cases (picked or typed) or a file (a file only marks cases as practice), "
                               "not both")
            with user_action(self.ctx, request, coordinator=True) as (session, _):
                study = studies.get_study(session, name or "")

                def change(dry_run: bool) -> practice.PracticeResult:
                    if upload is not None:
                        return practice.import_practice_list(session, study, upload, dry_run=dry_run)
                    return practice.set_practice(session, study, typed, practice=mark, dry_run=dry_run)

                if not confirmed and change(dry_run=True).removed_assignments:
                    generated = design.assignment_counts(session, study)
                    return self._ask(self.practice_status, self.practice_confirm, (
                        f"**Not changed yet.** Practice cases are outside the balanced design, so changing them "
                        f"removes the generated assignment: {generated.assignments} assignment(s) of "
                        f"{generated.readers} reader(s). Tick *Yes, remove the generated assignment* and press the "
                        f"button again, then generate the assignment anew."))
                result = change(dry_run=False)
                lines = [result.summary().capitalize() + "."]
                lines += [f"- {'line ' + str(line) if line else 'typed key'}: {message}" for line, message in result.errors]
                message = "\n".join(lines)
                return {**self._overview(session, name, message), self.practice_status: message,
                        self.practice_confirm: False}

        return handler

    @shows_errors
    def _set_questions(self, name, upload, request: gr.Request):
        if upload is None:
            raise gr.Error("choose a JSON or YAML file first")
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            study = studies.get_study(session, name or "")
            questions.set_questions(session, study, questions.read_questions_file(upload))
            return self._overview(session, name, f"Study **{study.name}** now asks {len(study.questions)} question(s).")

    @shows_errors
    def _add_account(self, name, username, password, role, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            user = accounts.add_user(session, username or "", password or "", role=role)
            message = f"Added {role} **{user.username}**."
            if role == ROLE_READER and name:
                accounts.enroll_reader(session, studies.get_study(session, name), user)
                message += f" Reader of {name}."
            updates = self._overview(session, name, message)
            updates[self.password] = ""
            return updates

    @shows_errors
    def _add_existing(self, name, username, request: gr.Request):
        if not username:
            raise gr.Error("choose a reader account first")
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            accounts.enroll_reader(session, studies.get_study(session, name or ""), accounts.get_user(session, username))
            return self._overview(session, name, f"**{username}** is a reader of {name}.")

    @shows_errors
    def _generate(self, name, seed, cases_per_reader, confirmed, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            study = studies.get_study(session, name or "")
            current = design.assignment_counts(session, study)
            if current.assignments and not confirmed:
                return self._ask(self.assign_status, self.assign_confirm, (
                    f"**Not generated yet.** The study already has an assignment: {current.assignments} "
                    f"assignment(s) of {current.readers} reader(s), which generating again removes and replaces. "
                    f"Tick *Yes, replace the current assignment* and press the button again."))
            report = design.generate_assignments(
                session, study, seed=None if seed is None else int(seed),
                cases_per_reader=None if not cases_per_reader else int(cases_per_reader),
            )
            message = f"Assignments generated with seed {report.seed}."
            updates = self._overview(session, name, message)
            updates.update({self.balance: report.format(), self.assign_status: message, self.assign_confirm: False})
            return updates

    @shows_errors
    def _export_csv(self, name, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            study = studies.get_study(session, name or "")
            path = Path(tempfile.mkdtemp(prefix="reads-")) / f"{_safe_filename(study.name)}-reads.csv"
            export.export_reads_csv(session, study, path)
            return str(path)


NO_ASSIGNMENT = "No assignment yet: the tables fill once readers are added and the balanced assignment is generated."

#: Headers the progress tables show for the columns of ``export.progress_table`` / ``case_progress_table``
#: (``submitted_<arm code>`` columns become "Submitted (<arm code>)").
HEADERS = {"reader": "Reader", "case_key": "Case key", "assigned": "Assigned", "new": "Not opened",
           "in_progress": "In progress", "submitted": "Submitted", "active_minutes": "Active minutes",
           "practice_submitted": "Practice cases submitted", "median_active_seconds": "Median active seconds"}


def readable_headers(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (a progress table) with :data:`HEADERS` as column names, for display only; the values and the
    CSV exports keep their column names."""
    return table.rename(columns=lambda c: HEADERS.get(c) or (f"Submitted ({c.removeprefix('submitted_')})"
                                                             if c.startswith("submitted_") else c))


def questions_markdown(study_questions: list[dict]) -> str:
    """The study's questions as a numbered list with code, kind, scale or choices (coordinator view)."""
    return "\n".join(f"{i}. `{q['code']}`: {inert(questions.describe(q))}" for i, q in enumerate(study_questions, start=1))


def _safe_filename(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _import_summary(result: drafts.ImportResult) -> str:
    lines = [f"Imported {result.imported}, unchanged {result.unchanged}, replaced {result.replaced}."]
    lines += [f"- line {line}: {message}" for line, message in result.errors]
    return "\n".join(lines)
