"""Taking in one checked upload: duplicate search across households, then storage.

The photo checks (``check_photo``) have already run; here the report is extended with
DUPLICATE_PHOTO / SAME_SCENE found against other households' photos, the original is
made durable, and the row is committed. The order is what makes it safe:

1. outside any lock: geometric verification of same-scene candidates (features are
   made only when there is a candidate: see ``store.scenes``);
2. inside ``Database.write()``: the same-photo query over the whole index, the
   verdict, the insert and the commit; then the index is extended, still inside the
   lock. So of two identical photos uploaded at once, the second always sees the first.

Same-scene checks (25 ms per candidate) stay outside the lock on purpose: two
households shooting the same house within the same second can miss each other's
SAME_SCENE (a review flag, not a reject); the county audit's batch dedup finds them.

The blob is committed (fsync + rename) before the row, so a crash never leaves a row
without its file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from ..pipeline import Report
from ..policy import Policy
from ..reasons import ReasonCode
from ..verdict import Finding, Reason, Verdict, decide, explain
from .blobs import BlobStore, PendingBlob
from .db import Database
from .dupindex import DupEntry, DuplicateIndex, HashHit, embedding_to_bytes
from .models import Household, Photo, PhotoMatch, Town, Village
from .repo import dup_entries, export_name, record_photo
from .sites import site_photo_duplicates

__all__ = ["Intake", "IntakeResult", "MatchInfo", "SceneMatcher", "Upload"]

log = logging.getLogger(__name__)

# Same-scene candidates: content embeddings at least this similar (cosine of the
# 1280-d pooled features), or photos taken within this distance, are checked
# geometrically; at most this many per upload, most similar first.
SCENE_MIN_SIMILARITY = 0.70  # developer set: same scene 0.72-0.89, unrelated <= 0.59
SCENE_MAX_METRES = 30.0
SCENE_MAX_CANDIDATES = 2  # ~25 ms each: the dominant cost of an upload with candidates


class SceneMatcher(Protocol):
    """Local features + geometric verification (``store.scenes.OrbSceneMatcher``)."""

    def features(self, grey: np.ndarray) -> bytes: ...

    def features_of_blob(self, sha256: str) -> bytes | None: ...

    def verify(self, a: bytes, b: bytes) -> dict[str, Any] | None:
        """Evidence when ``a`` and ``b`` show the same scene, else None."""
        ...


@dataclass(frozen=True)
class Upload:
    household_id: int  # households.id
    user_id: int
    report: Report
    blob: PendingBlob | None  # None for practice uploads
    capture: dict[str, Any] | None = None
    embedding: Sequence[float] | None = None  # the content model's pooled features
    practice: bool = False


@dataclass(frozen=True)
class MatchInfo:
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
            "evidence": self.evidence,
        }


@dataclass
class IntakeResult:
    household_code: str
    verdict: Verdict
    reasons: list[Reason]
    matches: list[MatchInfo] = field(default_factory=list)
    photo_id: int | None = None  # None when nothing was stored (practice)

    @property
    def retake_required(self) -> bool:
        return self.verdict is Verdict.REJECT

    def to_json(self) -> dict[str, Any]:
        return {
            "photo_id": self.photo_id,
            "household_id": self.household_code,
            "verdict": self.verdict.value,
            "reasons": [r.to_json() for r in self.reasons],
            "matches": [m.to_json() for m in self.matches],
            "retake_required": self.retake_required,
        }


class Intake:
    """Owns the duplicate index; one per process, shared by all request threads."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        policy: Policy,
        scene: SceneMatcher | None = None,
    ) -> None:
        self.db, self.blobs, self.policy, self.scene = db, blobs, policy, scene
        self.index = DuplicateIndex()

    def rebuild_index(self) -> int:
        """Load every stored photo into the index; returns how many."""
        with self.db.write_lock, self.db.session() as session:
            self.index.build(dup_entries(session))
        return len(self.index)

    def submit(
        self,
        upload: Upload,
        on_commit: Callable[[Session, IntakeResult], None] | None = None,
    ) -> IntakeResult:
        """Find duplicates, decide, store (unless practice). ``on_commit`` runs inside
        the storing transaction (the idempotency record is written there)."""
        report = upload.report
        with self.db.session() as session:
            household = _load_household(session, upload.household_id)
        lat, lon = _photo_point(report, upload.capture)
        embedding = _unit(upload.embedding)
        own = _OwnFeatures(self.scene, report)
        with self.db.write_lock, self.db.session() as session:  # a copy needs no scene check
            copied = self._same_photo_matches(session, household, report)
        scene_hits = [] if copied else self._scene_matches(household, embedding, lat, lon, own)

        blob_path = None
        if not upload.practice and upload.blob is not None:
            blob_path = self.blobs.commit(upload.blob)  # durable before its row; no lock needed
        with self.db.write() as session:
            household = _load_household(session, upload.household_id)  # fresh, in the lock
            same = self._same_photo_matches(session, household, report)
            matches = same or scene_hits
            findings = _duplicate_findings(same, scene_hits)
            if not same:  # a shared site's drone photo, used by a household not linked to it
                findings = self._site_photo_findings(session, household, report) or findings
            reasons = _merge(report.reasons, findings, self.policy)
            result = IntakeResult(
                household.household_code, decide(reasons), reasons, matches=matches
            )
            if blob_path is None:
                return result
            photo = record_photo(
                session,
                household,
                _photo_row(upload, result, blob_path, export_name(household, _fmt(report))),
                [_match_row(m) for m in matches],
            )
            photo.gps_lat, photo.gps_lon = lat, lon
            photo.scene = own.computed
            photo.embedding = embedding_to_bytes(embedding) if embedding is not None else None
            session.flush()
            result.photo_id = photo.id
            if on_commit is not None:
                on_commit(session, result)
            session.commit()
            if not same:  # a copy of another household's photo stays out (see dup_entries)
                self.index.add(_entry(photo, household, embedding))
        return result

    def _same_photo_matches(
        self, session: Session, household: Household, report: Report
    ) -> list[MatchInfo]:
        fp = report.fingerprint
        hits = self.index.same_photo(
            sha256=fp.sha256,
            pixel_sha256=fp.pixel_sha256,
            pdq_variants=fp.pdq_dihedral or ((fp.pdq,) if fp.pdq else ()),
            max_distance=self.policy.similarity.same_photo_max_distance,
        )
        return _describe(session, household, hits)

    def _site_photo_findings(
        self, session: Session, household: Household, report: Report
    ) -> list[Finding]:
        max_distance = self.policy.similarity.same_photo_max_distance
        return site_photo_duplicates(session, household, report.fingerprint, max_distance)

    def _scene_matches(
        self,
        household: Household,
        embedding: np.ndarray | None,
        lat: float | None,
        lon: float | None,
        own: _OwnFeatures,
    ) -> list[MatchInfo]:
        if self.scene is None or (embedding is None and lat is None):
            return []
        with self.db.write_lock:
            candidates = self.index.scene_candidates(
                county_id=household.county_id,
                embedding=embedding,
                lat=lat,
                lon=lon,
                min_similarity=SCENE_MIN_SIMILARITY,
                max_metres=SCENE_MAX_METRES,
                limit=SCENE_MAX_CANDIDATES * 4,
            )
        out: list[MatchInfo] = []
        with self.db.session() as session:
            others = _households(session, {c[0].household_id for c in candidates})
        checked = 0
        for entry, similarity, metres in candidates:
            other = others.get(entry.household_id)
            if other is None or not _counts_against(household, other):
                continue
            if checked >= SCENE_MAX_CANDIDATES:
                break
            checked += 1
            mine, theirs = own.get(), self._stored_features(entry)
            evidence = self.scene.verify(mine, theirs) if mine and theirs else None
            if evidence is None:
                continue
            evidence = {**evidence, "embedding_similarity": similarity, "metres": metres}
            out.append(_info("same_scene", entry.photo_id, other, None, evidence))
        return out

    def _stored_features(self, entry: DupEntry) -> bytes | None:
        """A stored photo's features: from its row, else made from its original and kept."""
        assert self.scene is not None
        with self.db.session() as session:
            cached = session.scalar(select(Photo.scene).where(Photo.id == entry.photo_id))
        if cached:
            return cached
        made = self.scene.features_of_blob(entry.sha256)
        if made is not None:
            with self.db.write() as session:
                row = session.get(Photo, entry.photo_id)
                if row is not None and row.scene is None:
                    row.scene = made  # derived data only; the record itself is unchanged
        return made


