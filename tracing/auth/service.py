"""Auth service functions: users, bearer tokens, audit log, idempotency. ``now`` is always passed in."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta

from ..store.port import GraphStore
from ..store.siblings import sibling_repository
from .models import AuditEntry, IdempotencyRecord, Role, User
from .repository import AuthRepository

__all__ = [
    "AuditWriter",
    "TokenCache",
    "audit_csv",
    "auth_repository",
    "authenticate",
    "create_user",
    "hash_token",
    "issue_token",
    "new_token",
    "revoke_user",
]

log = logging.getLogger("tracegraph.auth")

def _sqlite_repository(store: GraphStore) -> AuthRepository:
    from .sqlite import SQLiteAuthRepository

    return SQLiteAuthRepository(store)


def _neo4j_repository(store: GraphStore) -> AuthRepository:
    from .neo4j import Neo4jAuthRepository

    return Neo4jAuthRepository(store)


def auth_repository(store: GraphStore) -> AuthRepository:
    """The auth repository in the same database as ``store`` (one per store).

    Raises
    ------
    TypeError
        For a store type without an auth adapter.
    """
    return sibling_repository(store, "auth", sqlite=_sqlite_repository, neo4j=_neo4j_repository)


# --- tokens -----------------------------------------------------------------------------------


def new_token() -> str:
    """A fresh bearer token: 32 random bytes, URL-safe base64, prefixed ``tg_`` (easy to spot in leaks)."""
    return "tg_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_user(
    repo: AuthRepository, name: str, *, role: Role | str, now: datetime, region: str | None = None,
    site_id: str | None = None,
) -> tuple[User, str]:
    """Create a user and their first token. The token is returned once and only its hash is stored.

    Raises
    ------
    UserExists
        If the name is taken.
    ValueError
        If a site operator has no site, or the name is not valid.
    """
    role = Role(role)
    if role is Role.SITE_OPERATOR and not site_id:
        raise ValueError("a site_operator needs --site")
    user = User(name=name, role=role, region=region or None, site_id=site_id or None, created_at=now)
    repo.add_user(user)
    return user, issue_token(repo, name, now=now)


def issue_token(repo: AuthRepository, name: str, *, now: datetime) -> str:
    """Another token for an existing user (e.g. the demo's per-run tokens)."""
    if repo.get_user(name) is None:
        raise LookupError(f"no user {name!r}")
    token = new_token()
    repo.add_token(name, hash_token(token), at=now)
    return token


def revoke_user(repo: AuthRepository, name: str, *, now: datetime) -> bool:
    return repo.revoke_user(name, at=now)


class TokenCache:
    """Token hash → user for ``ttl`` seconds, so a request costs no store read; revocation applies within ``ttl``."""

    def __init__(self, ttl: float = 10.0, clock: Callable[[], float] | None = None, max_size: int = 10_000) -> None:
        import time

        self.ttl, self.max_size = ttl, max_size
        self._clock = clock or time.monotonic
        self._entries: dict[str, tuple[float, User | None]] = {}
        self._lock = threading.Lock()

    def get(self, token_hash: str) -> tuple[bool, User | None]:
        if self.ttl <= 0:
            return False, None
        with self._lock:
            hit = self._entries.get(token_hash)
            if hit is None or hit[0] < self._clock():
                return False, None
            return True, hit[1]

    def put(self, token_hash: str, user: User | None) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_size:
                self._entries.clear()
            self._entries[token_hash] = (self._clock() + self.ttl, user)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def authenticate(repo: AuthRepository, token: str, *, cache: TokenCache | None = None) -> User | None:
    """The active user holding ``token``, or None. Compares hashes in constant time."""
    if not token or len(token) > 512:
        return None
    digest = hash_token(token)
    if cache is not None:
        hit, user = cache.get(digest)
        if hit:
            return user
    found = repo.user_for_token(digest)
    user = found[0] if found is not None and hmac.compare_digest(found[1], digest) else None
    if cache is not None:
        cache.put(digest, user)
    return user


# --- audit ---------------------------------------------------------------------------------------


class AuditWriter:
    """Appends audit entries, synchronously (``flush_interval=0``) or in batches from a background thread.

    Batched mode keeps the audit write off the request path (one
    transaction per ``flush_interval`` seconds instead of one per request);
    :meth:`close` flushes what is pending, and readers call :meth:`flush`
    first so GET /audit always includes every earlier request.
    """

    def __init__(self, repo: AuthRepository, *, flush_interval: float = 0.2, max_pending: int = 5_000) -> None:
        self.repo, self.flush_interval, self.max_pending = repo, flush_interval, max_pending
        self._pending: list[AuditEntry] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if flush_interval > 0:
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def record(self, entry: AuditEntry) -> None:
        if self._thread is None:
            self.repo.append_audit([entry])
            return
        with self._lock:
            self._pending.append(entry)
            full = len(self._pending) >= self.max_pending
        if full:
            self.flush()

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if batch:
                try:
                    self.repo.append_audit(batch)
                except Exception:
                    with self._lock:  # keep them for the next attempt, in order
                        self._pending[:0] = batch
                    raise

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - retried on the next tick
                log.exception("audit flush failed; will retry")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()


AUDIT_CSV_COLUMNS = ("seq", "at", "user", "role", "method", "endpoint", "path", "action", "person_ids")


def audit_csv(entries: Iterable[AuditEntry]) -> Iterator[str]:
    """The audit log as CSV text chunks (header first); person ids joined with ``;``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(AUDIT_CSV_COLUMNS)
    for e in entries:
        writer.writerow([e.seq, e.at.isoformat(), e.user, e.role.value, e.method, e.endpoint, e.path,
                         e.action, ";".join(e.person_ids)])
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def iter_audit(repo: AuthRepository, *, page: int = 1_000, **filters) -> Iterator[AuditEntry]:
    after = 0
    while True:
        rows = repo.audit(after_seq=after, limit=page, **filters)
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].seq or after


# --- idempotency ---------------------------------------------------------------------------------


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


#: A reservation older than this is taken to belong to a request that died (process killed):
#: a retry may take it over rather than wait for the whole TTL.
ABANDONED_AFTER = timedelta(minutes=2)


class IdempotencyInProgress(Exception):
    """A request with the same Idempotency-Key is still running."""


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was used before for a different request."""


def reserve_idempotent(
    repo: AuthRepository, user: str, key: str, fingerprint: str, *, now: datetime, ttl: timedelta
) -> IdempotencyRecord | None:
    """Reserve ``(user, key)`` for this request, or return the stored outcome to replay.

    Returns None when the caller now holds the reservation and must run the
    request, then :func:`complete_idempotent` (or :func:`release_idempotent`
    if it failed). Reservation is atomic in the repository, so of two
    concurrent requests with the same key exactly one runs.

    Raises
    ------
    IdempotencyKeyReused
        The key was used for a different request (another method, path or body).
    IdempotencyInProgress
        The first request with this key is still running.
    """
    repo.purge_idempotent(before=now - ttl)
    pending = IdempotencyRecord(
        user=user, key=key, request_hash=fingerprint, status=IdempotencyRecord.PENDING, body="", created_at=now
    )
    for _ in range(2):
        if repo.put_idempotent(pending):
            return None
        stored = repo.get_idempotent(user, key, not_before=now - ttl)
        if stored is None:  # expired or released between the two calls: try again
            continue
        if stored.request_hash != fingerprint:
            raise IdempotencyKeyReused(key)
        if stored.status != IdempotencyRecord.PENDING:
            return stored
        if stored.created_at >= now - ABANDONED_AFTER:
            raise IdempotencyInProgress(key)
        repo.release_idempotent(user, key)
    raise IdempotencyInProgress(key)


def complete_idempotent(repo: AuthRepository, user: str, key: str, *, status: int, body: str) -> None:
    repo.complete_idempotent(user, key, status=status, body=body)


def release_idempotent(repo: AuthRepository, user: str, key: str) -> None:
    repo.release_idempotent(user, key)
