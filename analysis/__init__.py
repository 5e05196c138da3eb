"""Reader-study analysis (paper section 2.4, 4.3 "User study", 4.6): efficiency, experience and clinical
consistency per arm, with cluster-bootstrap CIs, mixed models, plotly figures, CSV tables and an HTML report.

Modules: ``loaders`` (study database -> tidy frames), ``reports`` (findings/impression sections),
``findings`` + ``judges`` (FineRadScore-style discrepancy judges, offline and LLM), ``consistency`` (peer
leave-one-out discrepancies), ``similarity`` (template use), ``efficiency``, ``experience``, ``estimates`` +
``statistics`` (bootstrap, MixedLM), ``figures``, ``report`` (files), ``pipeline`` (:func:`run_analysis`),
``simulation`` (studies with known effects). Command line: ``python -m analysis``.

Entry point for the app's coordinator tab::

    from analysis import run_analysis
    result = run_analysis(session_factory, "study name", out_dir)  # -> AnalysisResult
"""

from analysis.pipeline import AnalysisResult, analyse_frames, run_analysis

__all__ = ["AnalysisResult", "analyse_frames", "run_analysis"]
