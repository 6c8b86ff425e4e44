"""Findings about one photo at a time: upload reasons, campaign window, thumbnail,
missing camera data, distance from the village."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from .columns import EPOCH, PhotoColumns, haversine_m_np, photo_columns
from .findings import AuditFinding, FindingKind, FindingSeverity, build_finding
from .geo import haversine_m
from .records import PhotoRecord, VillageRecord

__all__ = ["REASON_LABELS", "SingleThresholds", "single_photo_findings"]

# Short names of the upload check's reason codes (DESIGN §4.1) for the audit lists; the
# long messages are written for the verifier at the house.
REASON_LABELS: dict[str, tuple[str, str]] = {
    "UNREADABLE": ("文件无法读取", "unreadable"),
    "TOO_SMALL": ("分辨率太低", "too small"),
    "BLURRY": ("照片模糊", "blurred"),
    "TOO_DARK": ("太暗", "too dark"),
    "TOO_BRIGHT": ("过曝", "over-exposed"),
    "NO_HOUSE": ("未拍到房屋", "no house"),
    "SCREEN_PHOTO": ("翻拍屏幕或截图", "screen photo or screenshot"),
    "TILTED": ("倾斜", "tilted"),
    "NO_GPS": ("无定位", "no GPS"),
    "GPS_INVALID": ("定位无效", "invalid GPS"),
    "GPS_OUTSIDE_AREA": ("定位不在本村", "GPS outside the village"),
    "MOCK_LOCATION": ("虚拟定位", "mock location"),
    "NO_CAPTURE_TIME": ("无拍摄时间", "no capture time"),
    "CAPTURE_TIME_IMPLAUSIBLE": ("拍摄时间异常", "implausible capture time"),
    "EDITED": ("经软件编辑", "edited"),
    "DUPLICATE_PHOTO": ("与他户照片重复", "duplicate of another household's photo"),
    "SAME_SCENE": ("与他户为同一房屋", "same house as another household"),
}


@dataclass(frozen=True)
class SingleThresholds:
    """campaign_start/end: local dates, inclusive; None = no window check.
    gps_radius_m: the policy's GPS radius (DESIGN: [area] gps_radius_m)."""

    campaign_start: dt.date | None = None
    campaign_end: dt.date | None = None
    gps_radius_m: float = 2000.0


def single_photo_findings(
    photos: Iterable[PhotoRecord],
    villages: Mapping[str, VillageRecord],
    th: SingleThresholds = SingleThresholds(),
    *,
    columns: PhotoColumns | None = None,
) -> list[AuditFinding]:
    """Findings per photo, in photo order (then reasons, campaign, thumbnail, metadata,
    GPS). Numpy picks the candidates on the columns with a margin; each candidate is
    decided by the scalar rule below, so the two never disagree."""
    cols = columns if columns is not None else photo_columns(photos)

    def gps_far(p: PhotoRecord, th: SingleThresholds) -> AuditFinding | None:
        return _gps_far(p, villages.get(p.village_id), th)

    rules = (
        (np.flatnonzero(cols.reason_flagged), _reasons),
        (np.flatnonzero(_campaign_candidates(cols, th)), _campaign),
        (np.flatnonzero(cols.thumbnail_mismatch), _thumbnail),
        (np.flatnonzero(cols.in_app_without_camera), _metadata_missing),
        (_far_candidates(cols, villages, th), gps_far),
    )
    todo = sorted((k, r) for r, (idx, _) in enumerate(rules) for k in idx.tolist())
    out: list[AuditFinding] = []
    for k, r in todo:
        f = rules[r][1](cols.photos[k], th)
        if f is not None:
            out.append(f)
    return out


def _campaign_candidates(cols: PhotoColumns, th: SingleThresholds) -> np.ndarray:
    """Photos taken (with a second of margin) before the first or after the last day."""
    out = np.zeros(len(cols), dtype=bool)
    if th.campaign_start is not None:
        first = (dt.datetime.combine(th.campaign_start, dt.time()) - EPOCH).total_seconds()
        out |= cols.t < first + 1.0
    if th.campaign_end is not None:
        after = dt.datetime.combine(th.campaign_end + dt.timedelta(days=1), dt.time())
        out |= cols.t >= (after - EPOCH).total_seconds() - 1.0
    return out & cols.timed


