"""Wire models of the HTTP API, kept apart from the database tables."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "AccountSlip",
    "Capture",
    "ChangePassword",
    "HouseholdOut",
    "ImportOut",
    "PhotoOut",
    "RetakeOut",
    "Token",
    "UploadOut",
    "UserOut",
]


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: dt.datetime
    must_change_password: bool


class ChangePassword(BaseModel):
    """The JSON body of ``POST /auth/change-password`` (not a form, unlike the login)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"old_password": "initial-from-slip", "new_password": "my-new-pass-1"}]
        }
    )

    old_password: str = Field(description="the current (or initial) password")
    new_password: str = Field(
        min_length=8, max_length=200, description="8 to 200 characters, not the old one"
    )


class UserOut(BaseModel):
    username: str
    role: str
    county: str
    town: str | None
    village: str | None
    must_change_password: bool


class Capture(BaseModel):
    """What the entry app knew when the photo was taken (all optional)."""

    model_config = ConfigDict(extra="ignore")

    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0)
    mock_location: bool = False
    device_time: dt.datetime | None = None
    device_id: str | None = Field(default=None, max_length=200)
    # who took the picture: the entry app's own camera screen, or picked from the
    # phone's gallery; absent = unknown (the audit then assumes nothing)
    source: Literal["app_camera", "gallery"] | None = None

    @field_validator("lat", "lon", "accuracy_m")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            msg = "must be a finite number"
            raise ValueError(msg)
        return v


class AccountSlip(BaseModel):
    username: str
    password: str
    county: str
    town: str
    village: str


class ImportOut(BaseModel):
    created: int
    updated: int
    towns_created: int
    villages_created: int
    accounts: list[AccountSlip]  # initial passwords: shown this once only


class PhotoOut(BaseModel):
    photo_id: int
    verdict: str
    reasons: list[dict[str, Any]]
    sha256: str
    bytes: int
    format: str | None
    export_name: str
    uploaded_at: dt.datetime
    uploaded_by: str | None
    is_current: bool
    policy_version: str
    model_version: str
    # {"status": "pending", "message", "message_zh"} until the same-scene check has run
    scene_check: dict[str, str] | None = None


class HouseholdOut(BaseModel):
    household_id: str
    head_name: str
    county: str
    town: str
    village: str
    category: str
    site_id: str | None
    lat: float | None
    lon: float | None
    status: str  # missing | accept | review | reject (the current photo's verdict)
    current_photo: PhotoOut | None
    history: list[PhotoOut]
    scene_check: dict[str, str] | None = None  # the current photo's, while pending


class RetakeOut(BaseModel):
    household_id: str
    head_name: str
    town: str
    village: str
    photo_id: int
    uploaded_at: dt.datetime
    reasons: list[dict[str, Any]]


class UploadOut(BaseModel):
    photo_id: int | None
    household_id: str
    verdict: str
    reasons: list[dict[str, Any]]
    matches: list[dict[str, Any]]
    retake_required: bool
    practice: bool = False
    # {"status": "pending", ...}: the same-scene check runs after this answer; the
    # household record (GET /households/{id}) shows its outcome
    scene_check: dict[str, str] | None = None
