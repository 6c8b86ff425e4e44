"""What the app loads once at start and shares with every request (``app.state.photocheck``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from photocheck import ContentModel, Policy
from photocheck.store import BlobStore, Database, ReconcileReport
from photocheck.store.intake import Intake

from .liveness import Liveness
from .security import LoginLimiter
from .settings import Settings

if TYPE_CHECKING:
    from .audit import AuditWorker

__all__ = ["AppState"]


@dataclass
class AppState:
    settings: Settings
    db: Database
    blobs: BlobStore
    policy: Policy
    model: ContentModel
    intake: Intake
    limiter: LoginLimiter
    reconcile: ReconcileReport
    site_blobs: BlobStore  # drone photos of shared sites (their own namespace)
    previews: BlobStore  # derived previews for the audit page
    audit: AuditWorker | None = None  # the audit's refresh thread (create_app starts it)
    liveness: Liveness | None = None  # this process's lock, for Idempotency-Key claims
