"""Aggregates: transmission clusters and graph counts."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from graph_models import ChainVia, Cluster
from tracing import service
from tracing.auth import sees_all

from ..deps import AuditDep, CurrentUser, StoreDep
from ..permissions import Allow, Perm
from ..presenting import router as make_router
from ..schemas import Stats
from ..scoping import visible_ids

router = make_router(tags=["analytics"])


@router.get("/clusters", response_model=list[Cluster], dependencies=[Allow(Perm.CLUSTERS_READ)])
def clusters(
    store: StoreDep, user: CurrentUser, audit: AuditDep, via: ChainVia | None = ChainVia.LINKS,
    min_size: Annotated[int, Query(ge=1, le=1_000_000)] = 2, limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[Cluster]:
    """Transmission clusters (connected components), largest first.

    Sizes and case counts are national; a region-limited user sees only the
    member ids in their region.
    """
    found = service.clusters(store, via=via, min_size=min_size)[:limit]
    if not sees_all(user):
        allowed = visible_ids(store, user, {m for c in found for m in c.members})
        found = [c.model_copy(update={"members": [m for m in c.members if m in allowed]}) for c in found]
    audit.read(m for c in found for m in c.members)
    return found


@router.get("/stats", response_model=Stats, dependencies=[Allow(Perm.STATS_READ)])
def stats(store: StoreDep) -> Stats:
    """How many persons, places, events, visits, links and derived relations the graph holds."""
    return Stats(**vars(store.counts()))
