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
from collections.abc import Callable, Iterable, Iterator, Sequence
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


def _from_cache(token: str, cache: TokenCache | None) -> tuple[bool, User | None, str | None]:
    """``(decided, user, digest)``: decided without the store when ``token`` is malformed or cached."""
    if not token or len(token) > 512:
        return True, None, None
    digest = hash_token(token)
    if cache is not None:
        hit, user = cache.get(digest)
        if hit:
            return True, user, digest
    return False, None, digest


def cached_user(token: str, cache: TokenCache | None) -> tuple[bool, User | None]:
    """``(True, user)`` when ``token`` is decided without the store (cached, or malformed), else ``(False, None)``."""
    decided, user, _ = _from_cache(token, cache)
    return decided, user


def authenticate(repo: AuthRepository, token: str, *, cache: TokenCache | None = None) -> User | None:
    """The active user holding ``token``, or None. Compares hashes in constant time."""
    decided, user, digest = _from_cache(token, cache)
    if decided:
        return user
    found = repo.user_for_token(digest)
    user = found[0] if found is not None and hmac.compare_digest(found[1], digest) else None
    if cache is not None:
        cache.put(digest, user)
    return user


# --- audit ---------------------------------------------------------------------------------------


class AuditWriter:
    """Appends audit entries; a request answers only after its entries are committed.

    Group commit, on the event loop: entries submitted on the loop are
    appended together in ONE transaction by a callback scheduled after the
    callbacks already queued (so every request of a loop iteration shares
    it), and each submitter awaits its future. A failed append fails every
    request of its group. With a store that reads in process (SQLite) the
    append runs inline on the loop: a WAL commit without fsync is ~0.1 ms,
    far less than handing it to a thread, which must win the GIL back from
    the busy loop after every statement (up to ``sys.getswitchinterval()``,
    5 ms, each time). Other stores append in the thread pool, one group at
    a time, while the next group gathers.

    Outside a loop (sync routes run in the thread pool), and with
    ``group_commit=False``, :meth:`submit` appends in the caller's thread.
    """

    def __init__(self, repo: AuthRepository, *, group_commit: bool = True, inline: bool = True) -> None:
        self.repo, self.group_commit, self.inline = repo, group_commit, inline
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[Sequence[AuditEntry], asyncio.Future]] = []
        self._scheduled = False  # a flush is queued on the loop, or (not inline) running in a thread

    def submit(self, entries: Sequence[AuditEntry]) -> asyncio.Future | Future:
        """Queue ``entries``; the result completes (or fails) once they are committed.

        On the running loop: an asyncio future, settled by the group's
        commit. Outside a loop (or with ``group_commit=False``) the entries
        are appended in this thread at once, and the result is already settled.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and loop is not self._loop and not self._pending and not self._scheduled:
            # A new loop (tests run several); nothing of the old one is left. Only loop threads
            # touch the group state: other threads append directly, below.
            self._loop = loop
        if loop is None or not self.group_commit or loop is not self._loop:
            error = self._append([(entries, None)])
            done: asyncio.Future | Future = loop.create_future() if loop is not None else Future()
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
            return done
        future = loop.create_future()
        self._pending.append((entries, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        group, self._pending = self._pending, []
        if self.inline:
            self._scheduled = False
            self._settle(group, self._append(group))
        else:
            asyncio.ensure_future(self._flush_in_thread(group))

    async def _flush_in_thread(self, group: list) -> None:
        from starlette.concurrency import run_in_threadpool

        try:
            self._settle(group, await run_in_threadpool(self._append, group))
        finally:
            if self._pending:
                self._flush()  # what gathered meanwhile: the next group
            else:
                self._scheduled = False

    def _append(self, group: list[tuple[Sequence[AuditEntry], asyncio.Future]]) -> BaseException | None:
        try:
            self.repo.append_audit([e for entries, _ in group for e in entries])
            return None
        except Exception as exc:  # noqa: BLE001 - handed to every waiter of the group
            log.exception("audit append failed (a group of %d requests)", len(group))
            return exc

    @staticmethod
    def _settle(group: list[tuple[Sequence[AuditEntry], asyncio.Future]], error: BaseException | None) -> None:
        for _, future in group:
            if future.done():  # cancelled: the client went away
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    def close(self) -> None:
        """Append what is still queued (nothing, unless the loop stopped between a submit and its flush)."""
        group, self._pending = self._pending, []
        if group:
            self._append(group)


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
