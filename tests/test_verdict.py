"""The verdict rule of DESIGN §4.1 and the bilingual reasons."""

from __future__ import annotations

import dataclasses
import re

import pytest

from photocheck import (
    ContentModel,
    Finding,
    Policy,
    ReasonCode,
    Severity,
    Verdict,
    check_photo,
    default_policy,
)
from photocheck.checks import PhotoContext
from photocheck.reasons import DEFAULT_SEVERITY, MESSAGES, Subject, message_for
from photocheck.verdict import decide, explain

from .conftest import data_file

DRONE = "drone/openmvg_palm_desert_dji_mini2/DJI_0042.JPG"


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


_CJK = re.compile(r"[\u4e00-\u9fff]")
_RETAKE_ZH = re.compile(r"重新拍摄|重拍|重新航拍|新照片|重新导出|请.*拍摄")
_RETAKE_EN = re.compile(r"retake|again|take a new|photograph|fly over|upload", re.IGNORECASE)


@pytest.mark.parametrize("subject", list(Subject))
def test_review_wording_never_asks_for_a_retake(subject: Subject) -> None:
    for code in ReasonCode:
        msg = message_for(code, Severity.REVIEW, subject)
        assert _CJK.search(msg.zh) and not _CJK.search(msg.en), (code, msg)
        assert "无需重拍" in msg.zh and "no retake needed" in msg.en
        said_zh, said_en = msg.zh.replace("无需重拍", ""), msg.en.replace("no retake needed", "")
        assert not _RETAKE_ZH.search(said_zh) and "请" not in said_zh, (code, msg.zh)
        assert not _RETAKE_EN.search(said_en), (code, msg.en)
        assert "县" in msg.zh and "county" in msg.en  # both say who looks at it next
        retake = message_for(code, Severity.REJECT, subject)
        assert "请" in retake.zh and _RETAKE_EN.search(retake.en), (code, retake)


def test_drone_wording_has_no_phone_and_no_household() -> None:
    for severity in Severity:
        for code in ReasonCode:
            msg = message_for(code, severity, Subject.SITE)
            assert not re.search("手机|农户|本户|户门|房屋", msg.zh), (code, msg.zh)
            assert not re.search("phone|household|house", msg.en, re.IGNORECASE), (code, msg.en)


def test_severity_from_the_policy_picks_the_wording() -> None:
    policy = default_policy()
    (tilted,) = explain([Finding(ReasonCode.TILTED)], policy)
    assert tilted.severity is Severity.REVIEW and "重新拍摄" not in tilted.message_zh
    strict = dataclasses.replace(
        policy, severity={**policy.severity, ReasonCode.TILTED: Severity.REJECT}
    )
    (tilted,) = explain([Finding(ReasonCode.TILTED)], strict)
    assert tilted.severity is Severity.REJECT and "重新拍摄" in tilted.message_zh


def test_a_drone_photo_is_told_about_the_drone(policy: Policy, model: ContentModel) -> None:
    data = data_file(DRONE).read_bytes()
    site = PhotoContext(expected_lat=0.5, expected_lon=0.5, radius_m=100, check_framing=False)
    report = check_photo(data, policy=policy, model=model, context=site)
    far = [r for r in report.reasons if r.code is ReasonCode.GPS_OUTSIDE_AREA]
    assert far and "安置点" in far[0].message_zh and "site" in far[0].message_en
    assert "手机" not in far[0].message_zh and "phone" not in far[0].message_en
