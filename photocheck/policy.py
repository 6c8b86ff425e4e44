"""The policy: every threshold and severity in one versioned TOML file.

The library never reads the environment; callers load a policy and pass it in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import PolicyError
from .reasons import DEFAULT_SEVERITY, ReasonCode, Severity

__all__ = [
    "SCENE_MATCHERS",
    "AreaPolicy",
    "ContentPolicy",
    "GeometryPolicy",
    "MetadataPolicy",
    "Policy",
    "QualityPolicy",
    "SimilarityPolicy",
    "default_policy",
    "load_policy",
]


@dataclass(frozen=True)
class QualityPolicy:
    min_pixels: int = 300_000
    max_pixels: int = 120_000_000
    max_decode_mb: int = 400  # memory one decode may take, estimated from the header
    working_size: int = 800
    # see checks/quality.py and default_policy.toml for what these measure
    blur_min_sharpness: float = 0.465
    blur_min_tile_contrast: float = 8.0
    dark_max_highlight: float = 152.0
    bright_min_shadow: float = 130.0
    bright_max_clipped: float = 0.5

    @property
    def max_decode_bytes(self) -> int:
        return self.max_decode_mb * 1024 * 1024


@dataclass(frozen=True)
class ContentPolicy:
    house_min_score: float = 0.0  # NO_HOUSE below: building + half street-context mass
    screen_max_score: float = 1.0  # SCREEN_PHOTO above: screen/document/sign mass
    graphics_screen_max_score: float = 1.0  # ...or above this when the pixels look synthetic
    graphics_min_flat_fraction: float = 1.0  # share of exactly flat pixels that looks synthetic


@dataclass(frozen=True)
class GeometryPolicy:
    tilt_max_degrees: float = 8.0


@dataclass(frozen=True)
class MetadataPolicy:
    earliest_capture: dt.date = dt.date(2010, 1, 1)
    timezone_offset_hours: float = 8.0
    future_tolerance_minutes: float = 10.0
    campaign_start: dt.date | None = None
    campaign_end: dt.date | None = None  # campaign window: inclusive local dates

    def __post_init__(self) -> None:
        for name in ("campaign_start", "campaign_end"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, dt.date) or isinstance(value, dt.datetime)
            ):
                msg = f"policy [metadata] {name} must be a date (2020-06-01), got {value!r}"
                raise PolicyError(msg)
        if self.campaign_start and self.campaign_end and self.campaign_start > self.campaign_end:
            msg = "policy [metadata] campaign_start is after campaign_end"
            raise PolicyError(msg)
        if not -14 <= self.timezone_offset_hours <= 14:
            msg = "policy [metadata] timezone_offset_hours must be within -14..14"
            raise PolicyError(msg)

    @property
    def tz(self) -> dt.timezone:
        return dt.timezone(dt.timedelta(hours=self.timezone_offset_hours))


@dataclass(frozen=True)
class AreaPolicy:
    gps_radius_m: float = 2000.0
    site_radius_m: float = 1000.0  # drone photo of a shared site: from the site's point


SCENE_MATCHERS = ("orb", "xfeat")


@dataclass(frozen=True)
class SimilarityPolicy:
    same_photo_max_distance: int = 31  # PDQ bits: a copy, no further check
    same_photo_verify_max_distance: int = 48  # up to here a copy if the frames align
    same_photo_max_corner_error: float = 0.03  # homography corner shift / diagonal
    min_pdq_quality: int = 50  # PDQ of flatter images is not trusted (ThreatExchange)
    scene_min_inliers: int = 27  # guided homography inliers with agreeing orientation
    scene_min_inlier_ratio: float = 0.25
    scene_candidates: int = 8  # per photo, verified geometrically in dedup
    # "xfeat" (default: similarity/xfeat_scene.py) or "orb" (similarity/scene.py: cheaper,
    # lower recall)
    scene_matcher: str = "xfeat"
    xfeat_min_inliers: int = 90  # fundamental-matrix inliers of LighterGlue matches
    xfeat_min_inlier_ratio: float = 0.25
    xfeat_match_prob: float = 0.1  # LighterGlue's match probability floor
    # stage 1 (mutual nearest descriptors + fundamental matrix): from here on the same
    # scene without LighterGlue; below the floor different without it; between, LighterGlue
    xfeat_nn_same_inliers: int = 110
    xfeat_nn_min_inliers: int = 50

    def __post_init__(self) -> None:
        if self.scene_matcher not in SCENE_MATCHERS:
            msg = (
                f"policy [similarity] scene_matcher must be one of "
                f"{', '.join(SCENE_MATCHERS)}, got {self.scene_matcher!r}"
            )
            raise PolicyError(msg)
        if not 0.0 < self.xfeat_match_prob < 1.0:
            msg = "policy [similarity] xfeat_match_prob must be within 0..1 (exclusive)"
            raise PolicyError(msg)


@dataclass(frozen=True)
class Policy:
    version: str
    severity: Mapping[ReasonCode, Severity] = field(default_factory=lambda: dict(DEFAULT_SEVERITY))
    quality: QualityPolicy = QualityPolicy()
    content: ContentPolicy = ContentPolicy()
    geometry: GeometryPolicy = GeometryPolicy()
    metadata: MetadataPolicy = MetadataPolicy()
    area: AreaPolicy = AreaPolicy()
    similarity: SimilarityPolicy = SimilarityPolicy()

    def severity_of(self, code: ReasonCode) -> Severity:
        return self.severity.get(code, DEFAULT_SEVERITY[code])

    def replace(self, **changes: Any) -> Policy:
        """A copy with some sections or fields replaced (sections as dataclasses)."""
        return dataclasses.replace(self, **changes)


_SECTIONS: dict[str, type] = {
    "quality": QualityPolicy,
    "content": ContentPolicy,
    "geometry": GeometryPolicy,
    "metadata": MetadataPolicy,
    "area": AreaPolicy,
    "similarity": SimilarityPolicy,
}


def _section(name: str, cls: type, raw: Mapping[str, Any]) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(known)
    if unknown:
        msg = f"policy [{name}] has unknown keys: {', '.join(sorted(unknown))}"
        raise PolicyError(msg)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        default = getattr(cls(), key)
        if isinstance(default, bool) or default is None:
            values[key] = value
        elif isinstance(default, float) and isinstance(value, int):
            values[key] = float(value)
        elif default is not None and not isinstance(value, type(default)):
            msg = f"policy [{name}] {key} must be {type(default).__name__}, got {value!r}"
            raise PolicyError(msg)
        else:
            values[key] = value
    return cls(**values)


def parse_policy(raw: Mapping[str, Any]) -> Policy:
    """Build a Policy from parsed TOML, refusing unknown keys and wrong types."""
    version = raw.get("version")
    if not isinstance(version, str) or not version:
        msg = "policy needs a non-empty string `version`"
        raise PolicyError(msg)
    severity = dict(DEFAULT_SEVERITY)
    for code, value in raw.get("severity", {}).items():
        try:
            severity[ReasonCode(code)] = Severity(value)
        except ValueError:
            msg = f"policy [severity] {code} = {value!r}: unknown code or severity"
            raise PolicyError(msg) from None
    sections = {name: _section(name, cls, raw.get(name, {})) for name, cls in _SECTIONS.items()}
    extra = set(raw) - {"version", "severity", *_SECTIONS}
    if extra:
        msg = f"policy has unknown sections: {', '.join(sorted(extra))}"
        raise PolicyError(msg)
    return Policy(version=version, severity=severity, **sections)


def load_policy(path: str | Path | None = None) -> Policy:
    """Load a policy file; without a path, the packaged default.

    :exception PolicyError: the file is missing, not TOML, or has unknown/ill-typed keys.
    """
    try:
        if path is None:
            text = resources.files("photocheck").joinpath("default_policy.toml").read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        raw = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        msg = f"cannot load policy {path or 'default'}: {exc}"
        raise PolicyError(msg) from exc
    return parse_policy(raw)


_DEFAULT: Policy | None = None


def default_policy() -> Policy:
    """The packaged default policy, parsed once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_policy()
    return _DEFAULT
