"""What the adapters promise beyond the story: index-driven queues, constraint-guarded alerts, wipe and schema."""

from __future__ import annotations

import pytest

from tracing.deadlines import sweep_deadlines

from .story import CASE, INV, t


def _plans(store, queries) -> list[str]:
    """The execution plans of ``queries`` (EXPLAIN: nothing runs), one text per query."""
    if type(store).__name__ == "SQLiteStore":
        return [" | ".join(str(row[-1]) for row in store.query(f"EXPLAIN QUERY PLAN {q}", p)) for q, p in queries]

    def explain(tx):
        return [str(tx.run(f"EXPLAIN {q}", p).consume().plan) for q, p in queries]

    return store.execute_read(explain)


def test_sweep_queues_are_read_through_indexes(make_story):
    story = make_story()
    story.run(t(9, 15))
    if type(story.store).__name__ == "SQLiteStore":
        queries = [
            ("SELECT investigation_id, since, changed_at FROM dl_dirty ORDER BY since LIMIT ?", (10,)),
            ("SELECT DISTINCT investigation_id FROM dl_milestones WHERE next_check_at IS NOT NULL "
             "AND next_check_at <= ? ORDER BY next_check_at LIMIT ?", (0, 10)),
        ]
        dirty, timed = _plans(story.store, queries)
        assert "dl_milestones_next" in timed, timed
        assert "SCAN dl_milestones" not in timed.replace("USING INDEX", "")
    else:
        from tracing.deadlines import neo4j as adapter

        dirty, timed = _plans(story.store, [(adapter._DIRTY, {"limit": 10}), (adapter._TIMED, {"now": 0, "limit": 10})])
        for plan in (dirty, timed):
            assert "NodeByLabelScan" not in plan and "AllNodesScan" not in plan, plan
        assert "dl_milestone_next_check" in timed or "NodeIndexSeekByRange" in timed, timed
        assert "dl_dirty_since" in dirty or "NodeIndexScan" in dirty, dirty


def test_alert_keys_are_unique_in_storage(make_story):
    story = make_story()
    story.run(t(10, 45))
    first = story.repo.alerts()[0]
    if type(story.store).__name__ == "SQLiteStore":
        import sqlite3

        with pytest.raises(sqlite3.IntegrityError), story.store.transaction() as conn:
            conn.execute(
                "INSERT INTO dl_alerts (key, investigation_id, milestone_id, state, detected_at, doc) "
                "VALUES (?, 'x', 'x', 'missed', 0, '{}')", (first.key,),
            )
    else:
        from neo4j.exceptions import ConstraintError

        def duplicate(tx):
            tx.run("CREATE (a:DeadlineAlert {key: $key, seq: -1})", key=first.key).consume()

        with pytest.raises(ConstraintError):
            story.store.execute_write(duplicate)
    assert [a.key for a in story.repo.alerts()].count(first.key) == 1


def test_wipe_removes_deadline_data_and_keeps_the_schema(make_story):
    story = make_story()
    if type(story.store).__name__ == "SQLiteStore":
        pytest.skip("the SQLite store has no wipe(): a new database is a new file")
    story.run(t(10, 45))
    assert story.repo.alerts() and story.repo.get_investigations([INV])
    story.store.wipe()

    def labels(tx):
        return {label for r in tx.run("MATCH (n) RETURN labels(n) AS l") for label in r["l"]}

    assert story.store.execute_read(labels) == set()
    # The same repository object keeps working on the empty database: schema and queues intact.
    assert story.repo.alerts() == [] and story.repo.max_alert_seq() == 0
    assert story.repo.due_for_sweep(t(11), limit=10) == ({}, set())
    story.write(t(11), persons=[CASE])
    result = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(11))
    assert [a.key for a in result.alerts] == [f"{INV}:on_scene#0:missed"]
    assert [a.seq for a in story.repo.alerts()] == [1]

    def constraints(tx):
        return {r["name"] for r in tx.run("SHOW CONSTRAINTS YIELD name")}

    assert {"dl_alert_key", "dl_alert_seq", "dl_milestone_id", "dl_investigation_case"} <= story.store.execute_read(
        constraints
    )


