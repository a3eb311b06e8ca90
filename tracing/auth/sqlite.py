"""SQLite adapter of :class:`~tracing.auth.repository.AuthRepository`.

Tables ``auth_users``, ``auth_tokens``, ``auth_audit`` and
``auth_idempotency`` live in the graph store's file, written through
:meth:`SQLiteStore.transaction` and read through :meth:`SQLiteStore.query`.
Times are integer microseconds since the epoch (UTC). Triggers refuse any
UPDATE or DELETE on ``auth_audit``: the log is append-only even for code
that bypasses this adapter.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from ..store.codec import from_epoch_us, to_epoch_us
from ..store.sqlite import SQLiteStore
from .models import AuditEntry, IdempotencyRecord, Role, User
from .repository import UserExists

_us = to_epoch_us
_dt = from_epoch_us  # the storage time codec shared by every adapter

__all__ = ["SQLiteAuthRepository"]


_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS auth_users (
    name TEXT PRIMARY KEY NOT NULL,
    role TEXT NOT NULL,
    region TEXT,
    site_id TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
)""",
    """CREATE TABLE IF NOT EXISTS auth_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
)""",
    """CREATE INDEX IF NOT EXISTS auth_tokens_user ON auth_tokens(user_name)""",
    """CREATE TABLE IF NOT EXISTS auth_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    method TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    path TEXT NOT NULL,
    action TEXT NOT NULL,
    person_ids TEXT NOT NULL
)""",
    """CREATE INDEX IF NOT EXISTS auth_audit_user ON auth_audit(user_name, seq)""",
    """CREATE INDEX IF NOT EXISTS auth_audit_at ON auth_audit(at)""",
    """CREATE TABLE IF NOT EXISTS auth_audit_persons (
    person_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (person_id, seq)
) WITHOUT ROWID""",
    """CREATE TRIGGER IF NOT EXISTS auth_audit_no_update BEFORE UPDATE ON auth_audit
BEGIN SELECT RAISE(ABORT, 'auth_audit is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS auth_audit_no_delete BEFORE DELETE ON auth_audit
BEGIN SELECT RAISE(ABORT, 'auth_audit is append-only'); END""",
    """CREATE TABLE IF NOT EXISTS auth_idempotency (
    user_name TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_name, key)
)""",
    """CREATE INDEX IF NOT EXISTS auth_idempotency_created ON auth_idempotency(created_at)""",
)

_USER_COLUMNS = "name, role, region, site_id, created_at, revoked_at"
_AUDIT_COLUMNS = "seq, at, user_name, role, method, endpoint, path, action, person_ids"


def _user(row: tuple) -> User:
    return User(name=row[0], role=Role(row[1]), region=row[2], site_id=row[3], created_at=_dt(row[4]),
                revoked_at=_dt(row[5]))


def _audit(row: tuple) -> AuditEntry:
    return AuditEntry(
        seq=row[0], at=_dt(row[1]), user=row[2], role=Role(row[3]), method=row[4], endpoint=row[5], path=row[6],
        action=row[7], person_ids=json.loads(row[8]),
    )


