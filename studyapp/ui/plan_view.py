"""The Plan view of the coordinator's analysis tab: the power of each primary comparison on a grid of readers x cases
(:mod:`analysis.plan`, the same computation as ``python -m analysis plan``), from the default assumptions (the
paper's magnitudes), changes to them written as YAML, and optionally a pilot study (the study chosen in the tab).
Shows progress while simulating, then the smallest designs reaching the target power, the power curve, the table
and the files (CSV, JSON with the assumptions and seed, HTML curve)."""

import tempfile
from collections import Counter
from pathlib import Path
from typing import Callable

import gradio as gr
import yaml

from analysis.plan import available_workers, describe_smallest, interval_warnings, plan_study, write_plan
from analysis.plan_assumptions import (
    DEFAULTS_PATH, AssumptionError, assumptions_from_pilot, resolve_assumptions)
from studyapp.services import studies
from studyapp.ui.context import UIContext, shows_errors, user_action

#: simulated studies per design in the app (the command's default is 200; fewer keeps a shared server responsive)
APP_REPS = 100


def _ints(text: str, name: str) -> list[int]:
    try:
        values = [int(part) for part in (text or "").replace(" ", "").split(",") if part]
    except ValueError:
        raise gr.Error(f"{name}: expected whole numbers separated by commas, got {text!r}") from None
    if not values:
        raise gr.Error(f"{name}: give at least one number")
    return values


def smallest_markdown(plan) -> str:
    """Where the assumptions came from, then the smallest design reaching the target power per comparison (and for
    all), then the designs x comparisons where simulated studies gave no interval, as Markdown lines."""
    test = plan.assumptions["test"]
    lines = [f"**Smallest design with power >= {test['target_power']:g}** (two-sided alpha {test['alpha']:g}, "
             f"{plan.assumptions['simulation']['reps']} simulated studies per design, seed "
             f"{plan.assumptions['simulation']['seed']}):"]
    counts = Counter(plan.sources.values())
    lines.insert(0, "Assumptions from: " + "; ".join(f"{source} ({n} values)" for source, n in counts.items())
                 + ". Every value and its source: plan.json.\n")
    for row in plan.smallest.itertuples():
        name = f"{row.comparison} ({row.arm})" if row.arm else "all comparisons"
        lines.append(f"- {name}: {describe_smallest(row)}")
    lines += [f"- warning: {line}" for line in interval_warnings(plan.power)]
    return "\n".join(lines)


class PlanView:
    """Builds the Plan view inside the caller's Blocks and wires its events.

    Args:
        ctx: the app's context.
        study: the tab's study dropdown (the pilot study when "use as pilot" is ticked).
        judge: returns the discrepancy judge the analysis tab uses (for the pilot's peer discrepancies).
    """

    def __init__(self, ctx: UIContext, study: gr.Dropdown, judge: Callable):
        self.ctx, self.judge = ctx, judge
        gr.Markdown("Power of each primary comparison (time saved per 100 studies and peer discrepancy difference "
                    "against the reference arm, preference rate against its threshold) for a grid of readers x "
                    "cases, by simulating studies and analysing them as this tab does. Defaults: the magnitudes "
                    "the MedVersa paper reports, the rest stated assumptions (below).")
        with gr.Row():
            self.readers = gr.Textbox(label="Readers", value="4,6,8,10", elem_id="plan-readers")
            self.cases = gr.Textbox(label="Cases", value="30,45,60,75", elem_id="plan-cases")
            self.per_reader = gr.Number(label="Cases per reader (0: every case)", value=0, precision=0,
                                        elem_id="plan-per-reader")
        with gr.Row():
            self.alpha = gr.Number(label="Alpha (two-sided)", value=0.05, elem_id="plan-alpha")
            self.target = gr.Number(label="Target power", value=0.8, elem_id="plan-target")
            self.reps = gr.Number(label="Simulated studies per design", value=APP_REPS, precision=0,
                                  elem_id="plan-reps")
            self.seed = gr.Number(label="Seed", value=0, precision=0, elem_id="plan-seed")
        self.pilot = gr.Checkbox(label="Estimate effects and variances from the study chosen above (pilot)",
                                 elem_id="plan-pilot")
        self.changes = gr.Code(label="Changes to the assumptions (YAML, same keys as the defaults)", language="yaml",
                               value="", elem_id="plan-yaml")
        with gr.Accordion("Default assumptions (paper magnitudes and assumptions)", open=False):
            gr.Code(value=DEFAULTS_PATH.read_text(), language="yaml", interactive=False)
        self.run = gr.Button("Compute power", variant="primary", elem_id="plan-run")
        self.status = gr.Markdown(elem_id="plan-status")
        self.curve = gr.Plot(label="Power curve", elem_id="plan-curve")
        self.table = gr.Dataframe(interactive=False, visible=False, elem_id="plan-table")
        self.files = gr.File(label="Plan files", file_count="multiple", interactive=False, elem_id="plan-files")
        self.run.click(self._plan, [study, self.pilot, self.readers, self.cases, self.per_reader, self.alpha,
                                    self.target, self.reps, self.seed, self.changes],
                       [self.status, self.curve, self.table, self.files], api_visibility="private")

    @shows_errors
    def _plan(self, name, pilot, readers, cases, per_reader, alpha, target, reps, seed, changes,
              request: gr.Request, progress=gr.Progress()):
        with user_action(self.ctx, request, coordinator=True) as (session, _):
            study = studies.get_study(session, name or "") if pilot else None
        layers = []
        try:
            if study is not None:
                progress(0, desc=f"Estimating from pilot study {study.name}")
                judge = self.judge()
                try:
                    layers.append((f"pilot study {study.name!r}",
                                   assumptions_from_pilot(self.ctx.sessions, study.name, judge)))
                finally:
                    if hasattr(judge, "close"):
                        judge.close()
            stated = yaml.safe_load(changes or "") or {}
            if not isinstance(stated, dict):
                raise AssumptionError(f"the YAML changes must be a mapping of assumptions, got {stated!r}")
            if stated:
                layers.append(("YAML in the Plan view", stated))
            layers.append(("Plan view", {
                "design": {"readers": _ints(readers, "Readers"), "cases": _ints(cases, "Cases"),
                           "cases_per_reader": int(per_reader) if per_reader else None},
                "test": {"alpha": alpha, "target_power": target},
                "simulation": {"reps": int(reps or 0), "seed": int(seed or 0)}}))
            assumptions, sources = resolve_assumptions(layers)
        except (LookupError, ValueError, yaml.YAMLError) as error:
            raise gr.Error(str(error)) from error

        def report(done: int, total: int) -> None:
            progress((done, total), desc="Simulated studies", unit="studies")

        plan = plan_study(assumptions, available_workers(), report, sources)
        files = write_plan(plan, Path(tempfile.mkdtemp(prefix="plan-")))
        return (smallest_markdown(plan), plan.figure,
                gr.update(value=plan.power.drop(columns=["mean_half_width"]).round(3), visible=True),
                [str(path) for path in files.values()])
