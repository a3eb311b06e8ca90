"""Persons: list, read, write (batch or single), and their contacts, visits, links and chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Body, Query, Response

from graph_models import Chain, ChainDirection, ChainVia, ContactEvent, Person, PersonStatus, as_utc
from tracing import service
from tracing.store import GraphBatch

from ..deps import AuditDep, CurrentUser, DeadlinePolicyDep, IdempotencyDep, NowDep, PolicyDep, StoreDep, run_store
from ..errors import ApiProblem, RowError
from ..listing import list_persons
from ..pagination import Page, decode_cursor, encode_cursor
from ..permissions import Allow, Perm
from ..presenting import router as make_router
from ..schemas import PersonLinks, PersonVisits, WriteResult
from ..scoping import check_region_param, visible_person
from ..writes import apply_batch, duplicate_errors, reject_rows, scope_errors_for_persons

router = make_router(tags=["persons"])

MAX_ROWS = 10_000
Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(max_length=2000, description="Opaque; from `next_cursor` of the previous page")]
Region = Annotated[str | None, Query(min_length=1, max_length=64, description="Region subtree, e.g. 1101")]
Start = Annotated[datetime | None, Query(description="Window start (inclusive), ISO 8601")]
End = Annotated[datetime | None, Query(description="Window end (inclusive), ISO 8601")]


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime | None, datetime | None]:
    start, end = (as_utc(start) if start else None), (as_utc(end) if end else None)
    if start and end and end < start:
        raise ApiProblem(422, "Invalid window", "end is before start")
    return start, end


@router.get("/persons", response_model=Page[Person], dependencies=[Allow(Perm.PERSONS_READ)])
def list_persons_view(
    store: StoreDep, user: CurrentUser, audit: AuditDep, region: Region = None,
    status: Annotated[list[PersonStatus] | None, Query()] = None, cursor: Cursor = None, limit: Limit = 100,
) -> Page[Person]:
    """Persons in your region (and ``region``, if given), ordered by id, a page at a time."""
    after = decode_cursor(cursor)
    persons = list_persons(store, region=check_region_param(user, region), statuses=status, after=after, limit=limit)
    audit.read(p.id for p in persons)
    return Page(items=persons, next_cursor=encode_cursor(persons[-1].id) if len(persons) == limit else None)


@router.post("/persons", response_model=WriteResult, dependencies=[Allow(Perm.PERSONS_WRITE)])
def write_persons(
    persons: Annotated[list[Person], Body(max_length=MAX_ROWS)], store: StoreDep, user: CurrentUser,
    audit: AuditDep, idem: IdempotencyDep, policy: PolicyDep, deadline_policy: DeadlinePolicyDep, now: NowDep,
) -> WriteResult:
    """Upsert persons (a JSON array). Every row is checked first; if any is bad, nothing is written."""

    def run() -> WriteResult:
        reject_rows(duplicate_errors([p.id for p in persons]) or scope_errors_for_persons(store, user, persons))
        result = apply_batch(store, GraphBatch(persons=persons), policy=policy, deadline_policy=deadline_policy, now=now)
        audit.write(p.id for p in persons)
        return result

    return idem.run(run)


@router.get("/persons/{person_id}", response_model=Person, dependencies=[Allow(Perm.PERSONS_READ)])
def get_person(person_id: str, store: StoreDep, user: CurrentUser, audit: AuditDep) -> Person:
    audit.read([person_id])
    return visible_person(store, user, person_id)


@router.put("/persons/{person_id}", response_model=WriteResult, dependencies=[Allow(Perm.PERSONS_WRITE)])
def put_person(
    person_id: str, person: Person, store: StoreDep, user: CurrentUser, audit: AuditDep,
    policy: PolicyDep, deadline_policy: DeadlinePolicyDep, now: NowDep,
) -> WriteResult:
    """Create or replace one person (PUT is idempotent by itself)."""
    if person.id != person_id:
        reject_rows([RowError(0, "id", "does not match the path")])
    reject_rows(scope_errors_for_persons(store, user, [person]))
    audit.write([person_id])
    return apply_batch(store, GraphBatch(persons=[person]), policy=policy, deadline_policy=deadline_policy, now=now)


@router.get("/persons/{person_id}/contacts", response_model=list[ContactEvent],
            dependencies=[Allow(Perm.CONTACTS_READ)])
def person_contacts(
    person_id: str, store: StoreDep, user: CurrentUser, audit: AuditDep, start: Start = None, end: End = None,
) -> list[ContactEvent]:
    """Contact events of a person overlapping ``[start, end]``, by start time."""
    start, end = _window(start, end)
    audit.read([person_id])
    visible_person(store, user, person_id)
    events = store.events_touching([person_id], start=start, end=end)
    audit.read({x for e in events for x in (e.a, e.b)})
    return events


@router.get("/persons/{person_id}/visits", response_model=PersonVisits, dependencies=[Allow(Perm.CONTACTS_READ)])
def person_visits(
    person_id: str, store: StoreDep, user: CurrentUser, audit: AuditDep, start: Start = None, end: End = None,
) -> PersonVisits:
    """Where the person was (行动轨迹) in ``[start, end]``."""
    start, end = _window(start, end)
    audit.read([person_id])
    visible_person(store, user, person_id)
    return PersonVisits(person_id=person_id, visits=store.visits_of([person_id], start=start, end=end))


@router.get("/persons/{person_id}/links", response_model=PersonLinks, dependencies=[Allow(Perm.CONTACTS_READ)])
def person_links(person_id: str, store: StoreDep, user: CurrentUser, audit: AuditDep) -> PersonLinks:
    """Recorded who-infected-whom links into and out of the person."""
    audit.read([person_id])
    visible_person(store, user, person_id)
    return PersonLinks(infectors=store.links_to([person_id]), infectees=store.links_from([person_id]))


@router.get("/persons/{person_id}/chain", response_model=Chain, dependencies=[Allow(Perm.CHAINS_READ)])
async def chain(
    person_id: str, audit: AuditDep,
    direction: ChainDirection = ChainDirection.DOWN, via: ChainVia = ChainVia.CONTACTS,
    hops: Annotated[int | None, Query(ge=1, le=20)] = None,
) -> Response:
    """Time-respecting descendants (down) or possible sources (up) within ``hops`` steps."""
    # User, store, policy and clock from the audit dependency (it holds the current user and the
    # app state), not from CurrentUser/StoreDep/PolicyDep/NowDep: FastAPI solves each dependency's
    # sub-tree on every use, cached or not, and this is the service's busiest route.
    user, state = audit.user, audit.state
    store, policy, now = state.store, state.settings.tracing, state.clock()

    def read() -> Chain:
        visible_person(store, user, person_id)
        return service.chain(store, person_id, direction=direction, via=via, hops=hops, policy=policy, now=now)

    # On SQLite every chain runs on the event loop, contact chains included: the traversal is
    # CPU-bound Python, so in a worker thread it would still hold the GIL the loop needs, and the
    # hop plus the GIL hand-offs cost more than they free. Measured on the 1M-person bench graph,
    # c=16, 2 workers: contacts hops 1 899 -> 1,238 req/s (p99 56 -> 28 ms), hops 2 432 -> 539
    # (p99 135 -> 93 ms), hops 3 116 -> 158 (p99 564 -> 391 ms) (docs/benchmarks.md). The price:
    # a very large chain (hops 3: store work p99 150 ms) holds this worker's other requests for
    # its duration instead of slowing them down; the other workers keep serving. On Neo4j (a
    # server round trip) run_store still uses the thread pool.
    result = await run_store(store, read)
    audit.read(m.person_id for m in result.members)
    # Already a validated Chain: serialise it once in pydantic-core instead of FastAPI
    # re-validating it against response_model (which still documents the shape).
    return Response(result.model_dump_json(), media_type="application/json")
