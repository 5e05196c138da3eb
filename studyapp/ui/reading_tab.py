"""The reader's tab: worklist, viewer, clinical context, draft editor with active-time timer and autosave,
then the study's questions on submission (by default the paper's two Likert items, section 4.3, "User study";
``studyapp.services.questions``), drawn for each case with ``gr.render``.

Blinding: every value sent to the browser comes from ``studyapp.services.reading``'s blinded views.
"""

import os
import time

import gradio as gr

from studyapp.db.models import STATUS_SUBMITTED
from studyapp.services import reading
from studyapp.services.errors import NotFound
from studyapp.ui.context import UIContext, database_unavailable, shows_errors, user_action
from studyapp.ui.inert import inert
from studyapp.ui.signin import SIGN_IN_AGAIN_URL, SessionExpired, sign_in_token
from studyapp.ui.tab_saves import TabSaveLocks, parse_tab
from studyapp.ui.viewer import Viewer

#: JavaScript run before every handler that saves the text: the last two inputs become this save's tab token
#: (``autosave.js``, parsed by :func:`studyapp.ui.tab_saves.parse_tab`; the page shows "Saving..." until the save's
#: acknowledgement arrives) and the timer's total of active seconds.
WITH_SAVE_SNAPSHOT = ("(...args) => { const n = args.length; args[n - 2] = window.studySave ? window.studySave.next() : ''; "
                      "args[n - 1] = window.studyTimer ? window.studyTimer.seconds() : 0; return args; }")
#: JavaScript of the periodic timer and of leaving the editor: both save through the one "Save now" event.
SAVE_NOW = "() => { if (window.studySave) window.studySave.now(); }"
#: JavaScript run after a save: hand its acknowledgement to the page (``autosave.js``: the status line, and the
#: browser's copy of the text dropped once the server holds that text, ``local_copy.js``).
ACKNOWLEDGE = "(ack) => { if (window.studySave) window.studySave.acknowledge(ack); }"
#: JavaScript run after a case is shown (inputs: the save acknowledgement, the timer's start, the editor's text):
#: start the timer from the stored active time, or show it stopped (for the case already on screen, a refused
#: submission, it keeps counting from the larger of the two totals); then offer or restore text this browser kept
#: for the case that the server does not have (``local_copy.js``).
START_TIMER = ("(ack, t, text) => { if (window.studySave) window.studySave.acknowledge(ack); "
               "const timer = window.studyTimer; if (t && t.running) { "
               "timer.start(timer.assignment === t.assignment ? Math.max(t.seconds, timer.seconds()) : t.seconds, t.idle); "
               "timer.assignment = t.assignment; } else { timer.stop(t ? t.seconds : 0); timer.assignment = null; } "
               "if (window.studyLocal) window.studyLocal.opened(t, text); }")
#: What a reader is told while a save could not reach the server or its database (the browser keeps the text,
#: ``local_copy.js``, and the next save sends all of it); ``autosave.js`` shows the same words when the server
#: itself cannot be reached.
NOT_SAVED_YET = ("Not saved yet: the server is unreachable; keep this page open, your text is kept in this "
                 "browser")
#: ``version`` of a tab whose save was refused as stale (reading.StaleSave) or signed out: it saves nothing more
#: until the case is opened again.
STALE = -1
#: Autosaves of different readers run in parallel up to this many at once (Gradio's default is one at a time,
#: which queues 30 readers' saves behind each other; bench/load.py measures it).
AUTOSAVE_WORKERS = 8
#: Test hook: seconds every save keeps its transaction open (``STUDYAPP_TEST_SAVE_DELAY_S``), to reproduce a slow
#: database in browser tests; 0 (no delay) unless set.
TEST_SAVE_DELAY_S = float(os.environ.get("STUDYAPP_TEST_SAVE_DELAY_S", "0"))
STATUS_LABELS = {"new": "to do", "in_progress": "in progress", STATUS_SUBMITTED: "submitted"}


def _likert_choices(scale: dict) -> list[tuple[str, int]]:
    values = range(scale["min"], scale["max"] + 1)
    labels = scale.get("labels") or [str(v) for v in values]
    return [(f"{v} - {label}", v) for v, label in zip(values, labels)]


