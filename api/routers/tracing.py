"""Tracing views: trace a case, follow chains, rank sources, list clusters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from graph_models import Chain, ChainDirection, ChainVia, Cluster, SourceCandidate, TracedContact, TraceResult
from tracing import service

from ..deps import NowDep, PolicyDep, StoreDep

router = APIRouter(tags=["tracing"])


@router.post("/cases/{case_id}/trace", response_model=TraceResult)
def trace(case_id: str, store: StoreDep, policy: PolicyDep, now: NowDep) -> TraceResult:
    """Derive (and store) the case's close, secondary and general contacts with evidence."""
    return service.trace_case(store, case_id, policy=policy, now=now)


@router.get("/cases/{case_id}/contacts", response_model=list[TracedContact])
def derived_contacts(case_id: str, store: StoreDep) -> list[TracedContact]:
    """The derived relations stored for the case by its last trace."""
    return store.derived_for_case(case_id)


@router.get("/cases/{case_id}/sources", response_model=list[SourceCandidate])
def sources(
    case_id: str, store: StoreDep, policy: PolicyDep, now: NowDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[SourceCandidate]:
    """Who may have infected the case (溯源), most suspicious first."""
    return service.source_candidates(store, case_id, policy=policy, now=now)[:limit]


@router.get("/persons/{person_id}/chain", response_model=Chain)
def chain(
    person_id: str,
    store: StoreDep,
    policy: PolicyDep,
    now: NowDep,
    direction: ChainDirection = ChainDirection.DOWN,
    via: ChainVia = ChainVia.CONTACTS,
    hops: Annotated[int | None, Query(ge=1, le=20)] = None,
) -> Chain:
    """Time-respecting descendants (down) or possible sources (up) within ``hops`` steps."""
    return service.chain(store, person_id, direction=direction, via=via, hops=hops, policy=policy, now=now)


@router.get("/clusters", response_model=list[Cluster])
def clusters(
    store: StoreDep,
    via: ChainVia | None = ChainVia.LINKS,
    min_size: Annotated[int, Query(ge=1)] = 2,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[Cluster]:
    """Transmission clusters (connected components), largest first."""
    return service.clusters(store, via=via, min_size=min_size)[:limit]
