"""Dependencies shared by the routers: typed app state, store, policy, clock, current user, audit, idempotency."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, TypeVar

from apscheduler.schedulers.base import BaseScheduler
from fastapi import Depends, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from graph_models import TracingPolicy
from graph_models.deadlines import DeadlinePolicy
from tracing.auth import AuditEntry, AuditWriter, AuthRepository, TokenCache, User, authenticate, cached_user
from tracing.auth.service import (
    IdempotencyInProgress,
    IdempotencyKeyReused,
    complete_idempotent,
    release_idempotent,
    request_fingerprint,
    reserve_idempotent,
)
from tracing.config import Settings
from tracing.deadlines import deadline_repository
from tracing.deadlines.repository import DeadlineRepository
from tracing.store import GraphStore

from .settings import ApiSettings

R = TypeVar("R")

__all__ = [
    "AppState", "Audit", "AuditDep", "AuthRepoDep", "CurrentUser", "DeadlineRepoDep", "DeadlinePolicyDep",
    "Idempotency", "IdempotencyDep", "NowDep", "PolicyDep", "StateDep", "StoreDep", "run_store", "utc_now",
]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


async def run_store(store: GraphStore, fn: Callable[[], R]) -> R:
    """``fn()`` for an ``async`` route: inline when ``store`` reads in this process (SQLite: local
    reads are CPU-bound Python, which in a worker thread would still hold the GIL the loop needs,
    so the hop costs more than it frees), else in the thread pool, so that a server round trip
    (Neo4j) does not block the event loop, and with it every other request of the worker."""
    if getattr(store, "reads_in_process", False):
        return fn()
    return await run_in_threadpool(fn)


@dataclass
class AppState:
    """What the lifespan opens, typed. Lives on ``app.state.tg`` (and the store/scheduler on ``app.state``)."""

    settings: Settings
    api: ApiSettings
    clock: Callable[[], datetime]
    store: GraphStore
    auth: AuthRepository
    audit: AuditWriter
    tokens: TokenCache
    scheduler: BaseScheduler | None = None
    started_at: datetime = field(default_factory=utc_now)


def app_state(request: Request) -> AppState:
    """The typed state, read directly: the dependencies below call this instead of depending on
    :data:`StateDep`, because FastAPI solves a dependency's whole sub-tree on every use, cached or not."""
    state = getattr(request.app.state, "tg", None)
    if state is None:  # the lifespan has not run
        raise HTTPException(503, "service is starting")
    return state


async def get_state(request: Request) -> AppState:
    return app_state(request)


StateDep = Annotated[AppState, Depends(get_state)]


async def get_store(state: StateDep) -> GraphStore:
    return state.store


async def get_policy(state: StateDep) -> TracingPolicy:
    return state.settings.tracing


async def get_deadline_policy(state: StateDep) -> DeadlinePolicy:
    return state.settings.deadlines.policy


async def get_now(state: StateDep) -> datetime:
    return state.clock()


async def get_auth_repo(state: StateDep) -> AuthRepository:
    return state.auth


def get_deadline_repo(state: StateDep) -> DeadlineRepository:
    repo = deadline_repository(state.store)
    if repo is None:
        raise HTTPException(501, "deadlines are not available on this store backend yet")
    return repo


StoreDep = Annotated[GraphStore, Depends(get_store)]
PolicyDep = Annotated[TracingPolicy, Depends(get_policy)]
DeadlinePolicyDep = Annotated[DeadlinePolicy, Depends(get_deadline_policy)]
NowDep = Annotated[datetime, Depends(get_now)]
AuthRepoDep = Annotated[AuthRepository, Depends(get_auth_repo)]
DeadlineRepoDep = Annotated[DeadlineRepository, Depends(get_deadline_repo)]

_bearer = HTTPBearer(auto_error=False, description="Token from `tracegraph users add NAME --role ROLE`")


async def get_current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    state = app_state(request)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    token = credentials.credentials
    hit, user = cached_user(token, state.tokens)
    if not hit:  # a store read: once per token and TTL
        user = await run_store(state.store, lambda: authenticate(state.auth, token, cache=state.tokens))
    if user is None:
        raise HTTPException(401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})
    request.state.user = user
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


