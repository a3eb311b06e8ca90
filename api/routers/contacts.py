"""Contact events, visits and transmission links: batch and single writes, reads by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body

from graph_models import ContactEvent, TransmissionLink, Visit
from tracing.auth import visible
from tracing.store import GraphBatch

from ..deps import AuditDep, CurrentUser, DeadlinePolicyDep, IdempotencyDep, NowDep, PolicyDep, StoreDep
from ..errors import ApiProblem, RowError
from ..permissions import Allow, Perm
from ..presenting import router as make_router
from ..schemas import WriteResult
from ..writes import apply_batch, duplicate_errors, reject_rows, scope_errors_for_links
from .persons import MAX_ROWS

router = make_router(tags=["contacts"])


def _event_errors(store, user, events: list[ContactEvent]) -> list[dict]:
    return duplicate_errors([e.id for e in events]) or scope_errors_for_links(store, user, [(e.a, e.b) for e in events])


def _visit_errors(store, user, visits: list[Visit]) -> list[dict]:
    errors = duplicate_errors([v.id for v in visits])
    if errors:
        return errors
    persons = store.get_persons({v.person_id for v in visits})
    places = store.get_places({v.place_id for v in visits})
    for i, v in enumerate(visits):
        person = persons.get(v.person_id)
        if person is None or not visible(user, person.region):
            errors.append(RowError(i, "person_id", "not writable: unknown or outside your region"))
        if v.place_id not in places:
            errors.append(RowError(i, "place_id", "no such place"))
    return errors


def _write(store, batch, policy, deadline_policy, now) -> WriteResult:
    return apply_batch(store, batch, policy=policy, deadline_policy=deadline_policy, now=now)


@router.post("/contacts", response_model=WriteResult, dependencies=[Allow(Perm.CONTACTS_WRITE)])
def write_contacts(
    events: Annotated[list[ContactEvent], Body(max_length=MAX_ROWS)], store: StoreDep, user: CurrentUser,
    audit: AuditDep, idem: IdempotencyDep, policy: PolicyDep, deadline_policy: DeadlinePolicyDep, now: NowDep,
) -> WriteResult:
    """Upsert contact events (a JSON array). Both persons must exist; one must be in your region."""

    def run() -> WriteResult:
        reject_rows(_event_errors(store, user, events))
        audit.write(x for e in events for x in (e.a, e.b))
        return _write(store, GraphBatch(events=events), policy, deadline_policy, now)

    return idem.run(run)


@router.put("/contacts/{event_id}", response_model=WriteResult, dependencies=[Allow(Perm.CONTACTS_WRITE)])
def put_contact(
    event_id: str, event: ContactEvent, store: StoreDep, user: CurrentUser, audit: AuditDep,
    policy: PolicyDep, deadline_policy: DeadlinePolicyDep, now: NowDep,
) -> WriteResult:
    if event.id != event_id:
        reject_rows([RowError(0, "id", "does not match the path")])
    reject_rows(_event_errors(store, user, [event]))
    audit.write([event.a, event.b])
    return _write(store, GraphBatch(events=[event]), policy, deadline_policy, now)


@router.get("/contacts/{event_id}", response_model=ContactEvent, dependencies=[Allow(Perm.CONTACTS_READ)])
def get_contact(event_id: str, store: StoreDep, user: CurrentUser, audit: AuditDep) -> ContactEvent:
    event = store.get_events([event_id]).get(event_id)
    if event is not None:
        audit.read([event.a, event.b])
        persons = store.get_persons([event.a, event.b])
        if any(visible(user, p.region) for p in persons.values()):
            return event
    raise ApiProblem(404, "Contact not found", "not in the graph, or not in your region")


@router.post("/visits", response_model=WriteResult, dependencies=[Allow(Perm.CONTACTS_WRITE)])
def write_visits(
    visits: Annotated[list[Visit], Body(max_length=MAX_ROWS)], store: StoreDep, user: CurrentUser,
    audit: AuditDep, idem: IdempotencyDep, policy: PolicyDep, deadline_policy: DeadlinePolicyDep, now: NowDep,
) -> WriteResult:
    """Upsert visits (行动轨迹, a JSON array). The person must be in your region and the place must exist."""

    def run() -> WriteResult:
        reject_rows(_visit_errors(store, user, visits))
        audit.write(v.person_id for v in visits)
        return _write(store, GraphBatch(visits=visits), policy, deadline_policy, now)

    return idem.run(run)


@router.put("/visits/{visit_id}", response_model=WriteResult, dependencies=[Allow(Perm.CONTACTS_WRITE)])
def put_visit(
    visit_id: str, visit: Visit, store: StoreDep, user: CurrentUser, audit: AuditDep,
    policy: PolicyDep, deadline_policy: DeadlinePolicyDep, now: NowDep,
) -> WriteResult:
    if visit.id != visit_id:
        reject_rows([RowError(0, "id", "does not match the path")])
    reject_rows(_visit_errors(store, user, [visit]))
    audit.write([visit.person_id])
    return _write(store, GraphBatch(visits=[visit]), policy, deadline_policy, now)


@router.post("/links", response_model=WriteResult, dependencies=[Allow(Perm.CONTACTS_WRITE)])
def write_links(
    links: Annotated[list[TransmissionLink], Body(max_length=MAX_ROWS)], store: StoreDep, user: CurrentUser,
    audit: AuditDep, idem: IdempotencyDep, policy: PolicyDep, deadline_policy: DeadlinePolicyDep, now: NowDep,
) -> WriteResult:
    """Upsert who-infected-whom links (a JSON array), keyed by (infector, infectee)."""

    def run() -> WriteResult:
        errors = duplicate_errors([f"{k.infector}\x00{k.infectee}" for k in links], field="infectee")
        reject_rows(errors or scope_errors_for_links(
            store, user, [(k.infector, k.infectee) for k in links], fields=("infector", "infectee")))
        audit.write(x for k in links for x in (k.infector, k.infectee))
        return _write(store, GraphBatch(links=links), policy, deadline_policy, now)

    return idem.run(run)
