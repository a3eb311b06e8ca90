"""The FastAPI application: ``create_app()`` opens the store in the lifespan and mounts the routers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI

from tracing.config import Settings
from tracing.store import GraphStore, open_store

from . import errors
from .deps import utc_now
from .routers import tracing as tracing_router


def create_app(
    settings: Settings | None = None,
    *,
    store: GraphStore | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    """Build the app. Tests pass their own ``store`` and ``clock``; otherwise settings decide."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        app.state.store = open_store(settings.store) if owned else store
        try:
            yield
        finally:
            if owned:
                app.state.store.close()

    app = FastAPI(
        title="tracegraph",
        summary="Contact-tracing graph service: 密接 / 次密接 / 一般接触者 along time-respecting paths",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    errors.install(app)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/stats", tags=["ops"])
    def stats() -> dict[str, int]:
        return vars(app.state.store.counts())

    app.include_router(tracing_router.router)
    return app
