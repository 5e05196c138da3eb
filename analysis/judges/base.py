"""The discrepancy-judge interface: severities, error categories, one discrepancy, one judgement.

Follows FineRadScore (Huang et al., arXiv 2405.20613): a candidate findings section, split into numbered
lines, is compared with a reference; every needed correction (replace or delete a line, or insert a line)
gets a clinical severity, defined for an ICU setting, and an error category. The paper's user study
(section 2.4) counts urgent + emergent corrections.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional, Protocol


class Severity(str, Enum):
    """FineRadScore clinical severity of a correction, lowest to highest (ICU setting).

    ``emergent``: needs immediate intervention (tension pneumothorax, pneumoperitoneum, significantly
    malpositioned endotracheal tube); ``urgent``: failure to act may harm, attention soon but not immediately
    (missed pneumonia, mildly malpositioned tube); ``actionable_nonurgent``; ``not_actionable``.
    """

    NOT_ACTIONABLE = "not_actionable"
    ACTIONABLE_NONURGENT = "actionable_nonurgent"
    URGENT = "urgent"
    EMERGENT = "emergent"

    @property
    def rank(self) -> int:
        """1 (not actionable) to 4 (emergent)."""
        return list(Severity).index(self) + 1

    def lowered(self) -> Severity:
        """One level lower (not actionable stays not actionable)."""
        return list(Severity)[max(self.rank - 2, 0)]

    @property
    def is_urgent_or_emergent(self) -> bool:
        """Whether the paper's consistency count includes this severity."""
        return self in (Severity.URGENT, Severity.EMERGENT)


class ErrorCategory(str, Enum):
    """FineRadScore error category of a correction."""

    FALSE_FINDING = "false_finding"
    OMISSION = "omission"
    WRONG_LOCATION = "wrong_location"
    WRONG_SEVERITY = "wrong_severity"
    MENTIONS_COMPARISON = "mentions_comparison_absent_from_reference"
    OMITS_COMPARISON = "omits_comparison"


@dataclass(frozen=True)
class Discrepancy:
    """One correction the candidate needs to match the reference.

    Attributes:
        line: 1-based candidate line to replace or delete; None for a line to insert.
        correction: new text for the line, or None to delete it.
        severity: clinical severity of leaving it uncorrected.
        category: the (first) error category.
        comment: short reason (the finding concerned).
        categories: every error category of the correction, ``category`` first (FineRadScore labels a line
            with one or more categories); ``(category,)`` when not given.

    Raises:
        ValueError: ``categories`` given but not starting with ``category``.
    """

    line: Optional[int]
    correction: Optional[str]
    severity: Severity
    category: ErrorCategory
    comment: str = ""
    categories: tuple[ErrorCategory, ...] = ()

    def __post_init__(self):
        if not self.categories:
            object.__setattr__(self, "categories", (self.category,))
        elif self.categories[0] is not self.category:
            raise ValueError(f"categories {self.categories} must start with category {self.category}")

    def as_record(self) -> dict:
        """JSON-ready form: ``{line, category, severity, comment}`` (enum values as strings) plus
        ``categories`` (list) and ``correction``."""
        return {"line": self.line, "category": self.category.value, "severity": self.severity.value,
                "comment": self.comment, "categories": [c.value for c in self.categories],
                "correction": self.correction}


@dataclass(frozen=True)
class Judgement:
    """All corrections for one (candidate, reference) pair, with provenance.

    Attributes:
        discrepancies: the corrections, possibly empty.
        judge: judge name (``offline-negex`` or ``llm:<model>``).
        judge_version: version string of the judge (lexicon or prompt version).
        prompt_tokens / completion_tokens: tokens used by an LLM judge (0 for the offline judge).
        cached: whether the answer came from the on-disk cache.
        attempts: LLM calls made (0 when cached or offline).
    """

    discrepancies: tuple[Discrepancy, ...]
    judge: str
    judge_version: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    attempts: int = 0

    @property
    def urgent_emergent(self) -> int:
        """Number of urgent or emergent corrections (the paper's Fig. 5b/c count)."""
        return sum(d.severity.is_urgent_or_emergent for d in self.discrepancies)


@dataclass(frozen=True)
class JudgeFailure:
    """A pair a judge gave up on, kept so the analysis can list it as skipped with ``reason``."""

    reason: str
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class JudgeError(RuntimeError):
    """A judge could not produce a judgement for one pair (endpoint down, timed out, answers never valid);
    ``failure`` holds the reason, attempts and tokens spent."""

    def __init__(self, failure: JudgeFailure):
        super().__init__(failure.reason)
        self.failure = failure


class Judge(Protocol):
    """A discrepancy judge (offline or LLM). ``judge_many`` never raises for one bad pair: it returns a
    :class:`JudgeFailure` in that pair's place."""

    name: str
    version: str

    def judge(self, candidate: str, reference: str) -> Judgement:
        """Corrections ``candidate`` needs to agree with ``reference``. Raises JudgeError."""
        ...

    def judge_many(self, pairs: list[tuple[str, str]]) -> list[Judgement | JudgeFailure]:
        """Judge every (candidate, reference) pair, in order."""
        ...
