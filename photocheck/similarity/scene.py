"""Same scene: ORB local features with geometric verification.

PDQ finds copies of one photo; it cannot see that two photos show the same house from
another spot (distances 100+ bits, like unrelated photos). Local features can: ORB
keypoints matched by mutual nearest neighbour and Lowe's ratio test, then a homography
fitted with MAGSAC++; enough geometrically consistent matches means the same scene.

Viewpoint: ORB survives rotation and scale but not strong perspective (a facade seen
at 45°). Like ASIFT, we also detect on a copy squeezed to half width (a simulated
horizontal tilt) and map its keypoints back; that found the Herz-Jesu 0000/0007 pair
(18 inliers, unrelated pairs at most 7) at the cost of ~60% more features.

``SceneFeatures`` is what the upload service stores per photo (``to_bytes``, ~50 KB)
so it can verify candidates later without decoding again.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

from ..policy import SimilarityPolicy

__all__ = ["SceneFeatures", "SceneMatch", "extract_scene_features", "match_scene"]

# (horizontal squeeze, ORB features): the upright view and a simulated 60° tilt.
VIEWS = ((1.0, 900), (0.5, 600))
ORB_FAST_THRESHOLD = 7  # lower than the default 20: facades under flat light
RATIO = 0.8  # Lowe's ratio test
MIN_SIDE = 64  # smaller images get no features
RANSAC_PX = 4.0  # reprojection error at working size (~800 px)
_MAGIC = b"PCSF"
_VERSION = 1
_HEADER = struct.Struct("<4sBHHI")
_FIXED = 16.0  # keypoint coordinates stored as uint16 in 1/16 px


@dataclass(frozen=True, eq=False)
class SceneFeatures:
    """ORB keypoints (x, y at working size) and their 32-byte descriptors."""

    width: int
    height: int
    points: np.ndarray  # (n, 2) float32
    descriptors: np.ndarray  # (n, 32) uint8

    def __len__(self) -> int:
        return len(self.points)

    def to_bytes(self) -> bytes:
        fixed = np.clip(np.round(self.points * _FIXED), 0, 65535).astype("<u2")
        head = _HEADER.pack(_MAGIC, _VERSION, self.width, self.height, len(self))
        return head + fixed.tobytes() + np.ascontiguousarray(self.descriptors).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> SceneFeatures:
        """:exception ValueError: not SceneFeatures bytes, or truncated."""
        if len(data) < _HEADER.size:
            msg = "scene features: too short"
            raise ValueError(msg)
        magic, version, w, h, n = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _VERSION:
            msg = f"scene features: bad magic/version {magic!r}/{version}"
            raise ValueError(msg)
        if len(data) != _HEADER.size + n * (4 + 32):
            msg = f"scene features: {len(data)} bytes for {n} keypoints"
            raise ValueError(msg)
        off = _HEADER.size
        pts = np.frombuffer(data, dtype="<u2", count=2 * n, offset=off).reshape(n, 2)
        desc = np.frombuffer(data, dtype=np.uint8, count=32 * n, offset=off + 4 * n)
        return cls(w, h, pts.astype(np.float32) / _FIXED, desc.reshape(n, 32).copy())


@dataclass(frozen=True)
class SceneMatch:
    matches: int  # mutual, ratio-tested descriptor matches
    inliers: int  # matches consistent with the fitted homography
    ratio: float  # inliers / matches
    corner_error: float | None  # how far the homography moves a's frame onto b's, / diagonal
    is_same_scene: bool

    def evidence(self) -> dict[str, object]:
        return {
            "matches": self.matches,
            "inliers": self.inliers,
            "inlier_ratio": round(self.ratio, 3),
            "corner_error": None if self.corner_error is None else round(self.corner_error, 3),
        }


def extract_scene_features(grey: np.ndarray) -> SceneFeatures:
    """ORB features of the upright working grey image, plus its squeezed view."""
    h, w = grey.shape[:2]
    points, descs = [], []
    for squeeze, n in VIEWS:
        img = grey
        if min(h, round(w * squeeze)) < MIN_SIDE:
            continue  # ORB's pyramid and 31-px patches need room
        if squeeze != 1.0:
            img = cv2.resize(grey, (round(w * squeeze), h), interpolation=cv2.INTER_AREA)
        orb = cv2.ORB_create(nfeatures=n, fastThreshold=ORB_FAST_THRESHOLD)
        kps, des = orb.detectAndCompute(img, None)
        if des is None or not kps:
            continue
        pts = np.array([k.pt for k in kps], dtype=np.float32)
        pts[:, 0] /= squeeze
        points.append(pts)
        descs.append(des)
    if not points:
        return SceneFeatures(w, h, np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
    return SceneFeatures(w, h, np.vstack(points), np.vstack(descs))


def _mutual_ratio_matches(a: SceneFeatures, b: SceneFeatures) -> tuple[np.ndarray, np.ndarray]:
    bf = cv2.BFMatcher(cv2.NORM_HAMMING)
    forward = bf.knnMatch(a.descriptors, b.descriptors, k=2)
    backward = {m.queryIdx: m.trainIdx for m in bf.match(b.descriptors, a.descriptors)}
    ia, ib = [], []
    for pair in forward:
        if len(pair) != 2:
            continue
        m, n = pair
        if m.distance < RATIO * n.distance and backward.get(m.trainIdx) == m.queryIdx:
            ia.append(m.queryIdx)
            ib.append(m.trainIdx)
    return np.array(ia, dtype=np.int64), np.array(ib, dtype=np.int64)


def _corner_error(hom: np.ndarray, a: SceneFeatures, b: SceneFeatures) -> float:
    """Max distance between a's corners mapped by ``hom`` and b's corners, / b's diagonal.

    Near 0 means b is a's frame, resized: the same photo, not a re-shot.
    """
    ca = np.float32([[0, 0], [a.width, 0], [a.width, a.height], [0, a.height]]).reshape(-1, 1, 2)
    cb = np.float32([[0, 0], [b.width, 0], [b.width, b.height], [0, b.height]])
    mapped = cv2.perspectiveTransform(ca, hom).reshape(-1, 2)
    return float(np.linalg.norm(mapped - cb, axis=1).max() / np.hypot(b.width, b.height))


def match_scene(
    a: SceneFeatures, b: SceneFeatures, policy: SimilarityPolicy | None = None
) -> SceneMatch:
    """Verify that ``a`` and ``b`` show the same scene (a homography with enough inliers)."""
    policy = policy or SimilarityPolicy()
    if len(a) < 8 or len(b) < 8:
        return SceneMatch(0, 0, 0.0, None, False)
    ia, ib = _mutual_ratio_matches(a, b)
    if len(ia) < 8:
        return SceneMatch(len(ia), 0, 0.0, None, False)
    hom, mask = cv2.findHomography(
        a.points[ia], b.points[ib], cv2.USAC_MAGSAC, RANSAC_PX, maxIters=2000, confidence=0.999
    )
    if hom is None or mask is None:
        return SceneMatch(len(ia), 0, 0.0, None, False)
    inliers = int(mask.sum())
    ratio = inliers / len(ia)
    same = inliers >= policy.scene_min_inliers and ratio >= policy.scene_min_inlier_ratio
    return SceneMatch(len(ia), inliers, ratio, _corner_error(hom, a, b), same)
