"""Power and sample size of a reader study (paper section 2.4: readers x cases x arms, peer discrepancies, time saved;
Fig. 4c: blinded preference rates), by simulation.

For every design of a grid of readers x cases, ``reps`` studies are simulated with
:func:`analysis.simulation.simulate_outcomes` under stated assumptions (:mod:`analysis.plan_assumptions`: the
defaults, a YAML file, the magnitudes of a pilot study) and each is analysed with the estimators and intervals
of the analysis (:func:`primary_intervals`: :func:`analysis.estimates.arm_intervals` and
:func:`analysis.preferences.preference_intervals`, the functions the analysis reports with, at level
``1 - alpha``). A primary comparison is *shown* in a simulated study when its two-sided ``1 - alpha`` interval
excludes the null value on the side of the assumed effect (either side when the assumed effect is the null value);
its power is the share of the design's studies where it is shown, with the Monte Carlo standard error
``sqrt(p (1 - p) / reps)``. A study where the estimator gives no interval (e.g. too few cases per reader in an arm for
the discrepancy model) does not show the comparison and is counted (``no_interval``); when no study of a design gives
one, the comparison is *not estimable* there: power NaN, never a design that reaches the target. The primary
comparisons, for every arm but the reference:

- ``time saved``: minutes saved per 100 studies against the reference arm, all readers (null 0);
- ``discrepancy``: difference of urgent + emergent peer discrepancies per report from the reference arm (null 0);

and once: ``preference``: the per-case rate of the candidate (AI) report judged equivalent or better, against the
stated threshold.

The smallest design reaching the target power is the one with the fewest readings (readers x cases per reader), then
the fewest readers. Studies are simulated in parallel worker processes; seeds are derived from the plan's seed and
the design (``numpy.random.SeedSequence``), so the result does not depend on the number of workers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np
import pandas as pd
import yaml

from analysis.estimates import arm_intervals
from analysis.plan_assumptions import (
    DEFAULTS_PATH, assumed_effects, assumptions_from_pilot, crossed_effects, read_assumptions, resolve_assumptions,
    validate)
from analysis.preferences import preference_intervals
from analysis.simulation import simulate_outcomes

if TYPE_CHECKING:
    import plotly.graph_objects as go

#: Columns of :attr:`Plan.power`.
POWER_COLUMNS: dict[str, str] = {
    "readers": "readers in the design",
    "cases": "cases in the design",
    "cases_per_reader": "cases each reader reads",
    "comparison": "time saved / discrepancy / preference",
    "arm": "arm compared with the reference arm (preference: the candidate report)",
    "assumed": "assumed effect: minutes saved per 100 studies, discrepancies per report (arm minus reference), "
               "or the per-case preference rate",
    "null": "value the interval must exclude (0, or the preference threshold)",
    "power": "share of simulated studies whose two-sided (1 - alpha) interval excludes the null on the side of the "
             "assumed effect; NaN (not estimable) when no study gave an interval",
    "mc_se": "Monte Carlo standard error of the power, sqrt(p (1 - p) / reps)",
    "reps": "simulated studies of the design",
    "no_interval": "simulated studies where the estimator gave no interval (counted as not shown)",
    "mean_estimate": "mean estimate over the simulated studies",
    "mean_half_width": "mean half-width of the (1 - alpha) interval",
}


def primary_intervals(readings: pd.DataFrame, judgements: pd.DataFrame, arms: list[str], level: float,
                      n_resamples: int, seed: int) -> pd.DataFrame:
    """Estimates and two-sided ``level`` intervals of the primary comparisons of one study, by the analysis's
    estimators and intervals (:func:`analysis.estimates.arm_intervals` and
    :func:`analysis.preferences.preference_intervals`, which :func:`analysis.pipeline.analyse_frames` and
    :func:`analysis.preferences.preference_rates` call).

    Args:
        readings: per-reading frame with ``reader``, ``case``, ``arm``, ``active_seconds`` (s), ``template_use`` and
            ``peer_discrepancy``.
        judgements: submitted judgements with ``reader``, ``case``, ``case_label``, ``candidate_outcome``.
        arms: arm codes, the reference first.

    Returns:
        One row per primary comparison: ``comparison``, ``arm``, ``estimate``, ``ci_low``, ``ci_high`` (minutes per
        100 studies, discrepancies per report, or a rate).
    """
    # crossed_intervals computes log-scale bounds for every output and keeps them for the log-scale ones only (the
    # discrepancy by writing-time interval, unused here); for a difference near 0 that discarded exp overflows
    with np.errstate(over="ignore"):
        _, cis = arm_intervals(readings, ["active_seconds", "peer_discrepancy"], arms, arms[0], n_resamples, seed,
                               level, top_percents=(100,))
    rows = []
    for arm in arms[1:]:
        for comparison, key in (("time saved", ("saved", "saved_minutes_per_100", arm, 100)),
                                ("discrepancy", ("difference", "peer_discrepancy", arm, 0))):
            ci = cis.loc[key] if key in cis.index else pd.Series(np.nan, index=["estimate", "ci_low", "ci_high"])
            rows.append({"comparison": comparison, "arm": arm, "estimate": ci["estimate"], "ci_low": ci["ci_low"],
                         "ci_high": ci["ci_high"]})
    ci = preference_intervals(judgements, n_resamples, seed, level).loc[("per case", "overall")]
    rows.append({"comparison": "preference", "arm": "candidate", "estimate": ci["estimate"], "ci_low": ci["ci_low"],
                 "ci_high": ci["ci_high"]})
    return pd.DataFrame(rows)


def shown(table: pd.DataFrame) -> np.ndarray:
    """(N,) bool: whether each row's interval (``ci_low``, ``ci_high``) excludes its ``null`` on the side of its ``assumed``
    effect (either side when the assumed effect equals the null); a missing interval is not shown."""
    above, below = table["ci_low"] > table["null"], table["ci_high"] < table["null"]
    return np.where(table["assumed"] > table["null"], above,
                    np.where(table["assumed"] < table["null"], below, above | below)).astype(bool)


def study_seed(seed: int, readers: int, cases: int, cases_per_reader: int, rep: int) -> int:
    """The seed of one simulated study: ``SeedSequence(seed, spawn_key=(readers, cases, cases_per_reader, rep))``'s
    first 32-bit word (the same study for the same design whatever the grid and the workers)."""
    sequence = np.random.SeedSequence(seed, spawn_key=(readers, cases, cases_per_reader, rep))
    return int(sequence.generate_state(1)[0])


def simulate_design(assumptions: dict, readers: int, cases: int, reps: range) -> pd.DataFrame:
    """Simulate studies ``reps`` of one design (seeds :func:`study_seed` of ``simulation.seed``) and analyse each
    at level ``1 - test.alpha`` (:func:`primary_intervals`).

    Args:
        assumptions: validated assumptions.

    Returns:
        One row per study x primary comparison: ``readers``, ``cases``, ``cases_per_reader``, ``rep``, ``seed``,
        ``comparison``, ``arm``, ``estimate``, ``ci_low``, ``ci_high``, ``assumed``, ``null``, ``shown`` (False
        where the interval is missing).
    """
    effects = crossed_effects(assumptions)
    arms = [str(arm) for arm in assumptions["arms"]]
    pref = assumptions["preference"]
    per_reader = assumptions["design"]["cases_per_reader"] or cases
    level, seed = 1 - assumptions["test"]["alpha"], assumptions["simulation"]["seed"]
    assumed = assumed_effects(assumptions)
    parts = []
    for rep in reps:
        study = study_seed(seed, readers, cases, per_reader, rep)
        sim = simulate_outcomes(readers, cases, effects, pref["judges_per_pair"], pref["normal_share"], study,
                                cases_per_reader=per_reader)
        table = primary_intervals(sim.readings, sim.judgements, arms, level,
                                  assumptions["simulation"]["resamples"], study)
        parts.append(table.assign(readers=readers, cases=cases, cases_per_reader=per_reader, rep=rep, seed=study))
    studies = pd.concat(parts, ignore_index=True).merge(assumed, on=["comparison", "arm"])
    studies["shown"] = shown(studies)
    columns = ["readers", "cases", "cases_per_reader", "rep", "seed", "comparison", "arm", "estimate", "ci_low",
               "ci_high", "assumed", "null", "shown"]
    return studies[columns]


def limit_threads() -> None:
    """Worker initialiser: one BLAS thread per worker process (the workers already use every core)."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)


