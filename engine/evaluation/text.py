"""Report-text metrics that need no model weights: BLEU-4 (nltk) and ROUGE-L F1 (rouge-score).

Both score lower-cased word tokens (runs of letters/digits; punctuation dropped), so "Clear." and "clear" match.
The paper reports BLEU-4 and ROUGE-L for report generation (section 4.6, after Jain et al. and Yu et al.).
"""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Sequence

from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu
from rouge_score import rouge_scorer

BLEU_BACKEND = f"nltk {version('nltk')} corpus_bleu, uniform 4-gram weights, smoothing method1"
ROUGE_BACKEND = f"rouge-score {version('rouge-score')} rougeL F1, no stemming"

_WORD = re.compile(r"[a-z0-9]+")
_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``.

    Raises:
        TypeError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"a report must be str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


def _pairs(references: Sequence[str], predictions: Sequence[str]) -> None:
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")


def bleu4(references: Sequence[str], predictions: Sequence[str]) -> float:
    """Corpus BLEU-4 in [0, 1] of ``predictions`` against one reference each (uniform 1-4-gram weights, brevity
    penalty, Chen & Cherry smoothing method 1 so that a missing 4-gram gives a small value, not 0).

    Identical non-empty texts of at least 4 words give 1.0.

    Raises:
        ValueError: the sequences differ in length or are empty.
        TypeError: a report is not a string.
    """
    _pairs(references, predictions)
    if not references:
        raise ValueError("BLEU-4 needs at least one (reference, prediction) pair")
    refs = [[words(r)] for r in references]
    hyps = [words(p) for p in predictions]
    if not any(hyps):
        return 0.0
    return float(corpus_bleu(refs, hyps, smoothing_function=SmoothingFunction().method1))


def rouge_l(reference: str, prediction: str) -> float:
    """ROUGE-L F1 in [0, 1] (longest common subsequence of words); 0.0 when either text has no words.

    Raises:
        TypeError: an argument is not a string.
    """
    if not isinstance(reference, str) or not isinstance(prediction, str):
        raise TypeError(f"reports must be str, got {type(reference).__name__}, {type(prediction).__name__}")
    return float(_SCORER.score(reference, prediction)["rougeL"].fmeasure)


def rouge_l_scores(references: Sequence[str], predictions: Sequence[str]) -> list[float]:
    """ROUGE-L F1 of each (reference, prediction) pair.

    Raises:
        ValueError: the sequences differ in length.
    """
    _pairs(references, predictions)
    return [rouge_l(r, p) for r, p in zip(references, predictions)]
