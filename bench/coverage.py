"""Benchmark: coverage of the reader study's 95% intervals on simulated studies with a known truth.

Each repetition simulates a study of 10 readers x 75 cases x 3 arms (reader, case and residual random effects,
reader x arm variation of the time saved, clustered blinded-comparison judgements: 4 readers per pair) with
:func:`analysis.simulation.simulate_outcomes`, computes every headline estimate with the code the analysis uses
(:func:`analysis.estimates.arm_intervals`, :func:`analysis.preferences.preference_intervals`: the pipeline's
intervals) and compares with :func:`analysis.simulation.crossed_truth` (for time
saved by a stratum of fixed readers: those readers' true saving).

Prints per estimate: bias, empirical SD of the estimate over repetitions, mean CI width / (3.92 x SD) and coverage,
with the Monte Carlo standard error of the coverage, and whether the targets hold (coverage 93-97%, width ratio
<= 1.2). Discrepancy-by-interval cells are scored when they hold at least MIN_BIN_N readings
(analysis.figures.MIN_BIN_N); the number of repetitions scored is printed.

Usage: python bench/coverage.py [--reps N] [--resamples B] [--workers W] [--readers R] [--cases C]
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.estimates import arm_intervals  # noqa: E402
from analysis.figures import MIN_BIN_N  # noqa: E402
from analysis.preferences import preference_intervals  # noqa: E402
from analysis.simulation import CrossedEffects, crossed_truth, simulate_outcomes  # noqa: E402

METRICS = ["active_seconds", "peer_discrepancy", "likert_confidence", "likert_mental_demand",
           "choice_would_sign:yes"]
TARGET_COVERAGE = (0.93, 0.97)
TARGET_WIDTH = 1.2


def one_study(rep: int, n_readers: int = 10, n_cases: int = 75, n_resamples: int = 1000) -> pd.DataFrame:
    """Estimates, CIs and truth of every headline estimate of one simulated study (seed ``rep``).

    Returns:
        One row per estimate: ``name`` (str), ``estimate``, ``ci_low``, ``ci_high``, ``truth``, ``n`` (readings
        or judgements behind it; NaN where not applicable).
    """
    effects = CrossedEffects()
    sim = simulate_outcomes(n_readers, n_cases, effects, seed=rep)
    readings = sim.readings
    arms = list(effects.arm_seconds)
    estimates, cis = arm_intervals(readings, METRICS, arms, arms[0], n_resamples, seed=rep)
    truth = crossed_truth(effects)
    saving = sim.reader_saving.set_index(["arm", "reader"])["seconds"]
    minutes = readings["active_seconds"] / 60
    rows = []
    for key, row in cis.iterrows():
        kind, metric, arm, stratum = key
        n = np.nan
        if kind == "saved" and stratum != 100:
            value = saving.loc[[(arm, r) for r in estimates.strata[(arm, stratum)]]].mean() * 100 / 60
        else:
            value = truth.get(key, np.nan)
        if kind == "interval":
            lo, hi = (float(x) for x in stratum.strip("[)").split(", "))
            n = int(((readings["arm"] == arm) & (minutes >= lo) & (minutes < hi)).sum())
        rows.append({"name": " ".join(str(k) for k in key if k != 0), "estimate": row["estimate"],
                     "ci_low": row["ci_low"], "ci_high": row["ci_high"], "truth": value, "n": n, "se": row["se"]})
    pref_cis = preference_intervals(sim.judgements, n_resamples, seed=rep)
    for (unit, group), row in pref_cis.iterrows():
        rows.append({"name": f"preference {unit} {group}", "estimate": row["estimate"], "ci_low": row["ci_low"],
                     "ci_high": row["ci_high"], "truth": truth[("preference", unit, group)], "n": np.nan,
                     "se": row["se"]})
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Per estimate name: reps, truth, bias, empirical SD, width ratio, coverage, its Monte Carlo SE, targets met."""
    scored = results[results["n"].isna() | (results["n"] >= MIN_BIN_N)]
    rows = []
    for name, group in scored.groupby("name", sort=False):
        sd = (group["estimate"] - group["truth"]).std(ddof=1)
        covered = ((group["ci_low"] <= group["truth"]) & (group["truth"] <= group["ci_high"])).mean()
        width = (group["ci_high"] - group["ci_low"]).mean() / (3.92 * sd) if sd > 0 else np.nan
        reps = len(group)
        rows.append({"estimate": name, "reps": reps, "truth": group["truth"].mean(),
                     "bias": (group["estimate"] - group["truth"]).mean(), "sd": sd,
                     "se_ratio": group["se"].mean() / sd, "width_ratio": width,
                     "coverage": covered, "coverage_mc_se": np.sqrt(covered * (1 - covered) / reps),
                     "ok": TARGET_COVERAGE[0] <= covered <= TARGET_COVERAGE[1] and width <= TARGET_WIDTH})
    return pd.DataFrame(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=500, help="simulated studies (default 500: about 8 min on 2 cores)")
    parser.add_argument("--resamples", type=int, default=1000, help="resamples per one-way bootstrap")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--cases", type=int, default=75)
    args = parser.parse_args()
    start = time.perf_counter()
    jobs = [(rep, args.readers, args.cases, args.resamples) for rep in range(args.reps)]
    if args.workers > 1:
        with multiprocessing.get_context("fork").Pool(args.workers) as pool:
            parts = pool.starmap(one_study, jobs)
    else:
        parts = [one_study(*job) for job in jobs]
    summary = summarise(pd.concat(parts, ignore_index=True))
    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 500)
    print(f"{args.reps} simulated studies of {args.readers} readers x {args.cases} cases, {args.resamples} "
          f"resamples per one-way bootstrap, {time.perf_counter() - start:.0f} s on {args.workers} worker(s)")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    mc = np.sqrt(0.95 * 0.05 / args.reps)
    print(f"Monte Carlo SE of a coverage of 95% with {args.reps} reps: {mc:.3f} (+-{1.96 * mc:.3f} at 95%)")
    failed = summary[~summary["ok"]]
    print(f"targets (coverage {TARGET_COVERAGE[0]:.0%}-{TARGET_COVERAGE[1]:.0%}, width ratio <= {TARGET_WIDTH}): "
          + ("met for every estimate" if failed.empty else f"NOT met for {len(failed)}: "
             + ", ".join(failed["estimate"])))
    return 0 if failed.empty else 1


if __name__ == "__main__":
    sys.exit(main())
