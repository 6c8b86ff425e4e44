"""The content model: one onnxruntime session per process. Stub, to be filled."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .decode import DecodedPhoto

__all__ = ["ContentModel", "ContentScores", "DEFAULT_MODEL_PATH"]

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "efficientnet_lite0.onnx"


@dataclass(frozen=True)
class ContentScores:
    building: float  # probability mass on building classes, 0..1
    screen: float  # probability mass on screens, documents, signs, graphics, 0..1
    top: tuple[tuple[str, float], ...] = ()  # the top ImageNet labels, for evidence
    embedding: tuple[float, ...] | None = field(default=None, repr=False)


class ContentModel:
    """Scores a decoded photo; load once and share across threads."""

    version = "none"

    def __init__(self, path: Path | None = None) -> None:
        self.path = path

    def scores(self, photo: DecodedPhoto) -> ContentScores:
        return ContentScores(building=1.0, screen=0.0)
