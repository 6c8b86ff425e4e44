#!/usr/bin/env python3
"""Upload throughput over real HTTP vs the bare library, measured in one run.

Photos: the 8-10 MP photos and the building photos of ../shared/data, each for its own
household, registered at the photo's EXIF GPS point (so the context checks run as in
the field).

1. Library: ``check_photo`` in-process with the same context, on as many threads as
   the server gets concurrent requests (--clients), and on one thread per core; both
   printed, the ratio is against the same concurrency (and the better of the two).
   It runs again right after the service's run, and the ratios use the mean of both
   (the shared machine's load drifts within a run).
2. Service: ``photocheck serve`` in a subprocess on a loopback port with a fresh data
   folder (SQLite); --clients concurrent clients upload the same photos, each to its
   own household, through a village account (stream, check, duplicates, scene
   features, blob fsync, commit); the same-scene check runs after the answer, and the
   time from each answer until its check is done (polled in the database) is printed
   as "scene check pending -> done" (p50, p95).
3. Floor: a bare FastAPI endpoint in a subprocess that parses the same multipart
   uploads with Starlette's form parser and runs ``check_photo`` (no account, storage,
   database or duplicate search): what any HTTP service around the library reaches on
   this machine, so the cost of HTTP is told apart from the service's own work.
4. CPU: the server process's CPU time per upload (``/proc``) against the library's CPU
   time per photo: the request path (threads at the requests' priority while the
   uploads ran: the target compares this, as the library does no scene check), the
   scene checks (their jobs' own CPU from ``/health``, whichever thread ran them), the
   audit refreshes (their own CPU from ``/health``), the other niced threads (the scene
   checks' model threads, which inherit the job thread's nice), the idle request
   threads while the checks drained; per upload without the scene checks (request path
   + audit refresh + idle ticks: all the server's work an upload causes that the
   library does not do either way), and the total; and the clients' (they share the
   cores; bodies are encoded before the clock starts).
5. Stages: the mean wall time of each server-side stage of those same uploads, from
   the answers' ``Server-Timing`` header (read = multipart streaming to disk, queue =
   waiting for a worker thread, check, thumbnail, the intake's stages, ...), and
   ``outside`` = client latency minus those (HTTP parsing, auth dependencies, client).

--profile FILE also records the server with py-spy (a dev tool, not a dependency)
during the HTTP uploads only (stopped at the last answer), as collapsed stacks.

Timings are noisy on a shared machine; only the ratios within one run mean something.

    python scripts/bench_upload.py [--clients 8] [--rounds 1] [--profile F] [PHOTO_DIR...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from PIL import Image
from starlette.concurrency import run_in_threadpool

from photocheck import ContentModel, PhotoContext, check_photo, default_policy
from photocheck.cli import iter_image_paths

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
DEFAULT_DIRS = [DATA / "buildings"]


def large_photos(root: Path, low: float = 8.0, high: float = 10.5) -> list[Path]:
    """JPEGs of ``low``..``high`` megapixels in the data folder (real phone/camera frames)."""
    out = []
    for path in sorted(root.rglob("*.jp*g")):
        if "bad_input" in path.parts:
            continue  # corrupt files: not photos from the field
        try:
            with Image.open(path) as im:
                mp = im.width * im.height / 1e6
        except (OSError, Image.DecompressionBombError):
            continue
        if low <= mp <= high:
            out.append(path)
    return out


def gps_points(photos: list[bytes]) -> list[tuple[float, float] | None]:
    policy, model = default_policy(), ContentModel()
    out = []
    for data in photos:
        meta = check_photo(data, policy=policy, model=model).metadata
        out.append((meta.gps.lat, meta.gps.lon) if meta and meta.gps else None)
    return out


def library_rate(
    photos: list[bytes], points: list[tuple[float, float] | None], threads: int
) -> tuple[float, float]:
    """Photos per second and CPU ms per photo (all threads) of the in-process check."""
    policy, model = default_policy(), ContentModel()

    def one(i: int) -> None:
        p = points[i]
        ctx = PhotoContext(expected_lat=p[0], expected_lon=p[1]) if p else PhotoContext()
        check_photo(photos[i], policy=policy, model=model, context=ctx)

    for i in range(min(2, len(photos))):
        one(i)  # warm-up
    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(len(photos))))
    cpu_ms = (time.process_time() - cpu) * 1000 / len(photos)
    return len(photos) / (time.perf_counter() - started), cpu_ms


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def background_cpu(pid: int) -> float:
    """CPU seconds so far of the process's niced threads: the background work (the
    scene-check job thread and the audit refresh thread run at nice 10,
    ``store.jobs.lower_priority``), told apart from the request path. Threads that
    already ended are not counted (both live as long as the server)."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            fields = task.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[16]) > 0:  # nice
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def scene_job_cpu(base: str) -> float:
    """CPU seconds the server's scene-check jobs have used so far (``/health``: every
    job's thread CPU), whatever thread ran them."""
    stats = httpx.get(f"{base}/health", timeout=60, verify=False).json().get("jobs", {})
    return float(stats.get("scene_check", {}).get("cpu_total_s", 0.0))


