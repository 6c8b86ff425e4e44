"""What the app loads once at start and shares with every request (``app.state.photocheck``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from photocheck import ContentModel, Policy
from photocheck.recheck.runs import Recheck
from photocheck.store import BlobStore, Database, ReconcileReport
from photocheck.store.intake import Intake
from photocheck.store.resumable import PartialStore

from .liveness import Liveness
from .login_limits import AddressRate
from .security import PasswordPool
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
    passwords: PasswordPool  # argon2, bounded
    address_rate: AddressRate  # login attempts per client address
    reconcile: ReconcileReport
    site_blobs: BlobStore  # drone photos of shared sites (their own namespace)
    previews: BlobStore  # derived previews for the audit page
    audit: AuditWorker | None = None  # the audit's refresh thread (create_app starts it)
    liveness: Liveness | None = None  # this process's lock, for Idempotency-Key claims
    partial: PartialStore | None = None  # resumable uploads in progress (issue 12)
    recheck: Recheck | None = None  # the county's look-back re-check (issue 12)
