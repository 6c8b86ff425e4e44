"""``photocheck worker``: background jobs only (placeholder until the job queue lands)."""

from __future__ import annotations

__all__ = ["run_worker"]


def run_worker(concurrency: int = 2) -> int:
    from .jobs import run_worker as run

    return run(concurrency=concurrency)
