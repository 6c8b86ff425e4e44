"""Drone photos of shared sites: canonical names, site placement, streamed packages."""

from __future__ import annotations

from .manifest import MANIFEST_COLUMNS, ManifestRow, manifest_csv
from .naming import (
    MAX_NAME_BYTES,
    InvalidSiteName,
    SiteKind,
    allocate_name,
    canonical_name,
    is_safe_filename,
    validate_site_name,
)
from .package import MANIFEST_NAME, PackagePhoto, PhotoFacts, build_package, photo_facts
from .sites import DEFAULT_SITE_RADIUS_M, Placement, Site, nearest_site
from .zipstream import (
    BytesSource,
    CallableSource,
    FileSource,
    MemberChanged,
    ZipLayout,
    ZipMember,
    file_digests,
)

__all__ = [
    "DEFAULT_SITE_RADIUS_M",
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "MAX_NAME_BYTES",
    "BytesSource",
    "CallableSource",
    "FileSource",
    "InvalidSiteName",
    "ManifestRow",
    "MemberChanged",
    "PackagePhoto",
    "PhotoFacts",
    "Placement",
    "Site",
    "SiteKind",
    "ZipLayout",
    "ZipMember",
    "allocate_name",
    "build_package",
    "canonical_name",
    "file_digests",
    "is_safe_filename",
    "manifest_csv",
    "nearest_site",
    "photo_facts",
    "validate_site_name",
]
