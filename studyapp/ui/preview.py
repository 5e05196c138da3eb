"""The coordinator's read-only preview of a reader's reading screen (issue 13, item 14).

It shows exactly the blinded views the reader's browser gets (:func:`studyapp.services.reading.worklist` and
:func:`~studyapp.services.reading.preview_case`: neutral case labels, clinical context, the text the reader would
find, the post-report questions, the images), never the arm or the draft source, and changes nothing.
"""

import gradio as gr
from sqlalchemy import select

from studyapp.db.models import StudyReader, User
from studyapp.services import reading, studies
from studyapp.services.errors import NotFound
from studyapp.ui.context import UIContext, shows_errors, user_action
from studyapp.ui.inert import inert
from studyapp.services.questions import describe
from studyapp.ui.reading_tab import context_markdown, worklist_choices
from studyapp.ui.viewer import Viewer


def _questions_markdown(questions: list[dict]) -> str:
    return "\n".join(["**Questions after submission:**", *(f"- {inert(describe(q))}" for q in questions)])


class ReaderPreview:
    """Built inside the coordinator tab; ``study`` is that tab's study dropdown. Coordinators only."""

    def __init__(self, ctx: UIContext, study: gr.Dropdown):
        self.ctx = ctx
        self.study = study
        with gr.Accordion("Preview a reader's screen (read-only, blinded as the reader sees it)", open=False):
            self.reader = gr.Dropdown(label="Reader", choices=[], elem_id="preview-reader")
            with gr.Row():
                with gr.Column(scale=2, min_width=220):
                    self.worklist = gr.Radio(label="Worklist", choices=[], elem_id="preview-worklist")
                    self.context = gr.Markdown(elem_id="preview-context")
                with gr.Column(scale=5):
                    self.viewer = Viewer(ctx)
                with gr.Column(scale=4):
                    self.text = gr.Textbox(label="Report (read-only preview)", lines=14, interactive=False,
                                           elem_id="preview-text")
                    self.questions = gr.Markdown(elem_id="preview-questions")
        private = {"api_visibility": "private"}
        self.reader.input(self._show_worklist, [self.study, self.reader], self.outputs, **private)
        self.worklist.input(self._show_case, [self.study, self.reader, self.worklist], self.outputs, **private)

    @property
    def outputs(self) -> list:
        """Components every preview update sets (also part of the coordinator overview)."""
        return [self.reader, self.worklist, self.context, self.text, self.questions, *self.viewer.open_outputs]

    def overview(self, session, user, study) -> dict:
        """Updates for the coordinator overview: the study's readers to choose from, nothing previewed yet."""
        names = [] if study is None else list(session.scalars(
            select(User.username).join(StudyReader, StudyReader.user_id == User.id)
            .where(StudyReader.study_id == study.id).order_by(User.username)))
        return self._screen(session, user, study, None, None) | {self.reader: gr.update(choices=names, value=None)}

    def _screen(self, session, user, study, reader: User | None, assignment_id) -> dict:
        items = reading.worklist(session, reader, study) if reader is not None and study is not None else []
        updates = {self.reader: gr.update(), self.worklist: gr.update(choices=worklist_choices(items),
                                                                       value=assignment_id),
                   self.context: "", self.text: "", self.questions: ""}
        if assignment_id is None:
            return updates | self.viewer.open(session, user, None)
        if assignment_id not in {i.assignment_id for i in items}:
            raise NotFound(f"assignment {assignment_id} is not in {reader.username!r}'s worklist")
        screen = reading.preview_case(session, user, assignment_id)
        updates.update({self.context: context_markdown(screen), self.text: screen.text,
                        self.questions: _questions_markdown(screen.questions)})
        return updates | self.viewer.open(session, user, screen.case_id)

    @shows_errors
    def _show_worklist(self, study_name, username, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, user):
            study = studies.get_study(session, study_name or "")
            return self._screen(session, user, study, self._reader(session, username), None)

    @shows_errors
    def _show_case(self, study_name, username, assignment_id, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, user):
            study = studies.get_study(session, study_name or "")
            return self._screen(session, user, study, self._reader(session, username), assignment_id)

    @staticmethod
    def _reader(session, username) -> User:
        user = session.scalar(select(User).where(User.username == (username or "")))
        if user is None:
            raise NotFound("choose a reader first")
        return user