def question_input(question: dict) -> gr.components.Component:
    """The input component of one question (inside a ``gr.render``); ``elem_id`` is ``question-<code>``."""
    label = question["question"] + ("" if question["required"] else " (optional)")
    common = {"label": label, "elem_id": f"question-{question['code']}", "value": None}
    kind = question["kind"]
    if kind == "likert":
        return gr.Radio(choices=_likert_choices(question), **common)
    if kind == "single_choice":
        return gr.Radio(choices=question["choices"], **common)
    if kind == "multiple_choice":
        return gr.CheckboxGroup(choices=question["choices"], **common | {"value": []})
    if kind == "yes_no":
        return gr.Radio(choices=["yes", "no"], **common)
    if kind == "number":
        unit = f" ({question['unit']})" if question.get("unit") else ""
        return gr.Number(minimum=question.get("min"), maximum=question.get("max"), **common | {"label": label + unit})
    return gr.Textbox(lines=2, max_length=question["max_chars"], **common)


def answer_value(question: dict, value):
    """A component's value as the answer :func:`studyapp.services.questions.validate_answers` expects."""
    if value is None or value == [] or value == "":
        return None
    kind = question["kind"]
    if kind == "likert":
        return int(value)
    if kind == "yes_no":
        return value == "yes"
    if kind == "number":
        return float(value)
    return value


def context_markdown(screen: reading.CaseScreen) -> str:
    """The clinical-context panel of the reading screen (blinded: built from the reader's :class:`CaseScreen`)."""
    rows = [("PRACTICE CASE", "for practice only, not counted in the study")] if screen.practice else []
    rows += [
        ("Case", screen.label),
        ("Age", screen.patient_age or "not given"),
        ("Sex", screen.patient_sex or "not given"),
        ("Indication", screen.indication or "not given"),
        ("Comparison", screen.comparison or "none"),
    ]
    return "\n".join(f"**{name}:** {inert(value)}  " for name, value in rows)


def worklist_choices(items: list[reading.WorklistItem]) -> list[tuple[str, int]]:
    """Radio choices of a reader's worklist: neutral label, practice flag and status, by assignment id."""
    return [(f"{i.label}{' · practice' if i.practice else ''} · {STATUS_LABELS[i.status]}", i.assignment_id)
            for i in items]


def save_ack(tab: reading.TabSave | None, saved: bool) -> dict:
    """The acknowledgement a save sends back to its page (``save_ack``): ``{"sequence": the save's number in the
    page, "saved": whether the server holds the text of that save now}``; no change for a save without a tab."""
    return {"sequence": tab.sequence, "saved": saved} if tab is not None else gr.update()