def audit_cpu(base: str) -> tuple[float, int]:
    """CPU seconds of the server's audit refreshes so far, and how many ran (``/health``;
    an older tree without the figure: 0)."""
    stats = httpx.get(f"{base}/health", timeout=60, verify=False).json().get("audit", {})
    return float(stats.get("cpu_total_s", 0.0)), int(stats.get("refreshes", 0))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PHOTOCHECK_DATA_DIR": str(data_dir), "PHOTOCHECK_MAX_UPLOAD_MB": "40"}
    exe = [sys.executable, "-m", "api.cli"]
    subprocess.run(
        [*exe, "user", "add", "bench-admin", "--county", "bench"],
        input=b"bench-password\n",
        env=env,
        check=True,
    )
    proc = subprocess.Popen(
        [*exe, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_healthy(f"http://127.0.0.1:{port}/health", proc)
    return proc


def floor_app() -> FastAPI:
    """The least an upload service can be: FastAPI takes the multipart upload (Starlette's
    own form parser) and runs ``check_photo`` in a worker thread; no account, no storage,
    no database, no duplicate search. What the real service reaches is measured against
    this too, so the cost of HTTP itself is told apart from the service's own work."""
    policy, model = default_policy(), ContentModel()
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/households/{household}/photos", status_code=201)
    async def upload(request: Request, household: str) -> dict[str, str]:
        form = await request.form()
        data = await form["file"].read()  # type: ignore[union-attr]
        report = await run_in_threadpool(check_photo, data, policy=policy, model=model)
        return {"household": household, "verdict": report.verdict.value}

    return app


def start_floor(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--floor-server", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_healthy(f"http://127.0.0.1:{port}/health", proc)
    return proc


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Until ``url`` answers 200; the server is killed if it exits or takes longer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, verify=False).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    msg = "server did not start"
    raise RuntimeError(msg)


def profiler(pid: int, out: Path, *, gil: bool = False) -> subprocess.Popen[bytes]:
    """py-spy (a dev tool: ``pip install py-spy``) sampling the server, all threads (or
    with ``gil`` only the thread holding the GIL: what serialises the requests)."""
    beside = Path(sys.executable).with_name("py-spy")  # the venv's, when not on PATH
    cmd = [
        str(beside) if beside.exists() else "py-spy",
        "record",
        "-p",
        str(pid),
        "-o",
        str(out),
        "--format",
        "raw",
        "-r",
        "200",
        "--nonblocking",
    ]
    cmd += ["--gil"] if gil else []
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the first upload
    return spy


def village_login(base: str, points: list[tuple[float, float] | None]) -> dict[str, str]:
    with httpx.Client(base_url=base, timeout=60) as c:
        r = c.post("/auth/token", data={"username": "bench-admin", "password": "bench-password"})
        admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
        rows = "".join(
            f"H{i},户主{i},镇,村,appraised,,{p[0] if p else ''},{p[1] if p else ''}\n"
            for i, p in enumerate(points)
        )
        csv = "household_id,head_name,town,village,category,site_id,lat,lon\n" + rows
        r = c.post(
            "/households/import",
            content=csv.encode(),
            headers={**admin, "content-type": "text/csv"},
        )
        r.raise_for_status()
        account = r.json()["accounts"][0]
        r = c.post(
            "/auth/token", data={"username": account["username"], "password": account["password"]}
        )
        first = {"Authorization": f"Bearer {r.json()['access_token']}"}
        c.post(
            "/auth/change-password",
            json={"old_password": account["password"], "new_password": "village-pass-1"},
            headers=first,
        ).raise_for_status()
        r = c.post(
            "/auth/token", data={"username": account["username"], "password": "village-pass-1"}
        )
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


def http_rate(
    base: str,
    headers: dict[str, str],
    jobs: list[tuple[int, bytes, str]],
    clients: int,
    *,
    practice: bool = False,
) -> tuple[float, list[float], list[dict[str, float]]]:
    """Uploads per second; each upload's latency and server stages (same order).

    ``jobs``: (household number, encoded multipart body, its content type). The clients
    are made before the clock starts, without a CA bundle (plain HTTP on loopback):
    loading it costs ~50 ms of CPU per client, which ran on the server's cores inside
    the measured window (~9 ms per upload of 45 with 8 clients)."""
    results: list[tuple[float, dict[str, float]]] = []
    params = {"practice": "true"} if practice else {}
    pool = [
        httpx.Client(base_url=base, timeout=300, headers=headers, verify=False)
        for _ in range(clients)
    ]

    def run(c: httpx.Client, chunk: list[tuple[int, bytes, str]]) -> None:
        with c:
            for household, body, ctype in chunk:
                t = time.perf_counter()
                r = c.post(
                    f"/households/H{household}/photos",
                    content=body,
                    headers={"content-type": ctype},
                    params=params,
                )
                latency = time.perf_counter() - t
                if r.status_code != 201:
                    msg = f"upload failed: {r.status_code} {r.text[:200]}"
                    raise RuntimeError(msg)
                results.append((latency, parse_server_timing(r.headers.get("server-timing", ""))))
                ANSWERED[r.json().get("photo_id") or -1] = time.perf_counter()

    chunks = [jobs[i::clients] for i in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as threads:
        list(threads.map(run, pool, chunks))
    rate = len(jobs) / (time.perf_counter() - started)
    return rate, [lat for lat, _ in results], [t for _, t in results]


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    """The ``file`` form body and its content type, encoded before the clock starts: the
    clients share the server's cores, so they should only send."""
    request = httpx.Request("POST", "http://bench/", files={"file": (name, data)})
    return request.read(), request.headers["content-type"]


def server_stages(timings: list[dict[str, float]], latencies: list[float]) -> None:
    """Mean ms per stage from the answers' ``Server-Timing`` headers; ``outside`` is the
    client's latency minus the handler's stages (HTTP parsing, auth and household
    dependencies, the client itself)."""
    n = len(timings)
    sums: dict[str, float] = {}
    seen: dict[str, int] = {}
    for t in timings:
        for k, v in t.items():
            sums[k] = sums.get(k, 0.0) + v
            seen[k] = seen.get(k, 0) + 1
    sums["outside"] = sum(
        lat * 1000 - sum(t.values()) for t, lat in zip(timings, latencies, strict=True)
    )
    total = sum(sums.values())
    print(
        f"server stages over HTTP ({n} uploads; mean wall ms per upload, share of latency, "
        "uploads that had the stage):"
    )
    for name, ms in sums.items():
        print(f"  {name:17s} {ms / n:7.1f} ms  {ms / total:5.1%}  {seen.get(name, n):4d}")


ANSWERED: dict[int, float] = {}  # photo id -> when its answer arrived (perf_counter)


class SceneCheckWatch:
    """Polls the server's database for photos whose scene check is done (the row's
    ``scene_checked``), so each photo's pending -> done latency after its answer is known.
    A server without that column (an older tree) has its checks done at the answer."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.done_at: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SceneCheckWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set() and not self.db.exists():
            time.sleep(0.02)
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as con:
            try:
                con.execute("SELECT scene_checked FROM photos LIMIT 1")
            except sqlite3.OperationalError:
                return  # no such column: checked at upload
            while not self._stop.is_set():
                now = time.perf_counter()
                try:
                    rows = con.execute("SELECT id FROM photos WHERE scene_checked").fetchall()
                except sqlite3.OperationalError:  # locked for a moment
                    rows = []
                for (pid,) in rows:
                    self.done_at.setdefault(pid, now)
                time.sleep(0.02)

    def wait(self, ids: list[int], timeout: float = 300.0) -> None:
        deadline = time.perf_counter() + timeout
        while any(i not in self.done_at for i in ids) and time.perf_counter() < deadline:
            if not self._thread.is_alive():
                return
            time.sleep(0.05)

    def latencies(self, answered: dict[int, float]) -> list[float]:
        return sorted(
            max(0.0, self.done_at[pid] - t) for pid, t in answered.items() if pid in self.done_at
        )


def features_drain(db: Path, timeout: float = 300.0) -> float:
    """Seconds until no stored photo waits for its scene features (made after the answer)."""
    started = time.perf_counter()
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        while con.execute("SELECT count(*) FROM photos WHERE scene IS NULL").fetchone()[0]:
            if time.perf_counter() - started > timeout:
                break
            time.sleep(0.02)
    return time.perf_counter() - started


def parse_server_timing(header: str) -> dict[str, float]:
    out = {}
    for item in header.split(","):
        name, _, dur = item.strip().partition(";dur=")
        if name and dur:
            out[name] = float(dur)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("dirs", nargs="*", type=Path, default=None)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="passes over the photos")
    parser.add_argument(
        "--profile", type=Path, help="py-spy raw (collapsed) profile of the server's HTTP run"
    )
    parser.add_argument("--gil", action="store_true", help="profile only the GIL holder")
    parser.add_argument(
        "--scene-wait",
        type=float,
        default=600.0,
        help="seconds to wait after the last answer for the scene checks to finish",
    )
    parser.add_argument("--floor-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        import uvicorn

        uvicorn.run(floor_app(), host="127.0.0.1", port=args.floor_server, log_level="warning")
        return 0

    files = list(iter_image_paths(args.dirs)) if args.dirs else []
    if not args.dirs:
        files = large_photos(DATA) + list(iter_image_paths(DEFAULT_DIRS))
    files = files * args.rounds
    photos = [p.read_bytes() for p in files]
    if not photos:
        print("no photos found", file=sys.stderr)
        return 2
    points = gps_points(photos)
    cores = os.cpu_count() or 2
    lib_c, lib_cpu = library_rate(photos, points, args.clients)
    lib_n, _ = library_rate(photos, points, cores)
    mp = sum(Image.open(p).width * Image.open(p).height for p in files) / len(files) / 1e6
    print(
        f"photos: {len(files)} uploads, mean {mp:.1f} MP, "
        f"{sum(p is not None for p in points)} with EXIF GPS"
    )
    print(
        f"library check_photo: {lib_c:.2f}/s ({args.clients} threads, as the server gets), "
        f"{lib_n:.2f}/s ({cores} threads); CPU {lib_cpu:.1f} ms per photo"
    )

    jobs = [(i, *multipart(files[i].name, data)) for i, data in enumerate(photos)]
    port = free_port()
    proc = start_floor(port)
    try:
        floor_base = f"http://127.0.0.1:{port}"
        http_rate(floor_base, {}, jobs[: args.clients], args.clients)  # warm-up
        cpu = process_cpu(proc.pid)
        floor, _, _ = http_rate(floor_base, {}, jobs, args.clients)
        floor_cpu = (process_cpu(proc.pid) - cpu) * 1000 / len(jobs)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(
        f"bare HTTP floor (FastAPI form upload -> check_photo, nothing else): {floor:.2f}/s, "
        f"{floor / lib_c:.2f} of the library; its CPU {floor_cpu:.1f} ms per upload"
    )

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        data_dir = Path(tmp) / "data"
        proc = start_server(data_dir, port)
        try:
            root = f"http://127.0.0.1:{port}"
            base = f"{root}/api/v1"
            headers = village_login(base, points)  # household Hi for photo i
            # warm-up: practice uploads (checked, nothing stored), one per client
            http_rate(base, headers, jobs[: args.clients], args.clients, practice=True)
            spy = profiler(proc.pid, args.profile, gil=args.gil) if args.profile else None
            ANSWERED.clear()
            with SceneCheckWatch(data_dir / "photocheck.sqlite3") as watch:
                cpu, client_cpu = process_cpu(proc.pid), time.process_time()
                bg, scene = background_cpu(proc.pid), scene_job_cpu(root)
                audit, refreshes = audit_cpu(root)
                rate, lat, stages = http_rate(base, headers, jobs, args.clients)
                if spy is not None:  # the profile covers the uploads only
                    spy.send_signal(signal.SIGINT)
                    spy.wait(timeout=60)
                client_cpu = (time.process_time() - client_cpu) * 1000 / len(jobs)
                window_cpu = (process_cpu(proc.pid) - cpu) * 1000 / len(jobs)
                window_bg = (background_cpu(proc.pid) - bg) * 1000 / len(jobs)
                window_scene = (scene_job_cpu(root) - scene) * 1000 / len(jobs)
                # the checks' CPU is counted until they are done, or --scene-wait ran out
                waited = time.perf_counter()
                drain = features_drain(data_dir / "photocheck.sqlite3", args.scene_wait)
                left = args.scene_wait - (time.perf_counter() - waited)
                watch.wait([pid for pid in ANSWERED if pid > 0], max(0.0, left))
                pending = watch.latencies({k: v for k, v in ANSWERED.items() if k > 0})
            server_cpu = (process_cpu(proc.pid) - cpu) * 1000 / len(jobs)
            server_bg = (background_cpu(proc.pid) - bg) * 1000 / len(jobs)
            server_scene = (scene_job_cpu(root) - scene) * 1000 / len(jobs)
            audit_after, refreshes_after = audit_cpu(root)
            server_audit = (audit_after - audit) * 1000 / len(jobs)
            refreshes = refreshes_after - refreshes
            # the library again, right after (the server still up, idle): the machine's
            # load drifts, so the ratio is against the mean of the runs before and after
            lib_after, lib_cpu_after = library_rate(photos, points, args.clients)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        print(
            f"library again after the server: {lib_after:.2f}/s, CPU {lib_cpu_after:.1f} ms per "
            f"photo (before: {lib_c:.2f}/s, {lib_cpu:.1f} ms; the ratios use the mean)"
        )
        lib_c, lib_cpu = (lib_c + lib_after) / 2, (lib_cpu + lib_cpu_after) / 2
        server_stages(stages, lat)
        lat.sort()
        p95 = lat[int(0.95 * (len(lat) - 1))]
        print(
            f"HTTP upload, {args.clients} clients: {rate:.2f}/s "
            f"(latency p50 {statistics.median(lat) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms)"
        )
        request_cpu = window_cpu - window_bg
        idle_cpu = (server_cpu - server_bg) - request_cpu
        print(
            f"server CPU {server_cpu:.1f} ms per upload in all, until {len(pending)} of "
            f"{len(ANSWERED)} scene checks were done (library {lib_cpu:.1f} ms per photo); "
            f"clients {client_cpu:.1f} ms each"
        )
        print(
            f"  request path (the threads at the requests' priority while the uploads ran): "
            f"{request_cpu:.1f} ms per upload, {request_cpu / lib_cpu:.2f}x the library's CPU "
            f"per photo (target <= 1.25x)"
        )
        other_bg = server_bg - server_scene - server_audit
        print(
            f"  scene checks (their jobs' own CPU, niced): {server_scene:.1f} ms per upload, "
            f"{window_scene:.1f} ms of it while the uploads ran; audit refresh: "
            f"{server_audit:.1f} ms per upload ({refreshes} refreshes); other niced threads "
            f"(the scene checks' model threads): {other_bg:.1f} ms, "
            f"{window_bg - window_scene:.1f} ms of the niced CPU while the uploads ran; the "
            f"server's idle request threads (event-loop ticks) while the checks drained: "
            f"{idle_cpu:.1f} ms per upload"
        )
        per_upload = request_cpu + server_audit + idle_cpu
        print(
            f"  per upload without the scene checks (the library does none): request path + "
            f"audit refresh + idle ticks = {per_upload:.1f} ms, {per_upload / lib_cpu:.2f}x the "
            f"library's; all but the scene jobs' own threads: "
            f"{server_cpu - server_scene:.1f} ms ({(server_cpu - server_scene) / lib_cpu:.2f}x)"
        )
        sustained = len(jobs) / (len(jobs) / rate + drain)
        print(
            f"background scene features done {drain:.2f} s after the last answer: "
            f"{sustained:.2f}/s including them ({sustained / lib_c:.2f} of the library)"
        )
        if pending:
            p95_pending = pending[int(0.95 * (len(pending) - 1))]
            print(
                f"scene check pending -> done after the answer ({len(pending)} uploads): "
                f"p50 {statistics.median(pending):.2f} s, p95 {p95_pending:.2f} s, "
                f"max {pending[-1]:.2f} s (target p95 <= 10 s)"
            )
        else:
            print("scene check: done at the answer (no scene_checked column in this tree)")
        ratio = rate / lib_c
        verdict = "OK" if ratio >= 0.8 else "BELOW"
        print(
            f"ratio HTTP / library: {ratio:.2f} at {args.clients} threads (target >= 0.80) "
            f"{verdict}; {rate / max(lib_c, lib_n):.2f} against the better library figure; "
            f"{rate / floor:.2f} of the bare HTTP floor"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
