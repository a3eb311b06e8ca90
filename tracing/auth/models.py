"""Users, roles, audit entries and idempotency records of the HTTP API. Pydantic v2, no I/O."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, Field

from graph_models import UtcDatetime

__all__ = ["AuditEntry", "IdempotencyRecord", "Role", "User"]


class Role(StrEnum):
    """What a user may do (see ``api/permissions.py`` for the role → permission table)."""

    ADMIN = "admin"  # everything, all regions
    INVESTIGATOR = "investigator"  # 流调员: read/write persons and contacts in their region
    COMMANDER = "commander"  # 指挥部: read all (in region), deadlines, alerts, transfer plans
    SITE_OPERATOR = "site_operator"  # 隔离点: their site's manifest and arrivals only
    ANALYST = "analyst"  # aggregates and exports, PII masked


class User(BaseModel):
    """An API user. ``region`` scopes what they see (``None``: national); ``site_id`` binds a site operator."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Role
    region: str | None = Field(default=None, max_length=64)
    site_id: str | None = Field(default=None, max_length=128)
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class AuditEntry(BaseModel):
    """One read or write of person-level data: who, when, which endpoint, which persons. Append-only."""

    seq: int | None = Field(default=None, description="Assigned by the repository, increasing")
    at: UtcDatetime
    user: str
    role: Role
    method: str
    endpoint: str = Field(description="Route template, e.g. /persons/{person_id}")
    path: str
    action: str = Field(description="read or write")
    person_ids: list[str] = Field(default_factory=list)


class IdempotencyRecord(BaseModel):
    """The stored outcome of a POST sent with an ``Idempotency-Key`` header.

    ``status`` 0 marks a reservation: the first request with the key is still running.
    """

    PENDING: ClassVar[int] = 0

    user: str
    key: str
    request_hash: str
    status: int
    body: str
    created_at: UtcDatetime
