"""A login flood does not stall uploads (issue 9 item 7), over a real server.

80 logins with made-up usernames, 40 at a time from 40 loopback addresses (a
distributed flood: the per-address rate does not stop it, the hashing bound must),
while a village verifier keeps making practice uploads. Every upload must succeed;
logins are answered 401, or 503 at once when the hashing queue is full. Then one
address alone floods: its attempts beyond the rate get 429, another address logs in.

The upload p95 and the process RSS are printed (``-s``), not asserted: timings belong
to ``scripts/bench_login_flood.py``.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from api.settings import Settings

from .conftest import (
    ADMIN,
    TEST_SERVICE,
    LiveServer,
    activate,
    login,
    loopback_client,
    loopback_transport,
    make_settings,
    seed_admin,
)
from .test_session import GOOD, photo

# 40 at once against 2 hashing threads + 8 waiting: the bound is what is tested, and 40
# at once overflow it as surely with 2 logins per address as with 5 (issue 9's 200).
LOGINS, AT_A_TIME = 80, 40
BURST_THREADS, BURST_EACH = 6, 2  # one address: 12 attempts against a rate of 4


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.fixture
def flood_server(tmp_path: Path) -> Iterator[LiveServer]:
    # 4 attempts per address and minute: the 40 flood addresses send 2 each, the set-up
    # 3 from 127.0.0.1, the burst 12 from one address (each attempt let through is an
    # argon2 hash, and hashes run at a low CPU priority: seconds each on a busy machine)
    url = f"sqlite:///{tmp_path / 'photocheck.sqlite3'}"
    service = {k: Settings.model_fields[k].default for k in TEST_SERVICE}  # not the suite's
    settings = make_settings(tmp_path, url, LOGIN_ATTEMPTS_PER_MINUTE=4, **service)
    seed_admin(settings)
    live = LiveServer(settings)
    live.start()
    yield live
    live.stop()


def _verifier(client: httpx.Client) -> dict[str, str]:
    csv = (
        "household_id,head_name,town,village,category,site_id,lat,lon\nH1,户主,镇,村,鉴定安全,,,\n"
    )
    r = client.post(
        "/households/import",
        content=csv.encode(),
        headers={**login(client, *ADMIN), "content-type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    (acc,) = r.json()["accounts"]
    return activate(client, acc["username"], acc["password"], "verifier-pass-1")


def _logins(base: str, address: str, n: int) -> list[httpx.Response]:
    transport = loopback_transport(address)
    with loopback_client(base, timeout=120, transport=transport) as c:
        return [
            c.post("/auth/token", data={"username": f"x-{uuid.uuid4().hex[:8]}", "password": "p"})
            for _ in range(n)
        ]


def _check_refusal(r: httpx.Response, status: int, code: str) -> None:
    err = r.json()["error"]
    assert r.status_code == status and err["code"] == code, r.text
    assert re.search(r"[\u4e00-\u9fff]", err["message_zh"]) and int(r.headers["Retry-After"]) > 0


def test_login_flood_does_not_stall_uploads(flood_server: LiveServer) -> None:
    base = flood_server.url + "/api/v1"
    with loopback_client(base, timeout=120) as client:
        verifier = _verifier(client)
        stop = threading.Event()
        latencies: list[float] = []
        statuses: Counter[int] = Counter()

        def keep_uploading() -> None:
            with loopback_client(base, timeout=120) as c:
                while not stop.is_set() and len(latencies) < 500:
                    t = time.perf_counter()
                    r = c.post("/households/H1/photos", params={"practice": "true"},
                               files=photo(GOOD), headers=verifier)  # fmt: skip
                    latencies.append(time.perf_counter() - t)
                    statuses[r.status_code] += 1
                    stop.wait(0.05)  # a verifier's pace, not a benchmark's

        rss_before = _rss_mb()
        uploader = threading.Thread(target=keep_uploading)
        uploader.start()
        started = time.perf_counter()
        try:
            with ThreadPoolExecutor(AT_A_TIME) as pool:
                answers = [
                    r
                    for batch in pool.map(
                        lambda i: _logins(base, f"127.0.1.{i + 1}", LOGINS // AT_A_TIME),
                        range(AT_A_TIME),
                    )
                    for r in batch
                ]
        finally:
            stop.set()
            uploader.join()
        seconds = time.perf_counter() - started
        rss_after = _rss_mb()

        assert statuses and set(statuses) == {201}, statuses  # no upload failed
        assert len(answers) == LOGINS
        by_status = Counter(r.status_code for r in answers)
        assert set(by_status) <= {401, 503}, by_status
        for r in answers:
            if r.status_code == 503:
                _check_refusal(r, 503, "LOGIN_BUSY")
        pool_state = flood_server.app_state.passwords
        s = flood_server.settings
        assert pool_state.peak <= s.LOGIN_HASH_CONCURRENCY + s.LOGIN_HASH_QUEUE
        p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) > 1 else latencies[0]
        print(
            f"\nlogin flood: {LOGINS} logins {AT_A_TIME} at a time in {seconds:.1f} s, "
            f"answers {dict(by_status)}; {len(latencies)} practice uploads during it, "
            f"p95 {p95:.3f} s; process RSS {rss_before:.0f} -> {rss_after:.0f} MB"
        )

        # one address alone: beyond its rate it is refused at once (429), others are not
        t = time.perf_counter()
        with ThreadPoolExecutor(BURST_THREADS) as pool:
            burst = [r for b in pool.map(lambda _: _logins(base, "127.0.2.1", BURST_EACH),
                                         range(BURST_THREADS)) for r in b]  # fmt: skip
        elapsed = time.perf_counter() - t
        limited = [r for r in burst if r.status_code == 429]
        rate = s.LOGIN_ATTEMPTS_PER_MINUTE
        # a token bucket: at most its capacity plus what refilled while the burst ran
        assert len(burst) - len(limited) <= rate + elapsed * rate / 60 + 1, elapsed
        assert limited, Counter(r.status_code for r in burst)
        for r in limited:
            _check_refusal(r, 429, "TOO_MANY_LOGIN_ATTEMPTS")
        other = loopback_client(
            base_url=base, timeout=120, transport=loopback_transport("127.0.2.2")
        )
        with other:
            r = other.post("/auth/token", data={"username": ADMIN[0], "password": ADMIN[1]})
            assert r.status_code == 200, r.text
