"""The coordinator's tab: create a study, import DICOM (folder or PACS) and drafts, set the template, add readers,
generate the balanced assignment, watch progress and export the reads CSV. Unblinded; coordinators only."""

import re
import tempfile
from pathlib import Path

import gradio as gr

from studyapp.db.models import ROLE_COORDINATOR, ROLE_READER
from studyapp.services import accounts, cases, design, drafts, export, ingest, practice, studies
from studyapp.ui.context import UIContext, shows_errors, user_action
from studyapp.ui.preview import ReaderPreview
from studyapp.ui.pacs_panel import PacsPanel


class CoordinatorTab:
    """Builds the coordinator tab inside the caller's Blocks and wires its events."""

    def __init__(self, ctx: UIContext):
        self.ctx = ctx
        with gr.Row():
            self.study = gr.Dropdown(label="Study", choices=[], elem_id="coord-study", scale=3)
            self.refresh = gr.Button("Refresh", scale=1)
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
            self.replace = gr.Checkbox(label="Replace drafts no reader has opened yet", value=False)
            self.import_drafts = gr.Button("Import drafts")
            self.case_info_file = gr.File(label="Case information (CSV or JSONL: case_key + indication, comparison, "
                                                "label, reference_report)", file_types=[".csv", ".jsonl", ".ndjson"])
            self.import_case_info = gr.Button("Import case information")
            self.template = gr.Textbox(label="Normal template", lines=6)
            self.save_template = gr.Button("Save template for every case")
        with gr.Accordion("Practice cases", open=False):
            gr.Markdown("Every reader reads the practice cases first; they are stored but never counted. "
                        "Set them before generating the assignment.")
            self.practice_keys = gr.Textbox(label="Case keys (separated by commas or new lines)", lines=2,
                                            elem_id="coord-practice-keys")
            self.practice_file = gr.File(label="...or a list (CSV with a case_key column, or JSONL)",
                                         file_types=[".csv", ".jsonl", ".ndjson"])
            with gr.Row():
                self.mark_practice = gr.Button("Mark as practice", elem_id="coord-mark-practice")
                self.unmark_practice = gr.Button("Make counted again")
        with gr.Accordion("Readers and assignment", open=False):
            with gr.Row():
                self.username = gr.Textbox(label="Username")
                self.password = gr.Textbox(label="Password (at least 8 characters)", type="password")
                self.role = gr.Radio([ROLE_READER, ROLE_COORDINATOR], value=ROLE_READER, label="Role")
            self.add_user = gr.Button("Add account (readers join the selected study)")
            with gr.Row():
                self.seed = gr.Number(label="Seed (recorded with the design)", value=0, precision=0)
                self.cases_per_reader = gr.Number(label="Cases per reader (0: all)", value=0, precision=0)
            self.assign = gr.Button("Generate balanced assignment")
            self.balance = gr.Code(label="Balance report", language=None)
        gr.Markdown("### Progress")
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
        self.import_drafts.click(self._import_draft_file, [self.study, self.drafts_file, self.replace], overview, **private)
        self.import_case_info.click(self._case_info, [self.study, self.case_info_file], overview, **private)
        self.save_template.click(self._set_template, [self.study, self.template], overview, **private)
        self.mark_practice.click(self._set_practice(True), [self.study, self.practice_keys, self.practice_file],
                                 overview, **private)
        self.unmark_practice.click(self._set_practice(False), [self.study, self.practice_keys, self.practice_file],
                                   overview, **private)
        self.add_user.click(self._add_account, [self.study, self.username, self.password, self.role],
                            overview + [self.password], **private)
        self.assign.click(self._generate, [self.study, self.seed, self.cases_per_reader], overview + [self.balance],
                          **private)
        self.export.click(self._export_csv, [self.study], [self.export_file], **private)

    @property
    def on_load_outputs(self) -> list:
        """Components :meth:`on_load` and the overview refreshes update."""
        return [self.study, self.progress, self.case_progress, self.template, self.status, *self.preview.outputs]

    def on_load(self, session, user) -> dict:
        """Updates for page load (only called for coordinators)."""
        return self._overview(session, None, "", user)

    def _overview(self, session, name: str | None, message: str, user=None) -> dict:
        names = [s.name for s in studies.list_studies(session)]
        name = name if name in names else (names[0] if names else None)
        study = studies.get_study(session, name) if name else None
        preview = self.preview.overview(session, user, study) if user is not None else {}
        return preview | {
            self.study: gr.update(choices=names, value=name),
            self.progress: export.progress_table(session, study) if study else None,
            self.case_progress: export.case_progress_table(session, study) if study else None,
            self.template: study.template_text if study else "",
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
            report = ingest.import_folder(session, study, Path(folder or ""))
            if study.template_text:
                drafts.set_template(session, study, study.template_text)
            listing = "\n".join(f"- {line}" for line in cases.describe_cases(session, report.case_ids))
            return self._overview(session, name, f"{report.summary()}\n\nCases (case_key | modality | images | "
                                                 f"StudyInstanceUID):\n{listing}")

    @shows_errors
    def _import_draft_file(self, name, upload, replace, request: gr.Request):
        if upload is None:
            raise gr.Error("choose a CSV or JSONL file first")
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            result = drafts.import_drafts(session, studies.get_study(session, name or ""), upload, replace=bool(replace))
            return self._overview(session, name, _import_summary(result))

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
    def _set_template(self, name, text, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            result = drafts.set_template(session, studies.get_study(session, name or ""), text or "")
            return self._overview(session, name, _import_summary(result))

    def _set_practice(self, mark: bool):
        @shows_errors
        def handler(name, keys, upload, request: gr.Request):
            typed = [(0, key.strip()) for key in re.split(r"[,\n]", keys or "") if key.strip()]
            if upload is not None and (typed or not mark):
                raise gr.Error("give either case keys or a file (a file only marks cases as practice), not both")
            with user_action(self.ctx, request, coordinator=True) as (session, _):
                study = studies.get_study(session, name or "")
                result = (practice.import_practice_list(session, study, upload) if upload is not None
                          else practice.set_practice(session, study, typed, practice=mark))
                lines = [result.summary().capitalize() + "."]
                lines += [f"- {'line ' + str(line) if line else 'typed key'}: {message}" for line, message in result.errors]
                return self._overview(session, name, "\n".join(lines))

        return handler

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
    def _generate(self, name, seed, cases_per_reader, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            report = design.generate_assignments(
                session, studies.get_study(session, name or ""),
                seed=None if seed is None else int(seed),
                cases_per_reader=None if not cases_per_reader else int(cases_per_reader),
            )
            updates = self._overview(session, name, f"Assignments generated with seed {report.seed}.")
            updates[self.balance] = report.format()
            return updates

    @shows_errors
    def _export_csv(self, name, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            study = studies.get_study(session, name or "")
            path = Path(tempfile.mkdtemp(prefix="reads-")) / f"{_safe_filename(study.name)}-reads.csv"
            export.export_reads_csv(session, study, path)
            return str(path)


def _safe_filename(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _import_summary(result: drafts.ImportResult) -> str:
    lines = [f"Imported {result.imported}, unchanged {result.unchanged}, replaced {result.replaced}."]
    lines += [f"- line {line}: {message}" for line, message in result.errors]
    return "\n".join(lines)
