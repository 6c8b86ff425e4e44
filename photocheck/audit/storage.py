"""The audit over the store: tables -> records, findings -> rows, decisions -> trail.

Functions take a SQLAlchemy session and never commit: the caller owns the transaction
(the API writes inside ``Database.write()``). Reading and computing happen outside the
write lock; only the final save takes it. Every query is scoped to one county: a
multi-county deployment never mixes one county's households into another's findings.

A refresh is ``load_county`` -> ``fill_legacy_thumbnails`` -> ``compute_findings`` ->
``save_findings``. The save marks every photo it covered (``audit_photo_checks``), so
"a county photo without a mark" is exactly "a photo the findings do not include yet".
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from typing import cast as cast_type

from sqlalchemy import (
    Table,
    Text,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, aliased

from ..decode import decode
from ..errors import DecodeError
from ..metadata import read_metadata
from ..store.db import Database
from ..store.models import Household, Photo, PhotoMatch, Town, User, Village, utcnow
from .findings import AuditFinding
from .records import (
    CHINA_TZ,
    AppCapture,
    HouseholdRecord,
    MatchRecord,
    PhotoRecord,
    ThumbnailCheck,
    VillageRecord,
)
from .tables import (
    AuditEvent,
    AuditFindingArea,
    AuditFindingRow,
    AuditPhotoCheck,
    AuditRefresh,
    FindingStatus,
)
from .thumbnail import compare_thumbnail, thumbnail_check_from_metrics

__all__ = [
    "ACTIONS",
    "CountyData",
    "DecisionError",
    "RefreshResult",
    "claim_refresh",
    "counties_with_pending",
    "decide_finding",
    "earlier_findings",
    "fill_legacy_thumbnails",
    "finding_in_town",
    "last_refreshes",
    "load_county",
    "load_progress",
    "pending_photos",
    "query_findings",
    "refresh_state",
    "save_findings",
]

ACTIONS = {
    "confirm": FindingStatus.CONFIRMED,
    "dismiss": FindingStatus.DISMISSED,
    "reopen": FindingStatus.OPEN,
}
APP_CAMERA = "app_camera"  # the capture JSON's ``source`` when the app's camera took it


class DecisionError(ValueError):
    """A decision that cannot be recorded (unknown action, missing note)."""


@dataclass
class CountyData:
    photos: list[PhotoRecord] = field(default_factory=list)
    villages: list[VillageRecord] = field(default_factory=list)
    households: list[HouseholdRecord] = field(default_factory=list)
    matches: list[MatchRecord] = field(default_factory=list)
    town_ids: dict[str, int] = field(default_factory=dict)  # village_id -> town id
    blob_paths: dict[str, str] = field(default_factory=dict)  # photo_id -> blob path
    # photos no refresh has covered yet -> their legacy thumbnail result (None if none)
    unchecked: dict[str, ThumbnailCheck | None] = field(default_factory=dict)
    # photos stored before uploads compared thumbnails and never compared since
    legacy: list[str] = field(default_factory=list)


def _local(value: Any) -> dt.datetime | None:
    """An ISO time from JSON as naive China local time (aware values are converted)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t.astimezone(CHINA_TZ).replace(tzinfo=None) if t.tzinfo else t


def _camera(exif: dict[str, Any] | None) -> tuple[float | None, float | None, Any, bool]:
    if not exif:
        return None, None, None, False
    gps = exif.get("gps") or {}
    ct = exif.get("capture_time") or {}
    taken = _local(ct.get("local")) if isinstance(ct, dict) else None
    if taken is not None and isinstance(ct, dict) and ct.get("offset"):
        taken = _local(ct["local"] + ct["offset"]) or taken
    has = bool(exif.get("has_exif")) and bool(exif.get("make") or exif.get("model") or taken)
    return gps.get("lat"), gps.get("lon"), taken, has


