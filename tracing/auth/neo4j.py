"""Neo4j adapter of :class:`~tracing.auth.repository.AuthRepository`.

Nodes ``:AuthUser {name}``, ``:AuthToken {hash}``, ``:AuthAudit {seq}``
(seq from a ``:AuthCounter {name: 'audit'}`` node incremented in the same
transaction) and ``:AuthIdempotency {user, key}``, written through
:meth:`Neo4jStore.execute_write`. Transaction functions only MERGE/CREATE
on unique keys and consume their results, so a driver retry is safe (an
audit batch carries a batch id and is skipped if already written).
Times are integer microseconds since the epoch (UTC), as in the graph.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, LiteralString

from ..store.codec import from_epoch_us, to_epoch_us
from ..store.neo4j import Neo4jStore
from .models import AuditEntry, IdempotencyRecord, Role, User
from .repository import UserExists

_us = to_epoch_us
_dt = from_epoch_us  # the storage time codec shared by every adapter

__all__ = ["Neo4jAuthRepository"]


_SCHEMA: tuple[LiteralString, ...] = (
    "CREATE CONSTRAINT auth_user_name IF NOT EXISTS FOR (u:AuthUser) REQUIRE u.name IS UNIQUE",
    "CREATE CONSTRAINT auth_token_hash IF NOT EXISTS FOR (t:AuthToken) REQUIRE t.hash IS UNIQUE",
    "CREATE CONSTRAINT auth_audit_seq IF NOT EXISTS FOR (a:AuthAudit) REQUIRE a.seq IS UNIQUE",
    "CREATE CONSTRAINT auth_audit_batch IF NOT EXISTS FOR (b:AuthAuditBatch) REQUIRE b.id IS UNIQUE",
    # Unique, not just indexed: the reservation of a key must be atomic (two retries racing).
    "DROP INDEX auth_idem_key IF EXISTS",
    "CREATE CONSTRAINT auth_idem_user_key IF NOT EXISTS FOR (i:AuthIdempotency) REQUIRE (i.user, i.key) IS UNIQUE",
)

_ADD_USER: LiteralString = """
MERGE (u:AuthUser {name: $name})
ON CREATE SET u.role = $role, u.region = $region, u.site_id = $site_id, u.created_at = $created_at, u.fresh = true
WITH u, coalesce(u.fresh, false) AS created
REMOVE u.fresh
RETURN created
"""
_USER_FIELDS: LiteralString = "u.name AS name, u.role AS role, u.region AS region, u.site_id AS site_id, " \
    "u.created_at AS created_at, u.revoked_at AS revoked_at"
_GET_USER: LiteralString = "MATCH (u:AuthUser {name: $name}) RETURN " + _USER_FIELDS
_LIST_USERS: LiteralString = "MATCH (u:AuthUser) RETURN " + _USER_FIELDS + " ORDER BY u.name"
_ADD_TOKEN: LiteralString = """
MATCH (u:AuthUser {name: $name})
MERGE (t:AuthToken {hash: $hash}) ON CREATE SET t.user = $name, t.created_at = $at
"""
_USER_FOR_TOKEN: LiteralString = """
MATCH (t:AuthToken {hash: $hash}) WHERE t.revoked_at IS NULL
MATCH (u:AuthUser {name: t.user}) WHERE u.revoked_at IS NULL
RETURN """ + _USER_FIELDS + ", t.hash AS hash"
_REVOKE: LiteralString = """
MATCH (u:AuthUser {name: $name}) WHERE u.revoked_at IS NULL
SET u.revoked_at = $at
WITH u
OPTIONAL MATCH (t:AuthToken {user: u.name}) WHERE t.revoked_at IS NULL
SET t.revoked_at = $at
RETURN count(DISTINCT u) AS n
"""
_APPEND_AUDIT: LiteralString = """
OPTIONAL MATCH (done:AuthAuditBatch {id: $batch})
WITH done WHERE done IS NULL
MERGE (c:AuthCounter {name: 'audit'}) ON CREATE SET c.value = 0
SET c.value = c.value + size($rows)
CREATE (:AuthAuditBatch {id: $batch})
WITH c.value - size($rows) AS base
UNWIND range(0, size($rows) - 1) AS i
WITH base + i + 1 AS seq, $rows[i] AS row
CREATE (a:AuthAudit {seq: seq}) SET a += row
"""
_AUDIT: LiteralString = """
MATCH (a:AuthAudit) WHERE a.seq > $after
  AND ($user IS NULL OR a.user = $user)
  AND ($person IS NULL OR $person IN a.person_ids)
  AND ($since IS NULL OR a.at >= $since) AND ($until IS NULL OR a.at <= $until)
RETURN a.seq AS seq, a.at AS at, a.user AS user, a.role AS role, a.method AS method, a.endpoint AS endpoint,
       a.path AS path, a.action AS action, a.person_ids AS person_ids
