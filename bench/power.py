"""Benchmark: the power ``python -m analysis plan`` reports equals the rejection rate of the full analysis on
independent simulated studies, within Monte Carlo error.

For each design (readers x cases, every reader reads every case unless ``--cases-per-reader``), under the default
assumptions (analysis/plan_defaults.yaml) at alpha 0.05:

- *plan*: :func:`analysis.plan.plan_study` (parallel workers, seeds from ``--seed``);
- *analysis*: as many studies again, simulated with seeds from ``--seed + 1`` (independent of the plan's), each
  analysed as the analysis reports it: every per-reading metric of the pipeline and its strata of readers
  (:func:`analysis.estimates.arm_intervals` as :func:`analysis.pipeline.analyse_frames` calls it: 95% intervals),
  and :func:`analysis.preferences.preference_rates` (the table the report shows) for the
  preference rate; a comparison counts as shown when its 95% interval excludes the null on the side of the assumed
  effect (:func:`analysis.plan.shown`).

Prints, per design x comparison, both rates, each with its Monte Carlo SE, and ``z = |plan - analysis| /
sqrt(se_plan^2 + se_analysis^2)``; they agree when ``z <= 3`` (with 15 comparisons, one z above 3 by chance has
probability about 4%). Exit status 0 when all agree, 1 otherwise. Comparisons whose assumed effect is the null (the
default GPT-4o draft's discrepancy difference) report the type I error rate of the intervals instead of power.

Usage: python bench/power.py [--designs 6x30,10x75] [--reps N] [--resamples B] [--workers W] [--seed S]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.estimates import arm_intervals  # noqa: E402
from analysis.plan import limit_threads, available_workers, plan_study, shown, study_seed  # noqa: E402
from analysis.plan_assumptions import assumed_effects, crossed_effects, load_assumptions  # noqa: E402
from analysis.preferences import preference_rates  # noqa: E402
from analysis.simulation import simulate_outcomes  # noqa: E402

#: the per-reading metrics the pipeline analyses when a study has one yes/no question and no Likert question
PIPELINE_METRICS = ["active_seconds", "template_use", "peer_discrepancy", "choice_would_sign:yes",
                    "choice_would_sign:no"]
MAX_Z = 3.0


def analysis_rejections(assumptions: dict, readers: int, cases: int, reps: range, seed: int) -> pd.DataFrame:
    """Whether the analysis, as it reports a study, shows each primary comparison on studies ``reps`` of a design
    simulated with seeds from ``seed``: rows ``readers``, ``cases``, ``rep``, ``comparison``, ``arm``, ``shown``."""
    effects = crossed_effects(assumptions)
    arms = [str(a) for a in assumptions["arms"]]
    pref = assumptions["preference"]
    per_reader = assumptions["design"]["cases_per_reader"] or cases
    resamples = assumptions["simulation"]["resamples"]
    assumed = assumed_effects(assumptions).set_index(["comparison", "arm"])
    rows = []
    for rep in reps:
        study = study_seed(seed, readers, cases, per_reader, rep)
        sim = simulate_outcomes(readers, cases, effects, pref["judges_per_pair"], pref["normal_share"], study,
                                cases_per_reader=per_reader)
        _, cis = arm_intervals(sim.readings, PIPELINE_METRICS, arms, arms[0], resamples, study)
        found = {}
        for arm in arms[1:]:
            found[("time saved", arm)] = cis.loc[("saved", "saved_minutes_per_100", arm, 100)]
            found[("discrepancy", arm)] = cis.loc[("difference", "peer_discrepancy", arm, 0)]
        overall = preference_rates(sim.judgements, resamples, study).set_index("group").loc["overall"]
        found[("preference", "candidate")] = {"ci_low": overall["ci_low"], "ci_high": overall["ci_high"]}
        for (comparison, arm), ci in found.items():
            rows.append({"readers": readers, "cases": cases, "rep": rep, "comparison": comparison, "arm": arm,
                         "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
                         **assumed.loc[(comparison, arm), ["assumed", "null"]].to_dict()})
    table = pd.DataFrame(rows)
    return table.assign(shown=shown(table))[["readers", "cases", "rep", "comparison", "arm", "shown"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", default="6x30,10x75", help="readers x cases, comma separated")
    parser.add_argument("--cases-per-reader", type=int)
    parser.add_argument("--reps", type=int, default=400, help="studies per design on each side")
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--workers", type=int, default=available_workers())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    designs = [tuple(int(x) for x in d.split("x")) for d in args.designs.split(",")]
    start = time.perf_counter()
    parts = []
    for readers, cases in designs:
        assumptions = load_assumptions(overrides={
            "design": {"readers": [readers], "cases": [cases], "cases_per_reader": args.cases_per_reader},
            "test": {"alpha": 0.05}, "simulation": {"reps": args.reps, "resamples": args.resamples,
                                                    "seed": args.seed}})
        planned = plan_study(assumptions, args.workers).power
        chunks = [range(i, min(i + 25, args.reps)) for i in range(0, args.reps, 25)]
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"), initializer=limit_threads) as pool:
            runs = pool.map(analysis_rejections, *zip(*[(assumptions, readers, cases, c, args.seed + 1)
                                                        for c in chunks]))
            independent = pd.concat(list(runs), ignore_index=True)
        rates = independent.groupby(["comparison", "arm"], sort=False)["shown"].agg(["mean", "size"])
        for row in planned.itertuples():
            p, n = rates.loc[(row.comparison, row.arm), "mean"], rates.loc[(row.comparison, row.arm), "size"]
            se = np.sqrt(p * (1 - p) / n)
            combined = np.hypot(row.mc_se, se)
            z = abs(row.power - p) / combined if combined > 0 else (0.0 if row.power == p else np.inf)
            parts.append({"design": f"{readers}x{cases}", "comparison": row.comparison, "arm": row.arm,
                          "assumed": row.assumed, "null": row.null, "plan_power": row.power, "plan_se": row.mc_se,
                          "analysis_rate": p, "analysis_se": se, "z": z, "agree": z <= MAX_Z})
    table = pd.DataFrame(parts)
    pd.set_option("display.width", 200)
    print(f"{args.reps} studies per design on each side, {args.resamples} resamples per one-way bootstrap, alpha 0.05, "
          f"{time.perf_counter() - start:.0f} s on {args.workers} worker(s)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    disagree = table[~table["agree"]]
    print(f"plan power and the analysis's rejection rate agree within Monte Carlo error (z <= {MAX_Z:g}): "
          + ("all" if disagree.empty else f"NOT for {len(disagree)}"))
    return 0 if disagree.empty else 1


if __name__ == "__main__":
    sys.exit(main())