def _app(capture: dict[str, Any] | None) -> AppCapture | None:
    """The app's capture JSON. Only ``"source": "app_camera"`` says the app's own camera
    took the photo; without a source (older apps) the audit does not assume it."""
    if not capture:
        return None
    source = capture.get("source")
    return AppCapture(
        in_app=source == APP_CAMERA,
        lat=capture.get("lat"),
        lon=capture.get("lon"),
        captured_at=_local(capture.get("device_time")),
        device_id=capture.get("device_id"),
        source=source if isinstance(source, str) else None,
    )


def _codes(reasons: Iterable[Any] | None) -> tuple[str, ...]:
    out = []
    for r in reasons or ():
        code = r.get("code") if isinstance(r, dict) else r
        if isinstance(code, str):
            out.append(code)
    return tuple(out)


def _villages(session: Session, county_id: int, data: CountyData) -> None:
    for v, t in session.execute(
        select(Village, Town)
        .join(Town, Village.town_id == Town.id)
        .where(Town.county_id == county_id)
    ):
        data.villages.append(VillageRecord(str(v.id), v.name, t.name, v.centre_lat, v.centre_lon))
        data.town_ids[str(v.id)] = t.id


def _thumbnail(
    data: CountyData, pid: str, metrics: Any, exif: Any, check: tuple[Any, ...]
) -> ThumbnailCheck | None:
    """Upload-time comparison from the metrics; else an earlier audit's; else legacy."""
    compared, result = thumbnail_check_from_metrics(metrics if isinstance(metrics, dict) else None)
    checked, corr, mad, matches = check
    if compared:
        return result
    if checked is not None:
        return ThumbnailCheck(corr or 0.0, mad or 0.0, matches) if matches is not None else None
    if (exif or {}).get("has_thumbnail"):
        data.legacy.append(pid)
    return None


def load_county(session: Session, county_id: int) -> CountyData:
    """Everything the audit needs about one county, as plain records (only its columns:
    scene features and embeddings stay in the database)."""
    data = CountyData()
    _villages(session, county_id, data)
    vmap = {v.village_id: v for v in data.villages}
    json = _JSON_TEXTS.loads
    columns = (
        Photo.id, Photo.blob_path, Photo.uploaded_at, Photo.verdict, cast(Photo.reasons, Text),
        cast(Photo.metrics, Text), cast(Photo.exif, Text), cast(Photo.capture, Text),
        Photo.gps_lat, Photo.gps_lon,
        Photo.is_current, Household.id, Household.household_code, Household.head_name,
        Household.village_id, User.username, Photo.sha256, Photo.pixel_sha256,
        AuditPhotoCheck.photo_id,
        AuditPhotoCheck.thumbnail_correlation, AuditPhotoCheck.thumbnail_mad,
        AuditPhotoCheck.thumbnail_matches,
    )  # fmt: skip
    rows: Iterable[Any] = session.execute(
        select(*columns)
        .join(Household, Photo.household_id == Household.id)
        .join(User, Photo.uploaded_by == User.id)
        .outerjoin(AuditPhotoCheck, AuditPhotoCheck.photo_id == Photo.id)
        .where(Household.county_id == county_id)
        .order_by(Photo.id)
    )
    uploads: dict[int, list[tuple[dt.datetime, str]]] = {}
    copies: dict[str, list[str]] = {}  # sha256 / pixel hash -> photos
    for (photo_id, blob_path, uploaded_at, verdict, reasons, metrics, exif, capture, gps_lat,
         gps_lon, is_current, hh_id, code, head, village_id, username, sha, pixel_sha,
         *check) in rows:  # fmt: skip
        pid = str(photo_id)
        reasons, metrics, exif, capture = json(reasons), json(metrics), json(exif), json(capture)
        lat, lon, taken, has_camera = _camera(exif)
        if lat is None and gps_lat is not None and not capture:
            lat, lon = gps_lat, gps_lon
        village = vmap.get(str(village_id))
        data.photos.append(
            PhotoRecord(
                photo_id=pid,
                household_id=code,
                village_id=str(village_id),
                town=village.town if village else "",
                verifier=username,
                lat=lat,
                lon=lon,
                captured_at=taken,
                uploaded_at=uploaded_at,
                verdict=verdict,
                reasons=_codes(reasons),
                has_camera_metadata=has_camera,
                app=_app(capture),
                thumbnail=_thumbnail(data, pid, metrics, exif, tuple(check)),
                is_current=is_current,
                head_name=head,
                village_name=village.name if village else "",
            )
        )
        for key in {sha, pixel_sha} - {None}:
            copies.setdefault(key, []).append(pid)
        if check[0] is None:
            data.unchecked[pid] = None
        data.blob_paths[pid] = blob_path
        uploads.setdefault(hh_id, []).append((uploaded_at, verdict))
    for hid, code, vid in session.execute(
        select(Household.id, Household.household_code, Household.village_id).where(
            Household.county_id == county_id
        )
    ):
        data.households.append(HouseholdRecord(code, str(vid), tuple(uploads.get(hid, ()))))
    data.matches = list(_county_matches(session, county_id))
    # pairs the index does not store, made here: byte- or pixel-identical photos, and
    # copies of one photo of another county (``_made_pairs``)
    data.matches.extend(_made_pairs(copies, data.matches, "identical", 0.0))
    outside: dict[Any, list[str]] = {}  # by the other county's photo
    for copy_id, holder in session.execute(_OUTSIDE_COPIES, {"county": county_id}):
        if str(copy_id) not in (group := outside.setdefault(holder, [])):
            group.append(str(copy_id))
    data.matches.extend(_made_pairs(outside, data.matches, "another_county", None))
    return data


