"""Who a duplicate counts against, and what it adds to a photo's reasons: pure functions.

The engine (``similarity.engine``) says whether two photos are the same photo or the
same scene; these rules say what that means for a household, without a database, so
they are tested on plain values (``tests/test_duplicate_rules.py``). The intake
(``store.intake``) loads the rows, calls these, and stores the outcome.

- A match counts against a household unless it is the household's own earlier photo
  (a retake) or the other household is linked to the same shared site (DESIGN §2.3:
  a site's photo may be used by exactly the households linked to that site).
- A shared site's drone photo used by a household not linked to it is DUPLICATE_PHOTO;
  used by a linked household it is allowed and named (``site_photo``).
- A same-photo match gives DUPLICATE_PHOTO (reject), otherwise a same-scene match gives
  SAME_SCENE (review); merged into the photo's own reasons as ``explain`` orders them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..policy import Policy
from ..reasons import ReasonCode, Severity
from ..verdict import Finding, Reason, explain

__all__ = [
    "DUPLICATE_SITE_PHOTO",
    "HouseholdLike",
    "MatchInfo",
    "SiteHit",
    "SitePhotoUse",
    "counts_against",
    "duplicate_findings",
    "merge_findings",
    "reason_from_json",
    "shares_site",
    "site_photo_outcome",
]

DUPLICATE_SITE_PHOTO = "site_photo"  # evidence "via": the match is a registered drone photo


class HouseholdLike(Protocol):
    """What the rules read of a household (``store.models.Household`` has it)."""

    @property
    def id(self) -> int: ...
    @property
    def site_code(self) -> str | None: ...


@dataclass(frozen=True)
class MatchInfo:
    """A stored photo of another household that is the same photo or scene as an upload."""

    relation: str  # same_photo | same_scene
    photo_id: int
    household_id: str  # the other household's code
    county: str
    village: str
    distance: float | None
    evidence: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "relation": self.relation,
            "photo_id": self.photo_id,
            "household_id": self.household_id,
            "county": self.county,
            "village": self.village,
            "distance": self.distance,
            "evidence": {k: v for k, v in self.evidence.items() if k != "inlier_pairs"},
        }


@dataclass(frozen=True)
class SiteHit:
    """A stored site photo that is the same photo as the upload."""

    site_code: str
    site_name: str
    canonical_name: str
    distance: int  # PDQ bits; 0 for byte- or pixel-identical
    via: str  # sha256 | pixel_sha256 | pdq


@dataclass(frozen=True)
class SitePhotoUse:
    """A linked household's upload is its site's registered drone photo (allowed)."""

    site_id: str
    site_photo: str  # canonical name

    def to_json(self) -> dict[str, str]:
        return {"site_id": self.site_id, "site_photo": self.site_photo}


def shares_site(household: HouseholdLike, site_code: str | None) -> bool:
    """The one shared-site rule (DESIGN §2.3): a photo of a shared site may be used by
    exactly the households linked to that site, whatever their category."""
    return bool(site_code) and household.site_code == site_code


def counts_against(household: HouseholdLike, other: HouseholdLike) -> bool:
    """A match with ``other`` is a problem unless it is the same household (a retake)
    or ``other`` is linked to the site this household is linked to (``shares_site``)."""
    if other.id == household.id:
        return False
    return not shares_site(household, other.site_code)


def site_photo_outcome(
    household: HouseholdLike, category: str | None, hits: Sequence[SiteHit]
) -> tuple[list[Finding], SitePhotoUse | None]:
    """DUPLICATE_PHOTO for a site's drone photo used by a household not linked to that
    site; for a linked household, which site photo it used. ``hits`` nearest first."""
    for hit in hits:
        if shares_site(household, hit.site_code):
            continue
        evidence = {
            "via": DUPLICATE_SITE_PHOTO,
            "hash": hit.via,
            "distance": hit.distance,
            "site_id": hit.site_code,
            "site_name": hit.site_name,
            "site_photo": hit.canonical_name,
            "household_site_id": household.site_code,
            "household_category": category,
        }
        return [Finding(ReasonCode.DUPLICATE_PHOTO, evidence)], None
    if hits:
        return [], SitePhotoUse(hits[0].site_code, hits[0].canonical_name)
    return [], None


def duplicate_findings(same: Sequence[MatchInfo], scene: Sequence[MatchInfo]) -> list[Finding]:
    """DUPLICATE_PHOTO naming the first same-photo match, else SAME_SCENE naming the first
    same-scene match (with its inlier count for the reason text), else nothing."""
    if same:
        first = same[0]
        evidence = {
            "other_household_id": first.household_id,
            "other_county": first.county,
            "other_village": first.village,
            "other_photo_id": first.photo_id,
            "distance": first.distance,
            "count": len(same),
        }
        return [Finding(ReasonCode.DUPLICATE_PHOTO, evidence)]
    if scene:
        first = scene[0]
        evidence = {
            "other_household_id": first.household_id,
            "other_village": first.village,
            "other_photo_id": first.photo_id,
            "count": len(scene),
        }
        if "inliers" in first.evidence:
            evidence["inliers"] = first.evidence["inliers"]
        return [Finding(ReasonCode.SAME_SCENE, evidence)]
    return []


def merge_findings(
    reasons: Sequence[Reason], findings: Sequence[Finding], policy: Policy
) -> list[Reason]:
    """The photo's reasons plus the duplicate findings (a code already there is kept),
    ordered as ``explain`` does: rejects first, then by code."""
    if not findings:
        return list(reasons)
    extra = explain(findings, policy)
    codes = {r.code for r in reasons}
    merged = list(reasons) + [r for r in extra if r.code not in codes]
    order = list(ReasonCode)
    return sorted(merged, key=lambda r: (r.severity != Severity.REJECT, order.index(r.code)))


def reason_from_json(data: dict[str, Any]) -> Reason:
    """A stored reason (``Reason.to_json``) back as a ``Reason``."""
    return Reason(
        ReasonCode(data["code"]),
        Severity(data["severity"]),
        data["message_zh"],
        data["message_en"],
        dict(data.get("evidence") or {}),
    )