class SQLiteAuthRepository:
    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        with store.transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    # --- users and tokens -----------------------------------------------------
    def add_user(self, user: User) -> None:
        try:
            with self.store.transaction() as conn:
                conn.execute(
                    f"INSERT INTO auth_users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (user.name, user.role.value, user.region, user.site_id, _us(user.created_at), _us(user.revoked_at)),
                )
        except sqlite3.IntegrityError:
            raise UserExists(user.name) from None

    def get_user(self, name: str) -> User | None:
        rows = self.store.query(f"SELECT {_USER_COLUMNS} FROM auth_users WHERE name = ?", (name,))
        return _user(rows[0]) if rows else None

    def list_users(self) -> list[User]:
        return [_user(r) for r in self.store.query(f"SELECT {_USER_COLUMNS} FROM auth_users ORDER BY name")]

    def add_token(self, name: str, token_hash: str, *, at: datetime) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO auth_tokens (token_hash, user_name, created_at) VALUES (?, ?, ?)",
                (token_hash, name, _us(at)),
            )

    def user_for_token(self, token_hash: str) -> tuple[User, str] | None:
        rows = self.store.query(
            f"SELECT {', '.join('u.' + c.strip() for c in _USER_COLUMNS.split(','))}, t.token_hash "
            "FROM auth_tokens t JOIN auth_users u ON u.name = t.user_name "
            "WHERE t.token_hash = ? AND t.revoked_at IS NULL AND u.revoked_at IS NULL",
            (token_hash,),
        )
        return (_user(rows[0][:6]), rows[0][6]) if rows else None

    def revoke_user(self, name: str, *, at: datetime) -> bool:
        with self.store.transaction() as conn:
            changed = conn.execute(
                "UPDATE auth_users SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (_us(at), name)
            ).rowcount
            conn.execute(
                "UPDATE auth_tokens SET revoked_at = ? WHERE user_name = ? AND revoked_at IS NULL", (_us(at), name)
            )
        return changed > 0

    # --- audit ----------------------------------------------------------------------
    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        with self.store.transaction() as conn:
            for e in entries:
                seq = conn.execute(
                    f"INSERT INTO auth_audit ({_AUDIT_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (_us(e.at), e.user, e.role.value, e.method, e.endpoint, e.path, e.action,
                     json.dumps(e.person_ids, ensure_ascii=False)),
                ).lastrowid
                conn.executemany(
                    "INSERT OR IGNORE INTO auth_audit_persons (person_id, seq) VALUES (?, ?)",
                    [(pid, seq) for pid in dict.fromkeys(e.person_ids)],
                )

    def audit(
        self, *, after_seq: int = 0, limit: int = 100, user: str | None = None, person_id: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[AuditEntry]:
        clauses, params = ["a.seq > ?"], [after_seq]
        source = "auth_audit a"
        if person_id is not None:
            source = "auth_audit_persons p JOIN auth_audit a ON a.seq = p.seq"
            clauses.append("p.person_id = ?")
            params.append(person_id)
        if user is not None:
            clauses.append("a.user_name = ?")
            params.append(user)
        if since is not None:
            clauses.append("a.at >= ?")
            params.append(_us(since))
        if until is not None:
            clauses.append("a.at <= ?")
            params.append(_us(until))
        columns = ", ".join("a." + c.strip() for c in _AUDIT_COLUMNS.split(","))
        sql = f"SELECT {columns} FROM {source} WHERE {' AND '.join(clauses)} ORDER BY a.seq LIMIT ?"
        return [_audit(r) for r in self.store.query(sql, [*params, limit])]

    # --- idempotency ------------------------------------------------------------------
    def get_idempotent(self, user: str, key: str, *, not_before: datetime) -> IdempotencyRecord | None:
        rows = self.store.query(
            "SELECT request_hash, status, body, created_at FROM auth_idempotency "
            "WHERE user_name = ? AND key = ? AND created_at >= ?",
            (user, key, _us(not_before)),
        )
        if not rows:
            return None
        h, status, body, created = rows[0]
        return IdempotencyRecord(user=user, key=key, request_hash=h, status=status, body=body, created_at=_dt(created))

    def put_idempotent(self, record: IdempotencyRecord) -> bool:
        with self.store.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO auth_idempotency (user_name, key, request_hash, status, body, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(user_name, key) DO NOTHING",
                (record.user, record.key, record.request_hash, record.status, record.body, _us(record.created_at)),
            )
        return cursor.rowcount > 0

    def complete_idempotent(self, user: str, key: str, *, status: int, body: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE auth_idempotency SET status = ?, body = ? WHERE user_name = ? AND key = ?",
                (status, body, user, key),
            )

    def release_idempotent(self, user: str, key: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM auth_idempotency WHERE user_name = ? AND key = ?", (user, key))

    def purge_idempotent(self, *, before: datetime) -> int:
        with self.store.transaction() as conn:
            return conn.execute("DELETE FROM auth_idempotency WHERE created_at < ?", (_us(before),)).rowcount