ORDER BY a.seq LIMIT $limit
"""
_GET_IDEM: LiteralString = """
MATCH (i:AuthIdempotency {user: $user, key: $key}) WHERE i.created_at >= $not_before
RETURN i.request_hash AS request_hash, i.status AS status, i.body AS body, i.created_at AS created_at
"""
_PUT_IDEM: LiteralString = """
MERGE (i:AuthIdempotency {user: $user, key: $key})
ON CREATE SET i.request_hash = $request_hash, i.status = $status, i.body = $body, i.created_at = $created_at,
              i.fresh = true
WITH i, coalesce(i.fresh, false) AS created
REMOVE i.fresh
RETURN created
"""
_COMPLETE_IDEM: LiteralString = """
MATCH (i:AuthIdempotency {user: $user, key: $key}) SET i.status = $status, i.body = $body
"""
_RELEASE_IDEM: LiteralString = "MATCH (i:AuthIdempotency {user: $user, key: $key}) DELETE i"
_PURGE_IDEM: LiteralString = """
MATCH (i:AuthIdempotency) WHERE i.created_at < $before
WITH i LIMIT 10000 DETACH DELETE i RETURN count(*) AS n
"""


def _fetch(tx: Any, query: LiteralString, **params: Any) -> list[dict[str, Any]]:
    return [record.data() for record in tx.run(query, **params)]


def _user(r: dict[str, Any]) -> User:
    return User(name=r["name"], role=Role(r["role"]), region=r["region"], site_id=r["site_id"],
                created_at=_dt(r["created_at"]), revoked_at=_dt(r["revoked_at"]))


class Neo4jAuthRepository:
    def __init__(self, store: Neo4jStore) -> None:
        self.store = store
        for statement in _SCHEMA:
            store.execute_write(_fetch, statement)

    def _read(self, query: LiteralString, **params: Any) -> list[dict[str, Any]]:
        return self.store.execute_read(_fetch, query, **params)

    def _write(self, query: LiteralString, **params: Any) -> list[dict[str, Any]]:
        return self.store.execute_write(_fetch, query, **params)

    def add_user(self, user: User) -> None:
        rows = self._write(_ADD_USER, name=user.name, role=user.role.value, region=user.region,
                           site_id=user.site_id, created_at=_us(user.created_at))
        if not rows or not rows[0]["created"]:
            raise UserExists(user.name)

    def get_user(self, name: str) -> User | None:
        rows = self._read(_GET_USER, name=name)
        return _user(rows[0]) if rows else None

    def list_users(self) -> list[User]:
        return [_user(r) for r in self._read(_LIST_USERS)]

    def add_token(self, name: str, token_hash: str, *, at: datetime) -> None:
        self._write(_ADD_TOKEN, name=name, hash=token_hash, at=_us(at))

    def user_for_token(self, token_hash: str) -> tuple[User, str] | None:
        rows = self._read(_USER_FOR_TOKEN, hash=token_hash)
        return (_user(rows[0]), rows[0]["hash"]) if rows else None

    def revoke_user(self, name: str, *, at: datetime) -> bool:
        rows = self._write(_REVOKE, name=name, at=_us(at))
        return bool(rows and rows[0]["n"])

    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        rows = [
            {"at": _us(e.at), "user": e.user, "role": e.role.value, "method": e.method, "endpoint": e.endpoint,
             "path": e.path, "action": e.action, "person_ids": list(e.person_ids)}
            for e in entries
        ]
        self._write(_APPEND_AUDIT, rows=rows, batch=uuid.uuid4().hex)

    def audit(
        self, *, after_seq: int = 0, limit: int = 100, user: str | None = None, person_id: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[AuditEntry]:
        rows = self._read(_AUDIT, after=after_seq, limit=limit, user=user, person=person_id, since=_us(since),
                          until=_us(until))
        return [
            AuditEntry(seq=r["seq"], at=_dt(r["at"]), user=r["user"], role=Role(r["role"]), method=r["method"],
                       endpoint=r["endpoint"], path=r["path"], action=r["action"],
                       person_ids=list(r["person_ids"] or []))
            for r in rows
        ]

    def get_idempotent(self, user: str, key: str, *, not_before: datetime) -> IdempotencyRecord | None:
        rows = self._read(_GET_IDEM, user=user, key=key, not_before=_us(not_before))
        if not rows:
            return None
        r = rows[0]
        return IdempotencyRecord(user=user, key=key, request_hash=r["request_hash"], status=r["status"],
                                 body=r["body"], created_at=_dt(r["created_at"]))

    def put_idempotent(self, record: IdempotencyRecord) -> bool:
        rows = self._write(_PUT_IDEM, user=record.user, key=record.key, request_hash=record.request_hash,
                           status=record.status, body=record.body, created_at=_us(record.created_at))
        return bool(rows and rows[0]["created"])

    def complete_idempotent(self, user: str, key: str, *, status: int, body: str) -> None:
        self._write(_COMPLETE_IDEM, user=user, key=key, status=status, body=body)

    def release_idempotent(self, user: str, key: str) -> None:
        self._write(_RELEASE_IDEM, user=user, key=key)

    def purge_idempotent(self, *, before: datetime) -> int:
        total = 0
        while True:
            rows = self._write(_PURGE_IDEM, before=_us(before))
            n = rows[0]["n"] if rows else 0
            total += n
            if n < 10000:
                return total
