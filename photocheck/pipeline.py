"""check_photo: decode -> metadata -> model -> checks -> fingerprints -> verdict.

The one place where the whole flow reads top to bottom. The photo is decoded once and
its pixels are shared by every check.

Overlap: a helper thread works beside the caller, so one photo's latency is close to
decode + model + checks rather than the sum of all steps, with the same work done:

- the byte SHA-256 is hashed while the photo decodes (hashlib and libjpeg-turbo both
  release the GIL);
- metadata and fingerprints are made while the caller is inside onnxruntime, which
  releases the GIL for the whole inference. This order matters: a thread that needs
  the GIL back while another runs Python waits up to the 5 ms switch interval, which
  ate the whole gain when the model ran on the helper instead;
- the checks run as two groups, one per thread (their OpenCV calls release the GIL).

A server checking several photos at once keeps its throughput (2-thread pool measured
in ``scripts/bench_checks.py``). The model keeps one intra-op thread: its own spinning
thread pool would compete with those parallel photos.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import CHECKS, Check, CheckInput, CheckOutput, PhotoContext
from .decode import DecodedPhoto, decode
from .errors import DecodeError
from .fingerprints import Fingerprint, byte_digest, fingerprint
from .metadata import Metadata, read_metadata
from .model import ContentModel, ContentScores, model_input
from .policy import Policy
from .reasons import ReasonCode, Subject
from .verdict import Finding, Reason, Verdict, decide, explain

__all__ = ["Report", "check_file", "check_photo"]


@dataclass(frozen=True, eq=False)
class Report:
    verdict: Verdict
    reasons: tuple[Reason, ...]
    metrics: dict[str, Any]
    metadata: Metadata | None
    fingerprint: Fingerprint
    policy_version: str
    model_version: str
    photo: DecodedPhoto | None = field(default=None, repr=False)  # for callers that index it
    scores: ContentScores | None = field(default=None, repr=False)  # incl. the embedding

    @property
    def codes(self) -> set[ReasonCode]:
        return {r.code for r in self.reasons}

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reasons": [r.to_json() for r in self.reasons],
            "metrics": self.metrics,
            "exif": self.metadata.to_json() if self.metadata else None,
            "hashes": self.fingerprint.to_json(),
            "policy_version": self.policy_version,
            "model_version": self.model_version,
        }


def _subject(context: PhotoContext) -> Subject:
    """Drone photos of shared sites are the ones checked without house framing."""
    return Subject.HOUSE if context.check_framing else Subject.SITE


def check_photo(
    data: bytes,
    *,
    policy: Policy,
    model: ContentModel,
    context: PhotoContext | None = None,
    sha256: str | None = None,
) -> Report:
    """Run every check on one photo's bytes. Never raises for a bad photo.

    ``sha256``: ``byte_digest(data)`` when the caller already has it (an upload hashed
    while it streamed in): hashing 2 MB again costs ~2 ms of CPU per photo.
    """
    started = time.perf_counter()
    context = context or PhotoContext()
    helpers = _helpers()
    if sha256 is None:
        digest = helpers.submit(byte_digest, data)
    else:
        digest = Future()
        digest.set_result(sha256)
    try:
        photo = decode(
            data,
            max_pixels=policy.quality.max_pixels,
            max_bytes=policy.quality.max_decode_bytes,
            working_size=policy.quality.working_size,
        )
    except DecodeError as exc:
        unreadable = [Finding(ReasonCode.UNREADABLE, {"error": str(exc)})]
        reasons = explain(unreadable, policy, _subject(context))
        return Report(
            verdict=decide(reasons),
            reasons=tuple(reasons),
            metrics={"elapsed_ms": round((time.perf_counter() - started) * 1000, 1)},
            metadata=None,
            fingerprint=fingerprint(data, None, sha256=digest.result()),
            policy_version=policy.version,
            model_version=model.version,
        )
    # The model input is made first, so the helper starts on metadata and fingerprints
    # just as this thread enters onnxruntime and releases the GIL: neither then waits
    # for the other (the helper's exifread and PDQ hold the GIL; see the module doc).
    image = model_input(photo.rgb)
    described = helpers.submit(_describe, data, photo, digest.result())
    scores = model.scores_from_input(image)
    meta, fp = described.result()
    inp = CheckInput(photo=photo, meta=meta, scores=scores, policy=policy, context=context)
    # The first check (quality, the costliest) runs here, the others on the helper; the
    # outputs are merged in registry order, so the report is as if they ran in a row.
    others = helpers.submit(_run_checks, CHECKS[1:], inp)
    outputs = [*_run_checks(CHECKS[:1], inp), *others.result()]
    findings: list[Finding] = []
    metrics: dict[str, Any] = {"width": photo.width, "height": photo.height, "format": photo.format}
    for out in outputs:
        findings.extend(out.findings)
        metrics.update(out.metrics)
    reasons = explain(findings, policy, _subject(context))
    metrics["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return Report(
        verdict=decide(reasons),
        reasons=tuple(reasons),
        metrics=metrics,
        metadata=meta,
        fingerprint=fp,
        policy_version=policy.version,
        model_version=model.version,
        photo=photo,
        scores=scores,
    )


def _describe(data: bytes, photo: DecodedPhoto, sha256: str) -> tuple[Metadata, Fingerprint]:
    """The steps that need no model scores: metadata and fingerprints."""
    meta = read_metadata(data, exif=photo.exif, xmp=photo.xmp)
    return meta, fingerprint(data, photo, sha256=sha256)


def _run_checks(checks: tuple[Check, ...], inp: CheckInput) -> list[CheckOutput]:
    return [check(inp) for check in checks]


_HELPERS: ThreadPoolExecutor | None = None
_HELPERS_LOCK = threading.Lock()


def _helpers() -> ThreadPoolExecutor:
    """The helper threads shared by every call, started on first use.

    As many as there are cores (at least 2): under load every caller hands work to
    them, and fewer helpers than cores would leave cores idle while callers wait.
    """
    global _HELPERS
    if _HELPERS is None:
        with _HELPERS_LOCK:
            if _HELPERS is None:
                workers = max(2, os.cpu_count() or 2)
                _HELPERS = ThreadPoolExecutor(workers, thread_name_prefix="photocheck")
    return _HELPERS


def check_file(
    path: str | Path,
    *,
    policy: Policy,
    model: ContentModel,
    context: PhotoContext | None = None,
) -> Report:
    """check_photo on a file's bytes; an unreadable file becomes UNREADABLE.

    :exception OSError: the file itself cannot be opened.
    """
    return check_photo(Path(path).read_bytes(), policy=policy, model=model, context=context)
