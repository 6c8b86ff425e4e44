"""The Alembic migrations build exactly the tables the models describe, on SQLite and
on PostgreSQL: a model changed without its migration (or the reverse) fails here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from api.migrate import upgrade
from photocheck.store.schema import metadata

from .conftest import pg_schema


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all (not the suite's migrated ones): the migrations
    build every table here."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    with pg_schema() as url:
        yield url


def test_migrations_match_the_models(empty_database: str) -> None:
    engine = create_engine(empty_database)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": False}
            )
            diff = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert diff == [], "\n".join(map(str, diff))


def test_every_table_is_registered() -> None:
    """The tables the service uses, audit and drone ones included, are in the metadata
    that migrations/env.py gives Alembic."""
    names = set(metadata.tables)
    assert {"photos", "households", "site_photos", "sites"} <= names
    assert {n for n in names if n.startswith("audit_")}, names
