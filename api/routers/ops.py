"""Health, readiness and who-am-I."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import CurrentUser, StateDep
from ..errors import ApiProblem
from ..permissions import ROLE_PERMISSIONS
from ..presenting import masked_for
from ..presenting import router as make_router
from ..schemas import Me, Ready

router = make_router(tags=["ops"])
public = APIRouter(tags=["ops"])


@public.get("/health")
def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@public.get("/ready", response_model=Ready, responses={503: {"description": "Store unreachable or not started"}})
def ready(state: StateDep) -> Ready:
    """Readiness: the store answers a query, and the deadline scheduler runs (if enabled)."""
    try:
        state.store.counts()
    except Exception:  # noqa: BLE001 - any failure means not ready
        raise ApiProblem(503, "Not ready", "the store does not answer") from None
    scheduler = "off" if state.scheduler is None else ("running" if state.scheduler.running else "stopped")
    return Ready(status="ready", store=type(state.store).__name__, scheduler=scheduler)


@router.get("/me", response_model=Me)
def me(user: CurrentUser) -> Me:
    """The current user, their role, region, site and permissions."""
    return Me(user=user.name, role=user.role, region=user.region, site_id=user.site_id,
              permissions=sorted(p.value for p in ROLE_PERMISSIONS[user.role]), masked=masked_for(user))
