"""``photocheck serve``: the app under uvicorn.

One process by default (the embedded mode: SQLite, its own duplicate index). With
``workers > 1`` uvicorn's supervisor starts N processes that each build their own app
(``create_app`` as a factory: own index, own pools) and restarts one that dies; that
needs PostgreSQL, where the duplicate decision is serialised by an advisory lock and
each index catches up with the others' writes (see ``store.db`` and ``store.intake``).
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from .main import create_app
from .settings import Settings

__all__ = ["serve"]


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: Settings | None = None,
    workers: int = 1,
) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = settings or Settings()
    if workers > 1:
        if not settings.database_url.startswith("postgresql"):
            print(
                "photocheck: --workers above 1 needs PostgreSQL "
                "(set PHOTOCHECK_DATABASE_URL=postgresql+psycopg://...)",
                file=sys.stderr,
            )
            return 2
        # migrate once here, not N times at once in the workers
        from photocheck.store import Database

        from .migrate import upgrade

        settings.prepare()  # the secret key is made once, before the workers read it
        db = Database(settings.database_url)
        upgrade(db.engine)
        db.dispose()
        uvicorn.run(
            "api.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            proxy_headers=False,
        )
        return 0
    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)
    return 0
