"""Dependencies shared by the routers: the store, the policy and the clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated

from fastapi import Depends, Request

from graph_models import TracingPolicy
from tracing.store import GraphStore


def get_store(request: Request) -> GraphStore:
    return request.app.state.store


def get_policy(request: Request) -> TracingPolicy:
    return request.app.state.settings.tracing


def get_now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


StoreDep = Annotated[GraphStore, Depends(get_store)]
PolicyDep = Annotated[TracingPolicy, Depends(get_policy)]
NowDep = Annotated[datetime, Depends(get_now)]
