"""Offline FineRadScore-style judge: no network, no model weights.

Each findings section is split into numbered lines (:mod:`analysis.reports`) and its findings extracted with
negation and uncertainty handling (:mod:`analysis.findings`). Per concept asserted present or uncertain:

- asserted by the candidate only -> ``false_finding`` at its line (correction: delete), table severity;
- asserted by the reference only -> ``omission`` (insert a line), table severity;
- asserted by both with different laterality -> ``wrong_location``, table severity;
- asserted by both with a different size, or one definite and one uncertain -> ``wrong_severity``,
  the table severity lowered one level;
- a comparison to a prior study in one report only -> ``mentions_comparison_absent_from_reference`` or
  ``omits_comparison``, not actionable.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Optional

from analysis.findings import LEXICON_VERSION, Finding, extract_findings, mentions_comparison, severity_of
from analysis.judges.base import Discrepancy, ErrorCategory, Judgement, JudgeFailure, Severity
from analysis.reports import findings_lines


def _asserted(findings: list[Finding]) -> dict[str, list[Finding]]:
    by_concept: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        if finding.assertion != "absent":
            by_concept[finding.concept].append(finding)
    return by_concept


def _summary(mentions: list[Finding]) -> tuple[frozenset[str], frozenset[str], bool]:
    sides = frozenset().union(*(m.laterality for m in mentions))
    sizes = frozenset(m.size for m in mentions if m.size)
    definite = any(m.assertion == "present" for m in mentions)
    return sides, sizes, definite


def _unmatched_side(candidate: list[Finding], reference: list[Finding]) -> Optional[int]:
    """Line of the first candidate mention whose laterality is left over after pairing mentions with the
    reference's mentions of the same laterality."""
    remaining = Counter(m.laterality for m in reference if m.laterality)
    for mention in candidate:
        if mention.laterality:
            if remaining[mention.laterality] == 0:
                return mention.line
            remaining[mention.laterality] -= 1
    return None


class OfflineJudge:
    """Rule-based judge over extracted findings (see module docstring). Thread-safe and deterministic."""

    name = "offline-negex"
    version = LEXICON_VERSION

    def judge(self, candidate: str, reference: str) -> Judgement:
        """Corrections ``candidate`` (a report or findings text) needs to agree with ``reference``.

        Returns:
            Judgement with ``judge="offline-negex"`` and the lexicon version.
        """
        cand_lines, ref_lines = findings_lines(candidate), findings_lines(reference)
        cand, ref = _asserted(extract_findings(cand_lines)), _asserted(extract_findings(ref_lines))
        out: list[Discrepancy] = []
        for concept in sorted(cand.keys() | ref.keys()):
            if concept not in ref:
                first = cand[concept][0]
                size = max((m.size for m in cand[concept] if m.size), default=None)
                severity = severity_of(concept, size)
                if first.assertion == "uncertain":
                    severity = severity.lowered()
                out.append(Discrepancy(first.line, None, severity, ErrorCategory.FALSE_FINDING, concept))
                continue
            if concept not in cand:
                size = max((m.size for m in ref[concept] if m.size), default=None)
                out.append(Discrepancy(None, ref_lines[ref[concept][0].line - 1],
                                       severity_of(concept, size), ErrorCategory.OMISSION, concept))
                continue
            c_sides, c_sizes, c_definite = _summary(cand[concept])
            r_sides, r_sizes, r_definite = _summary(ref[concept])
            line = cand[concept][0].line
            correction = ref_lines[ref[concept][0].line - 1]
            if c_sides and r_sides and c_sides != r_sides:
                out.append(Discrepancy(_unmatched_side(cand[concept], ref[concept]) or line, correction, severity_of(concept),
                                       ErrorCategory.WRONG_LOCATION, concept))
            if (c_sizes and r_sizes and c_sizes != r_sizes) or c_definite != r_definite:
                out.append(Discrepancy(line, correction, severity_of(concept).lowered(),
                                       ErrorCategory.WRONG_SEVERITY, concept))
        cand_prior, ref_prior = mentions_comparison(cand_lines), mentions_comparison(ref_lines)
        if cand_prior and not ref_prior:
            out.append(Discrepancy(cand_prior, None, Severity.NOT_ACTIONABLE,
                                   ErrorCategory.MENTIONS_COMPARISON, "comparison"))
        elif ref_prior and not cand_prior:
            out.append(Discrepancy(None, ref_lines[ref_prior - 1], Severity.NOT_ACTIONABLE,
                                   ErrorCategory.OMITS_COMPARISON, "comparison"))
        return Judgement(tuple(out), judge=self.name, judge_version=self.version)

    def judge_many(self, pairs: list[tuple[str, str]]) -> list[Judgement | JudgeFailure]:
        """:meth:`judge` for each (candidate, reference) pair, in order."""
        return [self.judge(candidate, reference) for candidate, reference in pairs]
