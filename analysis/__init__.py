"""Reader-study analysis (paper section 2.4, 4.3 "User study", 4.6): efficiency, experience and clinical
consistency per arm, with intervals for the crossed reader x case design, mixed models, plotly figures, CSV tables
and an HTML report.

Modules: ``loaders`` (study database -> tidy frames), ``reports`` (findings/impression sections),
``findings`` + ``judges`` (FineRadScore-style discrepancy judges, offline and LLM), ``consistency`` (peer
leave-one-out discrepancies), ``similarity`` (template use), ``efficiency``, ``experience``, ``estimates`` +
``intervals`` (two-way cluster-robust CIs), ``preferences`` (blinded comparison rates per case), ``statistics``
(MixedLM), ``figures``, ``result`` + ``report`` (files), ``pipeline`` (:func:`run_analysis`), ``simulation``
(studies with known effects), ``plan_assumptions`` + ``plan`` (power and sample size by simulation). Command line:
``python -m analysis``.

Entry point for the app's coordinator tab::

    from analysis import run_analysis
    result = run_analysis(session_factory, "study name", out_dir)  # -> AnalysisResult

The names below are imported on first use, so that light modules (``analysis.preferences``, used by the app's
comparison results) do not pull in the pipeline and its plotting libraries.
"""

import importlib

__all__ = ["AnalysisResult", "analyse_frames", "run_analysis"]
_HOME = {"AnalysisResult": "analysis.result", "analyse_frames": "analysis.pipeline",
         "run_analysis": "analysis.pipeline"}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
