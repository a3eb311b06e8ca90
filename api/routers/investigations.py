"""Investigations (流调) and their 2+4+24+8 clocks: open, arrive on scene, declare, close, look back; deadlines, compliance and alerts."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import Query

from graph_models.deadlines import Alert, AssistRequest, ComplianceLine, Investigation, LookBack, MilestoneState
from tracing.auth import User, sees_all, visible
from tracing.deadlines import InvestigationNotFound, reports, service as deadlines

from ..deps import AuditDep, CurrentUser, DeadlinePolicyDep, DeadlineRepoDep, IdempotencyDep, NowDep, StoreDep
from ..errors import ApiProblem
from ..pagination import Page, decode_cursor, encode_cursor
from ..permissions import Allow, Perm
from ..presenting import router as make_router
from ..schemas import ArrivalIn, DeadlineRow, OpenInvestigationIn
from ..scoping import visible_case
from .persons import End, Start, _window

router = make_router(tags=["investigations"])


def _visible_investigation(repo, user: User, investigation_id: str) -> Investigation:
    inv = repo.get_investigations([investigation_id]).get(investigation_id)
    if inv is None or not visible(user, inv.region):
        raise InvestigationNotFound(investigation_id)
    return inv


@router.post("/investigations", response_model=Investigation, dependencies=[Allow(Perm.INVESTIGATIONS_WRITE)])
def open_investigation(
    body: OpenInvestigationIn, store: StoreDep, repo: DeadlineRepoDep, user: CurrentUser, audit: AuditDep,
    idem: IdempotencyDep, policy: DeadlinePolicyDep, now: NowDep,
) -> Investigation:
    """Open a case's investigation and start its clocks (idempotent: returns the open one)."""

    def run() -> Investigation:
        audit.write([body.case_id])
        visible_case(store, user, body.case_id)
        return deadlines.open_investigation(store, repo, body.case_id, policy=policy, now=now, team=body.team)

    return idem.run(run)


@router.post("/assist-requests", response_model=Investigation, dependencies=[Allow(Perm.INVESTIGATIONS_WRITE)])
def open_assist_request(
    body: AssistRequest, repo: DeadlineRepoDep, user: CurrentUser, audit: AuditDep, idem: IdempotencyDep,
    policy: DeadlinePolicyDep, now: NowDep,
) -> Investigation:
    """Record an assist request (协查) pushed from another region and start its 24 h clock."""
    if not visible(user, body.region):
        raise ApiProblem(403, "Forbidden", "the assist request is addressed outside your region")

    def run() -> Investigation:
        audit.write(body.person_ids)
        return deadlines.open_assist_request(repo, body, policy=policy, now=now)

    return idem.run(run)


@router.get("/investigations/{investigation_id}", response_model=Investigation,
            dependencies=[Allow(Perm.INVESTIGATIONS_READ)])
def get_investigation(investigation_id: str, repo: DeadlineRepoDep, user: CurrentUser) -> Investigation:
    return _visible_investigation(repo, user, investigation_id)


@router.post("/investigations/{investigation_id}/arrivals", response_model=Investigation,
             dependencies=[Allow(Perm.INVESTIGATIONS_WRITE)])
def record_arrival(
    investigation_id: str, body: ArrivalIn, repo: DeadlineRepoDep, user: CurrentUser, now: NowDep,
) -> Investigation:
    """An investigator arrived on scene (the 2 h clock)."""
    inv = _visible_investigation(repo, user, investigation_id)
    deadlines.record_arrival(repo, investigation_id, investigator=body.investigator, arrived_at=body.arrived_at, now=now)
    return inv


@router.post("/investigations/{investigation_id}/no-contacts", response_model=Investigation,
             dependencies=[Allow(Perm.INVESTIGATIONS_WRITE)])
def declare_no_contacts(investigation_id: str, repo: DeadlineRepoDep, user: CurrentUser, now: NowDep) -> Investigation:
    """Declare that the case has no close/secondary contacts (empty lists then count as complete)."""
    _visible_investigation(repo, user, investigation_id)
    return deadlines.declare_no_contacts(repo, investigation_id, now=now)