def _far_candidates(
    cols: PhotoColumns, villages: Mapping[str, VillageRecord], th: SingleThresholds
) -> np.ndarray:
    """Located photos whose village has a centre and that are not surely within the
    radius (a NaN distance counts as far, as in ``_gps_far``)."""
    n_codes = len(cols.village_ids)
    clat, clon = np.full(n_codes, np.nan), np.full(n_codes, np.nan)
    known = np.zeros(n_codes, dtype=bool)
    for code, vid in enumerate(cols.village_ids):
        v = villages.get(vid)
        if v is not None and v.centre_lat is not None and v.centre_lon is not None:
            clat[code], clon[code], known[code] = v.centre_lat, v.centre_lon, True
    cand = np.flatnonzero(cols.located & known[cols.village])
    codes = cols.village[cand]
    dist = haversine_m_np(cols.lat[cand], cols.lon[cand], clat[codes], clon[codes])
    r = th.gps_radius_m
    return cand[~(dist <= r * (1 - 1e-9) - 1e-9)]


def _reasons(p: PhotoRecord, th: SingleThresholds) -> AuditFinding | None:
    if not p.is_current or p.verdict not in ("review", "reject") or not p.reasons:
        return None
    zh = "、".join(REASON_LABELS.get(c, (c, c))[0] for c in p.reasons)
    en = ", ".join(REASON_LABELS.get(c, (c, c))[1] for c in p.reasons)
    return build_finding(
        FindingKind.PHOTO_REASON,
        FindingSeverity.HIGH if p.verdict == "reject" else FindingSeverity.LOW,
        [p],
        f"上传检查{'需重拍' if p.verdict == 'reject' else '待审核'}：{zh}",
        f"upload check: {'retake needed' if p.verdict == 'reject' else 'review'}: {en}",
        {"verdict": p.verdict, "reasons": list(p.reasons)},
    )


def _campaign(p: PhotoRecord, th: SingleThresholds) -> AuditFinding | None:
    when = p.taken_at
    if when is None or (th.campaign_start is None and th.campaign_end is None):
        return None
    day = when.date()
    before = th.campaign_start is not None and day < th.campaign_start
    after = th.campaign_end is not None and day > th.campaign_end
    if not (before or after):
        return None
    window = f"{th.campaign_start or '…'} – {th.campaign_end or '…'}"
    return build_finding(
        FindingKind.OUTSIDE_CAMPAIGN,
        FindingSeverity.MEDIUM,
        [p],
        f"拍摄于 {when:%Y-%m-%d %H:%M}，不在核验期（{window}）内",
        f"taken {when:%Y-%m-%d %H:%M}, outside the campaign ({window})",
        {
            "taken_at": when.isoformat(),
            "campaign_start": th.campaign_start.isoformat() if th.campaign_start else None,
            "campaign_end": th.campaign_end.isoformat() if th.campaign_end else None,
        },
    )


def _thumbnail(p: PhotoRecord, th: SingleThresholds) -> AuditFinding | None:
    t = p.thumbnail
    if t is None or t.matches:
        return None
    return build_finding(
        FindingKind.THUMBNAIL_MISMATCH,
        FindingSeverity.HIGH,
        [p],
        "照片内嵌的缩略图与照片内容不同，照片可能被替换或修改",
        "the embedded EXIF thumbnail shows a different picture: the photo was likely "
        "replaced or edited",
        {"correlation": round(t.correlation, 3), "mean_abs_diff": round(t.mean_abs_diff, 1)},
    )


def _metadata_missing(p: PhotoRecord, th: SingleThresholds) -> AuditFinding | None:
    if p.app is None or not p.app.in_app or p.has_camera_metadata:
        return None
    return build_finding(
        FindingKind.METADATA_MISSING,
        FindingSeverity.MEDIUM,
        [p],
        "应用记录为现场拍摄，但照片没有相机信息（可能不是原图）",
        "the app recorded an in-app capture, but the photo has no camera metadata "
        "(probably not the original)",
        {"device_id": p.app.device_id},
    )


def _gps_far(
    p: PhotoRecord, village: VillageRecord | None, th: SingleThresholds
) -> AuditFinding | None:
    pos = p.position
    if pos is None or village is None or village.centre_lat is None or village.centre_lon is None:
        return None
    dist = haversine_m(pos[0], pos[1], village.centre_lat, village.centre_lon)
    if dist <= th.gps_radius_m:
        return None
    return build_finding(
        FindingKind.GPS_FAR,
        FindingSeverity.MEDIUM,
        [p],
        f"拍摄位置距本村中心 {dist / 1000:.1f} 公里",
        f"taken {dist / 1000:.1f} km from the village centre",
        {
            "distance_m": round(dist, 1),
            "radius_m": th.gps_radius_m,
            "position": [pos[0], pos[1]],
            "village_centre": [village.centre_lat, village.centre_lon],
        },
    )
