"""The coordinator's analysis tab: runs ``analysis.run_analysis`` on a study (offline judge) and shows the
Fig. 5 panels, the per-arm summary, what was skipped and why, and the files (CSV tables, HTML report)."""

import tempfile
from pathlib import Path

import gradio as gr

from analysis.pipeline import run_analysis
from analysis.skipped import practice_reads_left_out
from studyapp.services import studies
from studyapp.ui.context import UIContext, shows_errors, user_action

#: Figures of ``AnalysisResult.figures`` in display order, with their titles.
FIGURES = {
    "time_by_arm": "Active reporting time by arm",
    "fig5e_time_saved": "Time saved per 100 studies by template-use stratum (Fig. 5e/f)",
    "fig5d_template_use": "Template use: draft-to-final similarity (Fig. 5d)",
    "fig5b_discrepancy_matrix": "Urgent + emergent discrepancies against peers (Fig. 5b)",
    "fig5c_discrepancy_by_interval": "Discrepancies by writing-time interval (Fig. 5c)",
    "likert_by_arm": "Confidence and mental demand by arm",
}


class AnalysisTab:
    """Builds the analysis tab inside the caller's Blocks and wires its events."""

    def __init__(self, ctx: UIContext):
        self.ctx = ctx
        with gr.Row():
            self.study = gr.Dropdown(label="Study", choices=[], scale=3, elem_id="analysis-study")
            self.run = gr.Button("Run analysis", variant="primary", scale=1, elem_id="analysis-run")
        self.status = gr.Markdown(elem_id="analysis-status")
        self.summary = gr.Dataframe(label="Per-arm summary with 95% bootstrap CIs", interactive=False, visible=False)
        self.plots = {name: gr.Plot(label=title) for name, title in FIGURES.items()}
        self.files = gr.File(label="Report and tables", file_count="multiple", interactive=False, elem_id="analysis-files")
        self.run.click(self._analyse, [self.study], [self.status, self.summary, *self.plots.values(), self.files],
                       api_visibility="private")

    @property
    def on_load_outputs(self) -> list:
        """Components :meth:`on_load` updates."""
        return [self.study]

    def on_load(self, session, user) -> dict:
        """Updates for page load (only called for coordinators): the list of studies."""
        names = [s.name for s in studies.list_studies(session)]
        return {self.study: gr.update(choices=names, value=names[0] if names else None)}

    @shows_errors
    def _analyse(self, name, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            study = studies.get_study(session, name or "")
        out_dir = Path(tempfile.mkdtemp(prefix="analysis-"))
        try:
            result = run_analysis(self.ctx.sessions, study.name, out_dir, ratescore_dir=self.ctx.settings.ratescore_dir)
        except (LookupError, ValueError) as error:
            raise gr.Error(str(error)) from error
        lines = [f"**{result.study_name}**: judge `{result.judge}`, template use by `{result.similarity_measure}`, "
                 f"reference arm `{result.reference_arm}`."]
        lines.append(f"Practice reads left out: {practice_reads_left_out(result.skipped)}.")
        if result.skipped:
            lines.append(f"Left out ({len(result.skipped)}):")
            lines += [f"- {s.step}: {s.item}: {s.reason}" for s in result.skipped]
        plots = [result.figures.get(name) for name in FIGURES]
        summary = result.tables.get("arm_summary")
        return ("\n".join(lines), gr.update(value=None if summary is None else summary.round(3), visible=True), *plots,
                [str(path) for path in result.files.values() if Path(path).is_file()])
