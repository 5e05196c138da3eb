"""Offline FineRadScore-style judge: no network, no model weights.

Both findings sections (the IMPRESSION when a report has no FINDINGS) are split into numbered lines
(:mod:`analysis.reports`) and read into structured findings (:mod:`analysis.findings`). Per concept asserted
present or uncertain in either report:

- asserted by the candidate only -> ``false_finding`` at its line (correction: delete); by the reference only
  -> ``omission`` (insert the reference's line); severity :func:`analysis.findings.severity_of` of the report
  that asserts it, one level lower when it is only uncertain there;
- stated on different sides -> one ``wrong_location`` per side swapped (a right finding called left), a side
  named by one report only is a ``false_finding`` or ``omission`` of that side; severity of the finding; with
  the same sides overall, a zone (upper, middle, lower) named with other sides in the two reports is one
  ``wrong_location`` (a left lower lobe consolidation called right lower lobe next to a right upper one);
- a tube or line malpositioned in one report and not in the other -> ``wrong_location`` with the
  malposition's severity (an endotracheal tube in a main bronchus is emergent);
- different size or severity grade classes (trace/small/mild, moderate, large/severe, tension) ->
  ``wrong_severity`` with the severity of the higher grade when that is urgent or emergent (a small versus a
  large pneumothorax stays urgent; tension is emergent), else one level lower; definite in one report and only
  uncertain in the other -> ``wrong_severity`` one level lower;
- the same side but another lobe or zone -> ``wrong_location``, actionable non-urgent at most; a course since
  the prior study that contradicts the other report's (worse vs better or stable) -> ``wrong_severity``,
  actionable non-urgent at most;
- a comparison to a prior study in one report only -> ``mentions_comparison_absent_from_reference`` or
  ``omits_comparison``, not actionable.

Every rule gives the same severities whichever report is the candidate, so a pair's urgent + emergent count
does not depend on the direction of the comparison (issue 17).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from analysis.findings import (
    CONCEPTS,
    LEXICON_VERSION,
    Finding,
    extract_findings,
    mentions_comparison,
    severity_of,
)
from analysis.judges.base import Discrepancy, ErrorCategory, Judgement, JudgeFailure, Severity
from analysis.reports import findings_lines

_CLASSES = ((2.5, "small"), (3.5, "moderate"), (4.5, "large"), (9, "tension"))
_CONFLICTING = {frozenset({"worse", "better"}), frozenset({"new", "better"}), frozenset({"worse", "stable"}),
                frozenset({"new", "stable"})}


def _grade_class(grade: Optional[float]) -> Optional[str]:
    return None if grade is None else next(name for top, name in _CLASSES if grade <= top)


@dataclass(frozen=True)
class _Stated:
    """What one report asserts about one concept (all its present or uncertain mentions together)."""

    mentions: tuple[Finding, ...]

    @property
    def line(self) -> int:
        return self.mentions[0].line

    def line_of(self, side: str) -> int:
        return next((m.line for m in self.mentions if side in m.laterality), self.line)

    @property
    def sides(self) -> frozenset[str]:
        return frozenset().union(*(m.laterality for m in self.mentions))

    @property
    def grade(self) -> Optional[float]:
        return max((m.grade for m in self.mentions if m.grade is not None), default=None)

    @property
    def definite(self) -> bool:
        return any(m.assertion == "present" for m in self.mentions)

    @property
    def malposition(self) -> Optional[Severity]:
        return max((m.malposition for m in self.mentions if m.malposition), key=lambda s: s.rank, default=None)

    @property
    def positioned(self) -> bool:
        return any(m.positioned for m in self.mentions)

    @property
    def old(self) -> bool:
        return all(m.old for m in self.mentions)

    @property
    def location(self) -> frozenset[str]:
        return frozenset().union(*(m.location for m in self.mentions))

    @property
    def placed(self) -> dict[str, frozenset[str]]:
        """Zone -> sides, from the mentions that name one zone and a side (bilateral = both sides)."""
        out: dict[str, frozenset[str]] = {}
        for mention in self.mentions:
            if len(mention.location) == 1 and mention.laterality:
                (zone,) = mention.location
                out[zone] = out.get(zone, frozenset()) | mention.laterality
        return out

    @property
    def changes(self) -> frozenset[str]:
        return frozenset(m.change for m in self.mentions if m.change)

    def severity(self, concept: str) -> Severity:
        """Severity of missing or inventing this statement (lowered one level when only uncertain)."""
        severity = severity_of(concept, self.grade, self.malposition, self.old)
        return severity if self.definite else severity.lowered()


def _stated(findings: list[Finding]) -> dict[str, _Stated]:
    by_concept: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.assertion != "absent":
            by_concept.setdefault(finding.concept, []).append(finding)
    return {concept: _Stated(tuple(mentions)) for concept, mentions in by_concept.items()}


def _at_most(severity: Severity, ceiling: Severity) -> Severity:
    return severity if severity.rank <= ceiling.rank else ceiling


def _compare(concept: str, cand: _Stated, ref: _Stated, correction: str) -> list[Discrepancy]:
    """Discrepancies between two statements of the same concept (see the module docstring)."""
    out: list[Discrepancy] = []
    higher = severity_of(concept, max(cand.grade or 0, ref.grade or 0) or None,
                         max((s for s in (cand.malposition, ref.malposition) if s), key=lambda s: s.rank,
                             default=None), cand.old and ref.old)
    side_error = False
    if CONCEPTS[concept].sided and cand.sides and ref.sides and cand.sides != ref.sides:
        extra_cand, extra_ref = sorted(cand.sides - ref.sides), sorted(ref.sides - cand.sides)
        side_error = True
        for side_c, side_r in zip(extra_cand, extra_ref):
            out.append(Discrepancy(cand.line_of(side_c), correction, higher, ErrorCategory.WRONG_LOCATION,
                                   f"{concept}: {side_c} instead of {side_r}"))
        for side in extra_cand[len(extra_ref):]:
            out.append(Discrepancy(cand.line_of(side), None, cand.severity(concept), ErrorCategory.FALSE_FINDING,
                                   f"{concept}: {side}"))
        for side in extra_ref[len(extra_cand):]:
            out.append(Discrepancy(None, correction, ref.severity(concept), ErrorCategory.OMISSION,
                                   f"{concept}: {side}"))
    if CONCEPTS[concept].sided and not side_error:
        cand_placed, ref_placed = cand.placed, ref.placed
        zone = next((z for z in sorted(cand_placed.keys() & ref_placed.keys()) if cand_placed[z] != ref_placed[z]),
                    None)
        if zone:
            side_error = True
            out.append(Discrepancy(cand.line, correction, higher, ErrorCategory.WRONG_LOCATION,
                                   f"{concept}: {'/'.join(sorted(cand_placed[zone]))} instead of "
                                   f"{'/'.join(sorted(ref_placed[zone]))} in the {zone} zone"))
    if cand.malposition != ref.malposition and (cand.malposition or ref.malposition):
        worst = max((s for s in (cand.malposition, ref.malposition) if s), key=lambda s: s.rank)
        if cand.malposition is None and not cand.positioned:
            category = ErrorCategory.OMISSION  # the candidate names the device but not its wrong position
        elif ref.malposition is None and not ref.positioned:
            category = ErrorCategory.FALSE_FINDING
        else:
            category = ErrorCategory.WRONG_LOCATION
        out.append(Discrepancy(cand.line, correction, worst, category, f"{concept}: tip position"))
    c_class, r_class = _grade_class(cand.grade), _grade_class(ref.grade)
    if c_class and r_class and c_class != r_class:
        severity = higher if higher.is_urgent_or_emergent else higher.lowered()
        out.append(Discrepancy(cand.line, correction, severity, ErrorCategory.WRONG_SEVERITY,
                               f"{concept}: {c_class} instead of {r_class}"))
    elif cand.definite != ref.definite:
        out.append(Discrepancy(cand.line, correction, higher.lowered(), ErrorCategory.WRONG_SEVERITY,
                               f"{concept}: {'definite' if cand.definite else 'uncertain'} instead of "
                               f"{'definite' if ref.definite else 'uncertain'}"))
    if (not side_error and CONCEPTS[concept].sided and cand.location and ref.location
            and not cand.location & ref.location):
        out.append(Discrepancy(cand.line, correction, _at_most(higher, Severity.ACTIONABLE_NONURGENT),
                               ErrorCategory.WRONG_LOCATION,
                               f"{concept}: {'/'.join(sorted(cand.location))} instead of "
                               f"{'/'.join(sorted(ref.location))}"))
    if not cand.changes & ref.changes and any(frozenset({c, r}) in _CONFLICTING
                                              for c in cand.changes for r in ref.changes):
        out.append(Discrepancy(cand.line, correction, _at_most(higher, Severity.ACTIONABLE_NONURGENT),
                               ErrorCategory.WRONG_SEVERITY,
                               f"{concept}: {'/'.join(sorted(cand.changes))} instead of "
                               f"{'/'.join(sorted(ref.changes))} since the prior study"))
    return out


class OfflineJudge:
    """Rule-based judge over structured findings (see module docstring). Thread-safe and deterministic."""

    name = "offline-negex"
    version = LEXICON_VERSION

    def judge(self, candidate: str, reference: str) -> Judgement:
        """Corrections ``candidate`` (a report or findings text) needs to agree with ``reference``.

        Returns:
            Judgement with ``judge="offline-negex"`` and the lexicon version.

        Raises:
            TypeError: a text is not a string.
        """
        cand_lines, ref_lines = findings_lines(candidate), findings_lines(reference)
        cand, ref = _stated(extract_findings(cand_lines)), _stated(extract_findings(ref_lines))
        out: list[Discrepancy] = []
        for concept in sorted(cand.keys() | ref.keys()):
            if concept not in ref:
                out.append(Discrepancy(cand[concept].line, None, cand[concept].severity(concept),
                                       ErrorCategory.FALSE_FINDING, concept))
            elif concept not in cand:
                out.append(Discrepancy(None, ref_lines[ref[concept].line - 1], ref[concept].severity(concept),
                                       ErrorCategory.OMISSION, concept))
            else:
                out.extend(_compare(concept, cand[concept], ref[concept], ref_lines[ref[concept].line - 1]))
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
