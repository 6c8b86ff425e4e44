"""Same scene: ORB local features with geometric verification.

PDQ finds copies of one photo; it cannot see that two photos show the same house from
another spot (distances 100+ bits, like unrelated photos). Local features can.

Extraction: ORB on the upright working image and on a copy squeezed to half width (a
simulated 60° horizontal tilt, as in ASIFT), keypoints mapped back to working size.
Each keypoint keeps its orientation, pyramid octave and view, for the check below.

Verification (``match_scene``), measured with ``scripts/calibrate_scene.py``:

1. Mutual nearest neighbours passing Lowe's ratio test, where the second neighbour must
   lie elsewhere in the other image: the two views detect the same corner twice, and a
   plain ratio test would throw such matches away as ambiguous.
2. MAGSAC++ homography on those matches.
3. Guided matching: every keypoint whose K nearest descriptors include one near its
   projection (and close enough in Hamming distance) becomes a candidate; refit.
   A right homography gathers many more matches; a chance one gathers few.
4. Count the inliers whose keypoint orientation and scale agree with the homography's
   local Jacobian. Impostor inliers fit a random homography by position only, so
   their orientations are random and few survive.

On the developer set this lifts the Herz-Jesu 0000/0007 pair (a 45° oblique view vs
the frontal one) to 45 consistent inliers, while labelled different photos stay at 5 or
fewer and other unrelated pairs at 12 or fewer. The strongest non-matches are Lund
frames 7+ apart that share the far end of the same street (up to 16).

Cost is brute-force Hamming knn (faiss's ``IndexBinaryFlat``: 2.5x cheaper than
OpenCV's ``batchDistance`` on neighbouring Lund frames, same neighbours; still ~65 % of a
match), so descriptors are compared only where the answer can change: all of a's for
step 1; of b's, only those some match needs as a mutual check; from b's side, only
keypoints that could be mutual or guided matches (~40 % of them). Identical results on
all 9730 calibration pairs, 1.7x cheaper.

``SceneFeatures`` is what the upload service stores per photo (``to_bytes``, ~42 KB),
so it can verify candidates later without decoding again.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import faiss
import numpy as np

from ..policy import SimilarityPolicy
from .search_threads import one_search_thread

__all__ = [
    "SceneFeatures",
    "SceneMatch",
    "extract_scene_features",
    "is_current_format",
    "match_scene",
]

# (horizontal squeeze, ORB features): the upright view and a simulated 60° tilt.
# A third view at 0.7 (45°) was measured: it raised far-apart Lund frames more than
# the oblique Herz-Jesu pair (calibrate_scene.py), so it is not used.
VIEWS = ((1.0, 900), (0.5, 600))
ORB_FAST_THRESHOLD = 20  # ORB's default
ORB_SCALE = 1.2  # ORB's default pyramid step; octaves below are in these steps
# Pyramid levels (ORB's default is 8): 3 cover 1.44x of scale change either way, which
# with the squeezed view is what re-shots of one house need. The coarse levels mostly
# matched unrelated photos: 8 levels at FAST 7 cost 2x the time for a smaller margin
# (calibrate_scene.py: worst unrelated 24 vs weakest labelled same scene 43; with 3
# levels at FAST 20, see default_policy.toml).
ORB_LEVELS = 3
RATIO = 0.8  # Lowe's ratio test
SECOND_NN_MIN_PX = 6.0  # the ratio test's second neighbour lies at least this far away
KNN = 8  # descriptor neighbours kept per keypoint (ratio test and guided matching)
GUIDE_PX = 8.0  # guided matching: a neighbour this close to the projection
GUIDE_MAX_HAMMING = 80  # ...and at most this far in descriptor bits (of 256)
ANGLE_TOL_DEG = 30.0  # orientation agreement with the homography's local rotation
OCTAVE_TOL = 2.0  # scale agreement, in pyramid octaves (1.2x each)
RECHECK_FRACTION = 0.5  # scores from this fraction of the threshold up: both directions
MIN_SIDE = 64  # smaller images get no features
RANSAC_PX = 4.0  # reprojection error at working size (~800 px)
_MAGIC = b"PCSF"
_VERSION = 3  # 1: no orientation; 2: 8 levels at FAST 7. Older ones are made again
_HEADER = struct.Struct("<4sBHHIB")  # magic, version, width, height, keypoints, views
# What every stored blob of the current format starts with (a database can filter on it).
FORMAT_PREFIX = _MAGIC + bytes([_VERSION])
_FIXED = 16.0  # keypoint coordinates stored as uint16 in 1/16 px
_ANGLE_STEP = 360.0 / 256  # orientation stored as uint8
_KP_BYTES = 4 + 1 + 1 + 32  # x, y (uint16), angle, view << 4 | octave, descriptor


@dataclass(frozen=True, eq=False)
class SceneFeatures:
    """ORB keypoints at working size: where, which way, how big, from which view."""

    width: int
    height: int
    points: np.ndarray  # (n, 2) float32, x, y at working size
    descriptors: np.ndarray  # (n, 32) uint8
    angles: np.ndarray | None = None  # (n,) float32 degrees, in the view's own pixels
    octaves: np.ndarray | None = None  # (n,) uint8 ORB pyramid level
    views: np.ndarray | None = None  # (n,) uint8 index into ``squeezes``
    squeezes: tuple[float, ...] = (1.0,)  # horizontal squeeze of each view

    def __len__(self) -> int:
        return len(self.points)

    def _angles(self) -> np.ndarray:
        return np.zeros(len(self), np.float32) if self.angles is None else self.angles

    def _octaves(self) -> np.ndarray:
        return np.zeros(len(self), np.uint8) if self.octaves is None else self.octaves

    def _views(self) -> np.ndarray:
        return np.zeros(len(self), np.uint8) if self.views is None else self.views

    def to_bytes(self) -> bytes:
        n = len(self)
        fixed = np.clip(np.round(self.points * _FIXED), 0, 65535).astype("<u2")
        angle = np.round(self._angles() / _ANGLE_STEP).astype(np.int64) % 256
        meta = (self._views().astype(np.uint8) << 4) | (self._octaves().astype(np.uint8) & 15)
        squeeze = bytes(round(s * 100) for s in self.squeezes)
        head = _HEADER.pack(_MAGIC, _VERSION, self.width, self.height, n, len(squeeze))
        return b"".join(
            (
                head,
                squeeze,
                fixed.tobytes(),
                angle.astype(np.uint8).tobytes(),
                meta.astype(np.uint8).tobytes(),
                np.ascontiguousarray(self.descriptors, dtype=np.uint8).tobytes(),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SceneFeatures:
        """:exception ValueError: not SceneFeatures bytes, an old version, or truncated."""
        if len(data) < _HEADER.size:
            msg = "scene features: too short"
            raise ValueError(msg)
        magic, version, w, h, n, nv = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            msg = f"scene features: bad magic {magic!r}"
            raise ValueError(msg)
        if version != _VERSION:
            msg = f"scene features: version {version}, expected {_VERSION} (extract them again)"
            raise ValueError(msg)
        if len(data) != _HEADER.size + nv + n * _KP_BYTES or nv == 0:
            msg = f"scene features: {len(data)} bytes for {n} keypoints, {nv} views"
            raise ValueError(msg)
        off = _HEADER.size
        squeezes = tuple(b / 100 for b in data[off : off + nv])
        off += nv
        pts = np.frombuffer(data, dtype="<u2", count=2 * n, offset=off).reshape(n, 2)
        off += 4 * n
        angle = np.frombuffer(data, dtype=np.uint8, count=n, offset=off)
        meta = np.frombuffer(data, dtype=np.uint8, count=n, offset=off + n)
        desc = np.frombuffer(data, dtype=np.uint8, count=32 * n, offset=off + 2 * n)
        views = meta >> 4
        if n and (int(views.max()) >= nv or min(squeezes) <= 0):
            msg = "scene features: keypoint view out of range"
            raise ValueError(msg)
        return cls(
            w,
            h,
            pts.astype(np.float32) / _FIXED,
            desc.reshape(n, 32).copy(),
            angle.astype(np.float32) * _ANGLE_STEP,
            (meta & 15).copy(),
            views.copy(),
            squeezes,
        )


def is_current_format(data: bytes) -> bool:
    """Whether stored features are of this version (older ones must be extracted again;
    ``from_bytes`` refuses them). Says nothing about truncation: that is an error."""
    if len(data) < _HEADER.size:
        return False
    magic, version = _HEADER.unpack_from(data)[:2]
    return magic == _MAGIC and version == _VERSION


@dataclass(frozen=True)
class SceneMatch:
    matches: int  # candidate matches the inliers were counted among (guided, or ratio-tested)
    inliers: int  # guided homography inliers whose orientation and scale agree
    ratio: float  # inliers / candidates (guided matches, or ratio-tested ones without)
    corner_error: float | None  # how far the homography moves a's frame onto b's, / diagonal
    is_same_scene: bool
    pairs: np.ndarray | None = None  # (n, 4) xa, ya, xb, yb of the counted inliers

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
    points, descs, angles, octaves, views = [], [], [], [], []
    for view, (squeeze, n) in enumerate(VIEWS):
        img = grey
        if min(h, round(w * squeeze)) < MIN_SIDE:
            continue  # ORB's pyramid and 31-px patches need room
        if squeeze != 1.0:
            img = cv2.resize(grey, (round(w * squeeze), h), interpolation=cv2.INTER_AREA)
        orb = cv2.ORB_create(  # type: ignore[attr-defined]
            nfeatures=n,
            scaleFactor=ORB_SCALE,
            nlevels=ORB_LEVELS,
            fastThreshold=ORB_FAST_THRESHOLD,
        )
        kps, des = orb.detectAndCompute(img, None)
        if des is None or not kps:
            continue
        pts = np.array([k.pt for k in kps], dtype=np.float32)
        pts[:, 0] /= squeeze
        points.append(pts)
        descs.append(des)
        angles.append(np.array([k.angle for k in kps], dtype=np.float32))
        octaves.append(np.array([k.octave for k in kps], dtype=np.uint8))
        views.append(np.full(len(kps), view, dtype=np.uint8))
    squeezes = tuple(s for s, _ in VIEWS)
    if not points:
        none = np.zeros(0, np.uint8)
        return SceneFeatures(
            w, h, np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8),
            np.zeros(0, np.float32), none, none, squeezes,
        )  # fmt: skip
    return SceneFeatures(
        w,
        h,
        np.vstack(points),
        np.vstack(descs),
        np.concatenate(angles),
        np.concatenate(octaves),
        np.concatenate(views),
        squeezes,
    )


def _knn(
    a: SceneFeatures, b: SceneFeatures, k: int, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distances and indices of each of a's k nearest descriptors in b (only
    ``rows`` of a when given: brute force over b is the cost of matching)."""
    desc = a.descriptors if rows is None else a.descriptors[rows]
    one_search_thread()
    index = faiss.IndexBinaryFlat(256)
    index.add(b.descriptors)
    return index.search(np.ascontiguousarray(desc), min(k, len(b)))  # int32, int64


