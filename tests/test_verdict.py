"""The verdict rule of DESIGN §4.1 and the bilingual reasons."""

from __future__ import annotations

import dataclasses

from photocheck import Finding, ReasonCode, Severity, Verdict, default_policy
from photocheck.reasons import DEFAULT_SEVERITY, MESSAGES
from photocheck.verdict import decide, explain


def test_every_code_has_a_severity_and_both_messages() -> None:
    for code in ReasonCode:
        assert code in DEFAULT_SEVERITY
        assert MESSAGES[code].zh and MESSAGES[code].en
        assert MESSAGES[code].zh != MESSAGES[code].en


def test_no_reasons_accepts() -> None:
    assert decide(explain([], default_policy())) is Verdict.ACCEPT


def test_review_only_reasons_give_review() -> None:
    reasons = explain([Finding(ReasonCode.NO_GPS), Finding(ReasonCode.TILTED)], default_policy())
    assert decide(reasons) is Verdict.REVIEW


def test_any_reject_reason_rejects_and_comes_first() -> None:
    findings = [Finding(ReasonCode.NO_GPS), Finding(ReasonCode.BLURRY, {"sharpness": 1.0})]
    reasons = explain(findings, default_policy())
    assert decide(reasons) is Verdict.REJECT
    assert reasons[0].code is ReasonCode.BLURRY
    assert reasons[0].evidence == {"sharpness": 1.0}
    assert "模糊" in reasons[0].message_zh and "blurred" in reasons[0].message_en


def test_policy_severity_changes_the_verdict() -> None:
    policy = default_policy()
    strict = dataclasses.replace(
        policy, severity={**policy.severity, ReasonCode.EDITED: Severity.REJECT}
    )
    findings = [Finding(ReasonCode.EDITED, {"software": "GIMP 2.10"})]
    assert decide(explain(findings, policy)) is Verdict.REVIEW
    assert decide(explain(findings, strict)) is Verdict.REJECT


def test_one_reason_per_code() -> None:
    findings = [Finding(ReasonCode.EDITED, {"n": 1}), Finding(ReasonCode.EDITED, {"n": 2})]
    reasons = explain(findings, default_policy())
    assert [r.evidence for r in reasons] == [{"n": 1}]
