"""Same scene, the default matcher: XFeat keypoints, fundamental-matrix inliers, in two stages.

Selected by the policy's ``[similarity] scene_matcher = "xfeat"`` (the default; ORB,
``scene.py``, stays selectable). On the developer set (both DUPLICATES files) it finds
68/70 same-scene pairs with no false pair, against ORB's 57/70.

1. ``extract_scene_features``: XFeat on the working image scaled to 640 px
   (``similarity/xfeat.py``, onnxruntime + numpy, no torch), 1024 keypoints;
2. ``match_scene``: first ``nn_match`` (~9 ms CPU): mutual nearest descriptors, MAGSAC++
   on the fundamental matrix. A re-shot house is seen from another camera position:
   a facade fits a homography, but two walls, a roof and a yard do not, while they
   always fit the epipolar geometry of the two cameras. At least
   ``xfeat_nn_same_inliers`` inliers is the same scene, fewer than
   ``xfeat_nn_min_inliers`` is not: both calibrated with margins on the developer
   set (``scripts/calibrate_scene.py --matcher xfeat``). Only the band between goes
   to ``glue_match`` (~300 ms): LighterGlue's mutual assignments above
   ``xfeat_match_prob``, the same fundamental-matrix count against
   ``xfeat_min_inliers``. ``SceneMatch.stage`` says which stage decided.

A homography on the inliers of a verified scene gives ``corner_error`` for the
same-photo tier (a copy's frames align); a pair that is not the same scene cannot be a
copy, so it gets none (its RANSAC would cost more than stage 1). XFeat is not
rotation-invariant; rotated copies are PDQ's (dihedral).

``SceneFeatures.to_bytes`` (~135 KB for 1024 keypoints) starts with its own magic, so
features of one matcher are never read as the other's: switching the policy's
matcher makes every photo's features again (``FORMAT_PREFIX``, ``is_current_format``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..policy import SimilarityPolicy
from .xfeat import XFeatRuntime, glue_scores, mutual_matches

__all__ = [
    "FORMAT_PREFIX",
    "SceneFeatures",
    "SceneMatch",
    "extract_scene_features",
    "glue_match",
    "is_current_format",
    "match_scene",
    "nn_match",
]

FUNDAMENTAL_PX = 2.0  # epipolar distance at working size (800 px; ~1.6 px at 640)
# MAGSAC++ iterations: a pair of one scene converges in far fewer; an unrelated pair
# (few inliers among the matches) runs to the cap, so the cap is most of stage 1's
# cost. 10,000 -> 1,000 changed no decision on the calibration set (~22 -> ~4 ms a pair;
# scripts/calibrate_scene.py --matcher xfeat).
MAGSAC_ITERS = 1000
MIN_MATCHES = 8  # the eight-point minimum, with room for outliers
STAGE_NN = "nn"  # mutual nearest descriptors + fundamental matrix (~9 ms a pair)
STAGE_GLUE = "lighterglue"  # LighterGlue + fundamental matrix (~300 ms a pair)
EVIDENCE_POINTS = 150  # inlier pairs kept in the evidence (the audit's match picture)
_MAGIC = b"PCXF"  # not ORB's b"PCSF": which matcher made the features
_VERSION = 1  # scene-matcher's branch stored this layout as PCSF version 4
_HEADER = struct.Struct("<4sBHHI")  # magic, version, width, height, keypoints
FORMAT_PREFIX = _MAGIC + bytes([_VERSION])
_FIXED = 8.0  # keypoint coordinates stored as uint16 in 1/8 px (up to 8191 px)
_DIM = 64
_KP_BYTES = 4 + 2 * _DIM  # x, y (uint16), descriptor (float16)
_NO_C = np.empty((0, 0), np.float32)  # gemm's third term, unused (beta 0)


@dataclass(frozen=True, eq=False)
class SceneFeatures:
    """XFeat keypoints at working size, best first, with unit-length descriptors."""

    width: int
    height: int
    points: np.ndarray  # (n, 2) float32, x, y at working size
    descriptors: np.ndarray  # (n, 64) float32

    def __len__(self) -> int:
        return len(self.points)

    def to_bytes(self) -> bytes:
        fixed = _fixed(self.points)
        head = _HEADER.pack(_MAGIC, _VERSION, self.width, self.height, len(self))
        desc = np.ascontiguousarray(self.descriptors, dtype="<f2")
        return b"".join((head, fixed.tobytes(), desc.tobytes()))

    @classmethod
    def from_bytes(cls, data: bytes) -> SceneFeatures:
        """:exception ValueError: not XFeat features, an old version, or truncated."""
        if len(data) < _HEADER.size:
            msg = "xfeat features: too short"
            raise ValueError(msg)
        magic, version, w, h, n = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _VERSION:
            msg = f"xfeat features: {magic!r} version {version}, expected {FORMAT_PREFIX!r}"
            raise ValueError(msg)
        if len(data) != _HEADER.size + n * _KP_BYTES:
            msg = f"xfeat features: {len(data)} bytes for {n} keypoints"
            raise ValueError(msg)
        off = _HEADER.size
        pts = np.frombuffer(data, dtype="<u2", count=2 * n, offset=off).reshape(n, 2)
        desc = np.frombuffer(data, dtype="<f2", count=_DIM * n, offset=off + 4 * n)
        if n and not np.isfinite(desc).all():
            msg = "xfeat features: descriptor not finite"
            raise ValueError(msg)
        return cls(w, h, pts.astype(np.float32) / _FIXED, desc.reshape(n, _DIM).astype(np.float32))


def is_current_format(data: bytes) -> bool:
    """Whether stored features are XFeat's, of this version (ORB's, or older ones, must
    be made again). Says nothing about truncation: that is an error."""
    return data[: len(FORMAT_PREFIX)] == FORMAT_PREFIX


@dataclass(frozen=True)
class SceneMatch:
    matches: int  # LighterGlue mutual assignments above the policy's match probability
    inliers: int  # of those, fundamental-matrix (MAGSAC++) inliers
    ratio: float  # inliers / matches
    corner_error: float | None  # a homography on the inliers moves a's frame how far (same only)
    is_same_scene: bool
    # (n, 4) xa, ya, xb, yb of up to EVIDENCE_POINTS inliers, at working size
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    coverage: float = 0.0  # convex hull of the inliers / frame area, the smaller of both
    stage: str = STAGE_GLUE  # which stage decided: STAGE_NN (clear) or STAGE_GLUE

    def evidence(self) -> dict[str, object]:
        return {
            "matcher": "xfeat",
            "stage": self.stage,
            "matches": self.matches,
            "inliers": self.inliers,
            "inlier_ratio": round(self.ratio, 3),
            "corner_error": None if self.corner_error is None else round(self.corner_error, 3),
            "coverage": round(self.coverage, 3),
        }


def extract_scene_features(grey: np.ndarray) -> SceneFeatures:
    """XFeat features of the upright working grey image."""
    h, w = grey.shape[:2]
    kp = XFeatRuntime.shared().detect(grey)
    return SceneFeatures(w, h, kp.points, kp.descriptors)


def _corner_error(hom: np.ndarray, a: SceneFeatures, b: SceneFeatures) -> float:
    """Max distance between a's corners mapped by ``hom`` and b's corners, / b's diagonal.

    Near 0 means b is a's frame, resized: the same photo, not a re-shot.
    """
    ca = np.array([[0, 0], [a.width, 0], [a.width, a.height], [0, a.height]], np.float32)
    cb = np.array([[0, 0], [b.width, 0], [b.width, b.height], [0, b.height]], np.float32)
    mapped = cv2.perspectiveTransform(ca.reshape(-1, 1, 2), hom).reshape(-1, 2)
    return float(np.linalg.norm(mapped - cb, axis=1).max() / np.hypot(b.width, b.height))


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.clip(np.round(points * _FIXED), 0, 65535).astype("<u2")


def _first(a: SceneFeatures, b: SceneFeatures) -> bool:
    """Whether ``a`` goes first: a fixed order, so that match_scene(a, b) == (b, a).

    The order of (size, ``to_bytes()``), compared part by part so that a pair costs
    the 8 KB of keypoints, not both 135 KB serialisations (descriptors only break a
    tie of identical keypoints)."""
    ka, kb = (len(a), a.width, a.height), (len(b), b.width, b.height)
    if ka != kb:
        return ka < kb
    pa, pb = _fixed(a.points).tobytes(), _fixed(b.points).tobytes()
    if pa != pb:
        return pa < pb
    da = np.ascontiguousarray(a.descriptors, dtype="<f2").tobytes()
    return da <= np.ascontiguousarray(b.descriptors, dtype="<f2").tobytes()


def _spread(n: int, keep: int) -> np.ndarray:
    return np.linspace(0, n - 1, min(n, keep)).round().astype(np.int64) if n else np.zeros(0, int)


def _hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of image-normalised points (1.0: the whole frame)."""
    hull = cv2.convexHull(np.ascontiguousarray(points, np.float32).reshape(-1, 1, 2))
    return float(cv2.contourArea(hull))


