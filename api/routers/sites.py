"""Isolation sites (集中隔离点), transfer plans (转运) and the census: thin views over :mod:`tracing.transfers`.

Site operators act for their own site only: its manifest and its arrivals.
Commanders plan and confirm transfers and read the census.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import Body, Depends, Path
from pydantic import BaseModel, Field

from graph_models import UtcDatetime
from graph_models.transfers import CensusReport, IsolationPolicy, IsolationSite, Transfer, TransferPlan
from tracing import transfers
from tracing.auth import Role, User
from tracing.transfers.repository import TransferRepository

from ..deps import AuditDep, CurrentUser, IdempotencyDep, NowDep, StateDep, StoreDep
from ..errors import ApiProblem
from ..permissions import Allow, Perm
from ..presenting import router as make_router

router = make_router(tags=["sites and transfers"])

SiteId = Annotated[str, Path(min_length=1, max_length=128)]


def get_transfer_repo(store: StoreDep) -> TransferRepository:
    return transfers.transfer_repository(store)


def get_isolation_policy(state: StateDep) -> IsolationPolicy:
    configured = getattr(state.settings, "transfers", None)
    if isinstance(configured, IsolationPolicy):
        return configured
    policy = getattr(configured, "policy", None)
    return policy if isinstance(policy, IsolationPolicy) else IsolationPolicy()


TransferRepoDep = Annotated[TransferRepository, Depends(get_transfer_repo)]
IsolationPolicyDep = Annotated[IsolationPolicy, Depends(get_isolation_policy)]


def check_site(user: User, site_id: str) -> None:
    """A site operator acts for their own site only."""
    if user.role is Role.SITE_OPERATOR and user.site_id != site_id:
        raise ApiProblem(403, "Forbidden", "you operate another site")


class ManifestRow(BaseModel):
    transfer: Transfer
    name: str | None = None
    phone: str | None = None


class ArrivalsIn(BaseModel):
    person_ids: list[str] = Field(min_length=1, max_length=10_000)
    arrived_at: UtcDatetime


class ArrivalsOut(BaseModel):
    arrived: list[str]
    already: list[str]
    unknown: list[str] = Field(description="No active transfer to this site")
    investigations: list[str] = Field(description="Investigations whose 8 h clocks are re-evaluated")


class PlanIn(BaseModel):
    replan: bool = Field(default=False, description="Give up confirmed transfers not picked up yet and plan again")


class PlanOut(BaseModel):
    id: str
    created_at: UtcDatetime
    assignments: list[dict]
    shortages: list[dict]
    split_households: list[dict]
    unlocated: list[str]
    without_vehicle: list[str]
    released: list[str]


class ConfirmOut(BaseModel):
    plan_id: str
    inserted: list[str]
    existing: list[str]
    refused: dict[str, str]


def _plan_out(plan: TransferPlan) -> PlanOut:
    data = plan.model_dump(mode="json", exclude={"assignments", "elapsed_ms"})
    assignments = [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(a).items()}
                   for a in plan.assignments]
    return PlanOut(assignments=assignments, **data)


@router.get("/sites", response_model=list[IsolationSite], dependencies=[Allow(Perm.SITE_MANIFEST_READ)])
def list_sites(repo: TransferRepoDep, user: CurrentUser) -> list[IsolationSite]:
    """Isolation sites with capacity and status (a site operator sees their own)."""
    sites = repo.sites()
    return [s for s in sites if s.id == user.site_id] if user.role is Role.SITE_OPERATOR else sites


@router.post("/sites", response_model=int, dependencies=[Allow(Perm.TRANSFERS_PLAN)])
def upsert_sites(sites: Annotated[list[IsolationSite], Body(max_length=10_000)], repo: TransferRepoDep) -> int:
    """Create or update isolation sites (a JSON array); returns how many."""
    return transfers.import_sites(repo, sites)


@router.get("/sites/{site_id}/manifest", response_model=list[ManifestRow], dependencies=[Allow(Perm.SITE_MANIFEST_READ)])
def manifest(
    site_id: SiteId, store: StoreDep, repo: TransferRepoDep, user: CurrentUser, audit: AuditDep,
) -> list[ManifestRow]:
    """Who is coming to or staying at the site: active transfers with name and phone for check-in."""
    check_site(user, site_id)
    rows = repo.transfers(site_id=site_id, active_only=True)
    persons = store.get_persons({t.person_id for t in rows})
    audit.read(t.person_id for t in rows)
    return [ManifestRow(transfer=t, name=getattr(persons.get(t.person_id), "name", None),
                        phone=getattr(persons.get(t.person_id), "phone", None)) for t in rows]


@router.post("/sites/{site_id}/arrivals", response_model=ArrivalsOut, dependencies=[Allow(Perm.SITE_ARRIVALS_WRITE)])
def record_arrivals(
    site_id: SiteId, body: ArrivalsIn, store: StoreDep, repo: TransferRepoDep, user: CurrentUser, audit: AuditDep,
    idem: IdempotencyDep, now: NowDep,
) -> ArrivalsOut:
    """Persons arrived at the site (stops their 8 h transfer clocks). Persons not bound for this site are ``unknown``."""
    check_site(user, site_id)

    def run() -> ArrivalsOut:
        ids = list(dict.fromkeys(body.person_ids))
        bound = {pid for pid, ts in repo.transfers_of(ids).items()
                 if any(t.occupies_room and t.site_id == site_id for t in ts)}
        result = transfers.confirm_arrival(store, repo, [p for p in ids if p in bound], arrived_at=body.arrived_at,
                                           now=now)
        audit.write(bound)
        return ArrivalsOut(arrived=[t.person_id for t in result.arrived], already=result.already,
                           unknown=[p for p in ids if p not in bound] + result.unknown,
                           investigations=sorted(result.investigations))

    return idem.run(run)


@router.post("/transfers/plans", response_model=PlanOut, dependencies=[Allow(Perm.TRANSFERS_PLAN)])
def plan(
    body: PlanIn, store: StoreDep, repo: TransferRepoDep, audit: AuditDep, policy: IsolationPolicyDep, now: NowDep,
) -> PlanOut:
    """Propose rooms, vehicles, batches and pickup times for everyone due (nothing moves until confirmed)."""
    result = transfers.plan_transfers(store, policy=policy, now=now, repo=repo, replan=body.replan)
    audit.read(a.person_id for a in result.assignments)
    return _plan_out(result)


@router.post("/transfers/plans/{plan_id}/confirm", response_model=ConfirmOut, dependencies=[Allow(Perm.TRANSFERS_PLAN)])
def confirm(
    plan_id: Annotated[str, Path(min_length=1, max_length=200)], repo: TransferRepoDep, idem: IdempotencyDep,
    now: NowDep,
) -> ConfirmOut:
    """Write the plan's transfers (idempotent); conflicting ones are refused with a reason."""

    def run() -> ConfirmOut:
        r = transfers.confirm_plan(repo, plan_id, now=now)
        return ConfirmOut(plan_id=r.plan_id, inserted=r.inserted, existing=r.existing, refused=r.refused)

    return idem.run(run)


@router.get("/census", response_model=CensusReport, dependencies=[Allow(Perm.CENSUS_READ)])
def census(repo: TransferRepoDep, policy: IsolationPolicyDep, now: NowDep) -> CensusReport:
    """Who is in centralized isolation now, by category (密接/次密接/境外/…), and capacity per site and region."""
    return transfers.census(repo, policy=policy, now=now)