def available_workers() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def summarise(studies: pd.DataFrame) -> pd.DataFrame:
    """Power per design x comparison from :func:`simulate_design` rows; columns :data:`POWER_COLUMNS`."""
    keys = ["readers", "cases", "cases_per_reader", "comparison", "arm"]
    missing = studies["ci_low"].isna() | studies["ci_high"].isna()
    grouped = studies.assign(half=(studies["ci_high"] - studies["ci_low"]) / 2, no_interval=missing).groupby(
        keys, sort=False)
    table = grouped.agg(assumed=("assumed", "first"), null=("null", "first"), power=("shown", "mean"),
                        reps=("shown", "size"), no_interval=("no_interval", "sum"), mean_estimate=("estimate", "mean"),
                        mean_half_width=("half", "mean")).reset_index()
    table["power"] = table["power"].where(table["no_interval"] < table["reps"])  # not estimable: NaN
    table["mc_se"] = np.sqrt(table["power"] * (1 - table["power"]) / table["reps"])
    order = {"time saved": 0, "discrepancy": 1, "preference": 2}
    table = table.sort_values(["comparison", "arm", "readers", "cases"], key=lambda s: s.map(order)
                              if s.name == "comparison" else s, kind="stable")
    return table[list(POWER_COLUMNS)].reset_index(drop=True)


