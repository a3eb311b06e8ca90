"""Transfer service: who is due, plan, confirm, pick up, arrive, discharge, census.

Every function takes the graph store and/or the transfer repository first,
options keyword-only, and ``now`` is always passed in, never read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from graph_models import ContactClass, Person
from graph_models.transfers import (
    CapacityStandard,
    CensusReport,
    IsolationCategory,
    IsolationPolicy,
    IsolationSite,
    Transfer,
    TransferPlan,
    TransferState,
    Vehicle,
    arrival_category_of,
    arrived_at_of,
)

from ..deadlines.service import deadline_repository, record_isolation_arrival
from ..errors import TracingError
from ..store.port import GraphStore
from ..store.siblings import sibling_repository
from .census import build_census
from .planning import Candidate, VehicleReady, plan_households
from .repository import InsertResult, TransferRepository

__all__ = [
    "ArrivalResult",
    "PlanNotFound",
    "census",
    "confirm_arrival",
    "confirm_plan",
    "discharge",
    "discharge_due",
    "due_candidates",
    "import_sites",
    "import_vehicles",
    "manifest",
    "plan_transfers",
    "record_pickup",
    "transfer_repository",
]

log = logging.getLogger("tracegraph.transfers")

_CLASS_CATEGORY = {ContactClass.CLOSE: IsolationCategory.CLOSE, ContactClass.SECONDARY: IsolationCategory.SECONDARY}


class PlanNotFound(TracingError):
    def __init__(self, plan_id: str | None) -> None:
        super().__init__(f"transfer plan {plan_id!r} does not exist" if plan_id else "no transfer plan yet")
        self.plan_id = plan_id


def _sqlite_repository(store: GraphStore) -> TransferRepository:
    from .sqlite import SQLiteTransferRepository

    return SQLiteTransferRepository(store)


def _neo4j_repository(store: GraphStore) -> TransferRepository:
    from .neo4j import Neo4jTransferRepository

    return Neo4jTransferRepository(store)


def transfer_repository(store: GraphStore) -> TransferRepository:
    """The transfer repository kept in the same database as ``store`` (one per store)."""
    return sibling_repository(store, "transfers", sqlite=_sqlite_repository, neo4j=_neo4j_repository)


# --- sites and vehicles ----------------------------------------------------------------------------


def import_sites(repo: TransferRepository, sites: Sequence[IsolationSite]) -> int:
    repo.upsert_sites(sites)
    return len(sites)


def import_vehicles(repo: TransferRepository, vehicles: Sequence[Vehicle]) -> int:
    repo.upsert_vehicles(vehicles)
    return len(vehicles)


# --- who is due ------------------------------------------------------------------------------------


def _due(store: GraphStore, policy: IsolationPolicy, now: datetime) -> tuple[dict[str, tuple], dict[str, Person]]:
    """Person id → (category, exposed_at) of everyone due for centralized isolation, and the persons."""
    centralized = policy.centralized
    best: dict[str, tuple[IsolationCategory, datetime]] = {}

    def offer(pid: str, category: IsolationCategory, exposed_at: datetime) -> None:
        if category not in centralized:
            return
        current = best.get(pid)
        key = (policy.rank(category), exposed_at)
        if current is None or key < (policy.rank(current[0]), current[1]):
            best[pid] = (category, exposed_at)

    for contact, _derived_at in store.iter_derived():
        category = _CLASS_CATEGORY.get(ContactClass(contact.contact_class))
        if category is not None:
            offer(contact.person_id, category, contact.exposed_at)
    persons: dict[str, Person] = {}
    for person in store.iter_persons():
        category = arrival_category_of(person.attributes)
        if category is not None:
            offer(person.id, category, arrived_at_of(person.attributes) or now)
            persons[person.id] = person
    missing = [pid for pid in best if pid not in persons]
    persons.update(store.get_persons(missing))
    # Cases go to a designated hospital, not to isolation.
    return {pid: v for pid, v in best.items() if not (pid in persons and persons[pid].is_case)}, persons


def due_candidates(
    store: GraphStore, repo: TransferRepository, *, policy: IsolationPolicy, now: datetime,
    released: Iterable[str] = (),
) -> list[Candidate]:
    """Everyone due for centralized isolation and not yet placed, as planning candidates.

    Placed: holds an active transfer (except those in ``released``, transfer
    ids a re-plan gives up), or was discharged after the exposure that makes
    them due now (a newer exposure makes them due again).
    """
    due, persons = _due(store, policy, now)
    released = set(released)
    candidates = []
    history = repo.transfers_of(due)
    for pid, (category, exposed_at) in sorted(due.items()):
        placed = False
        for t in history.get(pid, ()):
            if t.occupies_room and t.id not in released or t.discharged_at is not None and t.discharged_at >= exposed_at:
                placed = True
        if placed:
            continue
        p = persons.get(pid)
        candidates.append(Candidate(
            person_id=pid, household=(p.household_id if p and p.household_id else f"person:{pid}"),
            category=category, exposed_at=exposed_at, lat=p.lat if p else None, lon=p.lon if p else None,
            region=p.region if p else None,
        ))
    return candidates


# --- planning and confirmation ---------------------------------------------------------------------


def plan_transfers(
    store: GraphStore, *, policy: IsolationPolicy, now: datetime, repo: TransferRepository | None = None,
    replan: bool = False, save: bool = True,
) -> TransferPlan:
    """Propose rooms, vehicles, batches and pickup times for everyone due and not yet placed.

    Nothing is transferred until the plan is confirmed. With ``replan``,
    confirmed transfers not picked up yet are given up and planned again
    (the plan lists them in ``released``; confirming cancels them);
    transfers already picked up are never moved.
    """
    repo = repo or transfer_repository(store)
    active = repo.active_transfers()
    released = [t.id for t in active if replan and t.state is TransferState.PLANNED]
    released_set = set(released)
    keep = [t for t in active if t.id not in released_set]
    candidates = due_candidates(store, repo, policy=policy, now=now, released=released_set)
    occupied: dict[str, set[int]] = {}
    for t in keep:
        occupied.setdefault(t.site_id, set()).add(t.room)
    sites = {s.id: s for s in repo.sites()}
    unloading = timedelta(minutes=policy.planning.unloading_minutes)
    ready: dict[str, VehicleReady] = {}
    for t in keep:
        if t.vehicle_id is None or t.arrived_at is not None or t.planned_arrival_at is None:
            continue
        site = sites.get(t.site_id)
        at = t.planned_arrival_at + unloading
        current = ready.get(t.vehicle_id)
        if site is not None and (current is None or at > current.ready_at):
            ready[t.vehicle_id] = VehicleReady(
                ready_at=at, lat=site.lat, lon=site.lon, batches=max(t.batch or 0, current.batches if current else 0)
            )
    plan = plan_households(
        candidates, list(sites.values()), repo.vehicles(), policy=policy, now=now, occupied=occupied,
        vehicle_ready=ready, released=released,
    )
    if save:
        repo.save_plan(plan)
    return plan


@dataclass
class ConfirmResult:
    plan_id: str
    inserted: list[str]
    existing: list[str]
    refused: dict[str, str]


def confirm_plan(repo: TransferRepository, plan_id: str | None = None, *, now: datetime) -> ConfirmResult:
    """Write the plan's transfers (idempotent: confirming twice writes nothing new).

    ``plan_id`` None confirms the latest plan. A transfer is refused if its
    person was placed meanwhile or its room taken (another plan confirmed
    first); the rest is written.

    Raises
    ------
    PlanNotFound
    """
    plan_id = plan_id or repo.latest_plan_id()
    plan = repo.get_plan(plan_id) if plan_id else None
    if plan is None:
        raise PlanNotFound(plan_id)
    transfers = [
        Transfer(
            id=f"{plan.id}/{a.person_id}", plan_id=plan.id, person_id=a.person_id, household=a.household,
            category=a.category, exposed_at=a.exposed_at, site_id=a.site_id, room=a.room, vehicle_id=a.vehicle_id,
            batch=a.batch, pickup_order=a.pickup_order, planned_pickup_at=a.planned_pickup_at,
            planned_arrival_at=a.planned_arrival_at, confirmed_at=now,
        )
        for a in plan.assignments
    ]
    result: InsertResult = repo.insert_transfers(transfers, release=plan.released, now=now)
    return ConfirmResult(plan.id, result.inserted, result.existing, result.refused)


def _current(repo: TransferRepository, person_ids: Iterable[str]) -> dict[str, Transfer]:
    return {
        pid: next(t for t in reversed(ts) if t.occupies_room)
        for pid, ts in repo.transfers_of(person_ids).items()
        if any(t.occupies_room for t in ts)
    }


def record_pickup(
    repo: TransferRepository, person_ids: Sequence[str], *, picked_up_at: datetime, now: datetime
) -> list[Transfer]:
    """Persons boarded their vehicle: from now on no re-plan moves them. Returns the changed transfers."""
    changed = [
        t.model_copy(update={"picked_up_at": picked_up_at})
        for t in _current(repo, person_ids).values()
        if t.picked_up_at is None and t.arrived_at is None
    ]
    repo.update_transfers(changed)
    return changed


@dataclass
class ArrivalResult:
    arrived: list[Transfer] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    investigations: set[str] = field(default_factory=set)
    deadlines_tracked: bool = True


def confirm_arrival(
    store: GraphStore, repo: TransferRepository, person_ids: Sequence[str], *, arrived_at: datetime, now: datetime,
) -> ArrivalResult:
    """Persons arrived at their site: in centralized isolation; closes their 8 h transfer clock.

    Calls :func:`tracing.deadlines.record_isolation_arrival` for each, so the
    investigations watching them are re-evaluated by the next sweep. Idempotent.
    """
    result = ArrivalResult()
    current = _current(repo, person_ids)
    for pid in dict.fromkeys(person_ids):
        t = current.get(pid)
        if t is None:
            result.unknown.append(pid)
        elif t.arrived_at is not None:
            result.already.append(pid)
        else:
            result.arrived.append(t.model_copy(update={
                "arrived_at": arrived_at, "picked_up_at": t.picked_up_at or arrived_at,
            }))
    repo.update_transfers(result.arrived)
    deadlines = deadline_repository(store)
    if deadlines is None:
        result.deadlines_tracked = False
        if result.arrived:
            log.warning("no deadline repository for %s: 8 h clocks not updated", type(store).__name__)
        return result
    for t in result.arrived:
        result.investigations |= record_isolation_arrival(deadlines, t.person_id, t.site_id, arrived_at, now=now)
    return result


def discharge(
    repo: TransferRepository, person_ids: Sequence[str], *, policy: IsolationPolicy, now: datetime
) -> list[Transfer]:
    """End centralized isolation of persons now (frees their rooms); home health monitoring follows."""
    changed = [
        t.model_copy(update={
            "discharged_at": now,
            "home_monitoring_until": now + timedelta(days=policy.rule(t.category).home_monitoring_days),
        })
        for t in _current(repo, person_ids).values()
        if t.arrived_at is not None
    ]
    repo.update_transfers(changed)
    return changed


def discharge_due(repo: TransferRepository, *, policy: IsolationPolicy, now: datetime) -> list[Transfer]:
    """Discharge everyone whose isolation period (per policy) has ended by ``now``."""
    due = [
        t.person_id for t in repo.active_transfers()
        if (end := policy.isolation_ends(t)) is not None and end <= now
    ]
    return discharge(repo, due, policy=policy, now=now)


def census(
    repo: TransferRepository, *, policy: IsolationPolicy, now: datetime, standard: CapacityStandard | None = None,
    population: Mapping[str, int] | None = None,
) -> CensusReport:
    return build_census(
        repo.transfers(), repo.sites(), now=now, policy=policy, standard=standard or CapacityStandard(),
        population=population,
    )


def manifest(
    store: GraphStore, repo: TransferRepository, *, site_id: str | None = None, vehicle_id: str | None = None,
    offset: timedelta = timedelta(hours=8),
) -> tuple[str, list]:
    """Title and rows of the manifest of one site or one vehicle (active transfers only).

    Raises
    ------
    ValueError
        If neither or both of ``site_id`` / ``vehicle_id`` are given.
    """
    from .manifests import manifest_rows

    if (site_id is None) == (vehicle_id is None):
        raise ValueError("give exactly one of site_id, vehicle_id")
    transfers = repo.transfers(site_id=site_id, vehicle_id=vehicle_id, active_only=True)
    sites = {s.id: s for s in repo.sites()}
    vehicles = {v.id: v for v in repo.vehicles()}
    persons = store.get_persons({t.person_id for t in transfers})
    if site_id is not None:
        site = sites.get(site_id)
        title = f"隔离点转运名单 Site manifest: {site.name if site else site_id} ({len(transfers)}人/persons)"
    else:
        v = vehicles.get(vehicle_id)
        label = " ".join(x for x in (vehicle_id, v.plate if v else None, v.base if v else None) if x)
        title = f"车辆转运名单 Vehicle manifest: {label} ({len(transfers)}人/persons)"
    return title, manifest_rows(transfers, persons, sites, vehicles, offset=offset)