class _OwnFeatures:
    """The upload's scene features, made on first use (most uploads never need them)."""

    def __init__(self, scene: SceneMatcher | None, report: Report) -> None:
        self._scene, self._report = scene, report
        self.computed: bytes | None = None

    def get(self) -> bytes | None:
        if self.computed is None and self._scene is not None and self._report.photo is not None:
            self.computed = self._scene.features(self._report.photo.grey)
        return self.computed


def _load_household(session: Session, household_id: int) -> Household:
    household = session.scalar(
        select(Household)
        .options(joinedload(Household.village).joinedload(Village.town).joinedload(Town.county))
        .where(Household.id == household_id)
    )
    if household is None:
        msg = f"no household with id {household_id}"
        raise LookupError(msg)
    return household


def _households(session: Session, ids: set[int]) -> dict[int, Household]:
    if not ids:
        return {}
    rows = session.scalars(
        select(Household)
        .options(joinedload(Household.village).joinedload(Village.town).joinedload(Town.county))
        .where(Household.id.in_(ids))
    )
    return {h.id: h for h in rows}


def _counts_against(household: Household, other: Household) -> bool:
    """A match with ``other`` is a problem unless it is the same household (a retake)
    or both are linked to the same shared site (its drone photo is meant to be shared)."""
    if other.id == household.id:
        return False
    return not (household.site_code and household.site_code == other.site_code)


