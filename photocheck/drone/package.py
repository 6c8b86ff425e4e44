"""A village's drone package: the photos of its sites under canonical names + manifest.

The package is described, not built: ``build_package`` returns a ``ZipLayout`` whose
bytes are produced on demand (whole, or any range), from the stored files, without
holding the archive in memory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..metadata import Metadata
from .manifest import ManifestRow, manifest_csv
from .sites import Site
from .zipstream import CallableSource, FileSource, ZipLayout, ZipMember

__all__ = ["MANIFEST_NAME", "PackagePhoto", "PhotoFacts", "build_package", "photo_facts"]

MANIFEST_NAME = "航拍照片清单_manifest.csv"
_NO_TIME = dt.datetime(1980, 1, 1)


@dataclass(frozen=True)
class PhotoFacts:
    """What the manifest and site placement need from a photo's metadata."""

    capture_time: dt.datetime | None = None  # camera-local wall clock, naive
    lat: float | None = None
    lon: float | None = None
    relative_altitude_m: float | None = None

    @property
    def has_location(self) -> bool:
        return self.lat is not None and self.lon is not None


def photo_facts(meta: Metadata | None) -> PhotoFacts:
    """Capture time, position (EXIF GPS, else the drone's own XMP position), altitude."""
    if meta is None:
        return PhotoFacts()
    lat = lon = None
    if meta.gps is not None:
        lat, lon = meta.gps.lat, meta.gps.lon
    elif meta.drone is not None and meta.drone.lat is not None and meta.drone.lon is not None:
        lat, lon = meta.drone.lat, meta.drone.lon
    return PhotoFacts(
        # An aware time keeps its local wall clock: zip and the manifest show local time.
        capture_time=meta.capture_time.local.replace(tzinfo=None) if meta.capture_time else None,
        lat=lat,
        lon=lon,
        relative_altitude_m=meta.drone.relative_altitude_m if meta.drone else None,
    )


@dataclass(frozen=True)
class PackagePhoto:
    """One stored drone photo, with the digests computed once at upload."""

    name: str  # the canonical name given at upload
    site: Site
    source: Path | FileSource | CallableSource
    size: int
    sha256: str
    crc32: int
    capture_time: dt.datetime | None = None  # camera-local, naive
    lat: float | None = None
    lon: float | None = None
    relative_altitude_m: float | None = None
    households: tuple[str, ...] = ()  # households of this site shown in the manifest
    added_at: dt.datetime | None = None  # the zip time when there is no capture time

    @property
    def mtime(self) -> dt.datetime:
        return (self.capture_time or self.added_at or _NO_TIME).replace(tzinfo=None)


def build_package(
    photos: Sequence[PackagePhoto], *, manifest_name: str = MANIFEST_NAME
) -> ZipLayout:
    """The package layout: photos sorted by name, then the manifest.

    Sorting makes the bytes (and so the ETag) independent of query order.

    :exception ValueError: two photos share a name, or one is named like the manifest.
    """
    ordered = sorted(photos, key=lambda p: p.name)
    members = [
        ZipMember(
            p.name,
            p.size,
            p.crc32,
            p.mtime,
            FileSource(p.source) if isinstance(p.source, Path) else p.source,
            p.sha256,
        )
        for p in ordered
    ]
    manifest = manifest_csv(
        ManifestRow(
            name=p.name,
            site_id=p.site.site_id,
            site_name=p.site.name,
            kind=p.site.kind,
            capture_time=p.capture_time,
            lat=p.lat,
            lon=p.lon,
            relative_altitude_m=p.relative_altitude_m,
            sha256=p.sha256,
            households=p.households,
        )
        for p in ordered
    )
    stamp = max((p.mtime for p in ordered), default=_NO_TIME)
    members.append(ZipMember.from_bytes(manifest_name, manifest, stamp))
    return ZipLayout(members)
