"""``photocheck serve``: the app under uvicorn (one process; the duplicate index lives in it)."""

from __future__ import annotations

import logging

import uvicorn

from .main import create_app
from .settings import Settings

__all__ = ["serve"]


def serve(host: str = "127.0.0.1", port: int = 8000, settings: Settings | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings or Settings())
    # One worker on purpose: the duplicate index and the write lock are per process.
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)
    return 0
