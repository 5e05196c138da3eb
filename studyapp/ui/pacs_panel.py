"""The coordinator tab's PACS panel: search a PACS over DICOMweb, import the chosen studies as cases, export the
submitted reports as DICOM SR (and send them, and the engine's SEG files, back to the PACS). Coordinators only;
the services are ``studyapp.services.pacs`` and ``studyapp.services.structured_reports``."""

from pathlib import Path

import gradio as gr
import pandas as pd

from studyapp.services import drafts, pacs, structured_reports, studies
from studyapp.ui.context import UIContext, shows_errors, user_action

HIT_COLUMNS = ["StudyInstanceUID", "accession", "date", "modalities", "description", "instances", "problem"]


class PacsPanel:
    """Components inside the caller's layout (the coordinator tab); ``study`` is its study dropdown."""

    def __init__(self, ctx: UIContext, study: gr.Dropdown):
        self.ctx = ctx
        with gr.Accordion("PACS (DICOMweb): import studies, send reports back", open=False, elem_id="coord-pacs"):
            self.url = gr.Textbox(label="DICOMweb URL", placeholder="http://pacs:8042/dicom-web", elem_id="pacs-url")
            with gr.Row():
                self.username = gr.Textbox(label="PACS username (basic auth)", elem_id="pacs-username")
                self.password = gr.Textbox(label="PACS password", type="password", elem_id="pacs-password")
                self.token = gr.Textbox(label="...or bearer token", type="password", elem_id="pacs-token")
            with gr.Row():
                self.accessions = gr.File(label="Accession numbers (CSV, accession_number column)",
                                          file_types=[".csv"], elem_id="pacs-accessions")
                self.date_from = gr.Textbox(label="Study date from (YYYYMMDD)", elem_id="pacs-date-from")
                self.date_to = gr.Textbox(label="Study date to (YYYYMMDD)", elem_id="pacs-date-to")
                self.modality = gr.Textbox(label="Modality (e.g. CR, CT)", elem_id="pacs-modality")
                self.description = gr.Textbox(label="Study description contains", elem_id="pacs-description")
            self.search = gr.Button("Search PACS", elem_id="pacs-search")
            self.hits = gr.Dataframe(headers=HIT_COLUMNS, interactive=False, visible=False, elem_id="pacs-hits")
            self.chosen = gr.CheckboxGroup(label="Studies to import", choices=[], elem_id="pacs-chosen")
            self.import_studies = gr.Button("Import chosen studies into the selected study", elem_id="pacs-import")
            gr.Markdown("Submitted final reports as DICOM SR (never naming the arm unless unblinded is ticked); "
                        "those of PACS cases can be sent back with STOW-RS using the credentials above.")
            with gr.Row():
                self.sr_folder = gr.Textbox(label="SR folder on the server", elem_id="pacs-sr-folder")
                self.unblinded = gr.Checkbox(label="Unblinded research export (writes the arm)", value=False)
                self.send = gr.Checkbox(label="Send to the PACS the case came from", value=True)
            self.export_sr = gr.Button("Export reports as DICOM SR", elem_id="pacs-export-sr")
            self.seg_folder = gr.Textbox(label="Folder of DICOM SEG files (engine output) to send",
                                         elem_id="pacs-seg-folder")
            self.send_seg = gr.Button("Send SEG files to the PACS", elem_id="pacs-send-seg")
            self.result = gr.Code(label="PACS result", language=None, elem_id="pacs-result")
        private = {"api_visibility": "private"}
        credentials = [self.url, self.username, self.password, self.token]
        search = [self.accessions, self.date_from, self.date_to, self.modality, self.description]
        self.search.click(self._search, credentials + search, [self.hits, self.chosen, self.result], **private)
        #: the import event, so the coordinator tab can refresh its overview after it
        self.imported = self.import_studies.click(self._import, [study, self.chosen] + credentials, [self.result], **private)
        self.export_sr.click(self._export_sr, [study, self.sr_folder, self.unblinded, self.send] + credentials,
                             [self.result], **private)
        self.send_seg.click(self._send_seg, [study, self.seg_folder] + credentials, [self.result], **private)

    @staticmethod
    def _connection(url, username, password, token) -> pacs.PacsConnection:
        return pacs.PacsConnection((url or "").strip(), (username or "").strip() or None, password or None,
                                   (token or "").strip() or None)

    @shows_errors
    def _search(self, url, username, password, token, accessions, date_from, date_to, modality, description,
                request: gr.Request):
        with user_action(self.ctx, request, coordinator=True):
            numbers = pacs.read_accession_numbers(accessions) if accessions else ()
            criteria = pacs.SearchCriteria(numbers, (date_from or "").strip(), (date_to or "").strip(),
                                           modality or "", description or "")
            result = pacs.search_studies(self._connection(url, username, password, token), criteria)
        table = pd.DataFrame([[h.study_instance_uid, h.accession_number, h.study_date, h.modalities,
                               h.study_description, h.instances, h.problem] for h in result.hits], columns=HIT_COLUMNS)
        choices = [(f"{h.accession_number or '-'} | {h.study_date} | {h.modalities} | {h.study_description}",
                    h.study_instance_uid) for h in result.hits if not h.problem]
        return (gr.update(value=table, visible=not table.empty),
                gr.update(choices=choices, value=[uid for _, uid in choices]), result.summary())

    @shows_errors
    def _import(self, name, chosen, url, username, password, token, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            study = studies.get_study(session, name or "")
            report = pacs.import_studies(session, study, self._connection(url, username, password, token),
                                         chosen or [], self.ctx.settings.data_dir, decode=True)
            drafts.add_template_drafts(session, study)
            return report.summary()

    @shows_errors
    def _export_sr(self, name, folder, unblinded, send, url, username, password, token, request: gr.Request):
        if not (folder or "").strip():
            raise gr.Error("give the folder on the server to write the SR files to")
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            study = studies.get_study(session, name or "")
            report = structured_reports.export_srs(session, study, Path(folder.strip()), unblinded=bool(unblinded))
            text = report.summary()
            if send:
                sent = pacs.send_to_origin(session, study, [w.path for w in report.written],
                                           self._connection(url, username, password, token))
                text += "\n" + sent.summary()
            return text

    @shows_errors
    def _send_seg(self, name, folder, url, username, password, token, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            files = pacs.dicom_files((folder or "").strip())
            report = pacs.send_to_origin(session, studies.get_study(session, name or ""),
                                         files, self._connection(url, username, password, token))
            return report.summary()
