"""Who may do what: permissions declared on each route, granted to roles in one table.

Routes declare ``dependencies=[Allow(Perm.PERSONS_READ)]``; the
role → permission table below is the only place that decides. Region
scoping (which persons) and site binding (which site) are checked in the
routes, on top of the permission.
"""

from __future__ import annotations

from enum import StrEnum

from fastapi import Depends, HTTPException

from tracing.auth import Role, User

from .deps import CurrentUser

__all__ = ["Allow", "Perm", "ROLE_PERMISSIONS", "allowed"]


class Perm(StrEnum):
    PERSONS_READ = "persons:read"
    PERSONS_WRITE = "persons:write"
    CONTACTS_READ = "contacts:read"
    CONTACTS_WRITE = "contacts:write"
    PLACES_READ = "places:read"
    PLACES_WRITE = "places:write"
    TRACE = "cases:trace"  # derive (and store) a case's contacts
    CHAINS_READ = "chains:read"
    CLUSTERS_READ = "clusters:read"
    INVESTIGATIONS_READ = "investigations:read"
    INVESTIGATIONS_WRITE = "investigations:write"
    DEADLINES_READ = "deadlines:read"
    COMPLIANCE_READ = "compliance:read"
    ALERTS_READ = "alerts:read"
    SITE_ARRIVALS_WRITE = "sites:arrivals"
    SITE_MANIFEST_READ = "sites:manifest"
    TRANSFERS_PLAN = "transfers:plan"
    CENSUS_READ = "census:read"
    LINE_LIST = "linelist:read"
    STATS_READ = "stats:read"
    AUDIT_READ = "audit:read"


_INVESTIGATOR = {
    Perm.PERSONS_READ, Perm.PERSONS_WRITE, Perm.CONTACTS_READ, Perm.CONTACTS_WRITE, Perm.PLACES_READ,
    Perm.PLACES_WRITE, Perm.TRACE, Perm.CHAINS_READ, Perm.INVESTIGATIONS_READ, Perm.INVESTIGATIONS_WRITE,
    Perm.LINE_LIST,
}
_COMMANDER = {
    Perm.PERSONS_READ, Perm.CONTACTS_READ, Perm.PLACES_READ, Perm.CHAINS_READ, Perm.CLUSTERS_READ,
    Perm.INVESTIGATIONS_READ, Perm.INVESTIGATIONS_WRITE, Perm.DEADLINES_READ, Perm.COMPLIANCE_READ,
    Perm.ALERTS_READ, Perm.TRANSFERS_PLAN, Perm.CENSUS_READ, Perm.SITE_MANIFEST_READ, Perm.LINE_LIST,
    Perm.STATS_READ,
}
_SITE_OPERATOR = {Perm.SITE_ARRIVALS_WRITE, Perm.SITE_MANIFEST_READ}
_ANALYST = {Perm.CLUSTERS_READ, Perm.COMPLIANCE_READ, Perm.CENSUS_READ, Perm.LINE_LIST, Perm.STATS_READ}

ROLE_PERMISSIONS: dict[Role, frozenset[Perm]] = {
    Role.ADMIN: frozenset(Perm),
    Role.INVESTIGATOR: frozenset(_INVESTIGATOR),
    Role.COMMANDER: frozenset(_COMMANDER),
    Role.SITE_OPERATOR: frozenset(_SITE_OPERATOR),
    Role.ANALYST: frozenset(_ANALYST),
}

#: Roles whose responses are masked (names, ID numbers, phones, addresses, coordinates).
MASKED_ROLES: frozenset[Role] = frozenset({Role.ANALYST})


def allowed(user: User, perm: Perm) -> bool:
    return perm in ROLE_PERMISSIONS[user.role]


def Allow(perm: Perm):  # noqa: N802 - reads like a declaration on the route
    """Route dependency: 403 unless the current user's role has ``perm``."""

    async def check(user: CurrentUser) -> None:
        if not allowed(user, perm):
            raise HTTPException(403, f"role {user.role.value} lacks permission {perm.value}")

    check.__name__ = f"allow_{perm.name.lower()}"
    return Depends(check)
