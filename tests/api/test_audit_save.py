"""A refresh writes only the findings that changed, and stores exactly what rewriting
every finding would: checked against the rewrite-all save it replaced, step by step
(clusters merging, a decided finding keeping its state and linked from the grown one,
a finding dropped and found again, a refresh with nothing new), on both databases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from photocheck.audit import AuditConfig, MatchRecord, PhotoRecord, VillageRecord, compute_findings
from photocheck.audit.findings import AuditFinding
from photocheck.audit.storage import CountyData, decide_finding, save_findings
from photocheck.audit.tables import AuditFindingArea, AuditFindingRow, AuditRefresh, FindingStatus
from photocheck.metadata import read_metadata
from photocheck.store import Database
from photocheck.store.models import Base, County, Role, Town, User, Village, utcnow

from .conftest import pg_schema

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CONFIG = AuditConfig()


def real_photos() -> list[PhotoRecord]:
    """One record per real photo with an EXIF GPS fix: its position and capture time."""
    out: list[PhotoRecord] = []
    for path in sorted((DATA / "exif" / "phones_gps").iterdir()):
        meta = read_metadata(path.read_bytes())
        if meta.gps is None:
            continue
        taken = meta.capture_time.local if meta.capture_time else None
        i = len(out)
        out.append(
            PhotoRecord(
                photo_id=str(i + 1),
                household_id=f"H{i}",
                village_id="1",
                town="城关镇",
                verifier="v1",
                lat=meta.gps.lat,
                lon=meta.gps.lon,
                captured_at=taken,
                uploaded_at=dt.datetime(2026, 5, 1, 8, tzinfo=dt.UTC) + dt.timedelta(minutes=i),
                verdict="review" if i % 3 == 0 else "accept",
                reasons=("NO_CAPTURE_TIME",) if i % 3 == 0 else (),
            )
        )
    return out


@contextmanager
def two_databases(kind: str, tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    with ExitStack() as stack:
        dbs = []
        for name in ("diff", "rewrite"):
            if kind == "sqlite":
                url = f"sqlite:///{tmp_path / name}.sqlite3"
            else:
                url = stack.enter_context(pg_schema())
            db = Database(url)
            stack.callback(db.dispose)
            Base.metadata.create_all(db.engine)
            with db.write() as s:
                s.add(County(id=1, name="丹凤县"))
                s.flush()
                s.add(Town(id=1, county_id=1, name="城关镇"))
                s.flush()
                s.add(Village(id=1, town_id=1, name="王家沟村", centre_lat=None, centre_lon=None))
                s.add(User(id=1, username="county", password_hash="x", role=Role.COUNTY,
                           county_id=1))  # fmt: skip
            dbs.append(db)
        yield dbs[0], dbs[1]


def rewrite_all(session: Any, data: CountyData, findings: Sequence[AuditFinding]) -> None:
    """The save this module's refresh replaced: every finding's row rewritten."""
    existing = {r.id: r for r in session.scalars(select(AuditFindingRow))}
    decided = [r for r in existing.values() if r.status != FindingStatus.OPEN]
    now = utcnow()
    for f in findings:
        row = existing.pop(f.id, None)
        if row is None:
            row = AuditFindingRow(id=f.id, county_id=1, first_seen=now, status="open")
            photos = {int(p) for p in f.photo_ids}
            earlier = sorted(
                r.id for r in decided if r.kind == f.kind.value and set(r.photo_ids) <= photos
            )
            row.earlier_ids = earlier or None
            session.add(row)
        primary = f.village_ids[0] if f.village_ids else None
        row.kind, row.severity, row.day = f.kind.value, f.severity.value, f.day
        row.village_id = int(primary) if primary else None
        row.town_id = data.town_ids.get(primary) if primary else None
        row.photo_ids = [int(p) for p in f.photo_ids]
        row.household_codes = list(f.household_ids)
        row.village_ids = [int(v) for v in f.village_ids]
        row.summary_zh, row.summary_en = f.summary_zh[:400], f.summary_en[:400]
        row.evidence, row.active, row.last_seen = f.evidence, True, now
    for row in existing.values():
        row.active = False
    session.flush()
    have = {(a.finding_id, a.village_id) for a in session.scalars(select(AuditFindingArea))}
    for f in findings:
        for v in f.village_ids:
            if (f.id, int(v)) not in have:
                session.add(AuditFindingArea(finding_id=f.id, village_id=int(v), town_id=1))


def stored(db: Database) -> dict[str, Any]:
    """Everything a refresh stores but the times it was written at."""
    skip = {"first_seen", "last_seen", "decided_at"}
    with db.session() as s:
        rows = {
            r.id: {c.name: getattr(r, c.name) for c in r.__table__.columns if c.name not in skip}
            for r in s.scalars(select(AuditFindingRow))
        }
        areas = sorted((a.finding_id, a.village_id, a.town_id)
                       for a in s.scalars(select(AuditFindingArea)))  # fmt: skip
        state = s.get(AuditRefresh, 1)
        return {"rows": rows, "areas": areas, "state": state and (state.photos, state.findings)}


def written(db: Database) -> dict[str, Any]:
    """When each finding row was last written."""
    with db.session() as s:
        return {r.id: r.last_seen for r in s.scalars(select(AuditFindingRow))}


def match(a: int, b: int, relation: str = "same_scene") -> MatchRecord:
    evidence = {"inliers": 40 + a, "pairs": [a, b]}
    return MatchRecord(str(a), str(b), relation, 0.1 * (a + b), evidence)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_saving_only_what_changed_stores_what_rewriting_everything_does(
    kind: str, tmp_path: Path
) -> None:
    photos = real_photos()
    assert len(photos) >= 8, "the test needs 8 real photos with GPS"
    villages = [VillageRecord("1", "王家沟村", "城关镇", photos[0].lat, photos[0].lon)]
    merged = [match(1, 2), match(3, 4), match(2, 3)]
    copied = [*merged, match(5, 7, "same_photo")]
    retaken = [replace(p, is_current=p.photo_id != "1") for p in photos[:8]]
    steps: list[tuple[list[PhotoRecord], list[MatchRecord]]] = [
        (photos[:6], [match(1, 2), match(3, 4)]),  # two clusters
        (photos[:8], merged),  # ... merged into one
        (photos[:8], copied),
        (retaken, copied),  # photo 1 no longer current: its photo finding goes
        (photos[:8], copied),  # ... and comes back
        (photos, copied),
        (photos, copied),  # nothing new
    ]
    with two_databases(kind, tmp_path) as (diff, rewrite):
        seen_kinds: set[str] = set()
        before: dict[str, Any] = {}
        for n, (records, matches) in enumerate(steps):
            data = CountyData(photos=records, villages=villages, matches=matches,
                              town_ids={"1": 1})  # fmt: skip
            findings = compute_findings(records, villages, matches, CONFIG)
            seen_kinds |= {f.kind.value for f in findings}
            with diff.write() as s:
                result = save_findings(s, 1, data, findings)
            with rewrite.write() as s:
                rewrite_all(s, data, findings)
                state = s.get(AuditRefresh, 1) or AuditRefresh(county_id=1)
                state.photos, state.findings = len(records), len(findings)
                s.add(state)
            if n == 0:  # a county user decides the two clusters
                for db in (diff, rewrite):
                    with db.write() as s:
                        clusters = s.scalars(select(AuditFindingRow).where(
                            AuditFindingRow.kind == "duplicate_cluster").order_by(
                            AuditFindingRow.id)).all()  # fmt: skip
                        assert len(clusters) == 2
                        decide_finding(s, clusters[0], 1, "confirm", None)
                        decide_finding(s, clusters[1], 1, "dismiss", "two brothers' houses")
            assert stored(diff) == stored(rewrite), f"step {n}"
            if n == len(steps) - 1:  # the same data again: nothing is written
                assert result.added == 0 and result.deactivated == 0
                assert written(diff) == before
            before = written(diff)
        final = stored(diff)["rows"]
    assert {"duplicate_cluster", "photo_reason"} <= seen_kinds
    statuses = sorted(r["status"] for r in final.values() if r["kind"] == "duplicate_cluster")
    assert statuses.count("confirmed") == 1 and statuses.count("dismissed") == 1
    grown = [r for r in final.values() if r["earlier_ids"] and r["active"]]
    assert grown and len(grown[0]["earlier_ids"]) == 2  # the merged cluster links both
    assert any(not r["active"] for r in final.values())  # the decided ones, no longer found
