"""A real server on a loopback port (uvicorn in a thread) over SQLite and PostgreSQL.

PostgreSQL runs when ``PHOTOCHECK_TEST_POSTGRES_URL`` is set (``.ci/run`` sets it);
each test gets its own schema (from a pool of migrated ones, emptied between tests). In
CI (``CI=true``) a missing URL fails the PG tests instead of skipping them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text

from api.main import create_app
from api.settings import Settings
from api.state import AppState
from photocheck.store import Role

PG_ENV = "PHOTOCHECK_TEST_POSTGRES_URL"
ADMIN = ("admin", "county-secret-1")
COUNTY = "丹凤县"


def _pg_url() -> str:
    url = os.environ.get(PG_ENV)
    if url:
        return url
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{PG_ENV} is not set in CI: the PostgreSQL tests must run there")
    pytest.skip(f"{PG_ENV} not set")
    raise AssertionError  # unreachable


@contextmanager
def pg_schema() -> Iterator[str]:
    """A new, empty schema in the test PostgreSQL, dropped afterwards: its URL."""
    base = _pg_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class _SchemaPool:
    """PostgreSQL schemas at the newest revision, emptied and reused within a test process.

    A schema made and migrated costs ~0.45 s of CPU, half of it PostgreSQL's (DDL for
    every table and index); emptying one (one TRUNCATE of every table, every sequence
    restarted at 1) ~0.08 s. A test gets a schema no other test is using, with no rows and
    ids from 1, as a new one. A schema that cannot be emptied within ``lock_timeout``
    (a connection a test left open) is dropped instead; the pool's schemas are dropped
    when the process exits. ``pg_schema()`` still gives a new, empty one.
    """

    def __init__(self) -> None:
        self._free: list[str] = []
        self._made: list[str] = []
        self._lock = threading.Lock()

    def acquire(self) -> str:
        with self._lock:
            if self._free:
                return self._free.pop()
        from api.migrate import upgrade

        schema = f"p_{uuid.uuid4().hex[:12]}"
        admin = create_engine(_pg_url())
        try:
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        finally:
            admin.dispose()
        with self._lock:
            self._made.append(schema)
        engine = create_engine(_schema_url(schema))
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        return schema

    def release(self, schema: str) -> None:
        engine = create_engine(_schema_url(schema))
        try:
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                tables = conn.scalars(
                    text(
                        "SELECT quote_ident(tablename) FROM pg_tables"
                        " WHERE schemaname = :s AND tablename <> 'alembic_version'"
                    ),
                    {"s": schema},
                ).all()  # pgqueuer's too, when a test installed them
                # all at once (households and photos refer to each other), ids from 1
                conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY"))
                conn.execute(
                    text(
                        "SELECT setval(c.oid, 1, false) FROM pg_class c"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE c.relkind = 'S' AND n.nspname = :s"
                    ),
                    {"s": schema},
                )  # sequences no table owns
        except Exception:  # not reusable: dropped, never shared
            _drop_schema(schema)
            return
        finally:
            engine.dispose()
        with self._lock:
            self._free.append(schema)

    def close(self) -> None:
        with self._lock:
            made, self._made, self._free = self._made, [], []
        for schema in made:
            _drop_schema(schema)


def _schema_url(schema: str) -> str:
    base = _pg_url()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def _drop_schema(schema: str) -> None:
    admin = create_engine(_pg_url())
    try:
        with admin.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '30s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    except Exception:  # best effort: a leftover schema harms no test
        pass
    finally:
        admin.dispose()


_POOL = _SchemaPool()
atexit.register(_POOL.close)


@contextmanager
def pg_migrated_schema() -> Iterator[str]:
    """A schema at the newest revision with no rows (from the pool): its URL."""
    schema = _POOL.acquire()
    try:
        yield _schema_url(schema)
    finally:
        _POOL.release(schema)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database at the newest revision, made once: each test copies it
    (a file copy instead of running every migration again at each server start)."""
    from api.migrate import upgrade
    from photocheck.store import Database

    path = tmp_path_factory.mktemp("template") / "photocheck.sqlite3"
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite: Path
) -> Iterator[str]:
    """An empty database at the newest revision: a copy of a migrated SQLite file, or a
    PostgreSQL schema with no rows (``pg_migrated_schema``)."""
    if request.param == "sqlite":
        shutil.copyfile(migrated_sqlite, tmp_path / "photocheck.sqlite3")
        yield f"sqlite:///{tmp_path / 'photocheck.sqlite3'}"
        return
    with pg_migrated_schema() as url:
        yield url


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def module_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """One database per module and kind (a SQLite file, or a PostgreSQL schema) and a
    folder beside it: for a module-scoped server on both databases (tests/README.md)."""
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        yield f"sqlite:///{tmp / 'photocheck.sqlite3'}", tmp
        return
    with pg_migrated_schema() as url:
        yield url, tmp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_client(base_url: str | httpx.URL = "", **kwargs: Any) -> httpx.Client:
    """An HTTP client for the suite's own servers (plain HTTP on 127.0.0.1). No TLS, so
    no CA bundle is loaded: that costs ~40 ms of CPU per client, and the suite makes
    thousands (a client per role and route, health polls)."""
    kwargs.setdefault("timeout", 120)
    if "transport" in kwargs and kwargs["transport"] is None:
        del kwargs["transport"]
    return httpx.Client(base_url=base_url, verify=False, **kwargs)