def _ratio_matches(
    a: SceneFeatures,
    b: SceneFeatures,
    dist: np.ndarray,
    idx: np.ndarray,
    back: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours passing a ratio test against the nearest *elsewhere*.

    ``back``: each of b's nearest neighbour in a, when known (the other direction's
    nearest neighbours); otherwise found only for the b keypoints that need it.
    ``rows``: the keypoints of a whose ``dist``/``idx`` rows were computed.
    """
    nn = idx[:, 0]
    far = np.linalg.norm(b.points[idx] - b.points[nn][:, None, :], axis=2) > SECOND_NN_MIN_PX
    far[:, -1] = True  # none elsewhere among the k: the k-th is a lower bound
    second = dist[np.arange(len(idx)), far.argmax(1)]
    passed = dist[:, 0] < RATIO * second
    if rows is not None:
        passed &= rows
    ia = np.nonzero(passed)[0]
    jb = nn[ia]
    if back is None:
        want = np.unique(jb)
        if not len(want):
            return ia, jb
        _, near = _knn(b, a, 1, want)
        back_of = near[np.searchsorted(want, jb), 0]
    else:
        back_of = back[jb]
    mutual = back_of == ia
    return ia[mutual], jb[mutual]


def _homography(pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    hom, mask = cv2.findHomography(
        pa, pb, cv2.USAC_MAGSAC, RANSAC_PX, maxIters=2000, confidence=0.999
    )
    if hom is None or mask is None:
        return None, np.zeros(len(pa), bool)
    return hom, mask.ravel().astype(bool)


def _guided_matches(
    hom: np.ndarray, a: SceneFeatures, b: SceneFeatures, dist: np.ndarray, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each of a's keypoints, its nearest descriptor among the k that lands near
    its projection; each of b's keypoints used once (the closest descriptor wins)."""
    proj = cv2.perspectiveTransform(a.points.reshape(-1, 1, 2), hom).reshape(-1, 2)
    near = np.linalg.norm(b.points[idx] - proj[:, None, :], axis=2) <= GUIDE_PX
    near &= dist <= GUIDE_MAX_HAMMING
    ga = np.nonzero(near.any(1))[0]
    pick = near[ga].argmax(1)
    gb, gd = idx[ga, pick], dist[ga, pick]
    order = np.argsort(gd, kind="stable")
    ga, gb = ga[order], gb[order]
    _, first = np.unique(gb, return_index=True)
    return ga[first], gb[first]


