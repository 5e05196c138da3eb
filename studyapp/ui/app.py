"""The Gradio application: sign-in, then the tabs a user's role allows.

Readers see their worklist (and comparisons); coordinators see the coordinator tabs. Tabs for the other role
are hidden, and every coordinator handler checks the role again on the server.
"""

from pathlib import Path

import gradio as gr

from studyapp.db.models import ROLE_COORDINATOR
from studyapp.services import accounts
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
.case-timer-box { font-size: 1.1rem; padding: 4px 0; }
#case-timer { font-family: monospace; font-weight: bold; }
#case-timer[data-paused="true"] { color: #b45309; }
html[data-save-progress] #save-status { display: none; }
#save-progress:not(:empty) { font-weight: bold; }
.local-copy-offer { border: 1px solid #b45309; padding: 4px 8px; }
"""


def build_app(ctx: UIContext) -> gr.Blocks:
    """The Blocks of the whole application (launch with :func:`launch`)."""
    with gr.Blocks(title=TITLE) as blocks:
        with gr.Row(elem_id="app-header"):
            gr.Markdown(f"## {TITLE}")
            who = gr.Markdown(elem_id="signed-in-as")
            gr.Button("Sign out", link="/logout", size="sm", scale=0)
        with gr.Tabs() as tabs:
            with gr.Tab("Reading", id="reading", visible=False) as reading_tab:
                reading = ReadingTab(ctx)
            with gr.Tab("Comparison", id="compare", visible=False) as compare_tab:
                compare = CompareTab(ctx)
            with gr.Tab("Coordinator", id="coordinator", visible=False) as coordinator_tab:
                coordinator = CoordinatorTab(ctx)
            with gr.Tab("Comparison results", id="compare-results", visible=False) as compare_results_tab:
                compare_results = CompareCoordinatorTab(ctx)
            with gr.Tab("Analysis", id="analysis", visible=False) as analysis_tab:
                analysis = AnalysisTab(ctx)

        def on_load(request: gr.Request):
            try:
                return load_screen(request)
            except gr.Error as error:
                if not isinstance(error.__cause__, SessionExpired):
                    raise
                return {who: f"**Signed out:** {error.message}. [Sign in again]({SIGN_IN_AGAIN_URL})"}

        def load_screen(request: gr.Request):
            with user_action(ctx, request) as (session, user):
                is_coordinator = user.role == ROLE_COORDINATOR
                updates = {
                    who: f"Signed in as **{user.display_name or user.username}** ({user.role})",
                    tabs: gr.Tabs(selected="coordinator" if is_coordinator else "reading"),
                }
                for tab, content in {**reader_tabs, **coordinator_tabs}.items():
                    shown = (tab in coordinator_tabs) == is_coordinator
                    updates[tab] = gr.Tab(visible=shown)
                    if shown:
                        updates.update(content.on_load(session, user))
                return updates

        reader_tabs = {reading_tab: reading, compare_tab: compare}
        coordinator_tabs = {coordinator_tab: coordinator, compare_results_tab: compare_results, analysis_tab: analysis}
        load_outputs = {who, tabs}
        for tab, content in {**reader_tabs, **coordinator_tabs}.items():
            load_outputs |= {tab, *content.on_load_outputs}
        chosen_study = gr.State(None)  # the coordinator's one study choice, shown by every coordinator tab
        for tab, content in coordinator_tabs.items():
            content.follow(tab, chosen_study)
        blocks.load(on_load, None, list(load_outputs), api_visibility="private").then(**reading.start_timer)
    return configure_queue(blocks)


def launch_kwargs(ctx: UIContext) -> dict:
    """Keyword arguments of ``Blocks.launch`` every server of the app needs: sign-in, the timer script, styles."""

    def check_credentials(username: str, password: str) -> bool:
        with ctx.sessions.begin() as session:
            return accounts.authenticate(session, username, password) is not None

    return {
        "auth": check_credentials,
        "auth_message": "Sign in with the credentials your study coordinator gave you.",
        "head": HEAD,
        "css": CSS,
        "footer_links": ["api"] if ctx.settings.show_api else [],  # no "Use via API" unless turned on
    }


def launch(ctx: UIContext, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the application with sign-in against the accounts table (Argon2 hashes) until interrupted."""
    build_app(ctx).launch(server_name=host, server_port=port, **launch_kwargs(ctx))
