"""The comparison tabs (paper section 2.3, Fig. 4). :class:`CompareTab`, the reader's blinded screen: images,
clinical context, Report A and Report B side by side, the three-way choice, and scored comments on a selected
passage, a whole report or the pair. :class:`CompareCoordinatorTab`: sets, assignment and unblinded results.

Blinding: every value sent to the browser comes from :mod:`studyapp.services.comparisons`' blinded views
(:class:`~studyapp.services.judging.BlindedPair`); ``gr.State`` holds only the set and pair ids. Judgements
are saved as soon as they are chosen and can be revised until the reader submits the set.

Passage selection happens in the browser: selecting text inside Report A or B records the side and the character
offsets (``window.compareSelection``); "Add comment" sends them, and the server re-checks them against its text.
"""

import html
import json
import shutil
import tempfile
from pathlib import Path

import gradio as gr

from studyapp.db.comparisons import CHOICE_EQUIVALENT, COMMENT_SCORES, SIDE_A, SIDE_B
from studyapp.services import argilla_io, comparison_results, comparisons, judging, studies
from studyapp.services.errors import InvalidInput
from studyapp.ui.context import UIContext, follow_study_choice, shows_errors, user_action
from studyapp.ui.inert import inert
from studyapp.ui.viewer import Viewer

CHOICE_LABELS = [("Report A is better", SIDE_A), ("Report B is better", SIDE_B),
                 ("Clinically equivalent", CHOICE_EQUIVALENT)]
SCORE_CHOICES = [(f"{score} - {meaning}", score) for score, meaning in COMMENT_SCORES.items()]
#: What the paper's comment scale means (Fig. 4d), shown under the score choice.
SCORE_INFO = ("1 major error, 2 minor error, 4 significant positive, 5 minor positive. There is no 3: a comment "
              "marks either an error (1, 2) or a positive aspect (4, 5), never a neutral remark (the paper's scale).")
NO_READERS = "No readers assigned yet: press \"Assign all readers of the study\"."
TARGET_PASSAGE, TARGET_PAIR = "passage", "pair"
NO_SET = ("### No comparison set yet\n\nNo set of report pairs is assigned to you. When your study coordinator "
          "assigns one, it appears here; your reading worklist is in the Reading tab.")
TARGET_CHOICES = [("Selected passage", TARGET_PASSAGE), ("Whole Report A", SIDE_A), ("Whole Report B", SIDE_B),
                  ("Both reports / the pair", TARGET_PAIR)]

REPORTS_TEMPLATE = """
<div class="compare-reports">
  <div class="compare-report"><h4>Report A</h4><pre id="report-a" data-side="A">${value.a}</pre></div>
  <div class="compare-report"><h4>Report B</h4><pre id="report-b" data-side="B">${value.b}</pre></div>
</div>
<div id="compare-selection" class="compare-selection">Select text in Report A or B to comment on it.</div>
"""
REPORTS_CSS = """
.compare-reports { display: flex; gap: 12px; }
.compare-report { flex: 1; min-width: 0; }
.compare-report h4 { margin: 0 0 4px 0; }
.compare-report pre { white-space: pre-wrap; word-wrap: break-word; border: 1px solid #d1d5db; border-radius: 6px;
  padding: 8px; margin: 0; min-height: 6em; max-height: 38vh; overflow-y: auto; font-family: inherit;
  user-select: text; }
.compare-selection { font-size: 0.9em; color: #4b5563; margin-top: 4px; }
"""
#: Records the reader's text selection inside a report as {side, start, end, text} (offsets into the text).
#: It follows the document's selection, so a mouse drag released outside the reports still counts (clipped to the
#: report it started in); a selection elsewhere (typing the comment) keeps it, a click inside a report clears it.
REPORTS_JS = """
const show = () => {
  const box = element.querySelector('#compare-selection');
  const s = window.compareSelection;
  if (box) box.textContent = s ? `Selected in Report ${s.side} [${s.start}-${s.end}]: "${s.text}"`
                               : 'Select text in Report A or B to comment on it.';
};
const reportOf = (node) => {
  const el = node && (node.nodeType === 1 ? node : node.parentElement);
  return el ? el.closest('pre[data-side]') : null;
};
const offsetIn = (pre, container, offset) => {
  const before = document.createRange();
  before.selectNodeContents(pre);
  before.setEnd(container, offset);
  return before.toString().length;
};
const record = () => {
  const sel = window.getSelection();
  if (!sel || !sel.rangeCount) return;
  const range = sel.getRangeAt(0);
  const pre = reportOf(range.startContainer) || reportOf(range.endContainer);
  if (!pre || !element.contains(pre)) return;
  const text = pre.textContent;
  const start = pre.contains(range.startContainer) ? offsetIn(pre, range.startContainer, range.startOffset) : 0;
  const end = pre.contains(range.endContainer) ? offsetIn(pre, range.endContainer, range.endOffset) : text.length;
  window.compareSelection = end > start ? {side: pre.dataset.side, start: start, end: end,
                                           text: text.slice(start, end)} : null;
  show();
};
document.addEventListener('selectionchange', record);
watch('value', () => { window.compareSelection = null; show(); });
"""
#: Puts the recorded selection (JSON) into the last input of the "Add comment" handler.
WITH_SELECTION = ("(...args) => { args[args.length - 1] = window.compareSelection ? "
                  "JSON.stringify(window.compareSelection) : ''; return args; }")


