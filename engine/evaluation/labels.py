"""Classification and VQA answers scored as labels: accuracy and macro F1 (scikit-learn).

An answer and its reference are compared after :func:`normalize_label` (lower case, words only, a trailing
"." and articles dropped), so "Melanocytic nevus." equals "melanocytic nevus". The paper reports accuracy/F1 for
classification and VQA (section 4.6).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Sequence

from sklearn.metrics import accuracy_score, f1_score

from engine.evaluation.text import words

BACKEND = f"scikit-learn {version('scikit-learn')} accuracy_score / f1_score(average='macro')"

_ARTICLES = {"a", "an", "the"}


def normalize_label(text: str) -> str:
    """``text`` as a comparable label: lower-cased words joined by one space, articles removed.

    Raises:
        TypeError: ``text`` is not a string.
    """
    return " ".join(w for w in words(text) if w not in _ARTICLES)


def _labels(references: Sequence[str], predictions: Sequence[str]) -> tuple[list[str], list[str]]:
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    if not references:
        raise ValueError("label metrics need at least one (reference, prediction) pair")
    return [normalize_label(r) for r in references], [normalize_label(p) for p in predictions]


def accuracy(references: Sequence[str], predictions: Sequence[str]) -> float:
    """Share of predictions whose normalized label equals the reference's, in [0, 1].

    Raises:
        ValueError: the sequences differ in length or are empty.
    """
    refs, preds = _labels(references, predictions)
    return float(accuracy_score(refs, preds))


def macro_f1(references: Sequence[str], predictions: Sequence[str]) -> float:
    """Macro-averaged F1 over the reference labels (a predicted label no reference has counts as a false positive
    of no class, lowering recall only), in [0, 1].

    Raises:
        ValueError: the sequences differ in length or are empty.
    """
    refs, preds = _labels(references, predictions)
    return float(f1_score(refs, preds, labels=sorted(set(refs)), average="macro", zero_division=0))
