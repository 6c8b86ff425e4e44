"""Capture time: which tag, its offset and sub-seconds, and whether it is plausible.

EXIF DateTimeOriginal is the camera's local clock. It stays naive unless an offset tag
(OffsetTimeOriginal, OffsetTime) gives its zone; a naive time is compared with "now"
converted to the policy's local zone (China: UTC+8), never stamped as UTC. Stamping it
as UTC would make a photo taken at 20:00 local "8 hours in the future" at 13:00 UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from .exif import ExifTags
from .model import CaptureTime

__all__ = [
    "CaptureTimeResult",
    "capture_time_from_exif",
    "implausibility",
    "parse_datetime",
    "parse_offset",
]

# (datetime tag, offset tags in order, sub-second tag); first usable one wins.
EXIF_TIME_TAGS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "EXIF DateTimeOriginal",
        ("EXIF OffsetTimeOriginal", "EXIF OffsetTime"),
        "EXIF SubSecTimeOriginal",
    ),
    (
        "EXIF DateTimeDigitized",
        ("EXIF OffsetTimeDigitized", "EXIF OffsetTime"),
        "EXIF SubSecTimeDigitized",
    ),
    ("Image DateTime", ("EXIF OffsetTime",), "EXIF SubSecTime"),
)

# "2008:09:20 09:01:07", "2018:06:26 17:46:33.847", "2015-06-29T18:19:12+01:00"
_DATETIME = re.compile(
    r"^(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?"
    r"(?:[.,](\d{1,9}))?\s*(Z|[+\-]\d{2}:?\d{2})?$"
)
_OFFSET = re.compile(r"^([+\-])(\d{2}):?(\d{2})$")


class BadTime(ValueError):
    """A time tag that is present but unusable; the message says why."""


@dataclass
class CaptureTimeResult:
    capture: CaptureTime | None = None
    problem: str | None = None  # present but blank / zero / malformed
    notes: list[str] = field(default_factory=list)


def parse_offset(text: str) -> dt.timezone:
    """'+08:00' -> timezone. :exception BadTime: not an offset within ±14 h."""
    m = _OFFSET.match(text.strip())
    if not m:
        msg = f"offset {text!r} is not ±HH:MM"
        raise BadTime(msg)
    sign = -1 if m.group(1) == "-" else 1
    delta = dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
    if delta > dt.timedelta(hours=14) or int(m.group(3)) >= 60:
        msg = f"offset {text!r} is out of range"
        raise BadTime(msg)
    return dt.timezone(sign * delta)


def parse_datetime(text: str | None) -> dt.datetime:
    """An EXIF/XMP date-time; aware only when the text carries its own offset.

    :exception BadTime: blank, all zeros, malformed or not a real date.
    """
    raw = (text or "").replace("\x00", "").strip()
    if not raw.strip(" :-T"):
        msg = "blank"
        raise BadTime(msg)
    if not raw.strip(" :-T0"):
        msg = f"all zeros ({raw!r})"
        raise BadTime(msg)
    if re.fullmatch(r"\d{4}([:\-]\d{2}){0,2}", raw):
        msg = f"a date without a time of day ({raw!r})"
        raise BadTime(msg)
    m = _DATETIME.match(raw)
    if not m:
        msg = f"malformed ({raw!r})"
        raise BadTime(msg)
    y, mo, d, h, mi, s, frac, zone = m.groups()
    try:
        value = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0))
    except ValueError as exc:
        msg = f"not a real date ({raw!r}: {exc})"
        raise BadTime(msg) from None
    if frac:
        value = value.replace(microsecond=int(frac[:6].ljust(6, "0")))
    if zone:
        value = value.replace(tzinfo=dt.UTC if zone == "Z" else parse_offset(zone))
    return value


def _subsec(tags: ExifTags, key: str, notes: list[str]) -> str | None:
    text = tags.text(key)
    if text is None:
        return None
    if not text.isdigit():
        notes.append(f"{key.split()[-1]}: not digits ({text!r})")
        return None
    return text


def capture_time_from_exif(
    tags: ExifTags, *, saved_by_editor: str | None = None
) -> CaptureTimeResult:
    """DateTimeOriginal, else DateTimeDigitized, else DateTime, with offset and sub-seconds.

    DateTime is the file's last-change time. It stands in for the capture time only when
    the camera wrote the file: when ``saved_by_editor`` names the program that wrote
    Software, DateTime is that program's save time and is not used.
    """
    out = CaptureTimeResult()
    problems: list[str] = []
    for key, offset_keys, subsec_key in EXIF_TIME_TAGS:
        if key not in tags:
            continue
        if key == "Image DateTime" and saved_by_editor:
            out.notes.append(
                f"DateTime not used as capture time: it is {saved_by_editor}'s save time"
            )
            continue
        name = key.split()[-1]
        try:
            value = parse_datetime(tags.text(key))
        except BadTime as exc:
            problems.append(f"{name} is {exc}")
            continue
        offset = None
        if value.tzinfo is None:
            for okey in offset_keys:
                otext = tags.text(okey)
                if otext is None:
                    continue
                try:
                    value = value.replace(tzinfo=parse_offset(otext))
                    offset = otext.strip()
                    break
                except BadTime as exc:
                    out.notes.append(f"{okey.split()[-1]}: {exc}")
        else:
            offset = value.strftime("%z")
            offset = f"{offset[:3]}:{offset[3:]}"
        subsec = _subsec(tags, subsec_key, out.notes)
        if subsec and not value.microsecond:
            value = value.replace(microsecond=int(subsec[:6].ljust(6, "0")))
        out.capture = CaptureTime(local=value, source=name, offset=offset, subsec=subsec)
        out.notes.extend(problems)  # earlier tags that were unusable
        return out
    if problems:
        out.problem = "; ".join(problems)
    return out


def implausibility(
    capture: CaptureTime,
    *,
    now: dt.datetime,
    tz: dt.timezone,
    earliest: dt.date,
    future_tolerance: dt.timedelta,
    campaign_start: dt.date | None = None,
    campaign_end: dt.date | None = None,
) -> dict[str, Any] | None:
    """Why the capture time cannot be right (evidence), or None when it is plausible.

    ``now`` must be aware. A naive capture time is read as the policy's local clock;
    an aware one is converted to it, so both compare in local wall-clock time.
    """
    now_local = now.astimezone(tz).replace(tzinfo=None)
    taken = capture.local
    if taken.tzinfo is not None:
        taken = taken.astimezone(tz).replace(tzinfo=None)
    evidence: dict[str, Any] = {
        "capture_time": capture.local.isoformat(),
        "source": capture.source,
        "compared_as_local": taken.isoformat(),
        "now_local": now_local.isoformat(timespec="seconds"),
    }
    if taken.date() < earliest:
        return {**evidence, "problem": "before_earliest", "earliest": earliest.isoformat()}
    if taken > now_local + future_tolerance:
        ahead = taken - now_local
        return {
            **evidence,
            "problem": "in_future",
            "ahead_minutes": round(ahead.total_seconds() / 60, 1),
        }
    if campaign_start is not None and taken.date() < campaign_start:
        return {
            **evidence,
            "problem": "before_campaign",
            "campaign_start": campaign_start.isoformat(),
        }
    if campaign_end is not None and taken.date() > campaign_end:
        return {**evidence, "problem": "after_campaign", "campaign_end": campaign_end.isoformat()}
    return None
