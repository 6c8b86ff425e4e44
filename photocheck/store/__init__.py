"""Storage of households, accounts and photos: tables, blobs, duplicate index, repository.

* ``models``  the SQLAlchemy tables (counties, towns, villages, users, households,
  photos, photo_matches, idempotency_keys)
* ``db``      ``Database``: engine, sessions and the write lock
* ``blobs``   ``BlobStore``: originals, site photos, previews; content-addressed,
  checked on write, never overwritten; ``LocalBlobStore`` or ``s3blobs.S3BlobStore``
  chosen by ``BlobConfig``
* ``dupindex`` ``DuplicateIndex``: PDQ + embeddings of stored photos, in memory
* ``repo``    the functions that write the tables
* ``household_import`` parse and validate the county's household list
* ``reconcile`` start-up agreement of files and rows
* ``resumable`` ``PartialStore``: tus partial uploads; the local folder here,
  ``s3resumable.S3PartialUploads`` in the bucket (any worker continues an upload),
  one writer at a time by ``upload_locks`` (PostgreSQL advisory lock, or ``flock``)
* ``sites``, ``site_intake`` shared sites; taking in their drone photos (check, name, store)
"""

from __future__ import annotations

from .blobs import BlobConfig, BlobStore, LocalBlobStore, PendingBlob, SizeLimitExceeded
from .db import Database
from .dupindex import DupEntry, DuplicateIndex, HashHit
from .household_import import HouseholdRow, ImportRejected, RowError, parse_household_file
from .models import (
    Base,
    Category,
    County,
    Household,
    IdempotencyKey,
    Photo,
    PhotoMatch,
    Role,
    Town,
    User,
    Village,
)
from .reconcile import ReconcileReport, reconcile

__all__ = [
    "Base",
    "BlobConfig",
    "BlobStore",
    "Category",
    "County",
    "Database",
    "DupEntry",
    "DuplicateIndex",
    "HashHit",
    "Household",
    "HouseholdRow",
    "IdempotencyKey",
    "ImportRejected",
    "LocalBlobStore",
    "PendingBlob",
    "Photo",
    "PhotoMatch",
    "ReconcileReport",
    "Role",
    "RowError",
    "SizeLimitExceeded",
    "Town",
    "User",
    "Village",
    "parse_household_file",
    "reconcile",
]
