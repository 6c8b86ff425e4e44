"""Every table of the service on one ``MetaData``: what Alembic migrates and what the
migrations test compares with the models. A module that defines tables is imported
here, so none can be forgotten by ``api/migrations/env.py``."""

from __future__ import annotations

from sqlalchemy import MetaData

from ..audit import tables as _audit_tables  # noqa: F401 - registers audit_* on Base
from ..recheck import tables as _recheck_tables  # noqa: F401 - recheck_runs, photo_verdicts
from . import sites as _sites  # noqa: F401 - registers shared_sites, site_photos
from .models import Base

__all__ = ["metadata"]

metadata: MetaData = Base.metadata