def _consistent(
    hom: np.ndarray, a: SceneFeatures, ia: np.ndarray, b: SceneFeatures, ib: np.ndarray
) -> np.ndarray:
    """Which matches have orientation and scale that agree with ``hom`` locally.

    The homography's Jacobian at a's keypoint, taken from a's view pixels to b's view
    pixels (squeezes undone and redone), carries a's orientation vector; it must point
    along b's orientation, and stretch it by about b's size over a's.
    """
    x, y = a.points[ia, 0].astype(np.float64), a.points[ia, 1].astype(np.float64)
    w = hom[2, 0] * x + hom[2, 1] * y + hom[2, 2]
    u = (hom[0, 0] * x + hom[0, 1] * y + hom[0, 2]) / w
    v = (hom[1, 0] * x + hom[1, 1] * y + hom[1, 2]) / w
    sa = np.asarray(a.squeezes)[a._views()[ia]]
    sb = np.asarray(b.squeezes)[b._views()[ib]]
    theta = np.deg2rad(a._angles()[ia])
    dx, dy = np.cos(theta) / sa, np.sin(theta)  # a's orientation in working pixels
    mx = ((hom[0, 0] - u * hom[2, 0]) * dx + (hom[0, 1] - u * hom[2, 1]) * dy) / w * sb
    my = ((hom[1, 0] - v * hom[2, 0]) * dx + (hom[1, 1] - v * hom[2, 1]) * dy) / w
    turn = np.rad2deg(np.arctan2(my, mx)) - b._angles()[ib]
    angle_ok = np.abs((turn + 180.0) % 360.0 - 180.0) <= ANGLE_TOL_DEG
    with np.errstate(divide="ignore"):
        octave = np.log(np.hypot(mx, my)) / np.log(ORB_SCALE)
    step = b._octaves()[ib].astype(np.float64) - a._octaves()[ia].astype(np.float64)
    return angle_ok & (np.abs(octave - step) <= OCTAVE_TOL)