def _reports_value(pair: judging.BlindedPair | None) -> dict:
    if pair is None:
        return {"a": "", "b": ""}
    return {"a": html.escape(pair.text_a), "b": html.escape(pair.text_b)}


def _comment_label(comment: judging.BlindedComment) -> str:
    where = "the pair" if comment.side is None else f"Report {comment.side}"
    if comment.passage:
        where += f' [{comment.start}-{comment.end}] "{comment.passage}"'
    return f"{where} · score {comment.score} ({COMMENT_SCORES[comment.score]})" + (f" · {comment.text}" if comment.text else "")


def source_choices(sources: dict[str, int]) -> list[tuple[str, str]]:
    """Drop-down choices (label, value) of report sources: ``{"reference": 1, "draft:model": 3}`` ->
    ``[("reference (1 case)", "reference"), ("draft:model (3 cases)", "draft:model")]``."""
    return [(f"{spec} ({n} case{'' if n == 1 else 's'})", spec) for spec, n in sources.items()]


class CompareTab:
    """Builds the comparison tab inside the caller's Blocks and wires its events.

    ``on_load(session, user)`` returns the page-load updates for ``on_load_outputs`` (readers only).
    """

    def __init__(self, ctx: UIContext):
        self.ctx = ctx
        self.set_id = gr.State(None)
        self.pair_id = gr.State(None)
        with gr.Row(elem_id="compare-top", equal_height=True):
            self.sets = gr.Dropdown(label="Comparison set", choices=[], elem_id="compare-set", scale=2, min_width=220)
            self.pairs = gr.Radio(label="Pairs", choices=[], elem_id="compare-pairs", scale=5, visible=False)
            self.progress = gr.Markdown(elem_id="compare-progress")
        self.empty = gr.Markdown(NO_SET, visible=False, elem_id="compare-empty")
        # one screen (no page scrolling at 1366 x 768): the image takes the height left by the header, and the
        # reports, the choice and the comments share a column that scrolls by itself (app.CSS, #compare-*)
        with gr.Row(visible=False, elem_id="compare-screen") as self.judging:
            with gr.Column(scale=5, min_width=360, elem_id="compare-viewer"):
                self.viewer = Viewer(ctx)
            with gr.Column(scale=6, min_width=420, elem_id="compare-side"):
                self.context = gr.Markdown(elem_id="compare-context")
                self.reports = gr.HTML(value=_reports_value(None), html_template=REPORTS_TEMPLATE,
                                       css_template=REPORTS_CSS, js_on_load=REPORTS_JS, elem_id="compare-reports")
                self.choice = gr.Radio(label="Which report is better?", choices=CHOICE_LABELS, elem_id="compare-choice")
                with gr.Accordion("Comment", open=True):
                    self.target = gr.Radio(label="Comment on", choices=TARGET_CHOICES, value=TARGET_PASSAGE,
                                           elem_id="comment-target")
                    self.score = gr.Radio(label="Score", choices=SCORE_CHOICES, info=SCORE_INFO,
                                          elem_id="comment-score")
                    self.comment_text = gr.Textbox(label="Comment (optional)", lines=2, elem_id="comment-text")
                    self.selection = gr.Textbox(visible=False)
                    self.add = gr.Button("Add comment", elem_id="comment-add")
                    self.comments = gr.Dropdown(label="Your comments on this pair", choices=[], elem_id="comment-list")
                    self.delete = gr.Button("Delete selected comment", size="sm", elem_id="comment-delete")
                self.status = gr.Markdown(elem_id="compare-status")
                self.submit = gr.Button("Submit all judgements of this set", variant="primary",
                                        elem_id="compare-submit")
        self._wire()

    def _wire(self):
        private = {"api_visibility": "private"}
        screen = self.on_load_outputs
        self.sets.input(self._show_set, [self.sets], screen, **private)
        self.pairs.input(self._show_pair, [self.set_id, self.pairs], screen, **private)
        self.choice.input(self._judge, [self.set_id, self.pair_id, self.choice], screen, **private)
        self.add.click(
            self._add_comment,
            [self.set_id, self.pair_id, self.target, self.score, self.comment_text, self.selection],
            screen, js=WITH_SELECTION, **private,
        )
        self.delete.click(self._delete_comment, [self.set_id, self.pair_id, self.comments], screen, **private)
        self.submit.click(self._submit_set, [self.set_id, self.pair_id], screen, **private)

    @property
    def on_load_outputs(self) -> list:
        """Components :meth:`on_load` updates."""
        return [self.sets, self.progress, self.empty, self.judging, self.pairs, self.set_id, self.pair_id, self.context, self.reports,
                self.choice, self.comments, self.comment_text, self.score, self.status, self.submit, self.add,
                *self.viewer.open_outputs]

    # -- screen --------------------------------------------------------------------------------------------------
    def on_load(self, session, user) -> dict:
        """Updates for page load: the reader's sets, resuming at the first pair not yet judged."""
        sets = judging.reader_comparison_sets(session, user)
        open_sets = [s for s in sets if not s.submitted]
        chosen = (open_sets or sets or [None])[0]
        return self._screen(session, user, chosen.set_id if chosen else None, None)

    def _screen(self, session, user, set_id: int | None, pair_id: int | None, status: str = "") -> dict:
        sets = judging.reader_comparison_sets(session, user)
        summary = next((s for s in sets if s.set_id == set_id), None)
        updates = {self.sets: gr.update(choices=[(s.name, s.set_id) for s in sets], value=set_id, visible=bool(sets)),
                   self.set_id: set_id, self.comment_text: "", self.score: None,
                   self.empty: gr.update(visible=summary is None), self.judging: gr.update(visible=summary is not None)}
        if summary is None:
            updates.update({
                self.progress: "", self.pairs: gr.update(choices=[], value=None, visible=False), self.pair_id: None,
                self.context: status or "You have no comparison set assigned.", self.reports: _reports_value(None),
                self.choice: gr.update(value=None, interactive=False), self.comments: gr.update(choices=[], value=None),
                self.status: "", self.submit: gr.update(interactive=False), self.add: gr.update(interactive=False),
            })
            updates.update(self.viewer.open(session, user, None))
            return updates
        pairs = judging.blinded_pairs(session, user, set_id)
        if pair_id is None:
            pair_id = next((p.pair_id for p in pairs if p.choice is None), pairs[0].pair_id)
        pair = next((p for p in pairs if p.pair_id == pair_id), None)
        if pair is None:
            raise InvalidInput(f"pair {pair_id} is not in your list")
        open_ = not summary.submitted
        judged = sum(p.choice is not None for p in pairs)
        updates.update({
            self.progress: f"**{judged} of {len(pairs)}** judged" + (" · submitted" if summary.submitted else ""),
            self.pairs: gr.update(
                choices=[(f"Pair {p.position + 1} · {'judged' if p.choice else 'to do'}", p.pair_id) for p in pairs],
                value=pair.pair_id, visible=True),
            self.pair_id: pair.pair_id,
            self.context: f"**Clinical context:** {inert(pair.context)}",
            self.reports: _reports_value(pair),
            self.choice: gr.update(value=pair.choice, interactive=open_),
            self.comments: gr.update(choices=[(_comment_label(c), c.comment_id) for c in pair.comments], value=None),
            self.status: status or ("This set is submitted; judgements are final." if summary.submitted else ""),
            self.submit: gr.update(interactive=open_),
            self.add: gr.update(interactive=open_),
        })
        updates.update(self.viewer.open(session, user, pair.case_id))
        return updates

    # -- handlers ------------------------------------------------------------------------------------------------
    @shows_errors
    def _show_set(self, set_id, request: gr.Request):
        with user_action(self.ctx, request) as (session, user):
            return self._screen(session, user, set_id, None)

    @shows_errors
    def _show_pair(self, set_id, pair_id, request: gr.Request):
        with user_action(self.ctx, request) as (session, user):
            return self._screen(session, user, set_id, pair_id)

    @shows_errors
    def _judge(self, set_id, pair_id, choice, request: gr.Request):
        with user_action(self.ctx, request) as (session, user):
            judging.save_judgement(session, user, pair_id, choice)
            return self._screen(session, user, set_id, pair_id, status="Judgement saved.")

    @shows_errors
    def _add_comment(self, set_id, pair_id, target, score, text, selection, request: gr.Request):
        if score is None:
            raise gr.Error("Choose a score (1, 2, 4 or 5) for the comment.")
        side = start = end = None
        if target == TARGET_PASSAGE:
            if not selection:
                raise gr.Error("Select a passage in Report A or B first, or comment on a whole report.")
            chosen = json.loads(selection)
            side, start, end = chosen["side"], int(chosen["start"]), int(chosen["end"])
        elif target in (SIDE_A, SIDE_B):
            side = target
        with user_action(self.ctx, request) as (session, user):
            comment = judging.add_comment(session, user, pair_id, int(score), text or "", side, start, end)
            if target == TARGET_PASSAGE and comment.passage != chosen["text"]:
                raise InvalidInput("the selected passage does not match the report text; select it again")
            return self._screen(session, user, set_id, pair_id, status="Comment added.")

    @shows_errors
    def _delete_comment(self, set_id, pair_id, comment_id, request: gr.Request):
        if comment_id is None:
            raise gr.Error("Choose one of your comments to delete.")
        with user_action(self.ctx, request) as (session, user):
            judging.delete_comment(session, user, int(comment_id))
            return self._screen(session, user, set_id, pair_id, status="Comment deleted.")

    @shows_errors
    def _submit_set(self, set_id, pair_id, request: gr.Request):
        with user_action(self.ctx, request) as (session, user):
            judging.submit_comparison_set(session, user, set_id)
            return self._screen(session, user, set_id, pair_id, status="Set submitted. Thank you!")


