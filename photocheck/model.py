"""The content model: EfficientNet-Lite0 (ImageNet) in one onnxruntime session per process.

The ONNX file and its class names live in ``photocheck/models/`` (package data, so a
wheel carries them; made by ``scripts/export_model.py``; provenance in
``photocheck/models/README.md``). The graph takes uint8 RGB 224x224 NHWC and
normalises itself, and answers ImageNet logits plus the 1280-d pooled features. Nothing
is downloaded: a missing or damaged file is a ``ModelError`` the caller shows as it is.

ImageNet has no "house" class, so a building is the probability mass summed over the
classes whose pictures are buildings or parts of building fronts, and a screen/document
the mass over screens, printed matter, signs and graphics. The class lists below were
chosen by measurement on the developer set (``scripts/calibrate_content.py``).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .decode import DecodedPhoto
from .errors import ModelError

__all__ = [
    "BUILDING_CLASSES",
    "DEFAULT_MODEL_PATH",
    "FEATURE_DIMS",
    "INPUT_SIZE",
    "SCREEN_CLASSES",
    "STREET_CLASSES",
    "ContentModel",
    "ContentScores",
    "model_input",
]

MODELS_DIR = Path(__file__).resolve().parent / "models"  # package data: in the wheel
DEFAULT_MODEL_PATH = MODELS_DIR / "efficientnet_lite0.onnx"
FEATURE_DIMS = 1280  # the default model's pooled features (what the duplicate index projects)
CLASSES_FILE = "imagenet_classes.txt"  # beside the model file
INPUT_SIZE = 224
TOP_K = 5

# Chosen by measurement (scripts/calibrate_content.py): the classes that carry the
# probability mass on the developer set's building photos and almost none elsewhere.
# Besides buildings and parts of house fronts, ImageNet's "liner", "passenger car"
# (a railway carriage), "streetcar" and "freight car" are where a facade with rows of
# windows lands (a modern glass building scored 0.87 "liner"); no such vehicle is a
# plausible subject of a rural house photo, so they count as building evidence.
BUILDING_CLASSES: frozenset[str] = frozenset(
    {
        "tile roof", "thatch", "barn", "mobile home", "boathouse", "church",
        "monastery", "palace", "prison", "patio", "picket fence", "sliding door",
        "window screen", "window shade", "stone wall", "yurt", "cliff dwelling", "dome",
        "castle", "library", "cinema", "restaurant", "bakery", "grocery store", "mosque",
        "bell cote", "vault", "triumphal arch", "planetarium", "greenhouse", "bannister",
        "tobacco shop", "barbershop", "bookshop", "butcher shop", "confectionery",
        "shoe shop", "toyshop", "shoji", "worm fence", "chainlink fence", "stupa",
        "water tower", "liner", "passenger car", "streetcar", "freight car",
    }
)  # fmt: skip

# Street context: what stands in front of houses (cars, bikes, street furniture). It is
# neither for nor against a house, so it counts half: a street of houses half hidden by
# parked cars must not become NO_HOUSE, a close-up of a car alone scores under 0.5.
STREET_CLASSES: frozenset[str] = frozenset(
    {
        "minivan", "cab", "police van", "limousine", "beach wagon", "minibus",
        "moving van", "trailer truck", "garbage truck", "ambulance",
        "recreational vehicle", "trolleybus", "pickup", "convertible", "sports car",
        "Model T", "jeep", "tow truck", "school bus", "fire engine", "moped",
        "motor scooter", "tricycle", "jinrikisha", "bicycle-built-for-two",
        "mountain bike", "traffic light", "parking meter", "pole", "flagpole", "mailbox",
        "rain barrel", "ashcan", "lawn mower", "car wheel", "grille", "park bench",
    }
)  # fmt: skip

# Screens, printed and written matter, signs and graphics ("switch" is where block
# diagrams land). Street signs are here: a photo of a sign is not a house photo.
SCREEN_CLASSES: frozenset[str] = frozenset(
    {
        "monitor", "screen", "television", "desktop computer", "laptop", "notebook",
        "web site", "menu", "envelope", "comic book", "crossword puzzle", "book jacket",
        "binder", "packet", "scoreboard", "digital clock", "hand-held computer",
        "cellular telephone", "iPod", "oscilloscope", "switch", "modem", "cash machine",
        "jigsaw puzzle", "street sign",
    }
)  # fmt: skip


@dataclass(frozen=True)
class ContentScores:
    building: float  # probability mass on building classes, 0..1
    screen: float  # probability mass on screens, documents, signs, graphics, 0..1
    top: tuple[tuple[str, float], ...] = ()  # the top ImageNet labels, for evidence
    embedding: tuple[float, ...] | None = field(default=None, repr=False)
    street: float = 0.0  # probability mass on street context (cars, street furniture)


def model_input(rgb: np.ndarray) -> np.ndarray:
    """The working RGB image squeezed, whole frame, to 1x224x224x3 uint8.

    Whole frame rather than a centre crop: a house front is often wider than tall and
    its walls reach the edges; measured on the developer set the squeeze gave the
    buildings higher and the non-buildings lower building mass than the crop.
    """
    small = cv2.resize(rgb, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small[np.newaxis])


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max()
    e = np.exp(z)
    return e / e.sum()


class _Loaded:
    """The session and what it needs, built once."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

        load_errors = (
            RuntimeError,
            ValueError,
            ort_errors.Fail,
            ort_errors.InvalidArgument,
            ort_errors.InvalidGraph,
            ort_errors.InvalidProtobuf,
            ort_errors.NoModel,
            ort_errors.NotImplemented,
            ort_errors.RuntimeException,
        )

        try:
            blob = path.read_bytes()
        except OSError as exc:
            msg = f"content model {path} cannot be read: {exc}"
            raise ModelError(msg) from exc
        self.sha256 = hashlib.sha256(blob).hexdigest()
        names_path = path.with_name(CLASSES_FILE)
        try:
            names = names_path.read_text("utf-8").splitlines()
        except OSError as exc:
            msg = f"class names {names_path} cannot be read: {exc}"
            raise ModelError(msg) from exc
        if len(names) != 1000:
            msg = f"class names {names_path} has {len(names)} lines, expected 1000"
            raise ModelError(msg)
        opts = ort.SessionOptions()
        # ENABLE_ALL (the default, pinned here) adds the NCHWc layout transforms: 9.1 ms
        # per photo on one thread, against 23 ms with EXTENDED. One intra-op thread by
        # default: two take 4.9 ms alone, but their spinning pool costs a server that
        # checks photos in parallel on 2 cores a quarter of its throughput (measured
        # with scripts/bench_checks.py); the pipeline overlaps the model instead.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                blob, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except load_errors as exc:  # onnxruntime's load/parse failures
            msg = f"content model {path} is not a usable ONNX model: {exc}"
            raise ModelError(msg) from exc
        outputs = [o.name for o in self.session.get_outputs()]
        if outputs != ["logits", "features"]:
            msg = f"content model {path} has outputs {outputs}, expected logits and features"
            raise ModelError(msg)
        self.names = names
        self.building_idx = _indices(names, BUILDING_CLASSES)
        self.screen_idx = _indices(names, SCREEN_CLASSES)
        self.street_idx = _indices(names, STREET_CLASSES)
        known = set(names)
        for group in (BUILDING_CLASSES, SCREEN_CLASSES, STREET_CLASSES):
            if not group <= known:
                msg = f"class names {names_path} lack {sorted(group - known)}"
                raise ModelError(msg)