def _made_pairs(
    groups: dict[Any, list[str]], matches: list[MatchRecord], via: str, distance: float | None
) -> Iterator[MatchRecord]:
    """Each group's photos paired with its first, where no match links them yet.

    The index records a copy against its first holder only, which may be another
    county's photo (or a rejected one), so two copies inside this county can lack a
    pair and the county's audit would lose their cluster. Groups: photos with the same
    bytes or pixels (``identical``), and photos matched with one photo of another
    county (``another_county``: the holder is not named, it is that county's business;
    no distance, the two were never compared with each other)."""
    linked = {(m.photo_id, m.other_photo_id) for m in matches}
    linked |= {(b, a) for a, b in linked}
    for group in groups.values():
        first = group[0]
        for other in group[1:]:
            if (other, first) not in linked:
                linked |= {(other, first), (first, other)}
                yield MatchRecord(other, first, "same_photo", distance, {"via": via})


def _county_matches(session: Session, county_id: int) -> Iterator[MatchRecord]:
    """Match rows whose two photos both belong to the county (a copy of another
    county's photo is that county's business, and its households are not shown here)."""
    rows: Iterable[Any] = session.execute(_COUNTY_MATCHES, {"county": county_id})
    for pid, other, relation, distance, evidence in rows:
        yield MatchRecord(str(pid), str(other), relation, distance, _JSON_TEXTS.loads(evidence))


def _matches_query(*columns: Any, same_county: bool) -> Any:
    """Match rows whose first photo is the county's, the other one in the county too or
    not. Built once: the aliases' column lookups cost more than the query itself."""
    a, b = aliased(Photo), aliased(Photo)
    ha, hb = aliased(Household), aliased(Household)
    county: Any = bindparam("county")
    other = hb.county_id == county if same_county else hb.county_id != county
    return (
        select(*columns)
        .join(a, PhotoMatch.photo_id == a.id)
        .join(ha, a.household_id == ha.id)
        .join(b, PhotoMatch.other_photo_id == b.id)
        .join(hb, b.household_id == hb.id)
        .where(ha.county_id == county, other)
    )


