"""Template use: similarity between the starting draft and the final report (paper section 2.4, Fig. 5d/e).

The paper used RaTEScore, whose NER and encoder weights come from a model hub; this platform runs offline, so
the measure here is ROUGE-L F1 (longest common subsequence of words, ``rouge-score``, no stemming): 1.0 when the
final report keeps the draft's wording, near 0 when it was rewritten. The measure's name is recorded with every
value (``similarity_measure`` column) so results from different measures are never mixed silently.
"""

from __future__ import annotations

from importlib.metadata import version

from rouge_score import rouge_scorer

MEASURE = f"rouge-l-f1 (rouge-score {version('rouge-score')})"

_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def template_use(draft: str, final: str) -> float:
    """ROUGE-L F1 between ``draft`` and ``final`` in [0, 1]; 0.0 when either has no words.

    Raises:
        TypeError: an argument is not a string.
    """
    if not isinstance(draft, str) or not isinstance(final, str):
        raise TypeError(f"draft and final must be str, got {type(draft).__name__}, {type(final).__name__}")
    return float(_SCORER.score(draft, final)["rougeL"].fmeasure)