@router.post("/investigations/{investigation_id}/close", response_model=Investigation,
             dependencies=[Allow(Perm.INVESTIGATIONS_WRITE)])
def close_investigation(investigation_id: str, repo: DeadlineRepoDep, user: CurrentUser, now: NowDep) -> Investigation:
    _visible_investigation(repo, user, investigation_id)
    return deadlines.close_investigation(repo, investigation_id, now=now)


@router.get("/investigations/{investigation_id}/lookback", response_model=LookBack,
            dependencies=[Allow(Perm.INVESTIGATIONS_READ)])
def look_back(investigation_id: str, repo: DeadlineRepoDep, user: CurrentUser, audit: AuditDep, now: NowDep) -> LookBack:
    """倒查: each clock's state at its due time and what was known then."""
    _visible_investigation(repo, user, investigation_id)
    result = reports.look_back(repo, investigation_id, now=now)
    audit.read(t.person_id for x in result.milestones for t in x.known_at_due)
    return result


class DeadlineFilter(StrEnum):
    ALL = "all"
    OPEN = "open"
    MISSED = "missed"


@router.get("/deadlines", response_model=list[DeadlineRow], dependencies=[Allow(Perm.DEADLINES_READ)])
def list_deadlines(
    repo: DeadlineRepoDep, user: CurrentUser, state: DeadlineFilter = DeadlineFilter.OPEN, since: Start = None,
    until: End = None, investigation: Annotated[str | None, Query(max_length=160)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[DeadlineRow]:
    """Clocks due in ``[since, until]``: open (pending, at risk, missed), missed (ever) or all; in your region."""
    since, until = _window(since, until)
    rows = reports.milestones_report(
        repo, open_only=state is DeadlineFilter.OPEN, missed_only=state is DeadlineFilter.MISSED, since=since,
        until=until, investigation_id=investigation, limit=None if not sees_all(user) else limit,
    )
    visible_rows = [DeadlineRow(investigation=i, milestone=m) for m, i in rows if visible(user, i.region)]
    return visible_rows[:limit]


class GroupBy(StrEnum):
    REGION = "region"
    TEAM = "team"


@router.get("/deadlines/compliance", response_model=list[ComplianceLine], dependencies=[Allow(Perm.COMPLIANCE_READ)])
def compliance(
    repo: DeadlineRepoDep, user: CurrentUser, by: GroupBy = GroupBy.REGION, since: Start = None, until: End = None,
) -> list[ComplianceLine]:
    """Met on time / late / missed per region (or team) for each clock. Region-limited users see their subtree."""
    since, until = _window(since, until)
    lines = reports.compliance(repo, group_by=by.value, since=since, until=until)
    if by is GroupBy.REGION and not sees_all(user):
        lines = [x for x in lines if visible(user, x.group)]
    elif not sees_all(user):
        raise ApiProblem(403, "Forbidden", "compliance by team is national; ask for by=region")
    return lines


@router.get("/alerts", response_model=Page[Alert], dependencies=[Allow(Perm.ALERTS_READ)])
def list_alerts(
    repo: DeadlineRepoDep, user: CurrentUser, since: Start = None,
    state: Annotated[list[MilestoneState] | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[Alert]:
    """Deadline alerts (at risk, missed, met late, …) in sequence order; poll with ``cursor`` for new ones."""
    after = decode_cursor(cursor, int) or 0
    since, _ = _window(since, None)
    items: list[Alert] = []
    last = after
    while len(items) < limit:
        batch = repo.alerts(after_seq=last, states=state, since=since, limit=limit)
        if not batch:
            break
        for alert in batch:
            last = alert.seq or last
            if visible(user, alert.region):
                items.append(alert)
                if len(items) == limit:
                    break
        if len(batch) < limit:
            break
    return Page(items=items, next_cursor=encode_cursor(last) if items or last > after else cursor)
