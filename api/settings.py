"""Service settings from the environment (prefix ``PHOTOCHECK_``); the only env reader in api/.

Defaults make ``photocheck serve`` work with nothing else installed: a ``./data``
folder holding a SQLite database (WAL), the blob store and a generated secret key.
``BLOB_URL=s3://BUCKET/PREFIX`` (with ``S3_ENDPOINT`` and the keys, or boto3's own
``AWS_*`` variables) moves originals, site photos and previews to an S3 store.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from photocheck.audit.refresh import REFRESH_SPACING
from photocheck.store import BlobConfig

from .security import PasswordHashing

__all__ = ["Settings"]

SECRET_FILE = "secret_key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOCHECK_", extra="ignore")

    DATA_DIR: Path = Path("./data")
    DATABASE_URL: str | None = None  # default: sqlite:///{DATA_DIR}/photocheck.sqlite3
    SECRET_KEY: str | None = None  # default: generated once, kept in DATA_DIR
    MAX_UPLOAD_MB: float = Field(default=20.0, gt=0)
    TOKEN_MINUTES: int = Field(default=12 * 60, gt=0)
    POLICY: Path | None = None  # default: the packaged policy
    MODEL: Path | None = None  # default: photocheck/models/efficientnet_lite0.onnx
    GPS_RADIUS_M: float | None = Field(default=None, gt=0)  # default: the policy's
    # failed logins per (username, address): these many are answered at once; after
    # them each next attempt waits LOGIN_DELAY_S, doubling per failure up to the cap
    LOGIN_FREE_FAILURES: int = Field(default=3, ge=0)
    LOGIN_DELAY_S: float = Field(default=2.0, gt=0)
    LOGIN_MAX_DELAY_S: float = Field(default=300.0, gt=0)
    LOGIN_FORGET_MINUTES: float = Field(default=60.0, gt=0)  # failures older than this
    # login attempts per client address and minute (any username; per server process)
    LOGIN_ATTEMPTS_PER_MINUTE: int = Field(default=60, gt=0)
    # argon2 at most this many at a time per process, this many more waiting, then 503
    LOGIN_HASH_CONCURRENCY: int = Field(default=2, gt=0)
    LOGIN_HASH_QUEUE: int = Field(default=8, ge=0)
    # argon2's CPU priority (Linux nice of its threads): uploads come first in a login
    # flood; 0 where nothing else needs the cores (the test suite's servers)
    LOGIN_HASH_NICE: int = Field(default=10, ge=0, le=19)
    # argon2id cost of new password hashes (default: RFC 9106's low-memory profile,
    # ~0.25 s of CPU and 64 MiB each). A stored hash is verified with the parameters it
    # carries, so a change locks nobody out. Lower it only where logins face no one who
    # could guess (the test suite's servers: 1 pass over 1 MiB on 1 lane).
    PASSWORD_HASH_TIME_COST: int = Field(default=3, ge=1)
    PASSWORD_HASH_MEMORY_KIB: int = Field(default=65536, ge=8)
    PASSWORD_HASH_PARALLELISM: int = Field(default=4, ge=1, le=255)
    # the audit's refresh thread, likewise (background work: uploads first)
    AUDIT_NICE: int = Field(default=10, ge=0, le=19)
    # a county's background refresh waits this many times its last one's duration (a
    # refresh reads the whole county: at most 1/AUDIT_SPACING of a core per county)
    AUDIT_SPACING: float = Field(default=REFRESH_SPACING, ge=0)
    RUN_MIGRATIONS: bool = True
    # PostgreSQL job queue (ignored on SQLite, where jobs run on the process's threads)
    JOBS_IN_SERVE: bool = True  # serve processes run jobs too (besides `photocheck worker`)
    JOB_HEARTBEAT_S: float = Field(default=30.0, gt=0)  # a dead worker's jobs: re-picked after
    # a scene check this process runs itself: the queue's copy (for a crash) waits this long
    JOB_LOCAL_GRACE_S: float = Field(default=15.0, ge=0)
    TUS_EXPIRY_HOURS: float = Field(default=24.0, gt=0)  # unfinished resumable uploads
    RECHECK_BATCH: int = Field(default=32, ge=1, le=1000)  # photos per re-check job
    # same-scene vote indexes held per process (least recently used counties dropped
    # past this; ~0.9 GB per county of 100,000 photos, store/scenevotes.py)
    SCENE_VOTES_MB: float = Field(default=2048.0, gt=0)
    BLOB_URL: str | None = None  # default: the data folder; s3://BUCKET/PREFIX for S3
    S3_ENDPOINT: str | None = None  # e.g. http://127.0.0.1:8333; default AWS_ENDPOINT_URL
    S3_ACCESS_KEY: str | None = None  # default: AWS_ACCESS_KEY_ID (none: unsigned)
    S3_SECRET_KEY: str | None = Field(default=None, repr=False)  # default: AWS_SECRET_...
    S3_REGION: str | None = None  # default: AWS_DEFAULT_REGION, else us-east-1

    @field_validator("BLOB_URL")
    @classmethod
    def _blob_url(cls, value: str | None) -> str | None:
        if value:
            BlobConfig(Path("."), value)  # raises ValueError for anything but s3://BUCKET
        return value or None

    @field_validator("DATA_DIR", "POLICY", "MODEL", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        """Relative paths are taken from the directory the process starts in, once: the
        database, blobs and secret then stay in one place whatever changes the cwd."""
        return None if value is None else value.expanduser().resolve()

    @model_validator(mode="after")
    def _hash_memory(self) -> Settings:
        if self.PASSWORD_HASH_MEMORY_KIB < 8 * self.PASSWORD_HASH_PARALLELISM:
            msg = "PASSWORD_HASH_MEMORY_KIB must be at least 8 x PASSWORD_HASH_PARALLELISM"
            raise ValueError(msg)
        return self

    def password_hashing(self) -> PasswordHashing:
        return PasswordHashing(
            self.PASSWORD_HASH_TIME_COST,
            self.PASSWORD_HASH_MEMORY_KIB,
            self.PASSWORD_HASH_PARALLELISM,
        )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.MAX_UPLOAD_MB * 1024 * 1024)

    @property
    def database_url(self) -> str:
        if self.DATABASE_URL:
            return self.DATABASE_URL
        return f"sqlite:///{self.DATA_DIR / 'photocheck.sqlite3'}"

    @property
    def partial_dir(self) -> Path:
        """Resumable uploads in progress (beside the blobs' local staging folder)."""
        return self.DATA_DIR / "partial"

    def blob_config(self) -> BlobConfig:
        return BlobConfig(
            self.DATA_DIR,
            self.BLOB_URL,
            s3_endpoint=self.S3_ENDPOINT,
            s3_access_key=self.S3_ACCESS_KEY,
            s3_secret_key=self.S3_SECRET_KEY,
            s3_region=self.S3_REGION,
        )

    def prepare(self) -> None:
        """Create the data folder; fill in the secret key (generated once, then reused)."""
        self.DATA_DIR.mkdir(parents=True, exist_ok=True)
        if self.SECRET_KEY:
            return
        path = self.DATA_DIR / SECRET_FILE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            self.SECRET_KEY = path.read_text("ascii").strip()
            return
        key = secrets.token_urlsafe(48)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        self.SECRET_KEY = key