def _corner_error(hom: np.ndarray, a: SceneFeatures, b: SceneFeatures) -> float:
    """Max distance between a's corners mapped by ``hom`` and b's corners, / b's diagonal.

    Near 0 means b is a's frame, resized: the same photo, not a re-shot.
    """
    ca = np.array([[0, 0], [a.width, 0], [a.width, a.height], [0, a.height]], np.float32)
    ca = ca.reshape(-1, 1, 2)
    cb = np.array([[0, 0], [b.width, 0], [b.width, b.height], [0, b.height]], np.float32)
    mapped = cv2.perspectiveTransform(ca, hom).reshape(-1, 2)
    return float(np.linalg.norm(mapped - cb, axis=1).max() / np.hypot(b.width, b.height))


@dataclass(frozen=True)
class _OneWay:
    matches: int
    inliers: int
    ratio: float
    hom: np.ndarray | None
    nearest: np.ndarray | None = None  # each of a's nearest descriptor in b (full knn only)
    pairs: np.ndarray | None = None  # (n, 4) the counted inliers, a's point then b's


_UNKNOWN = np.iinfo(np.int32).max  # distance of a knn row not computed: never matches


def _near_any(points: np.ndarray, proj: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which projections may have one of ``points`` within GUIDE_PX: a grid of GUIDE_PX
    cells, each marked with its neighbours, so the test never misses (it may over-select)."""
    cell = GUIDE_PX
    gw, gh = int(width // cell) + 3, int(height // cell) + 3
    grid: np.ndarray = np.zeros((gh, gw), np.uint8)
    cx = np.clip((points[:, 0] // cell).astype(np.int64) + 1, 0, gw - 1)
    cy = np.clip((points[:, 1] // cell).astype(np.int64) + 1, 0, gh - 1)
    grid[cy, cx] = 1
    grid = cv2.dilate(grid, np.ones((3, 3), np.uint8))
    ok = np.isfinite(proj).all(1)
    px = np.where(ok, proj[:, 0], -10 * cell) // cell + 1
    py = np.where(ok, proj[:, 1], -10 * cell) // cell + 1
    inside = ok & (px >= 0) & (px < gw) & (py >= 0) & (py < gh)
    hit = np.zeros(len(proj), bool)
    hit[inside] = grid[py[inside].astype(np.int64), px[inside].astype(np.int64)] > 0
    return hit


def _one_way(a: SceneFeatures, b: SceneFeatures, back: np.ndarray | None = None) -> _OneWay:
    """Steps 1-4 of the module docstring, with a's keypoints looking for b's.

    ``back`` (b's nearest descriptor in a, from the other direction) lets a's knn be
    computed only where it can matter: keypoints some b keypoint has as its nearest
    (the only possible mutual matches), then those landing near a b keypoint under the
    homography (the only possible guided matches). Same results, fewer distances.
    """
    if back is None:
        dist, idx = _knn(a, b, KNN)
        rows = None
    else:
        k = min(KNN, len(b))
        dist = np.full((len(a), k), _UNKNOWN, np.int32)
        idx = np.zeros((len(a), k), np.int32)
        rows = np.zeros(len(a), bool)
        rows[np.unique(back)] = True
        dist[rows], idx[rows] = _knn(a, b, KNN, np.nonzero(rows)[0])
    nearest = idx[:, 0] if back is None else None
    ia, ib = _ratio_matches(a, b, dist, idx, back, rows)
    matches = len(ia)
    if matches < 8:
        return _OneWay(matches, 0, 0.0, None, nearest)
    hom, mask = _homography(a.points[ia], b.points[ib])
    if hom is None or mask.sum() < 6:  # no model worth guiding with
        return _OneWay(matches, 0, 0.0, None, nearest)
    if rows is not None:
        proj = cv2.perspectiveTransform(a.points.reshape(-1, 1, 2), hom).reshape(-1, 2)
        extra = np.nonzero(_near_any(b.points, proj, b.width, b.height) & ~rows)[0]
        if len(extra):
            dist[extra], idx[extra] = _knn(a, b, KNN, extra)
    ga, gb = _guided_matches(hom, a, b, dist, idx)
    if len(ga) >= 8:
        guided, gmask = _homography(a.points[ga], b.points[gb])
        if guided is not None:
            hom, ia, ib, mask = guided, ga, gb, gmask
    ok = _consistent(hom, a, ia[mask], b, ib[mask])
    inliers = int(ok.sum())
    pairs = np.hstack((a.points[ia[mask][ok]], b.points[ib[mask][ok]]))
    # matches: the ones the inliers were counted among (the guided set when it was used),
    # so the evidence never shows more inliers than matches
    return _OneWay(len(ia), inliers, inliers / max(len(ia), 1), hom, nearest, pairs)


def match_scene(
    a: SceneFeatures, b: SceneFeatures, policy: SimilarityPolicy | None = None
) -> SceneMatch:
    """Verify that ``a`` and ``b`` show the same scene (see the module docstring).

    Guided matching is one-sided, so a score near the threshold is also measured from
    b's side and the lower one counts: symmetric, and steadier on borderline pairs.
    """
    policy = policy or SimilarityPolicy()
    if len(a) < 8 or len(b) < 8:
        return SceneMatch(0, 0, 0.0, None, False)
    fwd = _one_way(a, b)
    best, pairs = fwd, fwd.pairs
    if fwd.inliers >= policy.scene_min_inliers * RECHECK_FRACTION:
        back = _one_way(b, a, fwd.nearest)
        if back.inliers < fwd.inliers:
            best = back
            pairs = None if back.pairs is None else back.pairs[:, [2, 3, 0, 1]]
    same = best.inliers >= policy.scene_min_inliers and best.ratio >= policy.scene_min_inlier_ratio
    corner = None if fwd.hom is None else _corner_error(fwd.hom, a, b)
    return SceneMatch(best.matches, best.inliers, best.ratio, corner, same, pairs)
