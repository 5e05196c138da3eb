"""Template use: similarity between the starting draft and the final report (paper section 2.4, Fig. 5d/e).

The paper used RaTEScore (:mod:`analysis.ratescore`), whose NER and encoder weights come from a model hub; when a
local folder with those weights is configured, :func:`template_use_measure` returns it. Otherwise the measure is
ROUGE-L F1 (longest common subsequence of words, ``rouge-score``, no stemming; the engine's evaluation
metric :func:`engine.evaluation.text.rouge_l`, one implementation for both), which needs no weights: 1.0 when the
final report keeps the draft's wording, near 0 when it was rewritten. The measure's name is recorded with every
value (``similarity_measure`` column) so results from different measures are never mixed silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Callable, Optional, Sequence

from engine.evaluation.text import rouge_l

MEASURE = f"rouge-l-f1 (rouge-score {version('rouge-score')})"


def template_use(draft: str, final: str) -> float:
    """ROUGE-L F1 between ``draft`` and ``final`` in [0, 1]; 0.0 when either has no words.

    Raises:
        TypeError: an argument is not a string.
    """
    return rouge_l(draft, final)


@dataclass(frozen=True)
class TemplateUseMeasure:
    """A template-use measure: its recorded name and its scoring function.

    Attributes:
        name: recorded in ``similarity_measure``, e.g. ``rouge-l-f1 (rouge-score 0.1.2)`` or ``RaTEScore (<folder>)``.
        score: ``score(drafts, finals)`` -> one similarity in [0, 1] per (draft, final) pair; raises TypeError on a
            non-string report and ValueError when the two sequences differ in length.
    """

    name: str
    score: Callable[[Sequence[str], Sequence[str]], list[float]]


def _rouge_scores(drafts: Sequence[str], finals: Sequence[str]) -> list[float]:
    if len(drafts) != len(finals):
        raise ValueError(f"{len(drafts)} drafts but {len(finals)} final reports")
    return [template_use(draft, final) for draft, final in zip(drafts, finals)]


def template_use_measure(ratescore_dir: Optional[Path | str] = None) -> TemplateUseMeasure:
    """RaTEScore loaded from ``ratescore_dir`` when given, else ROUGE-L F1 (:func:`template_use`).

    Args:
        ratescore_dir: local folder with ``ner/`` and ``encoder/`` (:func:`analysis.ratescore.load_ratescore`).

    Raises:
        ValueError: ``ratescore_dir`` is given but is not a loadable RaTEScore folder (the message says why); there is
            no silent fall-back to ROUGE-L.
    """
    if ratescore_dir is None:
        return TemplateUseMeasure(MEASURE, _rouge_scores)
    from analysis.ratescore import load_ratescore

    scorer = load_ratescore(ratescore_dir)
    return TemplateUseMeasure(scorer.name, lambda drafts, finals: scorer.score(finals, drafts))
