"""Discrepancy judges (FineRadScore-style): the interface, an offline rule-based judge and an LLM judge."""

from analysis.judges.base import (
    Discrepancy,
    ErrorCategory,
    Judge,
    Judgement,
    JudgeError,
    JudgeFailure,
    Severity,
)
from analysis.judges.llm import LLMJudge
from analysis.judges.offline import OfflineJudge

__all__ = ["Discrepancy", "ErrorCategory", "Judge", "Judgement", "JudgeError", "JudgeFailure", "LLMJudge",
           "OfflineJudge", "Severity"]
