"""The auth repository contract, on every backend (SQLite; Neo4j under `make test`)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tracing.auth import AuditEntry, AuditWriter, IdempotencyRecord, UserExists, auth_repository, authenticate, create_user
from tracing.store.siblings import forget_sibling_repositories


@pytest.fixture
def repo(store):
    forget_sibling_repositories(store)
    repo = auth_repository(store)
    if hasattr(store, "execute_write"):  # Neo4j: the session store is shared, start clean
        store.execute_write(lambda tx: tx.run("MATCH (n) WHERE any(l IN labels(n) WHERE l STARTS WITH 'Auth') "
                                              "DETACH DELETE n").consume())
    return repo


def test_users_tokens_and_revocation(repo, now):
    user, token = create_user(repo, "ann", role="investigator", region="1101", now=now)
    with pytest.raises(UserExists):
        create_user(repo, "ann", role="admin", now=now)
    assert authenticate(repo, token) == user
    assert authenticate(repo, token + "x") is None
    assert [u.name for u in repo.list_users()] == ["ann"]
    assert repo.revoke_user("ann", at=now) and not repo.revoke_user("ann", at=now)
    assert authenticate(repo, token) is None


def test_audit_is_appended_in_order_and_filtered(repo, now):
    def entry(user, ids, minutes):
        return AuditEntry(at=now + timedelta(minutes=minutes), user=user, role="commander", method="GET",
                          endpoint="/persons/{person_id}", path="/persons/x", action="read", person_ids=ids)

    repo.append_audit([entry("a", ["p1"], 0), entry("b", ["p1", "p2"], 1)])
    repo.append_audit([entry("a", ["p3"], 2)])
    all_ = repo.audit()
    assert [e.seq for e in all_] == sorted(e.seq for e in all_) and len(all_) == 3
    assert [e.user for e in repo.audit(person_id="p1")] == ["a", "b"]
    assert [e.person_ids for e in repo.audit(user="a")] == [["p1"], ["p3"]]
    assert len(repo.audit(since=now + timedelta(minutes=1))) == 2
    assert [e.seq for e in repo.audit(after_seq=all_[0].seq, limit=1)] == [all_[1].seq]


def test_idempotency_records(repo, now):
    record = IdempotencyRecord(user="ann", key="k", request_hash="h", status=200, body="{}", created_at=now)
    assert repo.put_idempotent(record)
    assert not repo.put_idempotent(record.model_copy(update={"body": "[]"}))
    assert repo.get_idempotent("ann", "k", not_before=now).body == "{}"
    assert repo.get_idempotent("ann", "k", not_before=now + timedelta(seconds=1)) is None
    assert repo.purge_idempotent(before=now + timedelta(seconds=1)) == 1
    assert repo.get_idempotent("ann", "k", not_before=now - timedelta(days=1)) is None


def test_idempotency_reservation_is_atomic_and_replays(repo, now):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from tracing.auth.service import (
        IdempotencyInProgress,
        IdempotencyKeyReused,
        complete_idempotent,
        release_idempotent,
        reserve_idempotent,
    )

    ttl = timedelta(hours=24)
    racers = 6
    barrier = Barrier(racers)

    def reserve(_):
        barrier.wait()
        try:
            return reserve_idempotent(repo, "ann", "k1", "hash-a", now=now, ttl=ttl)
        except IdempotencyInProgress:
            return "in progress"

    with ThreadPoolExecutor(racers) as pool:
        outcomes = list(pool.map(reserve, range(racers)))
    assert outcomes.count(None) == 1 and outcomes.count("in progress") == racers - 1

    with pytest.raises(IdempotencyKeyReused):
        reserve_idempotent(repo, "ann", "k1", "hash-b", now=now, ttl=ttl)
    complete_idempotent(repo, "ann", "k1", status=201, body='{"ok":true}')
    replay = reserve_idempotent(repo, "ann", "k1", "hash-a", now=now, ttl=ttl)
    assert (replay.status, replay.body) == (201, '{"ok":true}')

    # A failed request releases its key, so the retry runs.
    assert reserve_idempotent(repo, "ann", "k2", "hash-a", now=now, ttl=ttl) is None
    release_idempotent(repo, "ann", "k2")
    assert reserve_idempotent(repo, "ann", "k2", "hash-a", now=now, ttl=ttl) is None
    # A reservation left by a request that died is taken over after a while, not after the whole TTL.
    with pytest.raises(IdempotencyInProgress):
        reserve_idempotent(repo, "ann", "k2", "hash-a", now=now + timedelta(seconds=30), ttl=ttl)
    assert reserve_idempotent(repo, "ann", "k2", "hash-a", now=now + timedelta(minutes=5), ttl=ttl) is None


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "thread-pool"])
def test_audit_writer_groups_the_requests_of_a_loop_turn_and_fails_them_together(repo, now, inline):
    def entry(person: str) -> AuditEntry:
        return AuditEntry(at=now, user="ann", role="admin", method="GET", endpoint="/persons/{person_id}",
                          path=f"/persons/{person}", action="read", person_ids=[person])

    writer = AuditWriter(repo, inline=inline)
    appends: list[int] = []
    append = repo.append_audit

    def counting(entries):
        appends.append(len(entries))
        append(entries)

    repo.append_audit = counting

    async def requests(persons: list[str]) -> list:
        async def one(person: str) -> None:
            await writer.submit([entry(person)])

        return await asyncio.gather(*(one(p) for p in persons), return_exceptions=True)

    assert asyncio.run(requests(["P1", "P2", "P3"])) == [None, None, None]
    assert appends == [3]  # one transaction for the three
    assert [e.person_ids for e in repo.audit()] == [["P1"], ["P2"], ["P3"]]

    def refuse(entries):
        raise OSError("disk full")

    repo.append_audit = refuse
    results = asyncio.run(requests(["P4", "P5"]))
    assert all(isinstance(r, OSError) for r in results) and len(results) == 2
    repo.append_audit = append
    assert len(repo.audit()) == 3
    writer.close()
