"""SHA-256 of the bytes, a digest of the decoded pixels, PDQ and pHash. Stub."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .decode import DecodedPhoto

__all__ = ["Fingerprint", "fingerprint"]


@dataclass(frozen=True)
class Fingerprint:
    sha256: str
    pixel_sha256: str | None = None
    pdq: bytes | None = None  # 32 bytes
    pdq_quality: int | None = None
    pdq_dihedral: tuple[bytes, ...] = ()  # the 8 dihedral variants, pdq first
    phash: int | None = None  # 64 bits

    def to_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "pixel_sha256": self.pixel_sha256,
            "pdq": self.pdq.hex() if self.pdq else None,
            "pdq_quality": self.pdq_quality,
            "phash": f"{self.phash:016x}" if self.phash is not None else None,
        }


def fingerprint(data: bytes, photo: DecodedPhoto | None) -> Fingerprint:
    return Fingerprint(sha256=hashlib.sha256(data).hexdigest())
