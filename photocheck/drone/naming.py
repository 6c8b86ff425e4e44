"""Canonical names of shared-site drone photos.

``{county}_{town}_{site name}_{kind}_航拍_{YYYYMMDD}_{NN}.jpg``, e.g.
``丹凤县_龙驹寨街道_幸福家园_移民搬迁点_航拍_20210820_01.jpg``.

A name travels through Windows Explorer, macOS Finder and chat-app file transfer, so it
holds no path separator, no Windows-reserved character or device name, no control or
invisible formatting character, is NFC-normalised and at most ``MAX_NAME_BYTES`` bytes
in UTF-8. Site, town and county names are *validated*, not repaired: a path-like or
over-long name is refused with ``InvalidSiteName`` so nobody finds a silently altered
name later. Only the site name part is shortened (on a character boundary) when the
whole name would exceed the byte budget; the date, sequence number and extension stay.

Names are given once, at upload, and stored: ``allocate_name`` picks the next free
sequence number for a site and day against the names already taken, so two sites whose
shortened names coincide still never collide.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Container
from enum import StrEnum

from ..errors import PhotocheckError

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_SITE_NAME_CHARS",
    "InvalidSiteName",
    "SiteKind",
    "allocate_name",
    "canonical_name",
    "is_safe_filename",
    "validate_site_name",
]

MAX_NAME_BYTES = 120  # the limit; well under every file system's 255
MAX_SITE_NAME_CHARS = 50  # real site names are 4-25 characters
AERIAL = "航拍"
_RESERVED_CHARS = frozenset('<>:"/\\|?*')
# Unicode categories that are invisible or break lines: controls, formatting (bidi
# overrides, zero-width), line/paragraph separators, surrogates, private use, unassigned.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in "123456789¹²³"}
    | {f"LPT{i}" for i in "123456789¹²³"}
)
_WHITESPACE = re.compile(r"\s+")
_KEEP_CHARS = 4  # of each name part, whatever the others need (4 x 3 x 4 bytes < 120)


class InvalidSiteName(PhotocheckError, ValueError):
    """A site, town or county name that cannot become part of a file name."""


class SiteKind(StrEnum):
    """The three kinds of shared site of 保障安全 households (DESIGN §1)."""

    RELOCATION = "relocation"
    NURSING_HOME = "nursing_home"
    PUBLIC_HOUSING = "public_housing"

    @property
    def label_zh(self) -> str:
        return _KIND_ZH[self]

    @property
    def label_en(self) -> str:
        return _KIND_EN[self]

    @classmethod
    def parse(cls, text: str) -> SiteKind:
        """Accept the enum value, the English or the Chinese label.

        :exception ValueError: none of them matches.
        """
        key = text.strip()
        for kind in cls:
            if key in (kind.value, kind.label_zh) or key.lower() == kind.label_en.lower():
                return kind
        choices = ", ".join(f"{k.value} ({k.label_zh})" for k in cls)
        msg = f"unknown site kind {text!r}; expected one of {choices}"
        raise ValueError(msg)


_KIND_ZH = {
    SiteKind.RELOCATION: "移民搬迁点",
    SiteKind.NURSING_HOME: "敬老院",
    SiteKind.PUBLIC_HOUSING: "保障性住房",
}
_KIND_EN = {
    SiteKind.RELOCATION: "relocation site",
    SiteKind.NURSING_HOME: "nursing home",
    SiteKind.PUBLIC_HOUSING: "public housing",
}


def validate_site_name(name: str, *, what: str = "site name") -> str:
    """The name NFC-normalised with surrounding blanks removed, or ``InvalidSiteName``.

    Refused: empty names, names longer than ``MAX_SITE_NAME_CHARS``, path-like names
    (``../x``, ``a/b``, ``C:\\``), Windows-reserved characters ``<>:"/\\|?*``, control
    and invisible formatting characters, names starting with a dot or a dash, and
    Windows device names (CON, NUL, COM1...).

    :exception InvalidSiteName: the name cannot be used; the message says why.
    """
    if not isinstance(name, str):
        msg = f"{what} must be text, not {type(name).__name__}"
        raise InvalidSiteName(msg)
    clean = unicodedata.normalize("NFC", name).strip()
    if not clean:
        msg = f"{what} is empty"
        raise InvalidSiteName(msg)
    if len(clean) > MAX_SITE_NAME_CHARS:
        msg = f"{what} is {len(clean)} characters long; at most {MAX_SITE_NAME_CHARS} allowed"
        raise InvalidSiteName(msg)
    bad = sorted({c for c in clean if c in _RESERVED_CHARS})
    if bad:
        msg = f"{what} {clean!r} contains {' '.join(bad)}, which file names cannot hold"
        raise InvalidSiteName(msg)
    invisible = [c for c in clean if unicodedata.category(c) in _FORBIDDEN_CATEGORIES]
    if invisible:
        codes = ", ".join(f"U+{ord(c):04X}" for c in dict.fromkeys(invisible))
        msg = f"{what} {clean!r} contains control or invisible characters ({codes})"
        raise InvalidSiteName(msg)
    if clean[0] in ".-":
        msg = f"{what} {clean!r} must not start with {clean[0]!r}"
        raise InvalidSiteName(msg)
    if clean.split(".")[0].strip().upper() in _WINDOWS_DEVICES:
        msg = f"{what} {clean!r} is a reserved device name on Windows"
        raise InvalidSiteName(msg)
    return clean


def is_safe_filename(name: str) -> bool:
    """True when ``name`` can be written as-is on Windows, macOS and chat apps."""
    if not name or name != unicodedata.normalize("NFC", name):
        return False
    if len(name.encode("utf-8")) > MAX_NAME_BYTES or name[-1] in ". " or name[0] in ".- ":
        return False
    if any(c in _RESERVED_CHARS or unicodedata.category(c) in _FORBIDDEN_CATEGORIES for c in name):
        return False
    return name.split(".")[0].strip().upper() not in _WINDOWS_DEVICES


def canonical_name(
    *,
    county: str,
    town: str,
    site_name: str,
    kind: SiteKind,
    day: dt.date,
    seq: int,
    ext: str = ".jpg",
) -> str:
    """The canonical file name, shortened to ``MAX_NAME_BYTES`` in the site name part.

    :exception InvalidSiteName: a name part is invalid.
    :exception ValueError: ``seq`` is below 1 or ``ext`` is not a plain extension.
    """
    if seq < 1:
        msg = f"sequence number must be at least 1, got {seq}"
        raise ValueError(msg)
    if not re.fullmatch(r"\.[a-z0-9]{1,5}", ext):
        msg = f"extension must look like '.jpg', got {ext!r}"
        raise ValueError(msg)
    parts = [
        _part(validate_site_name(county, what="county name")),
        _part(validate_site_name(town, what="town name")),
        _part(validate_site_name(site_name)),
    ]
    tail = f"_{kind.label_zh}_{AERIAL}_{day:%Y%m%d}_{seq:02d}{ext}"
    county_part, town_part, site_part = _fit(parts, MAX_NAME_BYTES - len(tail.encode()) - 2)
    return f"{county_part}_{town_part}_{site_part}{tail}"


def allocate_name(
    *,
    county: str,
    town: str,
    site_name: str,
    kind: SiteKind,
    day: dt.date,
    taken: Container[str],
    start: int = 1,
    ext: str = ".jpg",
) -> str:
    """The first canonical name for this site and day, from ``start`` on, not in ``taken``.

    Pass as ``start`` one more than the site's photo count for that day so numbers run
    01, 02, ... per site and day; ``taken`` holds every name already given (all sites),
    which keeps names unique even when two long site names shorten to the same prefix.
    """
    seq = max(start, 1)
    while True:
        name = canonical_name(
            county=county, town=town, site_name=site_name, kind=kind, day=day, seq=seq, ext=ext
        )
        if name not in taken:
            return name
        seq += 1


def _part(text: str) -> str:
    """Blanks inside a name become one dash: chat apps and shells mangle spaces."""
    return _WHITESPACE.sub("-", text)


def _fit(parts: list[str], room: int) -> list[str]:
    """Shorten the parts to fit ``room`` UTF-8 bytes: the site name (last) first.

    Each part keeps its first ``_KEEP_CHARS`` characters; then county, town and site
    name are given back their full length in that order while there is room. Real
    county and town names are short, so in practice only a long site name is cut.
    """
    kept = [p[:_KEEP_CHARS] for p in parts]
    spare = room - sum(len(k.encode()) for k in kept)
    out = []
    for part, keep in zip(parts, kept, strict=True):
        longer = _truncate_utf8(part, len(keep.encode()) + max(spare, 0))
        spare -= len(longer.encode()) - len(keep.encode())
        out.append(longer.rstrip("-") or keep)
    return out


def _truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 form fits in ``max_bytes``."""
    if max_bytes <= 0:
        return ""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")
