"""Findings and the verdict rule of DESIGN §4.1, kept pure."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .policy import Policy
from .reasons import ReasonCode, Severity, Subject, message_for

__all__ = ["Finding", "Reason", "Verdict", "decide", "explain"]


class Verdict(enum.StrEnum):
    ACCEPT = "accept"
    REVIEW = "review"
    REJECT = "reject"


@dataclass(frozen=True)
class Finding:
    """A check's observation: a reason code and the evidence behind it."""

    code: ReasonCode
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reason:
    """A finding with its policy severity and the verifier-facing messages."""

    code: ReasonCode
    severity: Severity
    message_zh: str
    message_en: str
    evidence: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "severity": self.severity.value,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
            "evidence": self.evidence,
        }


def explain(
    findings: Iterable[Finding], policy: Policy, subject: Subject = Subject.HOUSE
) -> list[Reason]:
    """Attach severities and messages (worded for that severity and subject); one reason
    per code (first evidence wins)."""
    seen: dict[ReasonCode, Reason] = {}
    for f in findings:
        if f.code in seen:
            continue
        severity = policy.severity_of(f.code)
        msg = message_for(f.code, severity, subject)
        seen[f.code] = Reason(f.code, severity, msg.zh, msg.en, f.evidence)
    order = list(ReasonCode)
    return sorted(seen.values(), key=lambda r: (r.severity != Severity.REJECT, order.index(r.code)))


def decide(reasons: Iterable[Reason]) -> Verdict:
    """reject if any reject-severity reason, else review if any reason, else accept."""
    severities = {r.severity for r in reasons}
    if Severity.REJECT in severities:
        return Verdict.REJECT
    if severities:
        return Verdict.REVIEW
    return Verdict.ACCEPT