def _indices(names: list[str], wanted: frozenset[str]) -> np.ndarray:
    return np.array([i for i, n in enumerate(names) if n in wanted], dtype=np.intp)


_SESSIONS: dict[tuple[Path, int, int, int], _Loaded] = {}
_SESSIONS_LOCK = threading.Lock()


def _shared_session(path: Path, threads: int) -> _Loaded:
    """One session per model file (as it is now) and thread count per process: every
    ``ContentModel`` of the same file shares it (a session is read-only and thread-safe),
    so an app built again in the same process (a restart, a test) does not reload it."""
    try:
        stat = path.stat()
    except OSError:
        return _Loaded(path, threads)  # raises the ModelError naming the file
    key = (path.resolve(), threads, stat.st_size, stat.st_mtime_ns)
    with _SESSIONS_LOCK:
        loaded = _SESSIONS.get(key)
        if loaded is None:
            loaded = _SESSIONS[key] = _Loaded(path, threads)
        return loaded


class ContentModel:
    """Scores a decoded photo; load once and share across threads.

    The session is created lazily on first use (or by :meth:`load`), once, under a
    lock; onnxruntime's ``run`` is thread-safe, so threads share it.
    """

    def __init__(self, path: Path | None = None, *, threads: int = 1) -> None:
        self.path = Path(path) if path is not None else DEFAULT_MODEL_PATH
        self.threads = threads
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    def load(self) -> ContentModel:
        """Load now (at start-up), so a missing model fails before any photo.

        :exception ModelError: the model or its class names are missing or unusable.
        """
        self._get()
        return self

    def _get(self) -> _Loaded:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = _shared_session(self.path, self.threads)
        return self._loaded

    @property
    def version(self) -> str:
        """``efficientnet_lite0-<sha256 prefix>``: recorded with every verdict.

        :exception ModelError: the model cannot be loaded.
        """
        return f"{self.path.stem}-{self._get().sha256[:12]}"

    @property
    def class_names(self) -> list[str]:
        return self._get().names

    def probabilities(self, photo: DecodedPhoto) -> tuple[np.ndarray, np.ndarray]:
        """(softmax over the 1000 classes, 1280-d features) for one photo."""
        return self._run(model_input(photo.rgb))

    def scores(self, photo: DecodedPhoto) -> ContentScores:
        """Building and screen mass, the top labels and the embedding.

        :exception ModelError: the model cannot be loaded.
        """
        return self.scores_from_input(model_input(photo.rgb))

    def scores_from_input(self, image: np.ndarray) -> ContentScores:
        """``scores`` of an image already made by :func:`model_input`.

        Lets a caller resize first and then hand the GIL-free inference to this thread
        while another one works (see ``pipeline.check_photo``).

        :exception ModelError: the model cannot be loaded.
        """
        loaded = self._get()
        probs, features = self._run(image)
        top = np.argsort(probs)[::-1][:TOP_K]
        return ContentScores(
            building=float(probs[loaded.building_idx].sum()),
            screen=float(probs[loaded.screen_idx].sum()),
            top=tuple((loaded.names[i], round(float(probs[i]), 4)) for i in top),
            embedding=tuple(features.tolist()),  # Python floats, in one C call
            street=float(probs[loaded.street_idx].sum()),
        )

    def _run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, features = self._get().session.run(None, {"image": image})
        return _softmax(logits[0].astype(np.float64)), features[0]
