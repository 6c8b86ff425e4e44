"""The audit over the running service: findings kept fresh in the background, scope,
cached previews.

One ``AuditWorker`` thread per process recomputes a county's findings when photos
arrived: woken by uploads (debounced: a burst of uploads gives one refresh, at most
``MAX_DELAY_S`` late), by a scene check's later matches (``SCENE_DELAY_S``: not held
back by the burst, so a re-shot house reaches the findings within seconds) and by a
timer (uploads made by other processes, the CLI). Background refreshes are spaced by
their cost (``refresh.refresh_due``: a county waits ``PHOTOCHECK_AUDIT_SPACING`` times its
last refresh's duration, whichever process ran it); the thread wakes again when a
county left for later is due. A request never computes: the pages show the stored
findings with "computed at HH:MM, N new photos pending". ``run_now`` is the handle for
a county user's "refresh now" and for tests: it queues the county and waits for that
refresh.

Reading and computing happen outside the write lock; only the save takes it, and the
save takes a per-county database lock too, so several processes stay correct.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from photocheck.audit import AuditConfig, refresh
from photocheck.audit.match_picture import has_match_points, render_match_picture
from photocheck.audit.previews import make_preview
from photocheck.audit.storage import RefreshResult, finding_in_town
from photocheck.audit.tables import AuditFindingRow
from photocheck.errors import BlobNotFound
from photocheck.store import Photo, PhotoMatch, Role, User
from photocheck.store.jobs import lower_priority

from .errors import ApiError
from .state import AppState

__all__ = [
    "PREVIEW_SIZE",
    "AuditWorker",
    "RefreshTicket",
    "audit_config",
    "finding_scope",
    "match_picture_bytes",
    "preview_bytes",
    "refresh_county",
    "require_decider",
    "visible",
]

log = logging.getLogger("api.audit")

PREVIEW_SIZE = 480
DEBOUNCE_S = 3.0  # quiet time after the last upload before a refresh
MAX_DELAY_S = 30.0  # ... but never later than this after the first one
SCENE_DELAY_S = 2.0  # a scene check's matches: refreshed this soon (matches meanwhile ride along)
POLL_S = 60.0  # look for photos from other processes this often


def audit_config(state: AppState) -> AuditConfig:
    return AuditConfig.from_policy(state.policy, gps_radius_m=state.settings.GPS_RADIUS_M)


def refresh_county(
    state: AppState, county_id: int, *, show_progress: bool = False
) -> RefreshResult:
    """The library's refresh with this service's policy, settings and blobs."""
    return refresh.refresh_county(
        state.db,
        county_id,
        audit_config(state),
        lambda rel: _read_blob(state, rel),
        max_pixels=state.policy.quality.max_pixels,
        show_progress=show_progress,
    )


@dataclass
class RefreshTicket:
    """A queued refresh of one county; ``wait()`` until it ran."""

    county_id: int
    done: threading.Event = field(default_factory=threading.Event)
    result: RefreshResult | None = None
    error: str | None = None

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


class AuditWorker:
    """The single background thread that keeps findings fresh (see the module doc)."""

    def __init__(
        self,
        state: AppState,
        *,
        debounce_s: float = DEBOUNCE_S,
        max_delay_s: float = MAX_DELAY_S,
        poll_s: float = POLL_S,
    ) -> None:
        self.state = state
        self.debounce_s, self.max_delay_s, self.poll_s = debounce_s, max_delay_s, poll_s
        self._cv = threading.Condition()
        self._run_lock = threading.Lock()  # one refresh at a time, thread or inline
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._first_poke: float | None = None
        self._last_poke = 0.0
        self._next_poll = 0.0  # the first loop looks at once
        self._tickets: list[RefreshTicket] = []
        # counties whose matches changed after the answer, and since when (UTC)
        self._stale: dict[int, dt.datetime] = {}
        self._stale_since: float | None = None
        self._retry_at: float | None = None  # a county left for later is due then
        self.running: int | None = None  # the county being refreshed now
        self.last_error: str | None = None
        self.refreshes = 0  # refreshes run, and their CPU (for /health and the benchmark)
        self.cpu_total_s = 0.0

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.alive:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="audit-refresh", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop after the refresh under way (if any); queued tickets are released."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._release(self._take_tickets(), "the audit worker stopped")

    def poke(self) -> None:
        """Photos arrived: refresh soon (debounced)."""
        now = time.monotonic()
        with self._cv:
            self._first_poke = self._first_poke or now
            self._last_poke = now
            self._cv.notify_all()

    def scene_matches(self, photo_id: int, county_id: int) -> None:
        """A scene check after the answer found matches for a photo the findings may
        already include: refresh its county soon (debounced, as after an upload)."""
        with self._cv:
            self._stale.setdefault(county_id, dt.datetime.now(dt.UTC))
            self._stale_since = self._stale_since or time.monotonic()
            self._cv.notify_all()

    def request(self, county_id: int) -> RefreshTicket:
        """Queue a refresh of the county now (no debounce)."""
        ticket = RefreshTicket(county_id)
        with self._cv:
            self._tickets.append(ticket)
            self._cv.notify_all()
        return ticket

    def run_now(self, county_id: int, timeout: float = 600.0) -> RefreshTicket:
        """Refresh the county and wait for it: through the thread when it runs (so it
        never overlaps another refresh), inline otherwise (no lifespan, e.g. scripts)."""
        if not self.alive:
            ticket = RefreshTicket(county_id)
            with self._run_lock:
                self._refresh(ticket)
            return ticket
        ticket = self.request(county_id)
        if not ticket.wait(timeout):
            ticket.error = f"the refresh did not finish within {timeout:.0f} s"
        return ticket

    # the thread

    def _loop(self) -> None:
        lower_priority(self.state.settings.AUDIT_NICE)  # background: uploads come first
        try:
            while (job := self._next_job()) is not None:
                counties, tickets = job
                if not tickets:  # nobody waits for it: not while uploads run (``foreground``)
                    self.state.intake.foreground.wait_quiet()
                self._run(counties, tickets)
        finally:
            self._release(self._take_tickets(), "the audit worker stopped")

    def _next_job(self) -> tuple[list[int] | None, list[RefreshTicket]] | None:
        """Wait for work: (counties or None for 'every county with pending photos',
        tickets to answer), or None to stop."""
        with self._cv:
            while not self._stopping:
                now = time.monotonic()
                if self._tickets:  # a waiting caller goes first; pending pokes ride along
                    tickets, self._tickets = self._tickets, []
                    poked, self._first_poke = self._first_poke is not None, None
                    return (None if poked else []), tickets
                woken = (self._first_poke, self._stale_since, self._retry_at)
                if any(t is not None for t in woken):
                    due = float("inf")
                    if self._first_poke is not None:
                        quiet = self._last_poke + self.debounce_s
                        due = min(quiet, self._first_poke + self.max_delay_s)
                    if self._stale_since is not None:
                        due = min(due, self._stale_since + SCENE_DELAY_S)
                    if self._retry_at is not None:
                        due = min(due, self._retry_at)
                    if now >= due:  # one refresh takes the uploads and the matches
                        self._first_poke = self._stale_since = self._retry_at = None
                        return None, []
                    self._cv.wait(due - now)
                    continue
                if now >= self._next_poll:
                    self._next_poll = now + self.poll_s
                    return None, []
                self._cv.wait(self._next_poll - now)
            return None

    def _take_tickets(self) -> list[RefreshTicket]:
        with self._cv:
            tickets, self._tickets = self._tickets, []
        return tickets

    def _run(self, counties: list[int] | None, tickets: list[RefreshTicket]) -> None:
        with self._run_lock:
            wanted = {t.county_id for t in tickets}  # asked for: refreshed, never spaced
            if counties is None:
                self._background(wanted)
            for county_id in sorted(wanted):
                ticket = RefreshTicket(county_id)
                self._refresh(ticket)
                for t in tickets:
                    if t.county_id == county_id:
                        t.result, t.error = ticket.result, ticket.error
                        t.done.set()

    def _background(self, wanted: set[int]) -> None:
        """The due counties with pending photos or later matches (not those a caller
        waits for: they come next); the thread wakes again when the first one left
        for later is due."""
        with self._cv:
            stale = dict(self._stale)

        def one(county_id: int) -> None:
            if county_id not in wanted:
                self._refresh(RefreshTicket(county_id))

        try:
            due = refresh.refresh_due(
                self.state.db, one, spacing=self.state.settings.AUDIT_SPACING, also=stale
            )
        except SQLAlchemyError as exc:
            self._failed(None, exc)
            due = refresh.DueRefreshes(later=dict.fromkeys(stale, self.debounce_s))
        with self._cv:
            for county_id, since in stale.items():  # refreshed since: no longer stale
                if county_id not in due.later and self._stale.get(county_id) == since:
                    self._stale.pop(county_id)  # (unless marked again meanwhile)
            if due.later:
                retry = time.monotonic() + min(due.later.values())
                self._retry_at = min(self._retry_at or retry, retry)

    def _refresh(self, ticket: RefreshTicket) -> None:
        """One county; a database or disk error is logged and retried on the next wake."""
        self.running = ticket.county_id
        cpu = time.thread_time()
        try:
            ticket.result = refresh_county(self.state, ticket.county_id)
            self.last_error = None
        except (SQLAlchemyError, OSError) as exc:
            ticket.error = self._failed(ticket.county_id, exc)
        finally:
            self.running = None
            self.refreshes += 1
            self.cpu_total_s += time.thread_time() - cpu
            ticket.done.set()

    def stats(self) -> dict[str, float]:
        """Refreshes run by this process and their CPU, in all."""
        return {"refreshes": self.refreshes, "cpu_total_s": round(self.cpu_total_s, 3)}

    def _failed(self, county_id: int | None, exc: Exception) -> str:
        message = f"audit refresh of county {county_id}: {type(exc).__name__}: {exc}"
        log.warning("%s", message, exc_info=exc)
        self.last_error = message
        return message

    @staticmethod
    def _release(tickets: list[RefreshTicket], reason: str) -> None:
        for t in tickets:
            t.error = t.error or reason
            t.done.set()


def _read_blob(state: AppState, relpath: str) -> bytes | None:
    """An original, or None if it is gone; a store that is down raises (an OSError:
    the refresh is retried later rather than remembering "no thumbnail")."""
    try:
        return state.blobs.read(relpath)
    except BlobNotFound:
        return None


def finding_scope(user: User) -> tuple[int, int | None]:
    """(county, town or None) the caller may audit; village accounts may not."""
    if user.role == Role.COUNTY:
        return user.county_id, None
    if user.role == Role.TOWN:
        return user.county_id, user.town_id
    raise ApiError(
        403,
        "FORBIDDEN",
        "the audit is for county and town accounts",
        message_zh="审计仅供县级和乡镇账号使用",
    )


def require_decider(user: User) -> None:
    """Confirming, dismissing or reopening a finding is the county's; a town reads."""
    if user.role != Role.COUNTY:
        raise ApiError(
            403,
            "FORBIDDEN",
            "a town account reads only; a county account confirms or dismisses findings",
            message_zh="乡镇账号只能查看；确认或排除问题由县级账号处理",
        )


