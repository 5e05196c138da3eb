"""The coordinator's analysis tab: runs ``analysis.run_analysis`` on a study (the offline judge, or the LLM judge at
``Settings.llm_judge_url``) and shows a summary first (the headline numbers with 95% CIs per arm, the blinded
comparison's preference rates, then the per-arm table; a warning when the judge failed on peer comparisons), the
Fig. 5 panels in sub-tabs, what was left out and why (folded), and the files (CSV tables, HTML report). Below, folded,
the Plan view (:mod:`studyapp.ui.plan_view`): power and sample size for a planned study."""

import tempfile
from pathlib import Path

import gradio as gr

from analysis.consistency import failed_comparisons_note
from analysis.intervals import not_estimable_reason
from analysis.judges import LLMJudge, OfflineJudge
from analysis.pipeline import run_analysis
from analysis.skipped import practice_judgements_left_out, practice_reads_left_out
from studyapp.services import studies
from studyapp.ui.context import UIContext, follow_study_choice, shows_errors, user_action
from studyapp.ui.inert import inert
from studyapp.ui.plan_view import PlanView

#: Figures of ``AnalysisResult.figures`` in display order: (sub-tab name, title).
FIGURES = {
    "time_by_arm": ("Time", "Active reporting time by arm"),
    "fig5e_time_saved": ("Time saved", "Time saved per 100 studies by template-use stratum (Fig. 5e/f)"),
    "fig5d_template_use": ("Template use", "Template use: draft-to-final similarity (Fig. 5d)"),
    "fig5b_discrepancy_matrix": ("Discrepancies", "Urgent + emergent discrepancies against peers (Fig. 5b)"),
    "fig5c_discrepancy_by_interval": ("By interval", "Discrepancies by writing-time interval (Fig. 5c)"),
    "likert_by_arm": ("Likert", "Confidence and mental demand by arm"),
    "preference_rates": ("Preferences", "Blinded comparison: cases with the candidate report equivalent or better"),
}
#: Headline metrics of the summary (``arm_summary`` rows) with their units.
HEADLINE = {"active_seconds": ("Active time", "s per case"), "peer_discrepancy": ("Peer discrepancies", "per report"),
            "template_use": ("Template use", "similarity")}


def _interval(low: float, high: float, note: object = "") -> str:
    """"95% CI low to high"; "95% CI not estimable (<why>)" where ``note`` (the table's ``ci_note``) says the data
    cannot give one (e.g. 1 reader); "no CI" where it is missing for another reason (named among the left-out
    items)."""
    reason = not_estimable_reason(note)
    if reason:
        return f"95% CI not estimable ({reason})"
    if low != low or high != high:
        return "no CI: see Left out"
    return f"95% CI {low:.3g} to {high:.3g}"


