"""Auth service functions: users, bearer tokens, audit log, idempotency. ``now`` is always passed in."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta

from ..store.port import GraphStore
from ..store.siblings import sibling_repository
from .models import AuditEntry, IdempotencyRecord, Role, User
from .repository import AuthRepository

__all__ = [
    "AuditWriter",
    "TokenCache",
    "audit_csv",
    "audit_repository",
    "auth_repository",
    "authenticate",
    "cached_user",
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


def cached_user(token: str, cache: TokenCache | None) -> tuple[bool, User | None]:
    """``(True, user)`` when ``token`` is decided without the store (cached, or malformed), else ``(False, None)``."""
    if not token or len(token) > 512:
        return True, None
    if cache is None:
        return False, None
    return cache.get(hash_token(token))


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
    """Appends audit entries; each request waits until its entries are committed (group commit).

    With ``group_commit`` a writer thread appends every entry submitted
    while it was busy in ONE transaction (on ``repo``, which should hold its
    own connection: see :func:`audit_repository`), then wakes the waiters
    of that group. A request therefore still answers only after its audit
    row is durable, and a failed append fails every request of its group,
    but N concurrent requests cost one commit instead of N. Without it,
    :meth:`submit` appends in the caller's thread.
    """

    def __init__(self, repo: AuthRepository, *, group_commit: bool = True,
                 on_close: Callable[[], None] | None = None) -> None:
        self.repo, self._on_close = repo, on_close
        self._pending: list[tuple[Sequence[AuditEntry], object]] = []
        self._cond = threading.Condition()
        self._busy = False
        self._stop = False
        self._thread: threading.Thread | None = None
        if group_commit:
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    # --- submitting ---------------------------------------------------------------------------
    def submit(self, entries: Sequence[AuditEntry]) -> Awaitable[None] | Future[None]:
        """Queue ``entries``; the result completes (or fails) when they are committed.

        Called on a running event loop it returns an asyncio future of that
        loop (resolved with one wake-up per loop and group); in any other
        thread a :class:`concurrent.futures.Future`.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            waiter: object = (loop, loop.create_future())
            result = waiter[1]
        else:
            waiter = result = Future()
        if self._thread is None:
            self._commit([(entries, waiter)])
            return result
        with self._cond:
            if self._stop:
                raise RuntimeError("audit writer is closed")
            self._pending.append((entries, waiter))
            self._cond.notify()
        return result

    def record(self, entry: AuditEntry) -> None:
        """Append ``entry`` and wait for its commit (for callers outside an event loop)."""
        done = self.submit([entry])
        if isinstance(done, Future):
            done.result()
        else:  # on a loop thread: cannot block on the loop's own future
            raise RuntimeError("AuditWriter.record called on an event loop; await submit() instead")

    def flush(self, timeout: float | None = 30) -> None:
        """Wait until everything submitted before this call is committed (or failed)."""
        if self._thread is None:
            return
        with self._cond:
            self._cond.wait_for(lambda: not self._pending and not self._busy, timeout=timeout)

    # --- the writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stop)
                if not self._pending:
                    return
                group, self._pending = self._pending, []
                self._busy = True
            try:
                self._commit(group)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _commit(self, group: list[tuple[Sequence[AuditEntry], object]]) -> None:
        error: BaseException | None = None
        entries = [e for batch, _ in group for e in batch]
        try:
            if entries:
                self.repo.append_audit(entries)
        except Exception as exc:  # noqa: BLE001 - handed to every waiter of the group
            log.exception("audit append failed for %d entries", len(entries))
            error = exc
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
        for _, waiter in group:
            if isinstance(waiter, Future):
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
            else:
                loop, future = waiter
                by_loop.setdefault(loop, []).append(future)
        for loop, futures in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, futures, error)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def close(self) -> None:
        if self._thread is not None:
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            self._thread.join(timeout=30)
        if self._on_close is not None:
            self._on_close()


def _settle(futures: list[asyncio.Future], error: BaseException | None) -> None:
    for future in futures:
        if future.done():  # the request was cancelled (client gone)
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def audit_repository(store: GraphStore) -> tuple[AuthRepository, Callable[[], None]]:
    """An auth repository for the audit writer thread, and how to close it.

    For a SQLite file it has its own connection, so that audit commits never
    hold the lock the request reads take (WAL lets that connection write
    while the others read); elsewhere it is the store's own repository.
    """
    from ..store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore) and store.path != ":memory:":
        own = SQLiteStore(store.path)
        return auth_repository(own), own.close
    return auth_repository(store), lambda: None


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
