"""Shared sites and the placing of a drone photo at the nearest one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..metadata.gps import GPSInvalid, check_coordinates, haversine_m
from .naming import SiteKind, validate_site_name

__all__ = ["DEFAULT_SITE_RADIUS_M", "Placement", "Site", "nearest_site"]

DEFAULT_SITE_RADIUS_M = 1000.0  # the default: a drone frames a site from < 1 km


@dataclass(frozen=True)
class Site:
    """A relocation site, nursing home or public-housing site, as registered."""

    site_id: str
    name: str
    kind: SiteKind
    county: str
    town: str
    lat: float | None = None
    lon: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", validate_site_name(self.name))
        object.__setattr__(self, "county", validate_site_name(self.county, what="county name"))
        object.__setattr__(self, "town", validate_site_name(self.town, what="town name"))
        if (self.lat is None) != (self.lon is None):
            msg = f"site {self.site_id}: give both lat and lon, or neither"
            raise ValueError(msg)
        if self.lat is not None and self.lon is not None:
            try:
                check_coordinates(self.lat, self.lon)
            except GPSInvalid as exc:
                msg = f"site {self.site_id}: {exc}"
                raise ValueError(msg) from exc


@dataclass(frozen=True)
class Placement:
    site: Site
    distance_m: float


def nearest_site(
    lat: float, lon: float, sites: Iterable[Site], *, radius_m: float = DEFAULT_SITE_RADIUS_M
) -> Placement | None:
    """The registered site nearest to (lat, lon) within ``radius_m``, or None.

    A county has a few dozen sites, so a linear scan is the right index.
    """
    best: Placement | None = None
    for site in sites:
        if site.lat is None or site.lon is None:
            continue
        d = haversine_m(lat, lon, site.lat, site.lon)
        if d <= radius_m and (best is None or d < best.distance_m):
            best = Placement(site, d)
    return best
