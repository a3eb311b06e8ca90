"""The FastAPI application: ``create_app()``; the lifespan opens the store, the auth repository, the
audit writer and the deadline scheduler, and closes them in reverse order."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI

from tracing.auth import AuditWriter, TokenCache, auth_repository
from tracing.config import Settings
from tracing.deadlines import deadline_repository
from tracing.scheduler import build_scheduler, deadline_settings
from tracing.store import GraphStore, open_store

from . import errors
from .deps import AppState, utc_now
from .middleware import RequestGuard
from .routers import ROUTERS
from .settings import ApiSettings, api_settings

log = logging.getLogger("tracegraph.api")

DESCRIPTION = """
Contact-tracing graph service over REST: persons, contacts, visits and places; tracing (密接 / 次密接 /
一般接触者), chains, sources and clusters; investigations and their 2+4+24+8 clocks; alerts; isolation
site arrivals; line lists; the audit log.

**Auth**: `Authorization: Bearer <token>` (tokens from `tracegraph users add NAME --role ROLE`). Roles:
admin, investigator, commander, site_operator, analyst. A user with a region sees persons of that region
subtree only; others are answered 404. Analyst responses have names, ID numbers, phones, addresses and
coordinates masked. Every read or write of person-level data is audited.

**Errors** are RFC 9457 `application/problem+json`; batch rejections list `errors: [{index, field, message}]`
and write nothing. **Idempotency-Key** on POST replays the first outcome. Lists page with opaque `cursor`s.
"""


def settle_garbage_collector() -> None:
    """Move everything alive after start-up out of the collector's sight, and collect less often.

    A full collection walks every object; after start-up that is ~10^5-10^6
    objects of modules, models and schemas that live as long as the
    process, and a gen-2 pass over them stalls every request on the worker.
    ``gc.freeze`` parks them in a permanent generation; a larger gen-0
    threshold lets the short-lived garbage of requests die by reference
    counting between passes.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


#: Allocations between two young-generation passes (CPython's default is 700).
GC_GEN0_THRESHOLD = 20_000


def create_app(
    settings: Settings | None = None,
    *,
    store: GraphStore | None = None,
    clock: Callable[[], datetime] = utc_now,
    api: ApiSettings | None = None,
    start_scheduler: bool | None = None,
) -> FastAPI:
    """Build the app.

    Tests pass their own ``store`` and ``clock`` (the scheduler then stays
    off unless ``start_scheduler=True``); otherwise settings decide.
    """
    settings = settings or Settings()
    api = api or api_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        opened = open_store(settings.store) if owned else store
        scheduler = None
        audit = None
        try:
            auth = auth_repository(opened)
            audit = AuditWriter(auth, group_commit=api.audit_group_commit,
                                inline=getattr(opened, "reads_in_process", False))
            config = deadline_settings(settings)
            run_scheduler = owned if start_scheduler is None else start_scheduler
            if run_scheduler and config.enabled and deadline_repository(opened) is not None:
                scheduler = build_scheduler(opened, config, clock, store_url=settings.store if owned else None)
                scheduler.start()
            state = AppState(settings=settings, api=api, clock=clock, store=opened, auth=auth, audit=audit,
                             tokens=TokenCache(api.token_cache_seconds), scheduler=scheduler)
            app.state.tg = state
            app.state.store = opened
            app.state.scheduler = scheduler
            if owned:  # a served process, not a test's app: tune the collector for steady latency
                settle_garbage_collector()
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=True)
            if audit is not None:
                audit.close()
            app.state.tg = None
            if owned:
                opened.close()

    app = FastAPI(
        title="tracegraph",
        summary="Contact-tracing graph service: 密接 / 次密接 / 一般接触者 along time-respecting paths",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.tg = None
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(RequestGuard, max_body_bytes=api.max_body_bytes, access_log_enabled=api.access_log)
    return app