_COUNTY_MATCHES = _matches_query(
    PhotoMatch.photo_id, PhotoMatch.other_photo_id, PhotoMatch.relation, PhotoMatch.distance,
    cast(PhotoMatch.evidence, Text), same_county=True,
)  # fmt: skip
# (photo of the county, the other county's photo it copies), oldest photo first
_OUTSIDE_COPIES = (
    _matches_query(PhotoMatch.photo_id, PhotoMatch.other_photo_id, same_county=False)
    .where(PhotoMatch.relation == "same_photo")
    .order_by(PhotoMatch.photo_id)
)


class _JsonTexts:
    """Decoded JSON by its stored text, kept between refreshes: a refresh reads every
    photo's and match's JSON of the county, and nearly all of it is what the last refresh
    decoded. The text is the key, so a changed value is decoded again (and values of
    other databases in the same process cannot be confused). Values are shared: read only.
    Bounded by the characters held; when full it starts again (a county larger than the
    bound decodes as before)."""

    def __init__(self, max_chars: int = 32_000_000) -> None:
        self.max_chars = max_chars
        self._values: dict[str, Any] = {}
        self._chars = 0
        self._lock = threading.Lock()

    def loads(self, raw: str | None) -> Any:
        if raw is None:
            return None
        try:
            return self._values[raw]
        except KeyError:
            pass
        value = json.loads(raw)
        with self._lock:
            if self._chars + len(raw) > self.max_chars:
                self._values, self._chars = {}, 0
            if len(raw) <= self.max_chars:
                self._values[raw] = value
                self._chars += len(raw)
        return value


_JSON_TEXTS = _JsonTexts()


def fill_legacy_thumbnails(
    data: CountyData,
    read_blob: Callable[[str], bytes | None],
    *,
    max_pixels: int,
    progress: Callable[[list[str]], Iterable[str]] = lambda ids: ids,
) -> int:
    """Compare the EXIF thumbnail of photos stored before uploads did it (decoding each
    once, ever: the result is kept with the photo's audit mark); returns how many."""
    if not data.legacy:
        return 0
    index = {p.photo_id: i for i, p in enumerate(data.photos)}
    for pid in progress(list(data.legacy)):
        blob = read_blob(data.blob_paths[pid])
        thumb = read_metadata(blob).thumbnail if blob else None
        result = None
        if blob and thumb:
            try:
                result = compare_thumbnail(thumb, decode(blob, max_pixels=max_pixels))
            except DecodeError:
                result = None
        i = index[pid]
        data.photos[i] = replace(data.photos[i], thumbnail=result)
        data.unchecked[pid] = result
    n = len(data.legacy)
    data.legacy = []
    return n


def load_progress(session: Session, county_id: int) -> CountyData:
    """Only what the progress table needs: villages, households and upload verdicts."""
    data = CountyData()
    for v, t in session.execute(
        select(Village, Town)
        .join(Town, Village.town_id == Town.id)
        .where(Town.county_id == county_id)
    ):
        data.villages.append(VillageRecord(str(v.id), v.name, t.name, v.centre_lat, v.centre_lon))
        data.town_ids[str(v.id)] = t.id
    uploads: dict[int, list[tuple[dt.datetime, str]]] = {}
    for hid, when, verdict in session.execute(
        select(Photo.household_id, Photo.uploaded_at, Photo.verdict)
        .join(Household, Photo.household_id == Household.id)
        .where(Household.county_id == county_id)
    ):
        uploads.setdefault(hid, []).append((when, verdict))
    for hid, code, vid in session.execute(
        select(Household.id, Household.household_code, Household.village_id).where(
            Household.county_id == county_id
        )
    ):
        data.households.append(HouseholdRecord(code, str(vid), tuple(uploads.get(hid, ()))))
    return data


@dataclass(frozen=True)
class RefreshResult:
    added: int
    updated: int
    deactivated: int
    total_active: int
    linked: int = 0  # new findings linked to earlier decided ones


