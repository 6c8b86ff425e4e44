"""The one duplicate engine: whether two photos are the same photo or the same scene.

`photocheck dedup` (``similarity.dedup``), the upload intake (``store.intake``) and the
site photos (``store.sites``) all ask here, so one rule decides everywhere (DESIGN §4.2):

- ``same_photo``: equal byte or pixel digests; or PDQ (best of the 8 dihedral variants)
  within ``same_photo_max_distance``; or PDQ within ``same_photo_verify_max_distance``
  *and* a verified scene whose homography maps one frame onto the other (corner error
  at most ``same_photo_max_corner_error``): a copy with strong brightness edits.
- ``same_scene``: not a copy, but the scene verification says the same house.

The quality gate is here too: a PDQ hash of quality below ``min_pdq_quality`` (flat or
tiny images) is not trusted; such photos pair only by exact digests or by the scene.

The decisions are split by cost: ``copy_of`` needs hashes only (the request path);
``decide`` also takes the scene verification, called only when the hashes leave the
question open (the CLI's verify stage, the service's background scene check).

The scene verification is any callable returning the matcher's evidence or None
(``store.intake.SceneMatcher.verify``). Keys the engine reads from it:
``corner_error`` (optional: a fundamental-matrix matcher has none, so its pairs stay
``same_scene``), and for the audit's match picture ``inlier_pairs`` ([[xa, ya, xb, yb],
...] at working size), ``size_a`` / ``size_b`` ([w, h] of those working images).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..fingerprints import DIHEDRAL_NAMES
from ..policy import SimilarityPolicy

__all__ = [
    "SAME_PHOTO",
    "SAME_SCENE",
    "Decision",
    "Hashes",
    "StoredHashes",
    "copy_of",
    "decide",
    "needs_scene_check",
    "pdq_distance",
    "pdq_usable",
    "query_variants",
]

SAME_PHOTO = "same_photo"
SAME_SCENE = "same_scene"
Verify = Callable[[], dict[str, Any] | None]


class Hashes(Protocol):
    """What the engine needs of a photo's hashes (``Fingerprint`` has it; the intake
    builds one for a stored photo from its row)."""

    @property
    def sha256(self) -> str: ...
    @property
    def pixel_sha256(self) -> str | None: ...
    @property
    def pdq(self) -> bytes | None: ...
    @property
    def pdq_quality(self) -> int | None: ...
    @property
    def pdq_dihedral(self) -> tuple[bytes, ...]: ...


@dataclass(frozen=True)
class StoredHashes:
    """A stored photo's hashes (no dihedral variants: only the query side needs them)."""

    sha256: str
    pixel_sha256: str | None = None
    pdq: bytes | None = None
    pdq_quality: int | None = None
    pdq_dihedral: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Decision:
    relation: str  # same_photo | same_scene
    distance: int | None  # PDQ bits (best dihedral variant); None without usable PDQ
    evidence: dict[str, Any] = field(default_factory=dict)


def pdq_usable(fp: Hashes, sim: SimilarityPolicy) -> bool:
    """The quality gate: only a PDQ hash of enough quality takes part. A stored hash
    without its quality (site photos) was gated when it was stored."""
    if fp.pdq is None:
        return False
    return fp.pdq_quality is None or fp.pdq_quality >= sim.min_pdq_quality


def query_variants(fp: Hashes, sim: SimilarityPolicy) -> tuple[bytes, ...]:
    """The hashes to look up in a PDQ index (flips and rotations too); none below the gate."""
    if not pdq_usable(fp, sim):
        return ()
    assert fp.pdq is not None
    return fp.pdq_dihedral or (fp.pdq,)


def pdq_distance(a: Hashes, b: Hashes, sim: SimilarityPolicy) -> tuple[int, int] | None:
    """Best (distance, variant) of a's dihedral variants against b's hash; None when
    either hash fails the gate."""
    if not (pdq_usable(a, sim) and pdq_usable(b, sim)):
        return None
    assert b.pdq is not None
    target = int.from_bytes(b.pdq, "big")
    return min(
        ((int.from_bytes(v, "big") ^ target).bit_count(), i)
        for i, v in enumerate(query_variants(a, sim))
    )


def _exact(a: Hashes, b: Hashes) -> str | None:
    if a.sha256 == b.sha256:
        return "bytes"
    if a.pixel_sha256 and a.pixel_sha256 == b.pixel_sha256:
        return "pixels"
    return None


def copy_of(
    a: Hashes, b: Hashes, sim: SimilarityPolicy, distance: tuple[int, int] | None = None
) -> Decision | None:
    """``same_photo`` from the hashes alone (digests, or PDQ within the copy radius).

    ``distance``: (bits, variant) when the caller has it already (an index answer).
    """
    distance = distance if distance is not None else pdq_distance(a, b, sim)
    bits = None if distance is None else distance[0]
    evidence = _variant_evidence(distance)
    exact = _exact(a, b)
    if exact is not None:
        return Decision(SAME_PHOTO, bits, {**evidence, "exact": exact})
    if bits is not None and bits <= sim.same_photo_max_distance:
        return Decision(SAME_PHOTO, bits, evidence)
    return None


def needs_scene_check(distance: int | None, sim: SimilarityPolicy) -> bool:
    """Whether a pair within the verify radius still needs the scene features to say
    whether it is a copy (32-48 bits by default)."""
    return distance is not None and distance <= sim.same_photo_verify_max_distance


def decide(
    a: Hashes,
    b: Hashes,
    verify: Verify,
    sim: SimilarityPolicy,
    distance: tuple[int, int] | None = None,
) -> Decision | None:
    """The full rule: ``copy_of``, else the scene verification (called once, only then)."""
    distance = distance if distance is not None else pdq_distance(a, b, sim)
    copy = copy_of(a, b, sim, distance)
    if copy is not None:
        return copy
    scene = verify()
    if scene is None:
        return None
    bits = None if distance is None else distance[0]
    evidence = {**_variant_evidence(distance), **scene}
    corner = scene.get("corner_error")
    aligned = corner is not None and corner <= sim.same_photo_max_corner_error
    if needs_scene_check(bits, sim) and aligned:
        return Decision(SAME_PHOTO, bits, evidence)
    return Decision(SAME_SCENE, bits, evidence)


def _variant_evidence(distance: tuple[int, int] | None) -> dict[str, Any]:
    return {} if distance is None else {"pdq_variant": DIHEDRAL_NAMES[distance[1]]}
