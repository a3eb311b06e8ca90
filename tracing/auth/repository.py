"""The storage port of users, tokens, the audit log and idempotency records.

Adapters keep their records in the graph store's database (SQLite tables
``auth_*``, Neo4j nodes ``:Auth*``). The audit log is append-only: the port
has no verb to change or remove an entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from .models import AuditEntry, IdempotencyRecord, User

__all__ = ["AuthRepository", "UserExists"]


class UserExists(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"user {name!r} already exists")
        self.name = name


@runtime_checkable
class AuthRepository(Protocol):
    # --- users and tokens -----------------------------------------------------
    def add_user(self, user: User) -> None:
        """Create ``user``; raises :class:`UserExists` if the name is taken."""

    def get_user(self, name: str) -> User | None: ...

    def list_users(self) -> list[User]: ...

    def add_token(self, name: str, token_hash: str, *, at: datetime) -> None:
        """Store a token (only its SHA-256 hex digest) for user ``name``."""

    def user_for_token(self, token_hash: str) -> tuple[User, str] | None:
        """The active user holding the active token ``token_hash``, with the stored hash (for a constant-time check)."""

    def revoke_user(self, name: str, *, at: datetime) -> bool:
        """Revoke the user and all their tokens; False if there is no such active user."""

    # --- audit log (append-only) ---------------------------------------------------
    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries atomically, assigning increasing ``seq``."""

    def audit(
        self, *, after_seq: int = 0, limit: int = 100, user: str | None = None, person_id: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[AuditEntry]:
        """Entries with ``seq > after_seq`` in seq order, filtered."""

    # --- idempotency ----------------------------------------------------------------
    def get_idempotent(self, user: str, key: str, *, not_before: datetime) -> IdempotencyRecord | None: ...

    def put_idempotent(self, record: IdempotencyRecord) -> bool:
        """Store the record unless (user, key) exists already; True if stored. Atomic: of two
        concurrent calls with the same (user, key), exactly one gets True."""

    def complete_idempotent(self, user: str, key: str, *, status: int, body: str) -> None:
        """Record the outcome of the request that reserved (user, key)."""

    def release_idempotent(self, user: str, key: str) -> None:
        """Forget (user, key), e.g. after the reserving request failed, so that a retry runs."""

    def purge_idempotent(self, *, before: datetime) -> int:
        """Forget idempotency records created before ``before`` (they have expired)."""