class ReadingTab:
    """Builds the reading tab inside the caller's Blocks and wires its events."""

    def __init__(self, ctx: UIContext):
        self.ctx = ctx
        # held in the page, not in Gradio's per-connection state: after a server restart the reconnected page still
        # says which case its text belongs to and the version it grew from (the server checks both)
        self.assignment = gr.Number(None, precision=0, visible=False)
        self.version = gr.Number(None, precision=0, visible=False)  # Report.version of this tab's text (StaleSave)
        # one screen without scrolling at 1600 x 1000 and 1366 x 768: a narrow worklist and context | the viewer,
        # most of the width | report and questions in a column that scrolls by itself
        with gr.Row(elem_id="reading-screen"):
            with gr.Column(scale=1, min_width=190, elem_id="reading-sidebar"):
                # a list, not a dropdown: the narrow column shows each study's whole name, wrapped (app.CSS)
                self.study = gr.Radio(label="Study", choices=[], type="value", elem_id="reader-study")
                with gr.Accordion("About this study", open=False):
                    self.about = gr.Markdown(elem_id="study-about")
                self.worklist = gr.Radio(label="Worklist", choices=[], elem_id="worklist")
                self.context = gr.Markdown(elem_id="clinical-context")
                gr.HTML('<div class="case-timer-box">Active time <span id="case-timer" data-seconds="0">00:00</span></div>')
            with gr.Column(scale=6, elem_id="reading-viewer"):
                self.viewer = Viewer(ctx, with_findings=True)
            with gr.Column(scale=2, min_width=300, elem_id="reading-side"):
                self.editor = gr.Textbox(label="Report", lines=14, max_lines=14, interactive=False, elem_id="report-editor")
                self.local_copy = gr.HTML('<div id="local-copy"></div>')  # local_copy.js offers kept text here
                # autosave.js writes "Saving..." or "Not saved yet" here, and hides save-status meanwhile
                self.save_progress = gr.HTML('<div id="save-progress"></div>')
                self.save_status = gr.Markdown(elem_id="save-status")
                self.finish = gr.Button("Submit report", variant="primary", interactive=False, elem_id="finish-report")
                with gr.Group(visible=False, elem_id="likert-panel") as self.likert_panel:
                    # {"assignment", "questions"} of the open case: a new case draws a fresh, empty form
                    self.form = gr.State(None)
                    with gr.Column(elem_id="question-form"):  # its own container: a re-render replaces only this
                        gr.render(inputs=[self.form])(self._render_form)
                    self.submit_message = gr.Markdown(elem_id="submit-message")
                    self.back = gr.Button("Back to editing")
        # what the browser needs of the case on screen: {"running", "seconds", "idle", "assignment", "reader"}
        self.timer_start = gr.JSON(visible=False)
        # the acknowledgement of each save, {"sequence": the save's number in its page, "saved": True when the server
        # holds that text now} (autosave.js, local_copy.js)
        self.save_ack = gr.JSON(visible=False)
        self.save_tab = gr.Textbox(visible=False)  # the tab token of each save (WITH_SAVE_SNAPSHOT)
        self.active_seconds = gr.Number(visible=False)
        self._tab_locks = TabSaveLocks()
        self.autosave_timer = gr.Timer(5.0, active=False)
        self.save_now = gr.Button("Save now", visible="hidden", elem_id="autosave-now")  # clicked by timer.js on typing
        self._wire()

    # -- event wiring --------------------------------------------------------------------------------------------
    def _wire(self):
        private = {"api_visibility": "private"}
        screen = self.screen_outputs
        self.study.input(self._show_worklist, [self.study], screen, **private).then(**self.start_timer)
        self.worklist.input(
            self._switch_case, [self.study, self.worklist, self.assignment, self.version, self.editor,
                                self.save_tab, self.active_seconds], screen,
            js=WITH_SAVE_SNAPSHOT, **private,
        ).then(**self.start_timer)
        saving = [self.assignment, self.version, self.editor, self.save_tab, self.active_seconds]
        # one save event per page, one in flight at a time, the newest waiting one replacing older ones
        self.save_now.click(self._autosave, saving, [self.save_status, self.version, self.save_ack],
                            js=WITH_SAVE_SNAPSHOT, trigger_mode="always_last", concurrency_id="autosave",
                            concurrency_limit=AUTOSAVE_WORKERS, **private).then(**self.acknowledge)
        for trigger in (self.autosave_timer.tick, self.editor.blur):
            trigger(None, None, None, js=SAVE_NOW, **private)
        self.finish.click(
            self._ask_likert, saving, [self.save_status, self.version, self.likert_panel, self.finish, self.save_ack],
            js=WITH_SAVE_SNAPSHOT, **private,
        ).then(**self.acknowledge)
        self.back.click(lambda: (gr.update(visible=False), gr.update(visible=True)), None,
                        [self.likert_panel, self.finish], **private)

    def _render_form(self, form):
        """The open case's questions in order, and the confirm button that submits them with the report."""
        if not form:
            return
        questions = form["questions"]
        inputs = [question_input(q) for q in questions]
        confirm = gr.Button("Confirm submission", variant="primary", elem_id="confirm-submit")

        def submit(request: gr.Request, study_name, assignment_id, version, text, *values):
            # request first: Gradio passes gr.Request only to positional parameters, not after *values
            *answers, token, seconds = values
            return self._submit(study_name, assignment_id, version, text, token, seconds, request,
                                {q["code"]: answer_value(q, v) for q, v in zip(questions, answers)})

        confirm.click(submit, [self.study, self.assignment, self.version, self.editor, *inputs, self.save_tab,
                               self.active_seconds],
                      self.screen_outputs, js=WITH_SAVE_SNAPSHOT, api_visibility="private").then(**self.start_timer)

    @property
    def start_timer(self) -> dict:
        """Keyword arguments of a ``.then(...)`` after a screen is shown: acknowledge the save it made, start or stop
        the browser timer from ``timer_start``, offer text the browser kept (:data:`START_TIMER`)."""
        return {"fn": None, "inputs": [self.save_ack, self.timer_start, self.editor], "outputs": None,
                "js": START_TIMER}

    @property
    def acknowledge(self) -> dict:
        """Keyword arguments of a ``.then(...)`` after a save: hand ``save_ack`` to the page (:data:`ACKNOWLEDGE`)."""
        return {"fn": None, "inputs": [self.save_ack], "outputs": None, "js": ACKNOWLEDGE}

    @property
    def on_load_outputs(self) -> list:
        """Components :meth:`on_load` updates."""
        return self.screen_outputs

    @property
    def screen_outputs(self) -> list:
        """Every component a case switch updates (worklist, context, editor, Likert, timer, viewer)."""
        return [self.study, self.about, self.worklist, self.assignment, self.version, self.context, self.editor,
                self.finish, self.likert_panel, self.form, self.submit_message,
                self.save_status, self.timer_start, self.save_ack, self.autosave_timer,
                *self.viewer.open_outputs]

    # -- handlers ------------------------------------------------------------------------------------------------
    def on_load(self, session, user) -> dict:
        """Updates for page load: the reader's studies and worklist, resuming a case left in progress."""
        studies = reading.reader_studies(session, user)
        if not studies:
            return self._screen(session, user, None, None, note="You have no reader study assigned yet.")
        study = studies[0]
        in_progress = [i for i in reading.worklist(session, user, study) if i.status == "in_progress"]
        updates = self._screen(session, user, study, in_progress[0].assignment_id if in_progress else None)
        updates[self.study] = gr.update(choices=[s.name for s in studies], value=study.name)
        return updates

    def _study(self, session, user, name):
        for study in reading.reader_studies(session, user):
            if study.name == name:
                return study
        raise NotFound(f"you are not a reader of study {name!r}")

    def _screen(self, session, user, study, assignment_id, note: str = "") -> dict:
        screen = reading.open_case(session, user, assignment_id) if assignment_id is not None else None
        items = reading.worklist(session, user, study) if study is not None else []  # after opening: status shown
        choices = worklist_choices(items)
        updates = {self.worklist: gr.update(choices=choices, value=assignment_id), self.assignment: assignment_id,
                   self.version: None,
                   self.about: inert(study.description) if study is not None else "",
                   self.likert_panel: gr.update(visible=False), self.form: None, self.submit_message: ""}
        if screen is None:
            done = bool(items) and all(i.status == STATUS_SUBMITTED for i in items)
            message = note or ("All cases are submitted. Thank you!" if done else "Choose a case from the worklist.")
            updates.update({self.context: message, self.editor: gr.update(value="", interactive=False),
                            self.finish: gr.update(interactive=False, visible=True), self.save_status: "",
                            self.timer_start: {"running": False, "seconds": 0, "reader": user.id},
                            self.autosave_timer: gr.Timer(active=False)})
            updates.update(self.viewer.open(session, user, None))
            return updates
        editable = screen.status != STATUS_SUBMITTED
        updates.update({
            self.version: screen.version,
            self.context: context_markdown(screen),
            self.editor: gr.update(value=screen.text, interactive=editable),
            self.finish: gr.update(interactive=editable, visible=True),
            self.save_status: "" if editable else "This report is submitted.",
            self.form: {"assignment": screen.assignment_id, "questions": screen.questions} if editable else None,
            self.timer_start: {"running": editable, "seconds": screen.active_seconds, "idle": screen.idle_seconds,
                               "assignment": screen.assignment_id, "reader": user.id},
            self.autosave_timer: gr.Timer(value=screen.autosave_seconds, active=editable),
        })
        updates.update(self.viewer.open(session, user, screen.case_id))
        return updates

    @shows_errors
    def _show_worklist(self, study_name, request: gr.Request):
        with user_action(self.ctx, request) as (session, user):
            return self._screen(session, user, self._study(session, user, study_name), None)

    def _switch_case(self, study_name, target, assignment_id, version, text, token, seconds, request: gr.Request):
        """Save the open case's text, then show case ``target``; a refusal keeps the case on screen (a refused save
        says why in the status line, anything else in a toast)."""
        tab = parse_tab(token)
        try:
            with self._tab_locks.hold(tab), user_action(self.ctx, request) as (session, user):
                saved = True
                if assignment_id is not None:
                    saved = version != STALE and self._autosave_status(
                        session, user, assignment_id, version, text, tab, seconds)[2]
                updates = self._screen(session, user, self._study(session, user, study_name), target)
        except gr.Error as error:
            if not (isinstance(error.__cause__, (reading.StaleSave, SessionExpired)) or database_unavailable(error)):
                gr.Warning(error.message)  # e.g. practice cases first: nothing changed, the save included
                return {self.save_ack: save_ack(tab, False)}
            status, version = self._refusal(error)  # stay on the case; the next switch goes ahead (the reader was told)
            return {self.save_status: status, self.version: version, self.worklist: gr.update(value=assignment_id),
                    self.save_ack: save_ack(tab, False)}
        return updates | {self.save_ack: save_ack(tab, saved)}

    def _autosave(self, assignment_id, version, text, token, seconds, request: gr.Request):
        """Periodic, typing and leaving-the-editor saves; only a changed text counts as sign-in activity."""
        tab = parse_tab(token)
        if assignment_id is None or version == STALE:
            return gr.update(), gr.update(), save_ack(tab, False)
        try:
            with self._tab_locks.hold(tab), user_action(self.ctx, request, active=False) as (session, user):
                status, version, saved = self._autosave_status(session, user, assignment_id, version, text, tab,
                                                               seconds)
            if isinstance(status, str):  # the text changed ("Saved ..."): sign-in activity, once committed
                self.ctx.sign_ins.touch(sign_in_token(request))
        except gr.Error as error:  # shown on the screen too, not only as a passing toast
            return *self._refusal(error), save_ack(tab, False)
        return status, version, save_ack(tab, saved)

    @staticmethod
    def _refusal(error: gr.Error) -> tuple:
        """The status line and the version of a tab whose save was refused (a toast too, but not for an
        unreachable database: that repeats with every save until it is back)."""
        if database_unavailable(error):
            return f"**{NOT_SAVED_YET}**", gr.update()
        gr.Warning(error.message)
        if isinstance(error.__cause__, SessionExpired):
            return f"**Signed out:** {error.message}. [Sign in again]({SIGN_IN_AGAIN_URL})", STALE
        return f"**{error.message}**", STALE if isinstance(error.__cause__, reading.StaleSave) else gr.update()

    def _autosave_status(self, session, user, assignment_id, version, text, tab, seconds) -> tuple:
        """Save; returns the status line, the tab's version and whether the server now holds the text. The status
        line changes only when the text did ("Saved" stays the time the text was stored, and a periodic save of
        unchanged text does not replace a message such as "Report submitted")."""
        assignment = reading.own_assignment(session, user, assignment_id)  # kept: the save below reuses it
        report = assignment.report
        if report is None or report.status == STATUS_SUBMITTED:
            return gr.update(), gr.update(), False
        unchanged = (text or "") == report.current_text
        report = reading.autosave(session, user, assignment_id, text or "", float(seconds or 0), version, tab)
        if TEST_SAVE_DELAY_S:
            time.sleep(TEST_SAVE_DELAY_S)  # test hook: the transaction stays open, as under a slow database
        return gr.update() if unchanged else f"Saved {report.last_saved_at:%H:%M:%S} UTC", report.version, True

    def _ask_likert(self, assignment_id, version, text, token, seconds, request: gr.Request):
        """Save the text, then show the study's questions; a refused save says why and keeps the editor."""
        tab = parse_tab(token)
        try:
            if assignment_id is None:
                raise gr.Error("open a case first")
            with self._tab_locks.hold(tab), user_action(self.ctx, request) as (session, user):
                status, version, saved = self._autosave_status(session, user, assignment_id, version, text, tab,
                                                               seconds)
        except gr.Error as error:
            return *self._refusal(error), gr.update(), gr.update(), save_ack(tab, False)
        return status, version, gr.update(visible=True), gr.update(visible=False), save_ack(tab, saved)

    def _submit(self, study_name, assignment_id, version, text, token, seconds, request: gr.Request, answers: dict):
        """Submit; a refusal (unanswered question, unreachable database) is shown beside the confirm button, not as
        a lasting toast, and the next screen replaces it, so a later successful submission does not read as a
        failure."""
        tab = parse_tab(token)
        try:
            with self._tab_locks.hold(tab), user_action(self.ctx, request) as (session, user):
                study = self._study(session, user, study_name)
                reading.submit(session, user, assignment_id, text or "", float(seconds or 0), answers, version, tab)
                updates = self._screen(session, user, study, reading.next_open_assignment(session, user, study))
        except gr.Error as error:
            message = f"**Not submitted.** {NOT_SAVED_YET}" if database_unavailable(error) \
                else f"**Not submitted:** {error.message}"
            return {self.submit_message: message, self.save_ack: save_ack(tab, False)}
        updates[self.save_status] = "Report submitted. " + (
            "Next case opened." if updates[self.assignment] is not None else "")
        updates[self.save_ack] = save_ack(tab, True)
        return updates
