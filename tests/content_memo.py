"""The content model run once per distinct input per test process, not once per upload.

``ContentModel._run`` (onnxruntime on the 224 x 224 model input, ~22 ms of CPU) is a
pure function of the model file, its thread count and the input tensor, and the suite's
in-process servers check the same real photos again and again. Its result is memoised
by exactly those (the model's SHA-256, the threads, a digest of the tensor's bytes,
dtype and shape) and frozen; everything after it (the scores, the checks, the verdict)
runs as always. A model that cannot load raises before the memo is consulted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pytest

from photocheck.model import ContentModel
from tests.memo import BoundedMemo

LIMIT = 256  # ~9 kB each (1000 probabilities, a 1280-d embedding)

_original = ContentModel._run


class ContentMemo(BoundedMemo[tuple[np.ndarray, np.ndarray]]):
    def __init__(self, limit: int = LIMIT) -> None:
        super().__init__(limit)

    def run(self, model: ContentModel, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pixels = np.ascontiguousarray(image)
        digest = hashlib.blake2b(digest_size=16)
        digest.update(
            f"{model._get().sha256}|{model.threads}|{pixels.dtype.str}{pixels.shape}".encode()
        )
        digest.update(pixels.data)

        def make() -> tuple[np.ndarray, np.ndarray]:
            made = _original(model, image)
            for part in made:
                part.setflags(write=False)
            return made

        return self.get(digest.digest(), make)


@pytest.fixture(scope="session", autouse=True)
def content_memo() -> Iterator[ContentMemo]:
    memo = ContentMemo()

    def run(model: ContentModel, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return memo.run(model, image)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ContentModel, "_run", run)
        yield memo