def _lock_county(session: Session, county_id: int) -> None:
    """Serialise saves of one county across processes: a PostgreSQL advisory lock, or
    SQLite's write lock taken by a first (no-op) write before anything is read."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(5, :c)"), {"c": county_id})
    else:
        session.execute(
            text("UPDATE audit_refreshes SET seconds = seconds WHERE county_id = :c"),
            {"c": county_id},
        )


def _mark_covered(session: Session, county_id: int, data: CountyData) -> None:
    if not data.unchecked:
        return
    done = set(
        session.scalars(
            select(AuditPhotoCheck.photo_id)
            .join(Photo, AuditPhotoCheck.photo_id == Photo.id)
            .join(Household, Photo.household_id == Household.id)
            .where(Household.county_id == county_id)
        )
    )
    now = utcnow()
    rows = [
        {
            "photo_id": int(pid),
            "thumbnail_correlation": r.correlation if r else None,
            "thumbnail_mad": r.mean_abs_diff if r else None,
            "thumbnail_matches": r.matches if r else None,
            "checked_at": now,
        }
        for pid, r in data.unchecked.items()
        if int(pid) not in done
    ]
    for i in range(0, len(rows), 5000):
        session.execute(insert(AuditPhotoCheck), rows[i : i + 5000])


def _earlier_decided(
    decided: Sequence[AuditFindingRow], f: AuditFinding, by_photo: dict[int, list[AuditFindingRow]]
) -> list[str]:
    """Decided findings of the same kind whose photos are all in ``f``."""
    photos = {int(p) for p in f.photo_ids}
    out: dict[str, None] = {}
    for p in photos:
        for row in by_photo.get(p, ()):
            if row.kind == f.kind.value and row.id != f.id and set(row.photo_ids) <= photos:
                out[row.id] = None
    return sorted(out)


def _save_areas(
    session: Session, county_id: int, data: CountyData, findings: Sequence[AuditFinding]
) -> None:
    """Keep ``audit_finding_areas`` equal to the villages each finding touches."""
    have: dict[str, set[int]] = {}
    for fid, vid in session.execute(
        select(AuditFindingArea.finding_id, AuditFindingArea.village_id)
        .join(AuditFindingRow, AuditFindingArea.finding_id == AuditFindingRow.id)
        .where(AuditFindingRow.county_id == county_id)
    ):
        have.setdefault(fid, set()).add(vid)
    add: list[dict[str, Any]] = []
    for f in findings:
        want = {int(v) for v in f.village_ids if v in data.town_ids}
        old = have.get(f.id)
        if old == want:
            continue
        if old is not None:
            session.execute(delete(AuditFindingArea).where(AuditFindingArea.finding_id == f.id))
        add.extend(
            {"finding_id": f.id, "village_id": v, "town_id": data.town_ids[str(v)]} for v in want
        )
    for i in range(0, len(add), 5000):
        session.execute(insert(AuditFindingArea), add[i : i + 5000])


_CONTENT: tuple[str, ...] = ("kind", "severity", "day", "village_id", "town_id", "photo_ids",
            "household_codes", "village_ids", "summary_zh", "summary_en", "evidence")  # fmt: skip
_JSON_CONTENT = frozenset({"photo_ids", "household_codes", "village_ids", "evidence"})
_EVIDENCE = _CONTENT.index("evidence")
_FINDINGS = cast_type(Table, AuditFindingRow.__table__)
_INSERT_FINDING = insert(_FINDINGS)
_UPDATE_FINDING = (
    update(_FINDINGS)
    .where(_FINDINGS.c.id == bindparam("fid"))
    .values({c: bindparam(c) for c in (*_CONTENT, "active", "last_seen")})
)
_DEACTIVATE = (
    update(_FINDINGS)
    .where(_FINDINGS.c.id == bindparam("fid"))
    .values(active=False, last_seen=bindparam("seen"))
)


def _stored_findings(session: Session, county_id: int) -> dict[str, tuple[Any, ...]]:
    """The county's finding rows as (status, active, content...), the JSON columns as
    their stored text, but the evidence decoded (``_JSON_TEXTS``: the same text as last
    time is not decoded again): an unchanged finding is told without encoding its
    evidence again, the costly part (a cluster's holds its matches' inlier points)."""
    c = _FINDINGS.c
    cols = [cast(c[n], Text) if n in _JSON_CONTENT else c[n] for n in _CONTENT]
    q = select(c.id, c.status, c.active, *cols).where(c.county_id == county_id)
    out = {}
    at = 2 + _EVIDENCE
    for row in session.execute(q):
        rest = list(row[1:])
        rest[at] = _JSON_TEXTS.loads(rest[at])
        out[row[0]] = tuple(rest)
    return out


def _content(
    f: AuditFinding, data: CountyData, dumps: Callable[[Any], str]
) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """A finding's row values, and the same as ``_stored_findings`` gives them (JSON
    columns as their text, the evidence as it is: compared equal as JSON values)."""
    primary = f.village_ids[0] if f.village_ids else None
    values: dict[str, Any] = {
        "kind": f.kind.value,
        "severity": f.severity.value,
        "day": f.day,
        "village_id": int(primary) if primary else None,
        "town_id": data.town_ids.get(primary) if primary else None,
        "photo_ids": [int(p) for p in f.photo_ids],
        "household_codes": list(f.household_ids),
        "village_ids": [int(v) for v in f.village_ids],
        "summary_zh": f.summary_zh[:400],
        "summary_en": f.summary_en[:400],
        "evidence": f.evidence,
    }
    stored = tuple(
        dumps(values[n]) if n in _JSON_CONTENT and n != "evidence" else values[n] for n in _CONTENT
    )
    return values, stored


def _decided(session: Session, stored: dict[str, tuple[Any, ...]]) -> list[AuditFindingRow]:
    ids = [fid for fid, row in stored.items() if row[0] != FindingStatus.OPEN]
    if not ids:
        return []
    return list(session.scalars(select(AuditFindingRow).where(AuditFindingRow.id.in_(ids))))


def save_findings(
    session: Session,
    county_id: int,
    data: CountyData,
    findings: Sequence[AuditFinding],
    *,
    seconds: float = 0.0,
) -> RefreshResult:
    """Upsert the county's findings by their stable IDs, their areas, the photos they
    cover and the refresh time. Decisions are never touched; a new finding that
    contains every photo of a decided one is linked to it (``earlier_ids``).

    Only rows that change are written, and stored findings are compared without the
    ORM (their small JSON columns as text, the evidence decoded once per stored text):
    a refresh after one upload rewrites the few findings that upload touched, not the
    county's. So ``last_seen`` of an active finding is the last
    refresh that changed it (the county's ``computed_at`` says it is still seen); a
    finding no longer found gets the time of the last refresh that found it.
    """
    _lock_county(session, county_id)
    dumps = session.get_bind().dialect._json_serializer or json.dumps
    stored = _stored_findings(session, county_id)
    decided = _decided(session, stored)
    by_photo: dict[int, list[AuditFindingRow]] = {}
    for r in decided:
        for p in r.photo_ids:
            by_photo.setdefault(int(p), []).append(r)
    state = session.get(AuditRefresh, county_id)
    previous = state.computed_at if state is not None else None
    now, added, updated, linked = utcnow(), 0, 0, 0
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for f in findings:
        values, text_now = _content(f, data, dumps)
        row = stored.pop(f.id, None)
        if row is None:
            earlier = _earlier_decided(decided, f, by_photo)
            linked += bool(earlier)
            inserts.append({**values, "id": f.id, "county_id": county_id, "first_seen": now,
                            "last_seen": now, "status": FindingStatus.OPEN.value,
                            "active": True, "earlier_ids": earlier or None})  # fmt: skip
            added += 1
            continue
        updated += 1
        if row[1] and row[2:] == text_now:
            continue  # active and unchanged: nothing to write
        updates.append({**values, "fid": f.id, "active": True, "last_seen": now})
    gone = [
        {"fid": fid, "seen": previous or now} for fid, row in stored.items() if row[1]
    ]  # still active, no longer found
    for stmt, rows in ((_INSERT_FINDING, inserts), (_UPDATE_FINDING, updates), (_DEACTIVATE, gone)):
        for i in range(0, len(rows), 5000):
            session.execute(stmt, rows[i : i + 5000])
    _save_areas(session, county_id, data, findings)
    _mark_covered(session, county_id, data)
    if state is None:
        state = AuditRefresh(county_id=county_id)
        session.add(state)
    state.computed_at, state.photos = now, len(data.photos)
    state.findings, state.seconds = len(findings), round(seconds, 3)
    return RefreshResult(added, updated, len(gone), len(findings), linked)


def pending_photos(session: Session, county_id: int) -> int:
    """Photos of the county that the stored findings do not include yet."""
    q = (
        select(func.count(Photo.id))
        .join(Household, Photo.household_id == Household.id)
        .where(Household.county_id == county_id)
        .where(~exists().where(AuditPhotoCheck.photo_id == Photo.id))
    )
    return session.scalar(q) or 0


class _PendingFloor:
    """Per database: a photo id below which every photo is included in the findings.

    Every background refresh pass asks which counties have pending photos; asked of
    every photo that is an anti-join over the whole table (25 M rows nationally), every
    few seconds in every process. A photo once included stays included, so only photos
    above the lowest pending one seen last time need looking at. ``MARGIN`` ids below it
    are looked at again: a photo whose id was drawn before the last look may commit
    after it (PostgreSQL's sequence), and 10,000 ids is over a minute of the national
    peak, far longer than an upload's transaction.
    """

    MARGIN = 10_000

    def __init__(self) -> None:
        self._floor: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> int:
        with self._lock:
            return self._floor.get(key, 0)

    def reset(self, key: str) -> int:
        with self._lock:
            self._floor.pop(key, None)
        return 0

    def raise_to(self, key: str, floor: int) -> None:
        with self._lock:
            self._floor[key] = max(self._floor.get(key, 0), floor)


_PENDING_FLOOR = _PendingFloor()


def counties_with_pending(session: Session) -> list[int]:
    """Counties with photos the findings do not include yet."""
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    newest = session.scalar(select(func.max(Photo.id))) or 0
    floor = _PENDING_FLOOR.get(key)
    if newest < floor:  # the database was emptied or restored from an older backup
        floor = _PENDING_FLOOR.reset(key)
    rows = session.execute(
        select(Photo.id, Household.county_id)
        .join(Household, Photo.household_id == Household.id)
        .where(Photo.id > floor, ~exists().where(AuditPhotoCheck.photo_id == Photo.id))
    ).all()
    lowest = min((photo_id for photo_id, _ in rows), default=newest + 1)
    _PENDING_FLOOR.raise_to(key, lowest - _PendingFloor.MARGIN)
    return sorted({county_id for _, county_id in rows})


def last_refreshes(session: Session, counties: Iterable[int]) -> dict[int, AuditRefresh]:
    """The counties' last refreshes (when, how long), by county."""
    ids = list(counties)
    if not ids:
        return {}
    rows = session.scalars(select(AuditRefresh).where(AuditRefresh.county_id.in_(ids)))
    return {r.county_id: r for r in rows}


@contextmanager
def claim_refresh(db: Database, county_id: int) -> Iterator[bool]:
    """True while this process alone refreshes the county (a PostgreSQL advisory lock
    held for the refresh, taken without waiting); False if another process holds it.
    SQLite: one process, whose refreshes are already one at a time."""
    if db.dialect != "postgresql":
        yield True
        return
    with db.engine.connect() as conn:
        key = {"c": county_id}
        claimed = bool(conn.scalar(text("SELECT pg_try_advisory_lock(6, :c)"), key))
        conn.commit()
        try:
            yield claimed
        finally:
            if claimed:
                conn.execute(text("SELECT pg_advisory_unlock(6, :c)"), key)
                conn.commit()


def refresh_state(session: Session, county_id: int) -> AuditRefresh | None:
    return session.get(AuditRefresh, county_id)


def finding_in_town(session: Session, finding_id: str, town_id: int) -> bool:
    """Does any photo of the finding lie in the town?"""
    q = select(AuditFindingArea.finding_id).where(
        AuditFindingArea.finding_id == finding_id, AuditFindingArea.town_id == town_id
    )
    return bool(session.scalar(select(exists(q))))


def earlier_findings(
    session: Session, row: AuditFindingRow, *, depth: int = 5
) -> list[AuditFindingRow]:
    """The decided findings this one grew from, nearest first (followed ``depth`` links)."""
    out: list[AuditFindingRow] = []
    seen = {row.id}
    frontier = list(row.earlier_ids or ())
    for _ in range(depth):
        rows = [
            r
            for r in session.scalars(
                select(AuditFindingRow).where(
                    AuditFindingRow.id.in_([i for i in frontier if i not in seen]),
                    AuditFindingRow.county_id == row.county_id,
                )
            )
        ]
        if not rows:
            break
        out.extend(sorted(rows, key=lambda r: r.decided_at or r.first_seen, reverse=True))
        seen.update(r.id for r in rows)
        frontier = [i for r in rows for i in (r.earlier_ids or ())]
    return out


def query_findings(
    session: Session,
    county_id: int,
    *,
    town_id: int | None = None,
    village_id: int | None = None,
    kind: str | None = None,
    status: str | None = None,
    day: dt.date | None = None,
    active_only: bool = True,
    limit: int = 200,
    offset: int = 0,
) -> tuple[int, list[AuditFindingRow]]:
    """(total matching, one page), high severity first, then newest day.

    ``town_id`` / ``village_id`` match a finding when any of its photos is there."""
    from sqlalchemy import case

    q = select(AuditFindingRow).where(AuditFindingRow.county_id == county_id)
    if active_only:
        q = q.where(AuditFindingRow.active.is_(True))
    for column, value in (
        (AuditFindingArea.town_id, town_id),
        (AuditFindingArea.village_id, village_id),
    ):
        if value is not None:  # any photo of the finding in the town / village
            q = q.where(AuditFindingRow.id.in_(select(AuditFindingArea.finding_id).where(
                column == value)))  # fmt: skip
    exact: tuple[tuple[Any, Any], ...] = (
        (AuditFindingRow.kind, kind),
        (AuditFindingRow.status, status),
        (AuditFindingRow.day, day),
    )
    for column, value in exact:
        if value is not None:
            q = q.where(column == value)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    order = case({"high": 0, "medium": 1, "low": 2}, value=AuditFindingRow.severity, else_=3)
    page = session.scalars(
        q.order_by(order, AuditFindingRow.day.desc(), AuditFindingRow.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return total, list(page)


def decide_finding(
    session: Session, row: AuditFindingRow, user_id: int, action: str, note: str | None
) -> AuditEvent:
    """Record a decision on the finding and append it to the audit trail.

    :exception DecisionError: unknown action, or a dismissal without a note (whoever
        clears a suspicion must say why).
    """
    if action not in ACTIONS:
        msg = f"action must be one of {', '.join(ACTIONS)}, got {action!r}"
        raise DecisionError(msg)
    note = (note or "").strip() or None
    if action == "dismiss" and note is None:
        msg = "a dismissal needs a note saying why the finding is not a problem"
        raise DecisionError(msg)
    now = utcnow()
    event = AuditEvent(
        finding_id=row.id,
        user_id=user_id,
        action=action,
        status_before=row.status,
        status_after=ACTIONS[action].value,
        note=note,
        at=now,
    )
    row.status, row.note = ACTIONS[action].value, note
    row.decided_by, row.decided_at = user_id, now
    session.add(event)
    return event