def loopback_transport(local_address: str) -> httpx.HTTPTransport:
    """A transport from another loopback address (per-address limits), without TLS."""
    return httpx.HTTPTransport(local_address=local_address, verify=False)


@dataclass
class LiveServer:
    """``photocheck serve`` in a thread; ``restart()`` stops it and starts a new app."""

    settings: Settings
    port: int = field(default_factory=free_port)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        app = create_app(self.settings.model_copy())
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                msg = "server did not start"
                raise RuntimeError(msg)
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
            self._server = self._thread = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def app_state(self) -> AppState:
        assert self._server is not None
        app: Any = self._server.config.app
        return cast(AppState, app.state.photocheck)


# argon2 and the audit refresh at normal CPU priority in the suite's servers: the other
# xdist worker keeps the cores busy, and at the service's nice 10 each login waited
# seconds (1.3 s instead of 8 s on a loaded machine), as did every test waiting for
# findings. test_login_flood keeps the default: it tests what the nice is for.
TEST_NICE = {"LOGIN_HASH_NICE": 0, "AUDIT_NICE": 0}
# argon2 at its lowest cost in the suite's servers (PHOTOCHECK_PASSWORD_HASH_*): a
# campaign's set-up (import, each village's first login, password change, login) is ~20
# hashes, 5 s of CPU at the service's cost. What the cost is for (memory and CPU per
# login under a flood) is tested by test_login_flood, at the service's cost.
TEST_HASHING = {
    "PASSWORD_HASH_TIME_COST": 1,
    "PASSWORD_HASH_MEMORY_KIB": 1024,
    "PASSWORD_HASH_PARALLELISM": 1,
}
TEST_SERVICE = {**TEST_NICE, **TEST_HASHING}


def make_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    return Settings(
        DATA_DIR=tmp_path / "data",
        DATABASE_URL=database_url,
        MAX_UPLOAD_MB=8,
        **{**TEST_SERVICE, **overrides},  # type: ignore[arg-type]
    )


def seed_admin(settings: Settings) -> None:
    """The first county account, as ``photocheck user add`` makes it."""
    from api.accounts import add_user

    add_user(settings, ADMIN[0], ADMIN[1], role=Role.COUNTY, county=COUNTY)


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path, database_url)
    seed_admin(settings)
    live = LiveServer(settings)
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One SQLite server for a whole module whose tests only read, or write only what
    no other test of the module counts (each server start loads the model and index)."""
    settings = make_settings(tmp_path_factory.mktemp("server"), "")
    settings = settings.model_copy(update={"DATABASE_URL": None})
    seed_admin(settings)
    live = LiveServer(settings)
    live.start()
    yield live
    live.stop()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with loopback_client(server.url + "/api/v1") as c:
        yield c


def login(client: httpx.Client, username: str, password: str) -> dict[str, str]:
    r = client.post("/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def activate(
    client: httpx.Client, username: str, initial: str, new: str | None = None
) -> dict[str, str]:
    """First login with an initial password: change it (required), log in again."""
    new = new or f"{username}-new-pass"
    first = login(client, username, initial)
    r = client.post(
        "/auth/change-password",
        json={"old_password": initial, "new_password": new},
        headers=first,
    )
    assert r.status_code == 204, r.text
    return login(client, username, new)


def import_households(client: httpx.Client, admin: dict[str, str], csv: str) -> dict[str, Any]:
    """``POST /households/import`` of a CSV text as the county; the answer's JSON."""
    r = client.post(
        "/households/import", content=csv.encode(), headers={**admin, "content-type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    return cast(dict[str, Any], r.json())


def start_campaign(
    client: httpx.Client, csv: str, admin: tuple[str, str] = ADMIN
) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, Any]]:
    """The set-up most API tests repeat: the county logs in, imports ``csv``, and every
    new village account logs in and changes its initial password. Returns the county's
    headers, each village's headers by village name, and the import answer."""
    county = login(client, *admin)
    out = import_households(client, county, csv)
    villages = {
        a["village"]: activate(client, a["username"], a["password"]) for a in out["accounts"]
    }
    return county, villages, out