def test_a_write_planned_from_stale_clocks_is_refused_and_the_others_apply(make_story):
    """Two sweeps that read the same clocks: the first to write wins, the other's write of that
    investigation is refused whole (no alert, dirty mark kept), and the other investigations still apply."""
    from tracing.deadlines import engine
    from tracing.deadlines.service import load_facts

    story = make_story()
    story.write(t(9), persons=[CASE, CASE.model_copy(update={"id": "P9"})])
    ids = [INV, "inv:P9"]
    dirty = story.repo.dirty_marks(limit=10)
    facts, _ = load_facts(story.store, story.repo, ids, policy=story.policy, dirty=dirty)
    stale = [engine.plan_write(facts[i], engine.evaluate_facts(facts[i], policy=story.policy, now=t(10, 30)))
             for i in ids]
    assert all(w.updates and w.alerts for w in stale)
    # Another sweep gets in first for P0 only: its clocks move on.
    first_alerts, refused = story.repo.apply_evaluations(stale[:1])
    assert first_alerts and not refused
    story.repo.mark_dirty([INV], t(10, 31))
    alerts, refused = story.repo.apply_evaluations(stale)
    assert set(refused) == {INV} and "changed since it was read" in refused[INV]
    assert {a.investigation_id for a in alerts} == {"inv:P9"} and all(a.seq for a in alerts)
    assert story.repo.dirty_marks(limit=10).keys() == {INV}
    stored = story.repo.alerts()
    assert sorted(a.key for a in stored) == sorted(a.key for a in [*first_alerts, *alerts])
    assert [a.seq for a in stored] == sorted(a.seq for a in [*first_alerts, *alerts])


def test_neo4j_applies_a_large_sweep_in_chunks_with_the_same_result(make_story, backend, monkeypatch):
    """The first sweep after a bulk import writes thousands of investigations: in one transaction that
    outgrew the server's transaction memory. Chunks of APPLY_CHUNK store exactly what one batch stores."""
    if backend.name != "neo4j":
        pytest.skip("SQLite writes one batch under its write lock")
    from tracing.deadlines import neo4j as adapter

    others = [CASE.model_copy(update={"id": f"C{i}", "reported_at": t(9, 3 * i)}) for i in range(7)]

    def record(story) -> list:
        story.write(t(9), persons=others)
        story.run(t(13))
        return [(a.key, a.seq, a.at) for a in story.repo.alerts()]

    expected = record(make_story())
    story = make_story()
    monkeypatch.setattr(adapter, "APPLY_CHUNK", 2)
    transactions = []
    execute_write = story.store.execute_write

    def counting(fn, *args, **kwargs):
        if fn is adapter._apply_tx:
            transactions.append(len(args[0]))
        return execute_write(fn, *args, **kwargs)

    monkeypatch.setattr(story.store, "execute_write", counting)
    assert record(story) == expected
    assert transactions and max(transactions) == 2 and len(transactions) > len(story.results)


def test_a_reason_only_update_is_refused_if_the_reason_or_queue_time_it_was_planned_from_moved(make_story):
    """The conflict check of an update that keeps the state: the stored reason (when given) must be the one
    read; SQLite checks it in the UPDATE itself, then retries the batch write by write."""
    from tracing.deadlines.repository import EvaluationWrite, MilestoneUpdate

    story = make_story()
    story.write(t(9), persons=[CASE])
    story.sweep()
    clock = next(c for c in story.repo.clocks_of([INV])[INV] if c.next_check_at is not None)
    other = CASE.model_copy(update={"id": "P9"})
    story.write(t(9), persons=[other])
    story.sweep()
    spare = next(c for c in story.repo.clocks_of(["inv:P9"])["inv:P9"] if c.next_check_at is not None)

    def update(c, reason: str, *, expected_reason: str | None, expected_next: int | None) -> EvaluationWrite:
        return EvaluationWrite(investigation_id=c.investigation_id, updates=[MilestoneUpdate(
            id=c.id, state=c.state, met_at=c.met_at, epoch=c.epoch, reason_json=reason, evaluated_at=1,
            at_due_json=None, next_check_at=expected_next, expected_state=c.state, expected_epoch=c.epoch,
            expected_next_check=expected_next, expected_reason=expected_reason,
        )])

    newer = clock.reason_json.replace('"summary":"', '"summary":"(newer) ', 1)
    assert newer != clock.reason_json
    _, refused = story.repo.apply_evaluations([update(clock, newer, expected_reason=clock.reason_json,
                                                      expected_next=clock.next_check_at)])
    assert not refused
    # Planned from the reason before: refused, while the other investigation's write in the batch applies.
    late = update(clock, clock.reason_json, expected_reason=clock.reason_json, expected_next=clock.next_check_at)
    fine = update(spare, spare.reason_json, expected_reason=None, expected_next=spare.next_check_at)
    _, refused = story.repo.apply_evaluations([late, fine])
    assert set(refused) == {INV}
    assert {c.id: c.reason_json for c in story.repo.clocks_of([INV])[INV]}[clock.id] == newer
    # No reason given: not checked.
    _, refused = story.repo.apply_evaluations([update(clock, newer, expected_reason=None,
                                                      expected_next=clock.next_check_at)])
    assert not refused
    if type(story.store).__name__ == "SQLiteStore":
        # SQLite's reason-only UPDATE leaves the queue column alone, so it must find the queue time it was
        # planned with (Neo4j writes the queue time with every update).
        _, refused = story.repo.apply_evaluations([update(clock, newer, expected_reason=None,
                                                          expected_next=clock.next_check_at + 1)])
        assert set(refused) == {INV}