def smallest_designs(power: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per comparison, and for all of them at once (``comparison`` ``all``: every comparison whose assumed effect
    is not its null value; the power of one whose assumed effect is the null is its type I error rate and never
    reaches a target), the smallest design whose power reaches ``target``: fewest readings (readers x cases per
    reader), then fewest readers, then fewest cases.

    Returns:
        Columns ``comparison``, ``arm``, ``readers``, ``cases``, ``cases_per_reader``, ``readings``, ``power`` (the
        lowest power of the comparisons for ``all``; a design where one is not estimable never reaches the target),
        ``estimable_designs`` (designs of the grid where the power is not NaN); NaN designs where no design of the
        grid reaches ``target``.
    """
    power = power.assign(readings=power["readers"] * power["cases_per_reader"])
    design = ["readings", "readers", "cases"]
    rows = []
    groups = list(power.groupby(["comparison", "arm"], sort=False))
    effects = power[power["assumed"] != power["null"]]
    everything = effects.groupby(["readers", "cases", "cases_per_reader", "readings"], as_index=False)["power"].agg(
        lambda powers: powers.min(skipna=False))
    for (comparison, arm), group in [*groups, (("all", ""), everything)]:
        reached = group[group["power"] >= target].sort_values(design)
        best = reached.iloc[0] if len(reached) else None
        rows.append({"comparison": comparison, "arm": arm,
                     **{k: (np.nan if best is None else int(best[k])) for k in ("readers", "cases",
                                                                                "cases_per_reader", "readings")},
                     "power": np.nan if best is None else float(best["power"]),
                     "estimable_designs": int(group["power"].notna().sum())})
    return pd.DataFrame(rows)


def describe_smallest(row) -> str:
    """One :func:`smallest_designs` row (a named tuple) in words: the design, or why there is none."""
    if not pd.isna(row.readers):
        return (f"{row.readers:.0f} readers x {row.cases:.0f} cases ({row.cases_per_reader:.0f} per reader, "
                f"{row.readings:.0f} readings), power {row.power:.2f}")
    if row.estimable_designs == 0:
        return "not estimable in any design of the grid (the estimator gave no interval)"
    return "no design of the grid"


def interval_warnings(power: pd.DataFrame) -> list[str]:
    """One line per design x comparison of :attr:`Plan.power` where some simulated studies gave no interval: not
    estimable (none gave one), or how many did not."""
    lines = []
    for row in power[power["no_interval"] > 0].itertuples():
        design = f"{row.readers} readers x {row.cases} cases ({row.cases_per_reader} per reader)"
        state = "not estimable" if pd.isna(row.power) else "counted as not shown"
        lines.append(f"{row.comparison} {row.arm}, {design}: no interval in {row.no_interval} of {row.reps} simulated "
                     f"studies ({state})")
    return lines


def power_figure(power: pd.DataFrame, target: float, alpha: float) -> "go.Figure":
    """Power against cases, one line per number of readers, one panel per primary comparison, the target dashed."""
    import plotly.express as px  # not in the worker processes, which only simulate

    data = power.assign(panel=power["comparison"] + ": " + power["arm"] + " (assumed "
                        + power["assumed"].map("{:.3g}".format) + ", null " + power["null"].map("{:.3g}".format) + ")",
                        readers=power["readers"].astype(str) + " readers")
    fig = px.line(data, x="cases", y="power", color="readers", facet_col="panel", facet_col_wrap=3, markers=True,
                  error_y="mc_se", range_y=[0, 1.05],
                  title=f"Power of each primary comparison (two-sided alpha {alpha:g}; bars: Monte Carlo SE)")
    fig.add_hline(y=target, line_dash="dash", annotation_text=f"target {target:g}")
    fig.for_each_annotation(lambda a: a.update(text=a.text.replace("panel=", "")))
    return fig


ProgressCallback = Callable[[int, int], None]


@dataclass
class Plan:
    """Result of :func:`plan_study`.

    Attributes:
        assumptions: the validated assumptions the studies were simulated under (nested dict, as the YAML).
        sources: assumption (dotted key) -> where its value came from (defaults file, YAML file, pilot study).
        power: one row per design x primary comparison, columns :data:`POWER_COLUMNS`.
        smallest: :func:`smallest_designs` at the target power.
        studies: every simulated study's estimates and intervals (:func:`simulate_design`).
        figure: :func:`power_figure`.
        files: output name -> path, once written (:func:`write_plan`).
    """

    assumptions: dict
    sources: dict[str, str]
    power: pd.DataFrame
    smallest: pd.DataFrame
    studies: pd.DataFrame
    figure: "go.Figure"
    files: dict[str, Path] = field(default_factory=dict)


def plan_study(assumptions: dict, workers: int = 1, progress: Optional[ProgressCallback] = None,
               sources: Optional[dict[str, str]] = None) -> Plan:
    """Power of every primary comparison on the assumptions' grid of designs (module docstring).

    Args:
        assumptions: as :func:`analysis.plan_assumptions.resolve_assumptions` returns (validated again here).
        workers: worker processes (1: in this process).
        progress: called with (studies done, studies in all) as they finish.
        sources: provenance of the assumptions, recorded with the plan.

    Raises:
        AssumptionError: impossible assumptions (:func:`analysis.plan_assumptions.validate`). ValueError:
            ``workers`` < 1.
    """
    validate(assumptions)
    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1")
    reps = assumptions["simulation"]["reps"]
    designs = [(r, c) for r in sorted(set(assumptions["design"]["readers"]))
               for c in sorted(set(assumptions["design"]["cases"]))]
    chunk = max(1, min(25, math.ceil(reps * len(designs) / (4 * workers))))
    tasks = [(r, c, range(start, min(start + chunk, reps))) for r, c in designs for start in range(0, reps, chunk)]
    total, done, parts = reps * len(designs), 0, []
    if progress:
        progress(0, total)
    if workers == 1:
        for r, c, span in tasks:
            parts.append(simulate_design(assumptions, r, c, span))
            done += len(span)
            if progress:
                progress(done, total)
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=limit_threads) as pool:
            futures = {pool.submit(simulate_design, assumptions, r, c, span): len(span) for r, c, span in tasks}
            for future in as_completed(futures):
                parts.append(future.result())
                done += futures[future]
                if progress:
                    progress(done, total)
    studies = pd.concat(parts, ignore_index=True).sort_values(["readers", "cases", "rep"], kind="stable")
    power = summarise(studies)
    target, alpha = assumptions["test"]["target_power"], assumptions["test"]["alpha"]
    return Plan(assumptions, dict(sources or {}), power, smallest_designs(power, target),
                studies.reset_index(drop=True), power_figure(power, target, alpha))


def software_versions() -> dict[str, str]:
    """Versions of the packages whose code computes a plan."""
    return {name: version(name) for name in ("numpy", "scipy", "pandas", "plotly", "PyYAML")}


def write_plan(plan: Plan, out_dir: Path) -> dict[str, Path]:
    """Write ``power.csv``, ``smallest.csv``, ``studies.csv`` (every simulated study), ``plan.json`` (assumptions,
    their sources, seed, alpha, target, smallest designs, software versions), ``assumptions.yaml`` (reusable as
    ``--assumptions``) and ``power_curve.html`` (self-contained plotly) to ``out_dir``; sets and returns
    ``plan.files``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {name: out_dir / name for name in ("power.csv", "smallest.csv", "studies.csv", "plan.json",
                                                "assumptions.yaml", "power_curve.html")}
    plan.power.to_csv(files["power.csv"], index=False)
    plan.smallest.to_csv(files["smallest.csv"], index=False)
    plan.studies.to_csv(files["studies.csv"], index=False)
    files["assumptions.yaml"].write_text(yaml.safe_dump(plan.assumptions, sort_keys=False))
    record = {
        "assumptions": plan.assumptions, "sources": plan.sources, "seed": plan.assumptions["simulation"]["seed"],
        "alpha": plan.assumptions["test"]["alpha"], "target_power": plan.assumptions["test"]["target_power"],
        "method": __doc__.split("\n\n")[1].replace("\n", " "),
        "columns": POWER_COLUMNS, "smallest": json.loads(plan.smallest.to_json(orient="records")),
        "no_interval": interval_warnings(plan.power),
        "software": software_versions(),
    }
    files["plan.json"].write_text(json.dumps(record, indent=2))
    plan.figure.write_html(files["power_curve.html"], include_plotlyjs=True)
    plan.files = files
    return files


def _ints(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m analysis plan``; options given override the assumptions."""
    parser = argparse.ArgumentParser(prog="python -m analysis plan", description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--assumptions", type=Path, help=f"YAML of stated assumptions (defaults: {DEFAULTS_PATH})")
    parser.add_argument("--database", help="SQLAlchemy URL of a database holding a pilot study (with --study)")
    parser.add_argument("--study", help="pilot ReaderStudy name: effect sizes and variance components estimated "
                                        "from it (a YAML given too overrides them)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--readers", type=_ints, help="design.readers, e.g. 4,6,8,10")
    parser.add_argument("--cases", type=_ints, help="design.cases, e.g. 30,45,60,75")
    parser.add_argument("--cases-per-reader", type=int, help="design.cases_per_reader (default: every case)")
    parser.add_argument("--alpha", type=float, help="test.alpha (two-sided)")
    parser.add_argument("--target-power", type=float, help="test.target_power")
    parser.add_argument("--threshold", type=float, help="preference.threshold")
    parser.add_argument("--reps", type=int, help="simulation.reps: simulated studies per design")
    parser.add_argument("--resamples", type=int, help="simulation.resamples per one-way bootstrap")
    parser.add_argument("--seed", type=int, help="simulation.seed")
    parser.add_argument("--workers", type=int, default=available_workers(),
                        help="worker processes (default: the cores available, %(default)s)")
    return parser


def _command_line_layer(args: argparse.Namespace) -> dict:
    layer: dict = {}
    for option, (group, key) in {"readers": ("design", "readers"), "cases": ("design", "cases"),
                                 "cases_per_reader": ("design", "cases_per_reader"), "alpha": ("test", "alpha"),
                                 "target_power": ("test", "target_power"), "threshold": ("preference", "threshold"),
                                 "reps": ("simulation", "reps"), "resamples": ("simulation", "resamples"),
                                 "seed": ("simulation", "seed")}.items():
        if getattr(args, option) is not None:
            layer.setdefault(group, {})[key] = getattr(args, option)
    return layer


def main(argv: list[str]) -> int:
    """Run ``python -m analysis plan`` on ``argv`` (the arguments after ``plan``); prints the power table, the
    smallest designs and the files. Exit status: 0 done; 1 refused (impossible assumptions, an unreadable YAML, a
    missing or unusable pilot study; the message names the problem); 2 usage error."""
    from tqdm import tqdm

    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.database is None) != (args.study is None):
        parser.error("a pilot study needs both --database and --study")
    if args.workers < 1:
        parser.error(f"--workers {args.workers}: must be >= 1")
    layers = []
    try:
        if args.study is not None:
            from studyapp.db.session import open_database
            layers.append((f"pilot study {args.study!r}", assumptions_from_pilot(open_database(args.database),
                                                                                  args.study)))
        if args.assumptions is not None:
            layers.append((str(args.assumptions), read_assumptions(args.assumptions)))
        if cli := _command_line_layer(args):
            layers.append(("command line", cli))
        assumptions, sources = resolve_assumptions(layers)
    except (LookupError, ValueError, OSError, yaml.YAMLError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    designs = len(set(assumptions["design"]["readers"])) * len(set(assumptions["design"]["cases"]))
    total = designs * assumptions["simulation"]["reps"]
    print(f"simulating {total} studies ({designs} designs x {assumptions['simulation']['reps']}) on "
          f"{args.workers} worker(s)", file=sys.stderr)
    with tqdm(total=total, unit="study", file=sys.stderr) as bar:
        plan = plan_study(assumptions, args.workers, lambda done, _: bar.update(done - bar.n), sources)
    files = write_plan(plan, args.out)
    for line in interval_warnings(plan.power):
        print(f"warning: {line}", file=sys.stderr)
    pd.set_option("display.width", 200)
    print(plan.power.drop(columns=["mean_half_width"]).to_string(
        index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\nsmallest design with power >= {assumptions['test']['target_power']:g} "
          f"(alpha {assumptions['test']['alpha']:g}, seed {assumptions['simulation']['seed']}):")
    for row in plan.smallest.itertuples():
        name = f"{row.comparison} {row.arm}".strip()
        print(f"  {name}: {describe_smallest(row)}")
    print(f"\npower curve: {files['power_curve.html']}\ntables: {files['power.csv']}, assumptions and seed: "
          f"{files['plan.json']}")
    return 0