def _mutual_nn(a: SceneFeatures, b: SceneFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest descriptors (cosine; XFeat's own ``match`` without its floor).

    ``cv2.gemm`` rather than numpy's ``@``: one thread (a multi-threaded BLAS spends
    twice the CPU on a busy machine). A row's best is mutual when it is its column's
    maximum (``max(0)``: ``argmax(0)`` costs ~7 ms, more than the product); of tied
    rows the first is kept, as ``argmax`` would."""
    sims = np.asarray(cv2.gemm(a.descriptors, b.descriptors, 1.0, _NO_C, 0.0, flags=cv2.GEMM_2_T))
    m0 = sims.argmax(1)
    best = sims[np.arange(len(m0)), m0]
    ia = np.nonzero(best >= sims.max(0)[m0])[0]
    ib = m0[ia]
    if len(np.unique(ib)) < len(ib):  # exact ties (identical descriptors)
        _, keep = np.unique(ib, return_index=True)
        ia, ib = ia[np.sort(keep)], ib[np.sort(keep)]
    return ia, ib


def _fundamental_inliers(p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Which matches ``p1`` -> ``p2`` are MAGSAC++ inliers of a fundamental matrix."""
    try:
        fmat, mask = cv2.findFundamentalMat(
            p1, p2, cv2.USAC_MAGSAC, FUNDAMENTAL_PX, 0.999, MAGSAC_ITERS
        )
    except cv2.error:  # degenerate points (MAGSAC asserts instead of failing): no model
        fmat, mask = None, None
    if fmat is None or mask is None:
        return np.zeros(len(p1), bool)
    return np.asarray(mask).ravel().astype(bool)


def _verified(
    a: SceneFeatures,
    b: SceneFeatures,
    ia: np.ndarray,
    ib: np.ndarray,
    swap: bool,
    is_same: Callable[[int, float], bool],
    stage: str,
) -> SceneMatch:
    """Fundamental-matrix inliers of the matches ``ia`` -> ``ib`` and the evidence."""
    matches = len(ia)
    if matches < MIN_MATCHES:
        return SceneMatch(matches, 0, 0.0, None, False, stage=stage)
    pa, pb = a.points[ia], b.points[ib]
    # the estimate is not symmetric: run it in the fixed order
    inl = _fundamental_inliers(pb, pa) if swap else _fundamental_inliers(pa, pb)
    inliers = int(inl.sum())
    ratio = inliers / matches
    same = is_same(inliers, ratio)
    corner = None
    if same and inliers >= MIN_MATCHES:  # only a verified scene can be a copy (engine)
        hom, _ = cv2.findHomography(pa[inl], pb[inl], cv2.RANSAC, 4.0)
        corner = None if hom is None else _corner_error(hom, a, b)
    pairs = np.hstack([pa[inl], pb[inl]]).astype(np.float32)
    cover = 0.0
    if inliers >= 3:
        scale = np.array([a.width, a.height, b.width, b.height], np.float32)
        both = pairs / scale
        cover = min(_hull_area(both[:, :2]), _hull_area(both[:, 2:]))
    return SceneMatch(
        matches,
        inliers,
        ratio,
        corner,
        same,
        pairs[_spread(inliers, EVIDENCE_POINTS)],
        cover,
        stage,
    )


def _ordered(a: SceneFeatures, b: SceneFeatures) -> tuple[SceneFeatures, SceneFeatures, bool]:
    swap = not _first(a, b)
    return (b, a, True) if swap else (a, b, False)


def nn_match(
    a: SceneFeatures, b: SceneFeatures, policy: SimilarityPolicy | None = None
) -> SceneMatch:
    """Stage 1 alone: mutual nearest descriptors, fundamental-matrix inliers; same when
    they reach ``xfeat_nn_same_inliers`` (the clear band)."""
    policy = policy or SimilarityPolicy()
    if len(a) < MIN_MATCHES or len(b) < MIN_MATCHES:
        return SceneMatch(0, 0, 0.0, None, False, stage=STAGE_NN)
    first, second, swap = _ordered(a, b)
    i1, i2 = _mutual_nn(first, second)
    ia, ib = (i2, i1) if swap else (i1, i2)
    return _verified(
        a, b, ia, ib, swap,
        lambda n, r: n >= policy.xfeat_nn_same_inliers and r >= policy.xfeat_min_inlier_ratio,
        STAGE_NN,
    )  # fmt: skip


def _glue_mutual(
    first: SceneFeatures, second: SceneFeatures, min_prob: float
) -> tuple[np.ndarray, np.ndarray]:
    """LighterGlue's mutual assignments above ``min_prob``, in the fixed order."""
    scores = glue_scores(
        XFeatRuntime.shared(),
        first.points, first.descriptors, (first.width, first.height),
        second.points, second.descriptors, (second.width, second.height),
    )  # fmt: skip
    return mutual_matches(scores, min_prob)


def glue_match(
    a: SceneFeatures, b: SceneFeatures, policy: SimilarityPolicy | None = None
) -> SceneMatch:
    """Stage 2 alone: LighterGlue's mutual assignments, fundamental-matrix inliers."""
    policy = policy or SimilarityPolicy()
    if len(a) < MIN_MATCHES or len(b) < MIN_MATCHES:
        return SceneMatch(0, 0, 0.0, None, False, stage=STAGE_GLUE)
    first, second, swap = _ordered(a, b)
    i1, i2 = _glue_mutual(first, second, policy.xfeat_match_prob)
    ia, ib = (i2, i1) if swap else (i1, i2)
    return _verified(
        a, b, ia, ib, swap,
        lambda n, r: n >= policy.xfeat_min_inliers and r >= policy.xfeat_min_inlier_ratio,
        STAGE_GLUE,
    )  # fmt: skip


def match_scene(
    a: SceneFeatures, b: SceneFeatures, policy: SimilarityPolicy | None = None
) -> SceneMatch:
    """Verify that ``a`` and ``b`` show the same scene (see the module docstring): the
    cheap stage decides the clear pairs, LighterGlue only the band between."""
    policy = policy or SimilarityPolicy()
    first = nn_match(a, b, policy)
    if first.is_same_scene or first.inliers < policy.xfeat_nn_min_inliers:
        return first
    return glue_match(a, b, policy)
