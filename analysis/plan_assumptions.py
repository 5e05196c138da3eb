"""Assumptions of a planned reader study (:mod:`analysis.plan`): the defaults (:data:`DEFAULTS_PATH`, the paper's
magnitudes where it reports them, stated assumptions elsewhere), a pilot study's estimates
(:func:`assumptions_from_pilot`), a YAML and command-line values, layered (:func:`resolve_assumptions`) and checked
(:func:`validate`: impossible values raise :class:`AssumptionError` naming the field); and what they mean for the
simulator (:func:`crossed_effects`) and for the primary comparisons (:func:`assumed_effects`).

The assumptions are a nested dict with the keys of the defaults file (its comments say what each means and where
its value comes from).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from analysis.simulation import CrossedEffects

#: The default assumptions, each marked as a magnitude the paper reports or as an assumption.
DEFAULTS_PATH = Path(__file__).with_name("plan_defaults.yaml")


class AssumptionError(ValueError):
    """An impossible, unknown or missing assumption of a plan; the message names the field (e.g. ``time.variance.
    reader``) and the value."""


#: Mappings whose keys are arms: a layer replaces them whole (its arms may differ from the defaults').
_ARM_MAPS = ("saved_minutes_per_100", "per_report")


def _deep_merge(base: dict, update: dict, path: str = "") -> dict:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        where = f"{path}{key}"
        if key not in base:
            raise AssumptionError(f"{where}: unknown assumption (known: {', '.join(map(str, base))})")
        if isinstance(base[key], dict) and key not in _ARM_MAPS:
            if not isinstance(value, dict):
                raise AssumptionError(f"{where}: expected a mapping, got {value!r}")
            merged[key] = _deep_merge(base[key], value, f"{where}.")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _leaves(tree: dict, path: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        if isinstance(value, dict) and key not in _ARM_MAPS:
            keys += _leaves(value, f"{path}{key}.")
        else:
            keys.append(f"{path}{key}")
    return keys


def default_assumptions() -> dict:
    """The default assumptions (:data:`DEFAULTS_PATH`) as a nested dict."""
    return yaml.safe_load(DEFAULTS_PATH.read_text())


def read_assumptions(path: Path | str) -> dict:
    """The (partial) assumptions of a YAML file.

    Raises:
        AssumptionError: the file is not UTF-8, not YAML (one line: ``assumptions file PATH: problem at line L,
            column C``, the parser's problem and its place) or does not hold a mapping. OSError: it cannot be read.
    """
    try:
        stated = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise AssumptionError(f"assumptions file {path}: not UTF-8 text ({error})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise AssumptionError(f"assumptions file {path}: {problem}{where}") from None
    if not isinstance(stated, dict):
        raise AssumptionError(f"{path}: expected a mapping of assumptions, got {type(stated).__name__}")
    return stated


def resolve_assumptions(layers: list[tuple[str, dict]] = ()) -> tuple[dict, dict[str, str]]:
    """The defaults updated by each ``(source, partial assumptions)`` layer in turn (e.g. a pilot study, a YAML
    file, the command line), validated.

    Returns:
        (assumptions, sources): the nested assumptions, and for every assumption (dotted key, e.g.
        ``time.variance.reader``) the source of its value (``defaults`` for :data:`DEFAULTS_PATH`).

    Raises:
        AssumptionError: an unknown key, or impossible values (:func:`validate`).
    """
    assumptions = default_assumptions()
    sources = dict.fromkeys(_leaves(assumptions), f"defaults ({DEFAULTS_PATH.name}: paper magnitudes or "
                                                  "assumptions, as its comments say)")
    for source, layer in layers:
        assumptions = _deep_merge(assumptions, layer)
        sources.update(dict.fromkeys(_leaves(layer), source))
    validate(assumptions)
    return assumptions, sources


def load_assumptions(path: Path | str | None = None, overrides: Optional[dict] = None) -> dict:
    """The defaults, updated by the YAML file ``path`` and then by ``overrides`` (same nesting), validated
    (:func:`resolve_assumptions` without the sources).

    Raises:
        AssumptionError: an unknown key, or an impossible value (:func:`validate`).
        OSError: the file cannot be read. yaml.YAMLError: it is not YAML.
    """
    layers = ([(str(path), read_assumptions(path))] if path is not None else []) + (
        [("overrides", overrides)] if overrides else [])
    return resolve_assumptions(layers)[0]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AssumptionError(f"{where} = {value!r}: expected a finite number")
    return float(value)


def _count(value: Any, where: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise AssumptionError(f"{where} = {value!r}: expected a whole number >= {low}")
    return value


def _arm_map(value: Any, arms: list[str], where: str) -> dict[str, float]:
    if not isinstance(value, dict) or set(value) != set(arms):
        got = sorted(value) if isinstance(value, dict) else value
        raise AssumptionError(f"{where}: needs exactly the arms {arms}, got {got}")
    return {arm: _number(value[arm], f"{where}.{arm}") for arm in arms}


def validate(assumptions: dict) -> None:
    """Check that ``assumptions`` describe a possible study and test.

    Raises:
        AssumptionError: fewer than 2 arms or repeated arms; effects not given for exactly the arms; a negative
            variance; a negative or zero time per case in an arm; saving factors that do not average 1; a
            discrepancy rate below 0; a preference rate, normal share or threshold outside (0, 1) ([0, 1] for the
            share); fewer than 2 readers or cases; more cases per reader than cases; cases per reader (every case
            when ``design.cases_per_reader`` is null) not a multiple of the arms, as the study app's design
            requires; more judges per pair than readers; alpha or the target power outside (0, 1); fewer than 2
            reps or resamples.
    """
    arms = assumptions["arms"]
    if not isinstance(arms, list) or len(arms) < 2 or len(set(map(str, arms))) != len(arms):
        raise AssumptionError(f"arms = {arms!r}: need at least 2 distinct arms, the reference first")
    arms = [str(arm) for arm in arms]
    time, disc, pref = assumptions["time"], assumptions["discrepancy"], assumptions["preference"]
    reference = _number(time["reference_seconds"], "time.reference_seconds")
    saved = _arm_map(time["saved_minutes_per_100"], arms[1:], "time.saved_minutes_per_100")
    for arm, minutes in saved.items():
        if reference - minutes * 60 / 100 <= 0:
            raise AssumptionError(f"time.saved_minutes_per_100.{arm} = {minutes:g}: saves more than the "
                                  f"{reference:g} s per case of the reference arm (time.reference_seconds)")
    for group, names in (("time.variance", time["variance"]), ("discrepancy.log_variance", disc["log_variance"]),
                         ("preference.probit_variance", pref["probit_variance"])):
        for name, value in names.items():
            if _number(value, f"{group}.{name}") < 0:
                raise AssumptionError(f"{group}.{name} = {value!r}: a variance cannot be negative")
    high = _number(time["saving_factor"]["high"], "time.saving_factor.high")
    low = _number(time["saving_factor"]["low"], "time.saving_factor.low")
    if abs((high + low) / 2 - 1) > 1e-9:
        raise AssumptionError(f"time.saving_factor = {high:g}, {low:g}: must average 1 (half the readers each)")
    for arm, rate in _arm_map(disc["per_report"], arms, "discrepancy.per_report").items():
        if rate < 0:
            raise AssumptionError(f"discrepancy.per_report.{arm} = {rate:g}: a rate cannot be negative")
    rates = pref["equivalent_or_better"]
    for group in ("normal", "abnormal"):
        if not 0 < _number(rates.get(group), f"preference.equivalent_or_better.{group}") < 1:
            raise AssumptionError(f"preference.equivalent_or_better.{group} = {rates[group]!r}: must be in (0, 1)")
    if not 0 <= _number(pref["normal_share"], "preference.normal_share") <= 1:
        raise AssumptionError(f"preference.normal_share = {pref['normal_share']!r}: must be in [0, 1]")
    if not 0 < _number(pref["threshold"], "preference.threshold") < 1:
        raise AssumptionError(f"preference.threshold = {pref['threshold']!r}: must be in (0, 1)")
    design = assumptions["design"]
    for key in ("readers", "cases"):
        if not isinstance(design[key], list) or not design[key]:
            raise AssumptionError(f"design.{key} = {design[key]!r}: expected a list of whole numbers >= 2")
        for value in design[key]:
            _count(value, f"design.{key}", 2)
    # the study app's balanced design (studyapp.services.design.balanced_design) needs each reader's cases (every
    # case when design.cases_per_reader is null) to be a multiple of the arms: equal counts per arm
    per_reader = design["cases_per_reader"]
    if per_reader is not None:
        _count(per_reader, "design.cases_per_reader", 1)
        if per_reader > min(design["cases"]):
            raise AssumptionError(f"design.cases_per_reader = {per_reader}: more cases per reader than the "
                                  f"{min(design['cases'])} cases of a design (design.cases)")
        if per_reader % len(arms):
            raise AssumptionError(f"design.cases_per_reader = {per_reader}: not a multiple of the {len(arms)} arms, "
                                  "so readers cannot get equal counts per arm (the study app refuses it)")
    else:
        uneven = [cases for cases in design["cases"] if cases % len(arms)]
        if uneven:
            raise AssumptionError(f"design.cases = {uneven}: every reader reads every case (design.cases_per_reader "
                                  f"null), and a count that is not a multiple of the {len(arms)} arms cannot give "
                                  "equal counts per arm (the study app refuses it)")
    judges = _count(pref["judges_per_pair"], "preference.judges_per_pair", 1)
    if judges > min(design["readers"]):
        raise AssumptionError(f"preference.judges_per_pair = {judges}: more judges per pair than the "
                              f"{min(design['readers'])} readers of a design (design.readers)")
    for key in ("alpha", "target_power"):
        if not 0 < _number(assumptions["test"][key], f"test.{key}") < 1:
            raise AssumptionError(f"test.{key} = {assumptions['test'][key]!r}: must be in (0, 1)")
    _count(assumptions["simulation"]["reps"], "simulation.reps", 2)
    _count(assumptions["simulation"]["resamples"], "simulation.resamples", 2)
    _count(assumptions["simulation"]["seed"], "simulation.seed", 0)


def crossed_effects(assumptions: dict) -> CrossedEffects:
    """The simulator's effects (:class:`analysis.simulation.CrossedEffects`) for validated ``assumptions``.

    Variances become standard deviations; minutes saved per 100 studies become seconds per case
    (``reference - minutes * 60 / 100``); a preference rate ``p`` becomes the probit mean ``Phi^-1(p) * sqrt(1 +
    reader + pair variance)``, whose rate over readers and pairs is ``p``. Likert and yes/no answers are not planned
    for (no Likert questions; yes/no probit 0 in every arm).
    """
    arms = [str(arm) for arm in assumptions["arms"]]
    time, disc, pref = assumptions["time"], assumptions["discrepancy"], assumptions["preference"]
    reference = float(time["reference_seconds"])
    seconds = {arms[0]: reference} | {arm: reference - time["saved_minutes_per_100"][arm] * 60 / 100
                                      for arm in arms[1:]}
    variance = time["variance"]
    probit = pref["probit_variance"]
    scale = math.sqrt(1 + probit["reader"] + probit["pair"])
    return CrossedEffects(
        arm_seconds=seconds, reader_sd=math.sqrt(variance["reader"]), case_sd=math.sqrt(variance["case"]),
        residual_sd=math.sqrt(variance["residual"]), high_factor=float(time["saving_factor"]["high"]),
        low_factor=float(time["saving_factor"]["low"]), saving_sd=math.sqrt(variance["reader_x_arm"]),
        discrepancy={arm: float(disc["per_report"][arm]) for arm in arms},
        discrepancy_reader_sd=math.sqrt(disc["log_variance"]["reader"]),
        discrepancy_case_sd=math.sqrt(disc["log_variance"]["case"]),
        likert={}, choice_probit={arm: 0.0 for arm in arms},
        preference_probit={group: float(stats.norm.ppf(rate)) * scale
                           for group, rate in pref["equivalent_or_better"].items()},
        preference_sds=(math.sqrt(probit["reader"]), math.sqrt(probit["pair"])),
    )


def assumed_effects(assumptions: dict) -> pd.DataFrame:
    """The primary comparisons with their assumed effects and null values: columns ``comparison``, ``arm``,
    ``assumed``, ``null`` (units as in :data:`analysis.plan.POWER_COLUMNS`)."""
    arms = [str(arm) for arm in assumptions["arms"]]
    disc, pref = assumptions["discrepancy"]["per_report"], assumptions["preference"]
    saved = assumptions["time"]["saved_minutes_per_100"]
    rows = [{"comparison": "time saved", "arm": arm, "assumed": float(saved[arm]), "null": 0.0} for arm in arms[1:]]
    rows += [{"comparison": "discrepancy", "arm": arm, "assumed": float(disc[arm] - disc[arms[0]]), "null": 0.0}
             for arm in arms[1:]]
    share = pref["normal_share"]
    rate = share * pref["equivalent_or_better"]["normal"] + (1 - share) * pref["equivalent_or_better"]["abnormal"]
    rows.append({"comparison": "preference", "arm": "candidate", "assumed": float(rate),
                 "null": float(pref["threshold"])})
    return pd.DataFrame(rows)


def _clip_rate(rate: float) -> float:
    return float(min(max(rate, 0.01), 0.99))


def assumptions_from_pilot(session_factory, study: str | int, judge=None) -> dict:
    """Partial assumptions estimated from a pilot study in the database, by the analysis itself
    (:func:`analysis.pipeline.run_analysis` with the offline judge unless ``judge`` is given; 50 resamples, as only
    estimates are used):

    - arms (the reference first), ``time.reference_seconds`` and ``time.saved_minutes_per_100``: the per-arm means
      of active time (``arm_summary``);
    - ``time.variance`` reader, case and residual: the mixed model of active time (``mixed_models``);
      ``reader_x_arm``: the variance over readers of each reader's own saving (``reader_arm``) less its sampling
      variance (residual x (1/n + 1/n_reference) per reader), at least 0, averaged over arms; the saving factors
      become 1 (the pilot's spread of savings is all in ``reader_x_arm``);
    - ``discrepancy.per_report``: per-arm mean peer discrepancy; ``discrepancy.log_variance``: the mixed model's
      reader and case variances of peer discrepancy on the log scale, ``log(1 + variance / mean^2)``;
    - ``preference.equivalent_or_better`` (normal, abnormal; clipped to [0.01, 0.99]) and ``normal_share``: the
      per-case rates of the study's first comparison set with submitted judgements (``preference_rates``), when
      there is one.

    What the pilot does not give keeps its default (or the YAML's); the plan's sources say which is which.

    Raises:
        LookupError: no such study. ValueError: no usable reading.
        AssumptionError: the pilot has no active time or peer discrepancy in an arm.
    """
    from analysis.pipeline import run_analysis

    result = run_analysis(session_factory, study, None, judge, n_resamples=50)
    reference = result.reference_arm
    arms = [reference] + [arm for arm in result.arms if arm != reference]
    summary = result.tables["arm_summary"].set_index(["metric", "arm"])
    values = {}
    for metric in ("active_seconds", "peer_discrepancy"):
        for arm in arms:
            value = summary["estimate"].get((metric, arm), np.nan)
            if pd.isna(value):
                raise AssumptionError(f"pilot study {result.study_name!r} has no {metric} in arm {arm!r}: state "
                                      "it in an assumptions YAML instead")
            values[(metric, arm)] = float(value)
    reference_seconds = values[("active_seconds", reference)]
    models = result.tables["mixed_models"].set_index("outcome")
    layer: dict = {"arms": arms, "time": {"reference_seconds": reference_seconds, "saved_minutes_per_100": {
        arm: (reference_seconds - values[("active_seconds", arm)]) * 100 / 60 for arm in arms[1:]}},
        "discrepancy": {"per_report": {arm: values[("peer_discrepancy", arm)] for arm in arms}}}
    if "active_seconds" in models.index:
        fit = models.loc[["active_seconds"]].iloc[0]
        residual = float(fit["residual_var"])
        layer["time"]["variance"] = {"reader": max(float(fit["reader_var"]), 0.0),
                                     "case": max(float(fit["case_var"]), 0.0), "residual": residual}
        reader_arm = result.tables["reader_arm"]
        reference_n = reader_arm[reader_arm["arm"] == reference].set_index("reader")["n_cases"]
        spreads = []
        for arm in arms[1:]:
            own = reader_arm[(reader_arm["arm"] == arm)].dropna(subset=["saved_minutes_per_100"])
            if len(own) >= 2:
                seconds = own["saved_minutes_per_100"] * 60 / 100
                noise = residual * (1 / own["n_cases"] + 1 / own["reader"].map(reference_n)).mean()
                spreads.append(max(float(seconds.var(ddof=1)) - noise, 0.0))
        if spreads:
            layer["time"]["variance"]["reader_x_arm"] = float(np.mean(spreads))
            layer["time"]["saving_factor"] = {"high": 1.0, "low": 1.0}
    if "peer_discrepancy" in models.index:
        fit = models.loc[["peer_discrepancy"]].iloc[0]
        mean = float(result.tables["readings"]["peer_discrepancy"].mean())
        if mean > 0:
            layer["discrepancy"]["log_variance"] = {
                name: float(np.log1p(max(float(fit[f"{name}_var"]), 0.0) / mean ** 2)) for name in ("reader", "case")}
    rates = result.tables["preference_rates"]
    if len(rates):
        first = rates[rates["set"] == rates["set"].iloc[0]].set_index("group")
        groups = {g: first.loc[g] for g in ("normal", "abnormal") if g in first.index and first.loc[g, "n_cases"] > 0}
        if len(groups) == 2:
            layer["preference"] = {
                "equivalent_or_better": {g: _clip_rate(float(row["equivalent_or_better"]))
                                         for g, row in groups.items()},
                "normal_share": float(groups["normal"]["n_cases"] / (groups["normal"]["n_cases"]
                                                                     + groups["abnormal"]["n_cases"]))}
    return layer