class CompareCoordinatorTab:
    """The coordinator's comparison tab: create or import a set, assign readers, read unblinded results (preference
    rates with bootstrap CIs, position bias, per-reader and per-pair tables), export the CSV and an Argilla dataset.

    Every handler requires a coordinator account on the server (``user_action(..., coordinator=True)``).
    """

    def __init__(self, ctx: UIContext):
        self.ctx = ctx
        with gr.Row():
            self.study = gr.Dropdown(label="Study", choices=[], elem_id="cmp-coord-study", scale=2)
            self.sets = gr.Dropdown(label="Comparison set", choices=[], elem_id="cmp-coord-set", scale=2)
            self.refresh = gr.Button("Refresh", scale=0)
        self.status = gr.Markdown(elem_id="cmp-coord-status")
        with gr.Accordion("New comparison set", open=False):
            self.name = gr.Textbox(label="Set name (shown to readers: no source names)")
            with gr.Row():
                # no default choices: this tab's components are part of every page's config, readers' included;
                # the study's sources are filled in for coordinators by _overview
                self.source_1 = gr.Dropdown(label="Source 1", choices=[], elem_id="cmp-coord-source-1",
                                            info="the study's sources with texts (cases with one)")
                self.source_2 = gr.Dropdown(label="Source 2", choices=[], elem_id="cmp-coord-source-2",
                                            info="the study's sources with texts (cases with one)")
                self.candidate = gr.Dropdown(label="Candidate (AI) source", choices=[], allow_custom_value=True,
                                             elem_id="cmp-coord-candidate",
                                             info="one of the two sources (for an imported file: its source name)")
            with gr.Row():
                self.seed = gr.Number(label="Seed (empty: the study's)", value=None, precision=0)
                self.readers_per_pair = gr.Number(label="Readers per pair", value=1, precision=0, minimum=1)
                self.include_practice = gr.Checkbox(label="Include practice cases", value=False,
                                                    elem_id="cmp-coord-include-practice",
                                                    info="practice cases never count: left out by default; "
                                                         "included, their judgements stay out of the rates")
            self.create = gr.Button("Create from the database")
            self.upload = gr.File(label="Or import pairs (CSV/JSONL: case_key, source_a_name, text_a, source_b_name, "
                                        "text_b)", file_types=[".csv", ".jsonl", ".ndjson"])
            self.import_ = gr.Button("Create from the file")
        self.assign = gr.Button("Assign all readers of the study", elem_id="cmp-coord-assign")
        gr.Markdown("### Preference for the candidate source: share of cases with the candidate equivalent or better\n"
                    "A case counts once (the share of its submitted judgements); the per-judgement rate is given "
                    "beside it. 95% CIs for pairs judged by several readers (two-way reader x case cluster-robust "
                    "variance); judgements of readers who have not submitted the set are left out.")
        self.preference = gr.Dataframe(interactive=False, elem_id="cmp-coord-preference", visible=False)
        self.bias = gr.Markdown(elem_id="cmp-coord-bias")
        self.per_reader = gr.Dataframe(label="Per reader", interactive=False, visible=False)
        self.per_pair = gr.Dataframe(label="Per pair", interactive=False, visible=False)
        with gr.Row():
            self.export = gr.Button("Export judgements and comments (CSV)", elem_id="cmp-coord-export")
            self.export_argilla = gr.Button("Export Argilla dataset (zip)")
        self.export_file = gr.File(label="Export", interactive=False, elem_id="cmp-coord-export-file")
        self._wire()

    def _wire(self):
        private = {"api_visibility": "private"}
        outputs = self.on_load_outputs
        self.refresh.click(self._refresh, [self.study, self.sets], outputs, **private)
        self.study.input(self._refresh, [self.study, self.sets], outputs, **private)
        self.sets.input(self._refresh, [self.study, self.sets], outputs, **private)
        options = [self.study, self.name, self.candidate, self.seed, self.readers_per_pair]
        self.create.click(self._create_set, [*options, self.source_1, self.source_2, self.include_practice], outputs,
                          **private)
        self.import_.click(self._import_set, [*options, self.upload], outputs, **private)
        self.assign.click(self._assign_readers, [self.study, self.sets, self.readers_per_pair], outputs, **private)
        self.export.click(self._export_csv, [self.sets], [self.export_file], **private)
        self.export_argilla.click(self._export_dataset, [self.sets], [self.export_file], **private)

    @property
    def on_load_outputs(self) -> list:
        """Components :meth:`on_load` and the overview refreshes update."""
        return [self.study, self.sets, self.status, self.preference, self.bias, self.per_reader, self.per_pair,
                self.source_1, self.source_2, self.candidate]

    def on_load(self, session, user) -> dict:
        """Updates for page load (only called for coordinators)."""
        return self._overview(session, user, None, None, "")

    def follow(self, tab: gr.Tab, chosen: gr.State) -> None:
        """Show the coordinator's shared study choice ``chosen`` (its newest set) whenever ``tab`` is selected."""
        follow_study_choice(chosen, tab, self.study, lambda name, request: self._refresh(name, None, request),
                            self.on_load_outputs)

    def _overview(self, session, user, study_name, set_id, message: str) -> dict:
        names = [s.name for s in studies.list_studies(session)]
        study_name = study_name if study_name in names else (names[0] if names else None)
        study = studies.get_study(session, study_name) if study_name else None
        sets = comparisons.list_comparison_sets(session, study) if study else []
        sources = source_choices(comparisons.available_sources(session, study) if study else {})
        ids = [s.id for s in sets]
        set_id = set_id if set_id in ids else (ids[-1] if ids else None)
        updates = {self.study: gr.update(choices=names, value=study_name),
                   self.sets: gr.update(choices=[(s.name, s.id) for s in sets], value=set_id),
                   self.status: message, self.bias: "",
                   **{box: gr.update(choices=sources) for box in (self.source_1, self.source_2, self.candidate)},
                   **{table: gr.update(value=None, visible=False)
                      for table in (self.preference, self.per_reader, self.per_pair)}}
        if set_id is None:
            return updates
        results = comparison_results.comparison_results(session, user, set_id)
        bias = results.position_bias
        updates.update({
            self.preference: gr.update(value=results.preference.round(3).reset_index(names="cases"), visible=True),
            self.bias: (f"Candidate: **{results.candidate_source}** · "
                        + "".join(f"Left out: {line}. " for line in results.left_out) + (
                f"Report A chosen in {bias.n_a} of {bias.n_a + bias.n_b} non-equivalent judgements (share "
                f"{bias.share_a:.2f}, binomial p = {bias.p_value:.3g}); {bias.n_equivalent} equivalent."
                if bias.n_a + bias.n_b else f"no A or B preference yet; {bias.n_equivalent} equivalent.")),
            self.per_reader: (gr.update(value=results.per_reader.round(3), visible=True, label="Per reader")
                              if not results.per_reader.empty else
                              gr.update(value=None, visible=True, label=f"Per reader: {NO_READERS}")),
            self.per_pair: gr.update(value=results.per_pair, visible=True),
        })
        return updates

    @shows_errors
    def _refresh(self, study_name, set_id, request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, user):
            return self._overview(session, user, study_name, set_id, "")

    @staticmethod
    def _seed(seed):
        return None if seed is None else int(seed)

    @shows_errors
    def _create_set(self, study_name, name, candidate, seed, per_pair, source_1, source_2, include_practice,
                    request: gr.Request):
        with user_action(self.ctx, request, coordinator=True) as (session, user):
            cset = comparisons.create_comparison_set(
                session, studies.get_study(session, study_name or ""), name or "", (source_1 or "").strip(),
                (source_2 or "").strip(), (candidate or "").strip(), seed=self._seed(seed),
                readers_per_pair=int(per_pair or 1), include_practice=bool(include_practice),
            )
            message = (f"Created **{cset.name}**: {len(cset.pairs)} pairs of `{cset.pairs[0].source_1_name}` and "
                       f"`{cset.pairs[0].source_2_name}`, candidate `{cset.candidate_source}`, "
                       f"{cset.readers_per_pair} reader(s) per pair. Next: assign readers.")
            return self._overview(session, user, study_name, cset.id, message)

    @shows_errors
    def _import_set(self, study_name, name, candidate, seed, per_pair, upload, request: gr.Request):
        if upload is None:
            raise gr.Error("choose a CSV or JSONL file first")
        with user_action(self.ctx, request, coordinator=True) as (session, user):
            cset = comparisons.import_comparison_set(
                session, studies.get_study(session, study_name or ""), name or "", upload, (candidate or "").strip(),
                seed=self._seed(seed), readers_per_pair=int(per_pair or 1),
            )
            message = (f"Imported **{cset.name}**: {len(cset.pairs)} pairs, candidate `{cset.candidate_source}`, "
                       f"{cset.readers_per_pair} reader(s) per pair. Next: assign readers.")
            return self._overview(session, user, study_name, cset.id, message)

    @shows_errors
    def _assign_readers(self, study_name, set_id, per_pair, request: gr.Request):
        if set_id is None:
            raise gr.Error("choose a comparison set first")
        with user_action(self.ctx, request, coordinator=True) as (session, user):
            cset = comparisons.get_comparison_set(session, int(set_id))
            assigned = comparisons.assign_readers(session, cset, readers_per_pair=int(per_pair or 1))
            return self._overview(session, user, study_name, cset.id,
                                  f"Assigned {len(assigned)} reader x pair judgements (seed {cset.seed}).")

    @shows_errors
    def _export_csv(self, set_id, request: gr.Request):
        if set_id is None:
            raise gr.Error("choose a comparison set first")
        with user_action(self.ctx, request, coordinator=True) as (session, user):
            path = Path(tempfile.mkdtemp(prefix="comparison-")) / f"comparison-{int(set_id)}.csv"
            comparison_results.export_comparison_csv(session, user, int(set_id), path)
            return str(path)

    @shows_errors
    def _export_dataset(self, set_id, request: gr.Request):
        if set_id is None:
            raise gr.Error("choose a comparison set first")
        with user_action(self.ctx, request, coordinator=True) as (session, user):
            folder = Path(tempfile.mkdtemp(prefix="argilla-"))
            argilla_io.export_argilla_dataset(session, user, int(set_id), folder / "dataset")
            return shutil.make_archive(str(folder / f"comparison-{int(set_id)}-argilla"), "zip", folder / "dataset")
