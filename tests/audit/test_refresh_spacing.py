"""Background refreshes are spaced by their cost, whichever process ran the last one
(``audit.refresh.refresh_due``), one process at a time per county; a county whose
matches changed after the answer is refreshed once more, and only once. Both
databases: the spacing and the claim are read from and taken in the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from photocheck.audit.refresh import refresh_due, refresh_wait, stale_since
from photocheck.audit.storage import claim_refresh
from photocheck.audit.tables import AuditRefresh
from photocheck.store import Database
from photocheck.store.models import Base, County, Household, Photo, Role, Town, User, Village

from ..api.conftest import pg_schema

NOW = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC)


def test_the_wait_grows_with_the_last_refresh() -> None:
    cheap = AuditRefresh(county_id=1, computed_at=NOW, seconds=0.1)
    costly = AuditRefresh(county_id=1, computed_at=NOW, seconds=10.0)
    assert refresh_wait(None, NOW, 30) == 0  # never refreshed: now
    assert refresh_wait(cheap, NOW, 30) == pytest.approx(3.0)
    assert refresh_wait(costly, NOW, 30) == pytest.approx(300.0)
    assert refresh_wait(costly, NOW + dt.timedelta(seconds=299), 30) == pytest.approx(1.0)
    assert refresh_wait(costly, NOW + dt.timedelta(seconds=301), 30) == 0
    assert refresh_wait(costly, NOW, 0) == 0  # spacing off


def test_stale_until_a_refresh_started_after_the_change() -> None:
    last = AuditRefresh(county_id=1, computed_at=NOW, seconds=10.0)  # ran 07:59:50-08:00
    assert stale_since(None, NOW)
    assert not stale_since(last, NOW - dt.timedelta(seconds=11))
    assert stale_since(last, NOW - dt.timedelta(seconds=5))  # it may have read before


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Two counties: A with a photo the findings do not include, B with none."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
        database = Database(url)
        yield from _filled(database)
    else:
        with pg_schema() as url:
            yield from _filled(Database(url))


# county ids no other test uses: PostgreSQL's advisory locks span the database's schemas
A, B = 9001, 9002


def _filled(db: Database) -> Iterator[Database]:
    Base.metadata.create_all(db.engine)
    with db.write() as s:
        for c in (A, B):
            s.add(County(id=c, name=f"县{c}"))
            s.flush()
            s.add(Town(id=c, county_id=c, name="镇"))
            s.flush()
            s.add(Village(id=c, town_id=c, name="村"))
            s.add(User(id=c, username=f"u{c}", password_hash="x", role=Role.COUNTY, county_id=c))
            s.flush()
            s.add(Household(id=c, county_id=c, household_code=f"H{c}", head_name="某",
                            village_id=c, category="appraised"))  # fmt: skip
        s.flush()
        s.add(Photo(household_id=A, sha256="0" * 64, size=1, format="JPEG", blob_path="b",
                    export_name="x.jpg", verdict="accept", reasons=[], metrics={},
                    uploaded_by=A, policy_version="p", model_version="m"))  # fmt: skip
    try:
        yield db
    finally:
        db.dispose()


def _last(db: Database, county: int, ago_s: float, seconds: float) -> None:
    with db.write() as s:
        s.merge(
            AuditRefresh(
                county_id=county,
                computed_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=ago_s),
                seconds=seconds,
            )
        )


def test_a_costly_county_waits_then_is_refreshed(db: Database) -> None:
    ran: list[int] = []
    _last(db, A, ago_s=0, seconds=10.0)  # another process refreshed it just now, for 10 s
    due = refresh_due(db, ran.append, spacing=30)
    assert ran == [] and due.done == []
    assert 290 < due.later[A] <= 300  # pending photos, but due in ~300 s
    _last(db, A, ago_s=301, seconds=10.0)
    due = refresh_due(db, ran.append, spacing=30)
    assert ran == [A] and due.done == [A] and due.later == {}


def test_later_matches_refresh_a_county_once(db: Database) -> None:
    ran: list[int] = []
    _last(db, B, ago_s=3600, seconds=1.0)  # county B: nothing pending
    assert refresh_due(db, ran.append, spacing=0).done == [A]
    changed = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)  # before its last refresh
    assert refresh_due(db, ran.append, spacing=0, also={B: changed}).done == [A]
    changed = dt.datetime.now(dt.UTC)  # after it: stale
    assert refresh_due(db, ran.append, spacing=0, also={B: changed}).done == [A, B]
    assert ran == [A, A, A, B]


def test_one_process_at_a_time_per_county(db: Database) -> None:
    ran: list[int] = []
    with claim_refresh(db, A) as first:
        assert first
        with claim_refresh(db, A) as second, claim_refresh(db, B) as other:
            # PostgreSQL: another connection (process) is refused; SQLite has one process
            assert second is (db.dialect != "postgresql") and other
        due = refresh_due(db, ran.append, spacing=0)
        if db.dialect == "postgresql":
            assert ran == [] and due.later == {A: 1.0}  # looked at again soon
    if db.dialect == "postgresql":  # released: the lock is gone with the claim
        with db.engine.connect() as conn:
            held = conn.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND classid = 6 AND objid = :c"
                ),
                {"c": A},
            )
        assert held == 0
        assert refresh_due(db, ran.append, spacing=0).done == [A]


def test_pending_counties_look_above_a_floor_with_a_margin(db: Database) -> None:
    """Only photos above the lowest pending one seen (less a margin) are looked at
    again; a photo whose id was drawn before the last look but committed after it is
    still found within the margin."""
    from photocheck.audit.storage import _PENDING_FLOOR, _PendingFloor, counties_with_pending
    from photocheck.audit.tables import AuditPhotoCheck

    def photo(photo_id: int, household: int) -> Photo:
        return Photo(id=photo_id, household_id=household, sha256=f"{photo_id:064x}", size=1,
                     format="JPEG", blob_path="b", export_name="x.jpg", verdict="accept",
                     reasons=[], metrics={}, uploaded_by=A, policy_version="p",
                     model_version="m")  # fmt: skip

    key = db.engine.url.render_as_string(hide_password=True)
    with db.write() as s:
        for p in s.query(Photo):
            s.add(AuditPhotoCheck(photo_id=p.id))  # county A's photo: included
        s.add(photo(30_000, B))  # pending
    with db.session() as s:
        assert counties_with_pending(s) == [B]
    assert _PENDING_FLOOR.get(key) == 30_000 - _PendingFloor.MARGIN
    with db.write() as s:
        s.add(AuditPhotoCheck(photo_id=30_000))
        s.add(photo(25_000, A))  # drawn earlier, committed later: within the margin
    with db.session() as s:
        assert counties_with_pending(s) == [A]
    with db.write() as s:  # emptied (or restored from an older backup) under a live process
        s.query(AuditPhotoCheck).delete()
        s.query(Photo).filter(Photo.id >= 25_000).delete()
    with db.session() as s:
        assert counties_with_pending(s) == [A]  # its first photo, far below the floor
