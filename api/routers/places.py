"""Places: list, read, write (batch or single), and who was there when."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body

from graph_models import Place, Visit
from tracing.auth import sees_all
from tracing.store import GraphBatch

from ..deps import AuditDep, CurrentUser, DeadlinePolicyDep, IdempotencyDep, NowDep, PolicyDep, StoreDep
from ..errors import ApiProblem, RowError
from ..listing import list_places
from ..pagination import Page, decode_cursor, encode_cursor
from ..permissions import Allow, Perm
from ..presenting import router as make_router
from ..schemas import WriteResult
from ..scoping import visible_ids
from ..writes import apply_batch, duplicate_errors, reject_rows
from .persons import MAX_ROWS, Cursor, End, Limit, Region, Start, _window

router = make_router(tags=["places"])


@router.get("/places", response_model=Page[Place], dependencies=[Allow(Perm.PLACES_READ)])
def list_places_view(store: StoreDep, region: Region = None, cursor: Cursor = None, limit: Limit = 100) -> Page[Place]:
    """Places (venues are not personal data: not region-limited), ordered by id."""
    places = list_places(store, region=region, after=decode_cursor(cursor), limit=limit)
    return Page(items=places, next_cursor=encode_cursor(places[-1].id) if len(places) == limit else None)


@router.post("/places", response_model=WriteResult, dependencies=[Allow(Perm.PLACES_WRITE)])
def write_places(
    places: Annotated[list[Place], Body(max_length=MAX_ROWS)], store: StoreDep, idem: IdempotencyDep,
    policy: PolicyDep, deadline_policy: DeadlinePolicyDep, now: NowDep,
) -> WriteResult:
    """Upsert places (a JSON array)."""

    def run() -> WriteResult:
        reject_rows(duplicate_errors([p.id for p in places]))
        return apply_batch(store, GraphBatch(places=places), policy=policy, deadline_policy=deadline_policy, now=now)

    return idem.run(run)


@router.get("/places/{place_id}", response_model=Place, dependencies=[Allow(Perm.PLACES_READ)])
def get_place(place_id: str, store: StoreDep) -> Place:
    place = store.get_places([place_id]).get(place_id)
    if place is None:
        raise ApiProblem(404, "Place not found", "not in the graph")
    return place


@router.put("/places/{place_id}", response_model=WriteResult, dependencies=[Allow(Perm.PLACES_WRITE)])
def put_place(
    place_id: str, place: Place, store: StoreDep, policy: PolicyDep, deadline_policy: DeadlinePolicyDep, now: NowDep,
) -> WriteResult:
    if place.id != place_id:
        reject_rows([RowError(0, "id", "does not match the path")])
    return apply_batch(store, GraphBatch(places=[place]), policy=policy, deadline_policy=deadline_policy, now=now)


@router.get("/places/{place_id}/visits", response_model=list[Visit], dependencies=[Allow(Perm.CONTACTS_READ)])
def place_visits(
    place_id: str, store: StoreDep, user: CurrentUser, audit: AuditDep, start: Start = None, end: End = None,
) -> list[Visit]:
    """Visits at a place overlapping ``[start, end]`` (时空伴随), limited to persons in your region."""
    start, end = _window(start, end)
    get_place(place_id, store)
    visits = store.visits_at([place_id], start=start, end=end)
    if not sees_all(user):
        allowed = visible_ids(store, user, {v.person_id for v in visits})
        visits = [v for v in visits if v.person_id in allowed]
    audit.read(v.person_id for v in visits)
    return visits
