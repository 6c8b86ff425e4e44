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

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from photocheck.store import BlobConfig

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
    MODEL: Path | None = None  # default: models/efficientnet_lite0.onnx
    GPS_RADIUS_M: float | None = Field(default=None, gt=0)  # default: the policy's
    LOGIN_MAX_FAILURES: int = Field(default=5, gt=0)  # per username + IP, then locked
    LOGIN_LOCK_MINUTES: float = Field(default=15.0, gt=0)
    RUN_MIGRATIONS: bool = True
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

    @property
    def max_upload_bytes(self) -> int:
        return int(self.MAX_UPLOAD_MB * 1024 * 1024)

    @property
    def database_url(self) -> str:
        if self.DATABASE_URL:
            return self.DATABASE_URL
        return f"sqlite:///{self.DATA_DIR.resolve() / 'photocheck.sqlite3'}"

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