def headline_markdown(summary, reference_arm: str) -> str:
    """The paper's headline numbers as a Markdown table: per arm (design order, the study's label and code), each
    :data:`HEADLINE` metric's mean with its 95% CI and its difference from ``reference_arm`` with that CI
    (``arm_summary`` of ``analysis.run_analysis``; intervals of :mod:`analysis.intervals`)."""
    rows = summary[summary["metric"].isin(HEADLINE)]
    if rows.empty:
        return ""
    metrics = [m for m in HEADLINE if m in set(rows["metric"])]
    lines = ["| arm | " + " | ".join(f"{HEADLINE[m][0]} ({HEADLINE[m][1]})" for m in metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    labels = dict(zip(rows["arm"], rows["arm_label"]))
    reference = labels.get(reference_arm, reference_arm)
    for arm, group in rows.groupby("arm", sort=False):
        cells = []
        for metric in metrics:
            r = group[group["metric"] == metric].iloc[0]
            if r.estimate != r.estimate:  # NaN: no reading with a value in this arm
                cells.append("no readings")
                continue
            cell = f"{r.estimate:.3g} ({_interval(r.ci_low, r.ci_high, r.ci_note)})"
            if arm != reference_arm and r.difference == r.difference:  # not NaN
                difference = _interval(r.difference_ci_low, r.difference_ci_high, r.difference_ci_note)
                cell += f"; {r.difference:+.3g} vs {reference} ({difference})"
            cells.append(cell)
        lines.append(f"| {labels[arm]} ({arm}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: Shown in place of the preference rates when no comparison set of the study has a submitted judgement.
NO_PREFERENCES = "No submitted blinded comparison judgements in this study, so no preference rates."


def _share(value: float, low: float, high: float, note: object = "") -> str:
    """A share as a percentage with its 95% CI; "no cases" where it is NaN (no judgement in the group),
    "95% CI not estimable (<why>)" where ``note`` says the data cannot give one, "no CI" where the interval is
    missing for another reason (named among the left-out items)."""
    if value != value:
        return "no cases"
    reason = not_estimable_reason(note)
    if reason:
        return f"{100 * value:.1f}% (95% CI not estimable ({reason}))"
    if low != low or high != high:
        return f"{100 * value:.1f}% (no CI: see Left out)"
    return f"{100 * value:.1f}% (95% CI {100 * low:.1f}% to {100 * high:.1f}%)"


def preferences_markdown(preferences) -> str:
    """The blinded comparison's preference rates as Markdown, one table per comparison set: for the overall, normal
    and abnormal cases, the per-case share with the candidate (AI) report equivalent or better (primary: a case
    counts once, paper section 2.4 "in 71% of cases") with its 95% CI, the numbers of cases, judgements and readers,
    and the per-judgement share with its CI, labelled as such. Shares are percentages to 0.1.

    Args:
        preferences: the ``preference_rates`` table of ``analysis.run_analysis``
            (:data:`analysis.preferences.PREFERENCE_COLUMNS` plus ``set`` and ``candidate_source``).

    Returns:
        The Markdown; :data:`NO_PREFERENCES` for an empty table.
    """
    if preferences.empty:
        return NO_PREFERENCES
    parts = []
    for name, group in preferences.groupby("set", sort=False):
        lines = [f"**Blinded comparison, set {inert(name)}**: share with the candidate "
                 f"{inert(group['candidate_source'].iloc[0])} equivalent or better",
                 "",
                 "| cases | per case (primary) | cases (n) | judgements (n) | readers (n) | per judgement |",
                 "|---|---|---|---|---|---|"]
        for r in group.itertuples():
            per_judgement = _share(r.per_judgement_equivalent_or_better, r.per_judgement_ci_low,
                                   r.per_judgement_ci_high, r.per_judgement_ci_note)
            per_case = _share(r.equivalent_or_better, r.ci_low, r.ci_high, r.ci_note)
            lines.append(f"| {r.group} | {per_case} | {r.n_cases} | "
                         f"{r.n_judgements} | {r.n_readers} | {per_judgement} |")
        if (group["readers"] == "fixed").any():
            lines += ["", "One reader judged this set: its intervals describe that reader only."]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


class AnalysisTab:
    """Builds the analysis tab inside the caller's Blocks and wires its events."""

    def __init__(self, ctx: UIContext):
        self.ctx = ctx
        with gr.Row():
            self.study = gr.Dropdown(label="Study", choices=[], scale=3, elem_id="analysis-study")
            self.run = gr.Button("Run analysis", variant="primary", scale=1, elem_id="analysis-run")
        self.status = gr.Markdown(elem_id="analysis-status")
        self.headline = gr.Markdown(elem_id="analysis-headline")
        self.preferences = gr.Markdown(elem_id="analysis-preferences")
        with gr.Accordion("Per-arm summary with 95% CIs (every metric; method in the report)", open=False):
            self.summary = gr.Dataframe(interactive=False, visible=False)
        self.plots = {}
        with gr.Tabs(elem_id="analysis-figures"):
            for name, (tab, title) in FIGURES.items():
                with gr.Tab(tab):
                    self.plots[name] = gr.Plot(label=title)
        with gr.Accordion("Left out", open=False) as self.skipped_box:
            self.skipped = gr.Markdown(elem_id="analysis-skipped")
        self.files = gr.File(label="Report and tables", file_count="multiple", interactive=False, elem_id="analysis-files")
        self.results = [self.status, self.headline, self.preferences, self.summary, self.skipped_box, self.skipped,
                        *self.plots.values(), self.files]
        self.run.click(self._analyse, [self.study], self.results, api_visibility="private")
        with gr.Accordion("Plan a study: power and sample size", open=False, elem_id="plan-view"):
            self.plan = PlanView(ctx, self.study, self.judge)

    def judge(self):
        """The discrepancy judge of the analysis: the LLM judge at ``Settings.llm_judge_url`` when set, else the
        offline judge (close an LLM judge after use)."""
        settings = self.ctx.settings
        return (LLMJudge(settings.llm_judge_url, settings.llm_judge_model,
                         cache_dir=Path(settings.data_dir) / "llm-cache")
                if settings.llm_judge_url else OfflineJudge())

    @property
    def on_load_outputs(self) -> list:
        """Components :meth:`on_load` updates."""
        return [self.study]

    def on_load(self, session, user) -> dict:
        """Updates for page load (only called for coordinators): the list of studies."""
        names = [s.name for s in studies.list_studies(session)]
        return {self.study: gr.update(choices=names, value=names[0] if names else None)}

    def follow(self, tab: gr.Tab, chosen: gr.State) -> None:
        """Show the coordinator's shared study choice ``chosen`` whenever ``tab`` is selected; the results of the
        study shown before are cleared (:meth:`_show_study`)."""
        follow_study_choice(chosen, tab, self.study, self._show_study, [self.study, *self.results])

    @shows_errors
    def _show_study(self, name, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            names = [s.name for s in studies.list_studies(session)]
        return (gr.update(choices=names, value=name), "", "", "", gr.update(value=None, visible=False),
                gr.Accordion(label="Left out"), "", *[None] * len(self.plots), None)

    @shows_errors
    def _analyse(self, name, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            study = studies.get_study(session, name or "")
        out_dir = Path(tempfile.mkdtemp(prefix="analysis-"))
        settings = self.ctx.settings
        judge = None
        try:
            judge = self.judge()
            result = run_analysis(self.ctx.sessions, study.name, out_dir, judge, ratescore_dir=settings.ratescore_dir)
        except (LookupError, ValueError) as error:
            raise gr.Error(str(error)) from error
        finally:
            if isinstance(judge, LLMJudge):
                judge.close()
        status = (f"**{result.study_name}**: judge `{result.judge}`, template use by `{result.similarity_measure}`, "
                  f"reference arm {result.label(result.reference_arm)} (`{result.reference_arm}`). 95% CIs: two-way "
                  f"reader x case cluster-robust (terms on values less the other dimension's main effects), "
                  f"{result.n_resamples:,} resamples per one-way bootstrap. "
                  f"Practice reads left out: {practice_reads_left_out(result.skipped)}; practice judgements left out "
                  f"of the preference rates: {practice_judgements_left_out(result.skipped)}; {len(result.skipped)} "
                  "item(s) left out in all (below).")
        failures = failed_comparisons_note(result.tables["readings"])
        if failures:
            status += f"\n\n**Warning:** {failures}"
        skipped = "\n".join(f"- {s.step}: {s.item}: {s.reason}" for s in result.skipped) or "Nothing."
        plots = [result.figures.get(name) for name in FIGURES]
        summary = result.tables.get("arm_summary")
        headline = "" if summary is None else headline_markdown(summary, result.reference_arm)
        preferences = preferences_markdown(result.tables["preference_rates"])
        return (status, headline, preferences,
                gr.update(value=None if summary is None else summary.round(3), visible=True),
                gr.Accordion(label=f"Left out ({len(result.skipped)})"), skipped, *plots,
                [str(path) for path in result.files.values() if Path(path).is_file()])
