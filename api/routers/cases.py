"""Cases: list by report time and region; trace (密接/次密接/一般接触者), derived contacts, sources (溯源)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from graph_models import CASE_STATUSES, Person, SourceCandidate, TracedContact, TraceResult
from tracing import service

from ..deps import AuditDep, CurrentUser, NowDep, PolicyDep, StoreDep
from ..listing import list_persons
from ..pagination import Page, decode_cursor, encode_cursor
from ..permissions import Allow, Perm
from ..presenting import router as make_router
from ..scoping import check_region_param, visible_case
from .persons import Cursor, End, Limit, Region, Start, _window

router = make_router(tags=["cases"])


@router.get("/cases", response_model=Page[Person], dependencies=[Allow(Perm.PERSONS_READ)])
def list_cases(
    store: StoreDep, user: CurrentUser, audit: AuditDep, region: Region = None,
    reported_since: Start = None, reported_until: End = None, cursor: Cursor = None, limit: Limit = 100,
) -> Page[Person]:
    """Confirmed and asymptomatic cases in your region, optionally reported in ``[reported_since, reported_until]``."""
    since, until = _window(reported_since, reported_until)
    cases = list_persons(
        store, region=check_region_param(user, region), statuses=CASE_STATUSES, after=decode_cursor(cursor),
        limit=limit, reported_since=since, reported_until=until,
    )
    audit.read(p.id for p in cases)
    return Page(items=cases, next_cursor=encode_cursor(cases[-1].id) if len(cases) == limit else None)


@router.post("/cases/{case_id}/trace", response_model=TraceResult, dependencies=[Allow(Perm.TRACE)])
def trace(case_id: str, store: StoreDep, user: CurrentUser, audit: AuditDep, policy: PolicyDep, now: NowDep) -> TraceResult:
    """Derive (and store) the case's close, secondary and general contacts with evidence."""
    audit.read([case_id])
    visible_case(store, user, case_id)
    result = service.trace_case(store, case_id, policy=policy, now=now)
    audit.read(c.person_id for c in result.contacts)
    return result


@router.get("/cases/{case_id}/contacts", response_model=list[TracedContact], dependencies=[Allow(Perm.CONTACTS_READ)])
def derived_contacts(case_id: str, store: StoreDep, user: CurrentUser, audit: AuditDep) -> list[TracedContact]:
    """The derived relations stored for the case by its last trace."""
    audit.read([case_id])
    visible_case(store, user, case_id)
    contacts = store.derived_for_case(case_id)
    audit.read(c.person_id for c in contacts)
    return contacts


@router.get("/cases/{case_id}/sources", response_model=list[SourceCandidate], dependencies=[Allow(Perm.CHAINS_READ)])
def sources(
    case_id: str, store: StoreDep, user: CurrentUser, audit: AuditDep, policy: PolicyDep, now: NowDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[SourceCandidate]:
    """Who may have infected the case (溯源), most suspicious first."""
    audit.read([case_id])
    visible_case(store, user, case_id)
    found = service.source_candidates(store, case_id, policy=policy, now=now)[:limit]
    audit.read(c.person_id for c in found)
    return found
