"""Command line: ``python -m analysis --database URL --study NAME --out DIR [--judge ...] [--ratescore-dir DIR]``,
or ``python -m analysis judge --pairs PAIRS.jsonl --out OUT.jsonl [--judge offline|llm ...]`` to judge report
pairs outside a study (:mod:`analysis.judging`), or ``python -m analysis plan --out DIR [--assumptions YAML |
--database URL --study PILOT] ...`` for the power of a planned study (:mod:`analysis.plan`).

Runs the whole reader-study analysis (:func:`analysis.pipeline.run_analysis`) and prints where the report is
and how many items were skipped. Exit status as for the app's commands (README, "Exit status"): 0 done, 1 refused
(a missing study, a study without usable readings, a --ratescore-dir that cannot be loaded; the message says
which), 2 a usage error (a bad or missing argument).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis import judging
from analysis.consistency import failed_comparisons_note
from analysis.judges import LLMJudge
from analysis.pipeline import run_analysis
from analysis.intervals import N_RESAMPLES
from analysis.skipped import practice_judgements_left_out, practice_reads_left_out
from studyapp.db.session import open_database


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m analysis``."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis", description=__doc__.splitlines()[0],
        epilog="other commands: 'python -m analysis judge --help' (judge pairs of reports), "
               "'python -m analysis plan --help' (power and sample size of a study)")
    parser.add_argument("--database", required=True, help="SQLAlchemy URL of the study database")
    parser.add_argument("--study", required=True, help="ReaderStudy name (or id with --study-id)")
    parser.add_argument("--study-id", action="store_true", help="--study is a numeric ReaderStudy.id")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    judging.add_judge_options(parser, "OUT/llm-cache")
    parser.add_argument("--resamples", type=int, default=N_RESAMPLES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ratescore-dir", type=Path,
                        help="local folder with RaTEScore's ner/ and encoder/ models (else ROUGE-L F1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the analysis (or the ``judge`` or ``plan`` command), print a summary; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["judge"]:
        return judging.main(argv[1:])
    if argv[:1] == ["plan"]:
        from analysis import plan  # plotting and simulation only when planning
        return plan.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    judge = judging.judge_from_options(parser, args, args.llm_cache or args.out / "llm-cache")
    study = int(args.study) if args.study_id else args.study
    try:
        result = run_analysis(open_database(args.database), study, args.out, judge, args.resamples, args.seed,
                              args.ratescore_dir)
    except (LookupError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if isinstance(judge, LLMJudge):
            judge.close()
    print(f"report: {result.files['report.html']}")
    print(f"tables: {len(result.tables)}, figures: {len(result.figures)}, skipped items: {len(result.skipped)}"
          f" (practice reads left out: {practice_reads_left_out(result.skipped)}, practice judgements left out: "
          f"{practice_judgements_left_out(result.skipped)}; see {result.files['skipped.csv']})")
    if failures := failed_comparisons_note(result.tables["readings"]):
        print(f"warning: {failures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
