"""API users, bearer tokens, region scoping, PII masking and the audit log.

Layers: :mod:`.models` → :mod:`.repository` (port; :mod:`.sqlite`,
:mod:`.neo4j` adapters, chosen by :func:`auth_repository`) →
:mod:`.service` (tokens, audit writer, idempotency) and the pure helpers
:mod:`.scope` and :mod:`.masking`; :mod:`.cli` registers ``tracegraph users``.
"""

from .masking import mask_json
from .models import AuditEntry, IdempotencyRecord, Role, User
from .repository import AuthRepository, UserExists
from .scope import in_region, region_filter, sees_all, visible
from .service import (
    AuditWriter,
    TokenCache,
    audit_csv,
    auth_repository,
    authenticate,
    cached_user,
    create_user,
    hash_token,
    issue_token,
    revoke_user,
)

__all__ = [
    "AuditEntry",
    "AuditWriter",
    "AuthRepository",
    "IdempotencyRecord",
    "Role",
    "TokenCache",
    "User",
    "UserExists",
    "audit_csv",
    "auth_repository",
    "authenticate",
    "cached_user",
    "create_user",
    "hash_token",
    "in_region",
    "issue_token",
    "mask_json",
    "region_filter",
    "revoke_user",
    "sees_all",
    "visible",
]
