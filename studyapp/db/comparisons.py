"""Blinded A/B report comparison models (paper sections 2.3 and 4.3, "Radiologist evaluation").

A :class:`ComparisonSet` holds :class:`ComparisonPair` rows, each one case with two report texts from two named
sources stored in a canonical order (``source_1`` / ``source_2``). Each reader x pair :class:`ComparisonAssignment`
records which source the reader sees as "Report A" (``a_source``, drawn from the set's seed), so every
:class:`ComparisonJudgement` and :class:`ComparisonComment` -- both made on the blinded sides A/B -- maps back to its
source. Judgements and comments are what readers produced: deleting their assignment fails at the database
(``ondelete="RESTRICT"``).

Stable codes: choices ``A`` / ``B`` / ``equivalent``; comment sides ``A`` / ``B`` (or NULL for the whole pair);
comment scores 1 (major finding, significant error), 2 (minor finding or less critical error), 4 (significant
positive aspect), 5 (minor positive aspect), as in the paper's Fig. 4d.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from studyapp.clock import utcnow
from studyapp.db.base import Base
from studyapp.db.models import Case, User

SIDE_A = "A"
SIDE_B = "B"
CHOICE_EQUIVALENT = "equivalent"
CHOICES = (SIDE_A, SIDE_B, CHOICE_EQUIVALENT)
SIDES = (SIDE_A, SIDE_B)
COMMENT_SCORES = {
    1: "major finding with a significant error",
    2: "minor finding or less critical error",
    4: "significant positive aspect",
    5: "minor positive aspect",
}


class ComparisonSet(Base):
    """A blinded comparison exercise inside one reader study, with the seed of its randomisation.

    ``candidate_source`` names the source whose reports are being evaluated (the AI report in the paper); the
    results report how often it is judged equivalent or better.
    """

    __tablename__ = "comparison_sets"
    __table_args__ = (UniqueConstraint("study_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_studies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(256))
    seed: Mapped[int] = mapped_column(Integer, default=0)
    readers_per_pair: Mapped[int] = mapped_column(Integer, default=1)
    candidate_source: Mapped[Optional[str]] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    pairs: Mapped[list[ComparisonPair]] = relationship(
        back_populates="comparison_set", order_by="ComparisonPair.position"
    )


class ComparisonPair(Base):
    """One case with two report texts from two named sources (canonical order, never shown to readers)."""

    __tablename__ = "comparison_pairs"
    __table_args__ = (
        UniqueConstraint("set_id", "position"),
        UniqueConstraint("set_id", "case_id", "source_1_name", "source_2_name"),
        CheckConstraint("source_1_name <> source_2_name", name="distinct_sources"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("comparison_sets.id", ondelete="CASCADE"))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"))
    position: Mapped[int] = mapped_column(Integer)
    source_1_name: Mapped[str] = mapped_column(String(128))
    text_1: Mapped[str] = mapped_column(Text)
    source_2_name: Mapped[str] = mapped_column(String(128))
    text_2: Mapped[str] = mapped_column(Text)

    comparison_set: Mapped[ComparisonSet] = relationship(back_populates="pairs")
    case: Mapped[Case] = relationship()
    assignments: Mapped[list[ComparisonAssignment]] = relationship(back_populates="pair")


class ComparisonAssignment(Base):
    """Reader x pair at a position in the reader's list, with the stored side order.

    ``a_source`` is 1 when source 1 is shown as Report A, 2 when source 2 is.
    """

    __tablename__ = "comparison_assignments"
    __table_args__ = (
        UniqueConstraint("pair_id", "reader_id"),
        UniqueConstraint("set_id", "reader_id", "position"),
        CheckConstraint("a_source IN (1, 2)", name="a_source_1_or_2"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("comparison_sets.id", ondelete="CASCADE"))
    pair_id: Mapped[int] = mapped_column(ForeignKey("comparison_pairs.id", ondelete="CASCADE"))
    reader_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    position: Mapped[int] = mapped_column(Integer)
    a_source: Mapped[int] = mapped_column(Integer)

    pair: Mapped[ComparisonPair] = relationship(back_populates="assignments")
    reader: Mapped[User] = relationship()
    judgement: Mapped[Optional[ComparisonJudgement]] = relationship(back_populates="assignment")
    comments: Mapped[list[ComparisonComment]] = relationship(
        back_populates="assignment", order_by="ComparisonComment.id"
    )


class ComparisonJudgement(Base):
    """The reader's three-way choice on the blinded sides; revisable until the reader submits the set."""

    __tablename__ = "comparison_judgements"
    __table_args__ = (CheckConstraint("choice IN ('A', 'B', 'equivalent')", name="choice_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("comparison_assignments.id", ondelete="RESTRICT"), unique=True
    )
    choice: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    revisions: Mapped[int] = mapped_column(Integer, default=0)

    assignment: Mapped[ComparisonAssignment] = relationship(back_populates="judgement")


class ComparisonComment(Base):
    """A scored comment on a passage of Report A or B (character offsets into that text), or on the pair.

    ``start``/``end`` are Python string offsets (half-open) into the side's text; ``passage`` is the quoted text.
    """

    __tablename__ = "comparison_comments"
    __table_args__ = (
        CheckConstraint("score IN (1, 2, 4, 5)", name="score_1_2_4_5"),
        CheckConstraint("side IS NULL OR side IN ('A', 'B')", name="side_code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("comparison_assignments.id", ondelete="RESTRICT"))
    side: Mapped[Optional[str]] = mapped_column(String(1))
    start: Mapped[Optional[int]] = mapped_column(Integer)
    end: Mapped[Optional[int]] = mapped_column(Integer)
    passage: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    assignment: Mapped[ComparisonAssignment] = relationship(back_populates="comments")


class ComparisonSubmission(Base):
    """A reader's final submission of a comparison set; after it, judgements and comments are frozen."""

    __tablename__ = "comparison_submissions"
    __table_args__ = (UniqueConstraint("set_id", "reader_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("comparison_sets.id", ondelete="RESTRICT"))
    reader_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
