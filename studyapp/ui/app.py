"""The Gradio applications: one for readers, one for coordinators, each served by ``studyapp.web.app`` under its
own path with its own role check, so a reader's browser never receives the coordinator screens (not even their
component tree in ``/config``). Every coordinator handler checks the role again on the server.
"""

from pathlib import Path

import gradio as gr

from studyapp.db.models import ROLE_COORDINATOR, ROLE_READER
from studyapp.ui.analysis_tab import AnalysisTab
from studyapp.ui.compare_tab import CompareCoordinatorTab, CompareTab
from studyapp.ui.context import UIContext, user_action
from studyapp.ui.coordinator_tab import CoordinatorTab
from studyapp.ui.event_queue import configure_queue
from studyapp.ui.reading_tab import ReadingTab
from studyapp.ui.signin import SIGN_IN_AGAIN_URL, SessionExpired

TITLE = "Reader study"
HEAD = "".join(f"<script>{(Path(__file__).parent / name).read_text()}</script>"
               for name in ("timer.js", "autosave.js", "local_copy.js"))
CSS = """
.gradio-container { padding-top: 4px !important; }
.gradio-container > .main { max-width: none !important; padding-left: 10px !important;
  padding-right: 10px !important; }
#reading-screen { gap: 10px; }
#reading-sidebar, #reading-side { max-height: calc(100vh - 130px); overflow-y: auto; flex-wrap: nowrap; }
#app-header { align-items: center; min-height: 0; }
#app-header h2 { margin: 0; }
#reading-screen .sv-root { height: max(420px, calc(100vh - 206px)); }
#worklist .wrap { flex-direction: column; flex-wrap: nowrap; max-height: 32vh; overflow-y: auto; }
#reader-study .wrap { flex-direction: column; flex-wrap: nowrap; max-height: 7.5em; overflow-y: auto; }
#reader-study label { white-space: normal; overflow-wrap: anywhere; padding: 4px 8px; line-height: 1.25; }
#compare-top { align-items: stretch; }
#compare-pairs .wrap { max-height: 4.6em; overflow-y: auto; }
#compare-screen { gap: 10px; flex-wrap: nowrap; }
#compare-screen .sv-root { height: max(300px, calc(100vh - 330px)); }
#compare-side { max-height: calc(100vh - 240px); overflow-y: auto; flex-wrap: nowrap; }
#compare-side > * { flex-shrink: 0; }
.case-timer-box { font-size: 1.1rem; padding: 4px 0; }
#case-timer { font-family: monospace; font-weight: bold; }
#case-timer[data-paused="true"] { color: #b45309; }
html[data-save-progress] #save-status { display: none; }
#save-progress:not(:empty) { font-weight: bold; }
.local-copy-offer { border: 1px solid #b45309; padding: 4px 8px; }
"""


def _header(title: str) -> gr.Markdown:
    with gr.Row(elem_id="app-header"):
        gr.Markdown(f"## {title}")
        who = gr.Markdown(elem_id="signed-in-as")
        gr.Button("Sign out", link=SIGN_IN_AGAIN_URL, size="sm", scale=0)
    return who


def _wire_load(ctx: UIContext, blocks: gr.Blocks, who: gr.Markdown, role: str, contents: list) -> gr.events.Dependency:
    """Page load: say who is signed in and fill every tab; a signed-out session is told so (with a link)."""

    def on_load(request: gr.Request):
        try:
            with user_action(ctx, request, coordinator=role == ROLE_COORDINATOR) as (session, user):
                updates = {who: f"Signed in as **{user.display_name or user.username}** ({user.role})"}
                for content in contents:
                    updates.update(content.on_load(session, user))
                return updates
        except gr.Error as error:
            if not isinstance(error.__cause__, SessionExpired):
                raise
            return {who: f"**Signed out:** {error.message}. [Sign in again]({SIGN_IN_AGAIN_URL})"}

    outputs = {who}
    for content in contents:
        outputs |= set(content.on_load_outputs)
    return blocks.load(on_load, None, list(outputs), api_visibility="private")


def build_reader_app(ctx: UIContext) -> gr.Blocks:
    """The readers' Blocks: the reading tab (worklist, viewer, report) and the blinded comparisons."""
    with gr.Blocks(title=TITLE) as blocks:
        who = _header(TITLE)
        with gr.Tabs(selected="reading"):
            with gr.Tab("Reading", id="reading"):
                reading = ReadingTab(ctx)
            with gr.Tab("Comparison", id="compare"):
                compare = CompareTab(ctx)
        _wire_load(ctx, blocks, who, ROLE_READER, [reading, compare]).then(**reading.start_timer)
    return configure_queue(blocks)


def build_coordinator_app(ctx: UIContext) -> gr.Blocks:
    """The coordinators' Blocks: studies and progress, comparison results, analysis (one study choice shared)."""
    with gr.Blocks(title=f"{TITLE}: coordinator") as blocks:
        who = _header(f"{TITLE}: coordinator")
        with gr.Tabs(selected="coordinator"):
            with gr.Tab("Coordinator", id="coordinator") as coordinator_tab:
                coordinator = CoordinatorTab(ctx)
            with gr.Tab("Comparison results", id="compare-results") as compare_results_tab:
                compare_results = CompareCoordinatorTab(ctx)
            with gr.Tab("Analysis", id="analysis") as analysis_tab:
                analysis = AnalysisTab(ctx)
        chosen_study = gr.State(None)  # the coordinator's one study choice, shown by every coordinator tab
        tabs = {coordinator_tab: coordinator, compare_results_tab: compare_results, analysis_tab: analysis}
        for tab, content in tabs.items():
            content.follow(tab, chosen_study)
        _wire_load(ctx, blocks, who, ROLE_COORDINATOR, list(tabs.values()))
    return configure_queue(blocks)