def _describe(session: Session, household: Household, hits: list[HashHit]) -> list[MatchInfo]:
    others = _households(session, {h.entry.household_id for h in hits})
    out = []
    for hit in hits:
        other = others.get(hit.entry.household_id)
        if other is None or not _counts_against(household, other):
            continue
        evidence = {"via": hit.via, "pdq_distance": hit.distance}
        out.append(_info("same_photo", hit.entry.photo_id, other, float(hit.distance), evidence))
    return out


def _info(
    relation: str, photo_id: int, other: Household, distance: float | None, evidence: dict
) -> MatchInfo:
    return MatchInfo(
        relation=relation,
        photo_id=photo_id,
        household_id=other.household_code,
        county=other.village.town.county.name,
        village=other.village.name,
        distance=distance,
        evidence=evidence,
    )


def _duplicate_findings(same: list[MatchInfo], scene: list[MatchInfo]) -> list[Finding]:
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
        return [Finding(ReasonCode.SAME_SCENE, evidence)]
    return []


def _merge(reasons: Sequence[Reason], findings: list[Finding], policy: Policy) -> list[Reason]:
    """The report's reasons plus the duplicate findings, ordered as ``explain`` does."""
    if not findings:
        return list(reasons)
    extra = explain(findings, policy)
    codes = {r.code for r in reasons}
    merged = list(reasons) + [r for r in extra if r.code not in codes]
    order = list(ReasonCode)
    return sorted(merged, key=lambda r: (r.severity.value != "reject", order.index(r.code)))


def _photo_point(
    report: Report, capture: dict[str, Any] | None
) -> tuple[float | None, float | None]:
    """Where the photo was taken: EXIF GPS, else the app's fix."""
    gps = report.metadata.gps if report.metadata else None
    if gps is not None:
        return gps.lat, gps.lon
    if capture and capture.get("lat") is not None and capture.get("lon") is not None:
        return float(capture["lat"]), float(capture["lon"])
    return None, None


def _unit(embedding: Sequence[float] | None) -> np.ndarray | None:
    if embedding is None:
        return None
    vec = np.asarray(embedding, dtype=np.float32)
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else None


def _fmt(report: Report) -> str | None:
    return report.photo.format if report.photo else report.metrics.get("format")


def _photo_row(upload: Upload, result: IntakeResult, blob_path: str, name: str) -> Photo:
    report = upload.report
    fp = report.fingerprint
    assert upload.blob is not None
    return Photo(
        sha256=fp.sha256,
        size=upload.blob.size,
        format=_fmt(report),
        blob_path=blob_path,
        export_name=name,
        verdict=result.verdict.value,
        reasons=_plain([r.to_json() for r in result.reasons]),
        metrics=_plain(report.metrics),
        exif=_plain(report.metadata.to_json()) if report.metadata else None,
        capture=_plain(upload.capture),
        pdq=fp.pdq.hex() if fp.pdq else None,
        pdq_quality=fp.pdq_quality,
        phash=f"{fp.phash:016x}" if fp.phash is not None else None,
        pixel_sha256=fp.pixel_sha256,
        uploaded_by=upload.user_id,
        policy_version=report.policy_version,
        model_version=report.model_version,
    )


def _match_row(match: MatchInfo) -> PhotoMatch:
    return PhotoMatch(
        other_photo_id=match.photo_id,
        relation=match.relation,
        distance=match.distance,
        evidence=_plain(match.evidence),
    )


def _plain(value: Any) -> Any:
    """JSON-safe copy for a JSON column (numpy scalars become numbers, others strings)."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _entry(photo: Photo, household: Household, embedding: np.ndarray | None) -> DupEntry:
    return DupEntry(
        photo_id=photo.id,
        household_id=household.id,
        county_id=household.county_id,
        site_code=household.site_code,
        pdq=bytes.fromhex(photo.pdq) if photo.pdq else None,
        embedding=embedding,
        lat=photo.gps_lat,
        lon=photo.gps_lon,
        sha256=photo.sha256,
        pixel_sha256=photo.pixel_sha256,
    )
