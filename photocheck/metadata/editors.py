"""Which software strings name an editing program, kept as data tables.

EDITED means a program that can change pixels re-saved the photo: desktop and phone
editors, beauty/filter apps, raw developers. NOT editors: camera and phone firmware
("Ver.1.00", "v553p-73", "fw 05.15"), OS versions that phones write as Software ("4.1",
"14.4.2", "iOS 16.1"), computational-photo pipelines ("HDR+ 1.0.199571065z"), and vendor
copy/transfer tools ("Nikon Transfer", "QuickTime", "PMB Service Uploader"): they move or
re-wrap files without retouching. Anything not listed is unknown and not EDITED, so a new
firmware string never flags an honest photo; add editors here as they are met.

Decided borderline cases:
- Picasa: EDITED. It writes Software="Picasa" only when it saves a change (crop, red-eye,
  filters); merely viewing or importing leaves the file untouched.
- Lightroom / Adobe Bridge named ONLY in XMP CreatorTool: NOT edited. These catalogue
  tools set CreatorTool when they write keywords or ratings into the original file
  ("Save Metadata to File"); an exported, re-encoded copy also says so in EXIF Software
  or in an xmpMM:History event (olympus_fe230 vs canon_1dmk3_via_lightroom).
- History events whose stEvt:changed is only "/metadata" are metadata saves: not edits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .xmp import XmpData

__all__ = [
    "EDITOR_PATTERNS",
    "METADATA_TOOLS",
    "NOT_EDITOR_PATTERNS",
    "NOT_EDITOR_PROGRAMS",
    "EditorHit",
    "classify",
    "find_editors",
    "software_kind",
]

# (regex, program) — matched case-insensitively anywhere in the string.
EDITOR_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"photoshop(?! lightroom)", "Adobe Photoshop"),  # also Elements, Express, Camera Raw
    (r"lightroom", "Adobe Lightroom"),
    (r"camera raw", "Adobe Camera Raw"),
    (r"fireworks", "Adobe Fireworks"),
    (r"\bgimp\b", "GIMP"),
    (r"meitu|美图", "Meitu 美图秀秀"),
    (r"醒图|xingtu", "Xingtu 醒图"),
    (r"美颜|beautycam|beauty ?plus", "beauty camera 美颜"),
    (r"天天p图|pitu", "Tiantian P-tu 天天P图"),
    (r"painttool|paint tool sai", "PaintTool SAI"),
    (r"noise ninja", "Noise Ninja"),
    (r"snapseed", "Snapseed"),
    (r"picsart", "PicsArt"),
    (r"pixelmator", "Pixelmator"),
    (r"affinity", "Affinity Photo"),
    (r"capture one", "Capture One"),
    (r"acdsee|acd systems", "ACDSee"),
    (r"paint\.net", "Paint.NET"),
    (r"picasa", "Picasa"),
    (r"photoscape", "PhotoScape"),
    (r"photodirector", "PhotoDirector"),
    (r"\bvsco\b", "VSCO"),
    (r"\bfotor\b", "Fotor"),
    (r"polarr", "Polarr"),
    (r"facetune", "Facetune"),
    (r"\bcanva\b", "Canva"),
    (r"darktable", "darktable"),
    (r"rawtherapee", "RawTherapee"),
    (r"paintshop|paint shop pro|corel", "Corel PaintShop"),
    (r"luminar", "Luminar"),
    (r"dxo", "DxO PhotoLab"),
    (r"topaz", "Topaz"),
    (r"\baperture\b", "Apple Aperture"),
    (r"\biphoto\b", "Apple iPhoto"),
)

# Editors that also write CreatorTool when they only save keywords/ratings in place.
METADATA_TOOLS = frozenset({"Adobe Lightroom", "Adobe Bridge"})

# Named programs that are NOT editors; checked before EDITOR_PATTERNS so that, e.g.,
# "Nikon Transfer" or "HDR+" never count as edits whatever else they say.
NOT_EDITOR_PROGRAMS: tuple[tuple[str, str], ...] = (
    (r"nikon transfer|pmb service uploader|quicktime|image capture", "vendor transfer tool"),
    (r"^hdr\+", "Google HDR+ camera pipeline"),
    (r"common_fileformat", "FLIR camera"),
)

# Shapes of firmware and OS strings that cameras and phones write as Software. They
# are not needed to decide EDITED (unknown strings are not edits anyway); they name
# what a string is, for the report.
NOT_EDITOR_PATTERNS: tuple[tuple[str, str], ...] = (
    *NOT_EDITOR_PROGRAMS,
    (r"^\s*\d+(\.\d+){1,3}\s*$", "OS or firmware version"),  # "4.1", "14.4.2", "10.00.11.04"
    (r"^(ios|ipados|android|harmonyos|miui|emui|coloros)\b", "phone OS"),
    (r"-user \d", "Android build string"),  # "OnePlus3-user 6.0.1 MMB29M 26 dev-keys"
    (r"\bver(sion)?\.? ?\d|^v ?\d|\bfirmware\b|\bfw \d", "camera firmware"),
    (r"digital camera|^[a-z]?\d+[a-z0-9.\-]*v\d", "camera firmware"),  # "E5700v1.1"
)


def software_kind(text: str | None) -> str:
    """What a Software/CreatorTool string is: editor, a non-editor kind, or unknown."""
    if not text:
        return "none"
    if program := classify(text):
        return f"editor: {program}"
    for pattern, kind in NOT_EDITOR_PATTERNS:
        if re.search(pattern, text, re.IGNORECASE):
            return kind
    return "unknown"


@dataclass(frozen=True)
class EditorHit:
    field: str  # where the string was found: Software, xmp:CreatorTool, ...
    value: str  # the string itself
    program: str  # the editor it names

    def evidence(self) -> str:
        return f"{self.field}={self.value!r} ({self.program})"


def classify(text: str) -> str | None:
    """The editor a software string names, or None (non-editor or unknown)."""
    for pattern, _kind in NOT_EDITOR_PROGRAMS:
        if re.search(pattern, text, re.IGNORECASE):
            return None
    for pattern, program in EDITOR_PATTERNS:
        if re.search(pattern, text, re.IGNORECASE):
            return program
    return None


def find_editors(
    *,
    software: str | None,
    xmp: XmpData,
    photoshop_writer: str | None = None,
) -> list[EditorHit]:
    """Every piece of metadata naming an editing program, each with its field."""
    hits: list[EditorHit] = []

    def add(field: str, value: str | None) -> None:
        if value and (program := classify(value)):
            hits.append(EditorHit(field, value, program))

    add("Software", software)
    for event in xmp.history:
        if (event.changed or "").strip() == "/metadata":
            continue
        add(f"xmpMM:History[{event.action or '?'}].softwareAgent", event.software_agent)
    add("Photoshop image resources (8BIM VersionInfo)", photoshop_writer)
    creator = xmp.get("xmp:CreatorTool")
    if creator and (program := classify(creator)):
        metadata_only = program in METADATA_TOOLS and not any(h.program == program for h in hits)
        if not metadata_only:
            hits.append(EditorHit("xmp:CreatorTool", creator, program))
    if xmp.get("photoshop:History"):
        hits.append(
            EditorHit("photoshop:History", xmp.get("photoshop:History") or "", "Adobe Photoshop")
        )
    if xmp.props.get("photoshop:DocumentAncestors"):
        hits.append(EditorHit("photoshop:DocumentAncestors", "present", "Adobe Photoshop"))
    return hits
