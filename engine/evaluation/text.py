"""Report-text metrics that need no model weights: BLEU-4 (nltk) and ROUGE-L F1 (rouge-score).

Both score lower-cased word tokens (runs of letters/digits; punctuation dropped), so "Clear." and "clear" match.
The paper reports BLEU-4 and ROUGE-L for report generation (section 4.6, after Jain et al. and Yu et al.).
"""

from __future__ import annotations

import math
import re
from importlib.metadata import version
from typing import Sequence

import numpy as np
from nltk.translate.bleu_score import brevity_penalty, closest_ref_length, modified_precision
from rouge_score import rouge_scorer

BLEU_BACKEND = (f"nltk {version('nltk')} corpus BLEU-4 (modified_precision, brevity_penalty), uniform weights, "
                "smoothing method1 (epsilon 0.1)")
_EPSILON = 0.1  # nltk SmoothingFunction().method1
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


def bleu4_statistics(references: Sequence[str], predictions: Sequence[str]) -> np.ndarray:
    """Per-report sufficient statistics of corpus BLEU-4: ``(N, 10)`` int64 columns = clipped n-gram matches for
    n = 1..4, prediction n-gram counts for n = 1..4, prediction length, reference length (nltk's
    ``modified_precision`` and ``closest_ref_length``, Papineni et al. 2002). Sums over any subset give that subset's
    corpus BLEU-4 (:func:`bleu4_from_statistics`), so bootstrap resamples need no re-tokenisation.

    Raises:
        ValueError: the sequences differ in length.
        TypeError: a report is not a string.
    """
    _pairs(references, predictions)
    rows = []
    for reference, prediction in zip(references, predictions):
        ref, hyp = [words(reference)], words(prediction)
        precisions = [modified_precision(ref, hyp, n) for n in range(1, 5)]
        rows.append([p.numerator for p in precisions] + [p.denominator for p in precisions]
                    + [len(hyp), closest_ref_length(ref, len(hyp))])
    return np.asarray(rows, dtype=np.int64).reshape(-1, 10)


def bleu4_from_statistics(statistics: np.ndarray) -> float:
    """Corpus BLEU-4 in [0, 1] from summed :func:`bleu4_statistics` rows: brevity penalty x geometric mean of the
    1-4-gram precisions, a zero count smoothed to 0.1 (Chen & Cherry method 1), 0.0 without unigram matches; equal
    to nltk's ``corpus_bleu`` with ``SmoothingFunction().method1``.

    Raises:
        ValueError: no rows.
    """
    if len(statistics) == 0:
        raise ValueError("BLEU-4 needs at least one (reference, prediction) pair")
    total = np.asarray(statistics).sum(axis=0)
    matches, counts, hyp_length, ref_length = total[:4], total[4:8], int(total[8]), int(total[9])
    if matches[0] == 0:
        return 0.0
    logs = [math.log((m if m else _EPSILON) / c) for m, c in zip(matches, counts) if c]
    return float(brevity_penalty(ref_length, hyp_length) * math.exp(math.fsum(logs) / 4))


def bleu4(references: Sequence[str], predictions: Sequence[str]) -> float:
    """Corpus BLEU-4 of ``predictions`` against one reference each (see :func:`bleu4_from_statistics`); identical
    texts of at least 4 words give 1.0.

    Raises:
        ValueError: the sequences differ in length or are empty.
        TypeError: a report is not a string.
    """
    return bleu4_from_statistics(bleu4_statistics(references, predictions))


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