class Audit:
    """Records person-level reads and writes of this request (who, when, endpoint, which persons).

    Entries go to the audit writer at once; the response waits for their
    commit in :class:`~api.presenting.PresentedRoute` (which marks the
    request with ``audit_awaited``), so no data leaves before its audit row
    is durable and a failed append answers 500 instead. On a route that
    does not wait, :meth:`read` and :meth:`write` wait for the commit themselves.
    """

    def __init__(self, request: Request, user: User, state: AppState) -> None:
        self.request, self.user, self.state = request, user, state
        self.pending: list[Awaitable[None] | Future[None]] = []

    def _record(self, action: str, person_ids) -> None:
        route = self.request.scope.get("route")
        entry = AuditEntry(
            at=self.state.clock(), user=self.user.name, role=self.user.role, method=self.request.method,
            endpoint=getattr(route, "path", self.request.url.path), path=self.request.url.path,
            action=action, person_ids=sorted(set(person_ids)),
        )
        done = self.state.audit.submit([entry])
        if getattr(self.request.state, "audit_awaited", False):
            self.pending.append(done)
        elif isinstance(done, Future):
            done.result()
        else:
            raise RuntimeError("audit recorded on the event loop by a route that does not await it")

    def read(self, person_ids) -> None:
        self._record("read", person_ids)

    def write(self, person_ids) -> None:
        self._record("write", person_ids)

    async def committed(self) -> None:
        """Wait until every entry of this request is committed; raises if an append failed."""
        pending, self.pending = self.pending, []
        self.request.state.audit_awaited = False  # anything recorded later (while streaming) waits itself
        for done in pending:
            await (asyncio.wrap_future(done) if isinstance(done, Future) else done)


async def get_audit(request: Request, user: CurrentUser) -> Audit:
    audit = Audit(request, user, app_state(request))
    request.state.audit = audit
    return audit


AuditDep = Annotated[Audit, Depends(get_audit)]


class Idempotency:
    """Makes a retried POST safe: with an ``Idempotency-Key`` the first outcome is stored and replayed.

    Same key and same request (method, path, body) → the stored status and
    body, with ``Idempotent-Replayed: true``. Same key, different request →
    409 problem. Records expire after ``idempotency_ttl_hours``.
    """

    def __init__(self, key: str | None, fingerprint: str, user: User, state: AppState) -> None:
        self.key, self.fingerprint, self.user, self.state = key, fingerprint, user, state
        self.ttl = timedelta(hours=state.api.idempotency_ttl_hours)

    def run(self, fn: Callable[[], Any], *, status_code: int = 200) -> Any:
        if self.key is None:
            return fn()
        auth, user, key = self.state.auth, self.user.name, self.key
        try:
            stored = reserve_idempotent(auth, user, key, self.fingerprint, now=self.state.clock(), ttl=self.ttl)
        except IdempotencyKeyReused:
            raise HTTPException(409, "Idempotency-Key was already used for a different request") from None
        except IdempotencyInProgress:
            raise HTTPException(
                409, "a request with this Idempotency-Key is still running; retry later", headers={"Retry-After": "1"}
            ) from None
        if stored is not None:
            return JSONResponse(json.loads(stored.body), status_code=stored.status,
                                headers={"Idempotent-Replayed": "true"})
        try:
            result = fn()
        except BaseException:
            # Nothing to replay: a retry must run the request again.
            release_idempotent(auth, user, key)
            raise
        body = json.dumps(jsonable_encoder(result), ensure_ascii=False, separators=(",", ":"))
        complete_idempotent(auth, user, key, status=status_code, body=body)
        return JSONResponse(json.loads(body), status_code=status_code)


async def get_idempotency(
    request: Request, user: CurrentUser, state: StateDep,
    idempotency_key: Annotated[
        str | None,
        Header(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
               description="Makes a retried POST safe: the first outcome is replayed for 24 h"),
    ] = None,
) -> Idempotency:
    body = await request.body()
    return Idempotency(idempotency_key, request_fingerprint(request.method, request.url.path, body), user, state)


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