def visible(session: Session, row: AuditFindingRow, user: User) -> bool:
    """Same county; a town account sees a finding when any of its photos is in its town."""
    county, town = finding_scope(user)
    if row.county_id != county:
        return False
    return town is None or finding_in_town(session, row.id, town)


def photo_visible(session: Session, photo_id: int, user: User) -> Photo:
    """The photo if the caller's audit scope covers it (404 otherwise: no probing)."""
    county, town = finding_scope(user)
    photo = session.get(Photo, photo_id)
    if (
        photo is None
        or photo.household.county_id != county
        or (town is not None and photo.household.village.town_id != town)
    ):
        raise ApiError(
            404,
            "PHOTO_NOT_FOUND",
            f"no photo {photo_id} in your area",
            message_zh=f"你的管辖范围内没有照片 {photo_id}",
        )
    return photo


def match_picture_bytes(state: AppState, match: PhotoMatch, a: Photo, b: Photo) -> bytes | None:
    """The match picture of a same-scene pair (``audit.match_picture``), drawn once
    from the two previews and the stored inlier points, then kept in the previews store."""
    if not has_match_points(match.evidence):
        return None
    name = f"match_{match.id}_{PREVIEW_SIZE}.jpg"
    cached = state.previews.get_named(name)
    if cached is not None:
        return cached
    previews = [preview_bytes(state, photo) for photo in (a, b)]
    if previews[0] is None or previews[1] is None:
        return None
    images = [np.asarray(Image.open(io.BytesIO(p)).convert("RGB")) for p in previews if p]
    picture = render_match_picture(images[0], images[1], match.evidence)
    state.previews.put_named(name, picture)
    return picture


def preview_bytes(state: AppState, photo: Photo) -> bytes | None:
    """An upright JPEG preview from the previews store, made once on first request
    (named by the original's SHA-256: the same bytes, the same preview)."""
    name = f"{photo.sha256}_{PREVIEW_SIZE}.jpg"
    cached = state.previews.get_named(name)
    if cached is not None:
        return cached
    data = _read_blob(state, photo.blob_path)
    preview = make_preview(data, size=PREVIEW_SIZE) if data else None
    if preview is None:
        return None
    state.previews.put_named(name, preview)
    return preview
