"""The duplicate rules as pure functions (``similarity.rules``) and the engine's pair
decision (``similarity.engine``), on plain values: no database, no server."""

from __future__ import annotations

from dataclasses import dataclass

from photocheck.policy import SimilarityPolicy, default_policy
from photocheck.reasons import ReasonCode
from photocheck.similarity.engine import StoredHashes, copy_of, decide, pdq_usable
from photocheck.similarity.rules import (
    MatchInfo,
    SiteHit,
    counts_against,
    duplicate_findings,
    merge_findings,
    reason_from_json,
    site_photo_outcome,
)
from photocheck.verdict import Finding, Verdict, explain
from photocheck.verdict import decide as decide_verdict


@dataclass(frozen=True)
class H:
    id: int
    site_code: str | None = None


def _match(relation: str, code: str = "X1") -> MatchInfo:
    return MatchInfo(relation, 7, code, "县", "村", None, {"inliers": 40})


def test_counts_against_other_households_not_own_retake_nor_shared_site() -> None:
    assert counts_against(H(1), H(2))
    assert not counts_against(H(1), H(1))  # a retake of one's own photo
    assert not counts_against(H(1, "S1"), H(2, "S1"))  # both linked to site S1
    assert counts_against(H(1, "S1"), H(2, "S2"))
    assert counts_against(H(1), H(2, "S1"))  # linked to a site this one is not


def test_site_photo_outcome() -> None:
    hit = SiteHit("S1", "安置点", "name.jpg", 0, "sha256")
    findings, use = site_photo_outcome(H(1, "S1"), "保障安全", [hit])
    assert findings == [] and use is not None and use.site_id == "S1"
    findings, use = site_photo_outcome(H(2), "鉴定安全", [hit])
    assert use is None and findings[0].code is ReasonCode.DUPLICATE_PHOTO
    assert findings[0].evidence["site_id"] == "S1"
    assert site_photo_outcome(H(2), None, []) == ([], None)


def test_same_photo_wins_over_same_scene_and_merges_once() -> None:
    policy = default_policy()
    (f,) = duplicate_findings([_match("same_photo")], [_match("same_scene")])
    assert f.code is ReasonCode.DUPLICATE_PHOTO
    (g,) = duplicate_findings([], [_match("same_scene", "Y2")])
    assert g.code is ReasonCode.SAME_SCENE and g.evidence["other_household_id"] == "Y2"
    assert g.evidence["inliers"] == 40
    assert duplicate_findings([], []) == []
    merged = merge_findings([], [g], policy)
    assert decide_verdict(merged) is Verdict.REVIEW
    again = merge_findings(merged, [g], policy)  # a code already there is kept once
    assert [r.code for r in again] == [ReasonCode.SAME_SCENE]
    rejected = merge_findings(merged, [f], policy)
    assert rejected[0].code is ReasonCode.DUPLICATE_PHOTO  # rejects first
    assert decide_verdict(rejected) is Verdict.REJECT


def test_reason_round_trip() -> None:
    (reason,) = explain([Finding(ReasonCode.SAME_SCENE, {"count": 1})], default_policy())
    assert reason_from_json(reason.to_json()) == reason


def _h(pdq_byte: int, quality: int = 100, sha: str = "a", pixels: str | None = None):
    return StoredHashes(sha, pixels, bytes([pdq_byte]) * 32, quality)


def _rel(decision: object) -> str:
    assert decision is not None
    return str(decision.relation)  # type: ignore[attr-defined]


def test_engine_decision_tiers() -> None:
    sim = SimilarityPolicy()
    a = _h(0x00, sha="a")
    near = _h(0x01, sha="b")  # 32 bits apart: inside the verify tier, outside the copy radius
    assert _rel(copy_of(a, StoredHashes("a"), sim)) == "same_photo"  # equal bytes
    same = copy_of(a, _h(0x00, sha="c"), sim)
    assert same is not None and same.distance == 0
    assert copy_of(a, near, sim) is None
    aligned = {"inliers": 90, "corner_error": 0.01}
    assert _rel(decide(a, near, lambda: aligned, sim)) == "same_photo"
    moved = {"inliers": 90, "corner_error": 0.2}
    assert _rel(decide(a, near, lambda: moved, sim)) == "same_scene"
    assert decide(a, near, lambda: None, sim) is None
    far = _h(0x0F, sha="d")  # 128 bits: not a copy whatever the frames
    assert _rel(decide(a, far, lambda: aligned, sim)) == "same_scene"
    no_corner = {"inliers": 90}  # a fundamental-matrix matcher: no homography
    assert _rel(decide(a, near, lambda: no_corner, sim)) == "same_scene"


def test_quality_gate_in_one_place() -> None:
    sim = SimilarityPolicy()
    flat = _h(0x00, quality=sim.min_pdq_quality - 1, sha="f")
    assert not pdq_usable(flat, sim)
    assert copy_of(flat, _h(0x00, sha="g"), sim) is None  # equal PDQ, not trusted
    assert copy_of(flat, _h(0x00, sha="f"), sim) is not None  # equal bytes still pair
