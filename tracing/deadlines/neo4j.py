"""Neo4j adapter of :class:`~tracing.deadlines.repository.DeadlineRepository`.

Keeps its nodes in the graph store's database through the public hooks
:meth:`Neo4jStore.execute_write` / :meth:`Neo4jStore.execute_read` (managed
transactions: the functions below are idempotent, may be retried on
transient errors, and consume their results inside). Times are integer
microseconds since the epoch (UTC), as in the graph. Cypher is kept in
module constants and takes bound parameters only.

Nodes (one label each, no relationships to the graph: ids are properties)
--------------------------------------------------------------------------
``(:Investigation {id, kind, case_id, case_key, region, team, …, facts_change_at, contacts_digest})``
    ``case_key`` = ``case_id`` on case investigations only, under a uniqueness
    constraint: one investigation per case. ``contacts_digest``: see
    :func:`~tracing.deadlines.engine.contacts_digest`.
``(:Milestone {id, investigation_id, kind, person_id, started_at, due_at, at_risk_at, state, met_at, epoch,
reason, evaluated_at, at_due, next_check_at})``
    ``reason`` / ``at_due`` are JSON strings. ``next_check_at`` is present only
    while a time-driven transition is ahead (range index: the sweep's time queue).
``(:DeadlineDirty {investigation_id, since, changed_at, persons})``
    The dirty queue (range index on ``since``); cleared by the sweep with a token.
    ``persons`` (a list) names the persons whose fields changed; absent when
    anything may have changed.
``(:DeadlineTracked {key, investigation_id, person_id, role, first_seen_at, resolved_at, outcome})``
``(:DeadlineArrival {key, investigation_id, investigator, arrived_at})`` — investigator on scene
``(:DeadlineIsolationArrival {key, person_id, site_id, arrived_at})``
``(:AssistRequest {id, doc})``
``(:DeadlineAlert {seq, key, investigation_id, milestone_id, state, detected_at, doc})``
    ``key`` and ``seq`` under uniqueness constraints: a repeated or concurrent
    sweep cannot store an alert twice. ``seq`` comes from the
    ``(:DeadlineSequence {name: 'alert'})`` counter, locked by every writer of
    alerts, so seqs are gap-free and committed in order (the webhook cursor
    relies on it).
``(:DeadlineSinkCursor {sink, last_seq})``, ``(:DeadlineDeliveryFailure {key, sink, seq, error})``
``(:DeadlineLease {name, holder, expires_at, checked_at})`` — which process sweeps (name unique)

``key`` properties are ``json.dumps([...])`` of composite keys, as in the graph store.
:meth:`Neo4jStore.wipe` deletes these nodes like any other; the schema stays.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, LiteralString

from neo4j import ManagedTransaction
from neo4j.exceptions import ConstraintError, DriverError, Forbidden, Neo4jError

from graph_models.deadlines import (
    Alert,
    AssistRequest,
    Investigation,
    InvestigatorArrival,
    IsolationArrival,
    Milestone,
    MilestoneState,
    TrackedPerson,
)

from .engine import trusted
from .repository import Clock, ComplianceRow, DirtyMark, EvaluationWrite, Tracked, TrackedRow
from .rows import (
    INV_FIELDS,
    MS_FIELDS,
    clock_from_row,
    dt,
    inv_from_row,
    inv_values,
    ms_from_row,
    ms_values,
    us,
)

__all__ = ["Neo4jDeadlineRepository"]

#: ``LIMIT`` when the caller gives none (Cypher needs an integer).
_NO_LIMIT = 2**62

# --- schema ---------------------------------------------------------------------------------
_CONSTRAINTS: tuple[LiteralString, ...] = (
    "CREATE CONSTRAINT dl_investigation_id IF NOT EXISTS FOR (n:Investigation) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT dl_investigation_case IF NOT EXISTS FOR (n:Investigation) REQUIRE n.case_key IS UNIQUE",
    "CREATE CONSTRAINT dl_milestone_id IF NOT EXISTS FOR (n:Milestone) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT dl_dirty_investigation IF NOT EXISTS FOR (n:DeadlineDirty) REQUIRE n.investigation_id IS UNIQUE",
    "CREATE CONSTRAINT dl_tracked_key IF NOT EXISTS FOR (n:DeadlineTracked) REQUIRE n.key IS UNIQUE",
    "CREATE CONSTRAINT dl_arrival_key IF NOT EXISTS FOR (n:DeadlineArrival) REQUIRE n.key IS UNIQUE",
    "CREATE CONSTRAINT dl_isolation_key IF NOT EXISTS FOR (n:DeadlineIsolationArrival) REQUIRE n.key IS UNIQUE",
    "CREATE CONSTRAINT dl_assist_id IF NOT EXISTS FOR (n:AssistRequest) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT dl_alert_key IF NOT EXISTS FOR (n:DeadlineAlert) REQUIRE n.key IS UNIQUE",
    "CREATE CONSTRAINT dl_alert_seq IF NOT EXISTS FOR (n:DeadlineAlert) REQUIRE n.seq IS UNIQUE",
    "CREATE CONSTRAINT dl_sequence_name IF NOT EXISTS FOR (n:DeadlineSequence) REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT dl_sink_cursor IF NOT EXISTS FOR (n:DeadlineSinkCursor) REQUIRE n.sink IS UNIQUE",
    "CREATE CONSTRAINT dl_lease_name IF NOT EXISTS FOR (n:DeadlineLease) REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT dl_delivery_failure IF NOT EXISTS FOR (n:DeadlineDeliveryFailure) REQUIRE n.key IS UNIQUE",
)
_INDEXES: tuple[LiteralString, ...] = (
    "CREATE INDEX dl_milestone_investigation IF NOT EXISTS FOR (n:Milestone) ON (n.investigation_id)",
    # The time queue: absent (so not indexed) once a milestone has no time-driven transition ahead.
    "CREATE INDEX dl_milestone_next_check IF NOT EXISTS FOR (n:Milestone) ON (n.next_check_at)",
    "CREATE INDEX dl_milestone_due IF NOT EXISTS FOR (n:Milestone) ON (n.due_at)",
    "CREATE INDEX dl_dirty_since IF NOT EXISTS FOR (n:DeadlineDirty) ON (n.since)",
    "CREATE INDEX dl_tracked_investigation IF NOT EXISTS FOR (n:DeadlineTracked) ON (n.investigation_id)",
    "CREATE INDEX dl_tracked_person IF NOT EXISTS FOR (n:DeadlineTracked) ON (n.person_id)",
    "CREATE INDEX dl_arrival_investigation IF NOT EXISTS FOR (n:DeadlineArrival) ON (n.investigation_id)",
    "CREATE INDEX dl_isolation_person IF NOT EXISTS FOR (n:DeadlineIsolationArrival) ON (n.person_id)",
    "CREATE INDEX dl_alert_investigation IF NOT EXISTS FOR (n:DeadlineAlert) ON (n.investigation_id)",
    "CREATE INDEX dl_alert_detected IF NOT EXISTS FOR (n:DeadlineAlert) ON (n.detected_at)",
)
_SHOW_SCHEMA: tuple[LiteralString, ...] = ("SHOW CONSTRAINTS YIELD name", "SHOW INDEXES YIELD name")
_AWAIT_INDEXES: LiteralString = "CALL db.awaitIndexes($seconds)"

# --- investigations ---------------------------------------------------------------------------
_INVESTIGATION_EXISTS: LiteralString = """
OPTIONAL MATCH (i:Investigation {id: $id})
OPTIONAL MATCH (c:Investigation {case_key: $case_key})
RETURN i IS NOT NULL OR c IS NOT NULL AS taken
"""
_CREATE_INVESTIGATION: LiteralString = "CREATE (i:Investigation) SET i = $row"
_CREATE_INVESTIGATIONS: LiteralString = "UNWIND $rows AS row CREATE (i:Investigation) SET i = row"
_GET_INVESTIGATIONS: LiteralString = """
UNWIND $ids AS iid
MATCH (i:Investigation {id: iid})
RETURN properties(i) AS props, i.id AS id
"""
_INVESTIGATIONS_FOR_CASES: LiteralString = """
UNWIND $ids AS cid
MATCH (i:Investigation {case_key: cid})
RETURN cid AS case_id, i.id AS id
"""
_EVALUATION_STAMPS: LiteralString = """
UNWIND $ids AS iid
MATCH (i:Investigation {id: iid}) WHERE i.facts_change_at IS NOT NULL OR i.contacts_digest IS NOT NULL
RETURN i.id AS id, i.facts_change_at AS at, i.contacts_digest AS digest
"""
_SET_FACTS_CHANGE: LiteralString = """
UNWIND $rows AS row
MATCH (i:Investigation {id: row.id})
SET i.facts_change_at = row.at
"""
_SET_DIGEST: LiteralString = """
UNWIND $rows AS row
MATCH (i:Investigation {id: row.id})
SET i.contacts_digest = row.digest
"""
_UPDATE_INVESTIGATION: LiteralString = """
MATCH (i:Investigation {id: $id})
SET i.region = $region, i.team = $team, i.status = $status, i.closed_at = $closed_at,
    i.no_contacts_at = $no_contacts_at
"""

# --- milestones and tracked persons ----------------------------------------------------------
_INSERT_MILESTONES: LiteralString = """
UNWIND $rows AS row
MERGE (m:Milestone {id: row.id})
ON CREATE SET m += row
"""
_MILESTONES_OF: LiteralString = """
UNWIND $ids AS iid
MATCH (m:Milestone {investigation_id: iid})
RETURN [m.id, m.investigation_id, m.kind, m.person_id, m.started_at, m.due_at, m.at_risk_at, m.state, m.met_at,
        m.epoch, m.reason, m.evaluated_at, m.at_due] AS row
"""
# The sweep's copy: the snapshot is only tested for presence, never parsed.
_MILESTONES_OF_BRIEF: LiteralString = """
UNWIND $ids AS iid
MATCH (m:Milestone {investigation_id: iid})
RETURN [m.id, m.investigation_id, m.kind, m.person_id, m.started_at, m.due_at, m.at_risk_at, m.state, m.met_at,
        m.epoch, m.reason, m.evaluated_at, CASE WHEN m.at_due IS NULL THEN null ELSE '' END] AS row
"""
# The sweep's light copy: the snapshot as presence only, with the queue time.
_CLOCKS_OF: LiteralString = """
UNWIND $ids AS iid
MATCH (m:Milestone {investigation_id: iid})
RETURN [m.id, m.investigation_id, m.kind, m.person_id, m.started_at, m.due_at, m.at_risk_at, m.state, m.met_at,
        m.epoch, m.reason, m.evaluated_at, CASE WHEN m.at_due IS NULL THEN null ELSE 1 END, m.next_check_at] AS row
"""
_UPSERT_TRACKED: LiteralString = """
UNWIND $rows AS row
MERGE (t:DeadlineTracked {key: row.key})
ON CREATE SET t += row
ON MATCH SET t.role = row.role
"""
_TRACKED_OF: LiteralString = """
UNWIND $ids AS iid
MATCH (t:DeadlineTracked {investigation_id: iid})
RETURN t.investigation_id AS investigation_id, t.person_id AS person_id, t.role AS role,
       t.first_seen_at AS first_seen_at, t.resolved_at AS resolved_at, t.outcome AS outcome
"""
_TRACKED_COUNTS: LiteralString = """
UNWIND $ids AS iid
MATCH (t:DeadlineTracked {investigation_id: iid})
RETURN iid AS investigation_id, count(t) AS n
"""
_RESOLVE_TRACKED: LiteralString = """
MATCH (t:DeadlineTracked {key: $key})
SET t.resolved_at = $at, t.outcome = $outcome
RETURN count(t) AS n
"""

# --- facts -------------------------------------------------------------------------------------
_MERGE_ARRIVAL: LiteralString = """
MERGE (a:DeadlineArrival {key: $row.key})
ON CREATE SET a += $row
"""
_ARRIVALS_OF: LiteralString = """
UNWIND $ids AS iid
MATCH (a:DeadlineArrival {investigation_id: iid})
RETURN a.investigation_id AS investigation_id, a.investigator AS investigator, a.arrived_at AS arrived_at
ORDER BY arrived_at
"""
_MERGE_ISOLATION: LiteralString = """
MERGE (a:DeadlineIsolationArrival {key: $row.key})
ON CREATE SET a += $row
"""
_ISOLATION_OF: LiteralString = """
UNWIND $ids AS pid
MATCH (a:DeadlineIsolationArrival {person_id: pid})
WITH pid, a ORDER BY a.arrived_at
WITH pid, head(collect(a)) AS first
RETURN pid AS person_id, first.site_id AS site_id, first.arrived_at AS arrived_at
"""
_CREATE_ASSIST: LiteralString = "CREATE (r:AssistRequest) SET r = $row"
_GET_ASSIST: LiteralString = """
UNWIND $ids AS rid
MATCH (r:AssistRequest {id: rid})
RETURN r.doc AS doc
"""

# --- work queues --------------------------------------------------------------------------------
_MARK_DIRTY: LiteralString = """
UNWIND $ids AS iid
MERGE (d:DeadlineDirty {investigation_id: iid})
ON CREATE SET d.since = $at, d.changed_at = $at
ON MATCH SET d.since = CASE WHEN d.since <= $at THEN d.since ELSE $at END,
             d.changed_at = CASE WHEN d.changed_at >= $at THEN d.changed_at + 1 ELSE $at END,
             d.persons = null
"""
# A mark naming the persons whose fields changed: merged by union, unless the stored mark already
# says anything may have changed (no ``persons``), which it keeps.
_MARK_DIRTY_PERSONS: LiteralString = """
UNWIND $rows AS row
MERGE (d:DeadlineDirty {investigation_id: row.id})
ON CREATE SET d.since = $at, d.changed_at = $at, d.persons = row.persons
ON MATCH SET d.since = CASE WHEN d.since <= $at THEN d.since ELSE $at END,
             d.changed_at = CASE WHEN d.changed_at >= $at THEN d.changed_at + 1 ELSE $at END,
             d.persons = CASE WHEN d.persons IS NULL THEN null
                              ELSE d.persons + [p IN row.persons WHERE NOT p IN d.persons] END
"""
_MARK_DIRTY_ROWS: LiteralString = """
UNWIND $rows AS row
MERGE (d:DeadlineDirty {investigation_id: row.id})
ON CREATE SET d.since = row.at, d.changed_at = row.at
ON MATCH SET d.since = CASE WHEN d.since <= row.at THEN d.since ELSE row.at END,
             d.changed_at = CASE WHEN d.changed_at >= row.at THEN d.changed_at + 1 ELSE row.at END,
             d.persons = null
"""
_WATCHING_CASES: LiteralString = """
UNWIND $ids AS pid
MATCH (i:Investigation {case_key: pid}) WHERE i.status = 'open'
RETURN i.id AS id, pid
"""
_WATCHING_TRACKED: LiteralString = """
UNWIND $ids AS pid
MATCH (t:DeadlineTracked {person_id: pid})
MATCH (i:Investigation {id: t.investigation_id}) WHERE i.status = 'open'
RETURN DISTINCT i.id AS id, pid
"""
# Both index-backed (ordered range scans on DeadlineDirty.since / Milestone.next_check_at).
_DIRTY: LiteralString = """
MATCH (d:DeadlineDirty) WHERE d.since IS NOT NULL
RETURN d.investigation_id AS id, d.since AS since, d.changed_at AS changed_at, d.persons AS persons
ORDER BY d.since LIMIT $limit
"""
_TIMED: LiteralString = """
MATCH (m:Milestone) WHERE m.next_check_at <= $now
WITH m.investigation_id AS id ORDER BY m.next_check_at LIMIT $limit
RETURN DISTINCT id
"""

# Index-backed (ordered range scan on Milestone.next_check_at), like _TIMED.
_DUE_CLOCKS: LiteralString = """
MATCH (m:Milestone) WHERE m.next_check_at <= $now
WITH m ORDER BY m.next_check_at LIMIT $limit
RETURN [m.id, m.investigation_id, m.kind, m.person_id, m.started_at, m.due_at, m.at_risk_at, m.state, m.met_at,
        m.epoch, m.reason, m.evaluated_at, CASE WHEN m.at_due IS NULL THEN null ELSE 1 END, m.next_check_at] AS row
"""

# --- applying an evaluation -------------------------------------------------------------------
# Write-lock the milestones about to change (setting and removing a property takes the node's
# write lock until commit), then read their current state: no other writer can change them
# between this check and the commit.
_LOCK_MILESTONES: LiteralString = """
UNWIND $ids AS mid
MATCH (m:Milestone {id: mid})
SET m._lock = true
REMOVE m._lock
RETURN m.id AS id, m.state AS state, m.epoch AS epoch, m.reason AS reason
"""
_UPDATE_MILESTONES: LiteralString = """
UNWIND $rows AS row
MATCH (m:Milestone {id: row.id}) WHERE m.state = row.expected_state AND m.epoch = row.expected_epoch
SET m += row.props, m.at_due = coalesce(row.at_due, m.at_due)
RETURN count(m) AS n
"""
_LOCK_SEQUENCE: LiteralString = """
MERGE (c:DeadlineSequence {name: 'alert'})
ON CREATE SET c.value = 0
SET c._lock = true
REMOVE c._lock
RETURN c.value AS value
"""
_EXISTING_ALERTS: LiteralString = """
UNWIND $keys AS key
MATCH (a:DeadlineAlert {key: key})
RETURN a.key AS key
"""
_SET_SEQUENCE: LiteralString = "MATCH (c:DeadlineSequence {name: 'alert'}) SET c.value = $value"
_CREATE_ALERTS: LiteralString = """
UNWIND $rows AS row
CREATE (a:DeadlineAlert)
SET a = row
"""
_CLEAR_DIRTY: LiteralString = """
UNWIND $rows AS row
MATCH (d:DeadlineDirty {investigation_id: row.id}) WHERE d.changed_at <= row.token
DELETE d
"""

# --- alerts and sinks ----------------------------------------------------------------------------
_ALERTS: LiteralString = """
MATCH (a:DeadlineAlert)
WHERE ($after_seq IS NULL OR a.seq > $after_seq)
  AND ($investigation_id IS NULL OR a.investigation_id = $investigation_id)
  AND ($states IS NULL OR a.state IN $states)
  AND ($since IS NULL OR a.detected_at >= $since)
RETURN a.seq AS seq, a.doc AS doc
ORDER BY a.seq LIMIT $limit
"""
_ALERTS_OF: LiteralString = """
MATCH (a:DeadlineAlert {investigation_id: $investigation_id})
WHERE ($after_seq IS NULL OR a.seq > $after_seq)
  AND ($states IS NULL OR a.state IN $states)
  AND ($since IS NULL OR a.detected_at >= $since)
RETURN a.seq AS seq, a.doc AS doc
ORDER BY a.seq LIMIT $limit
"""
_ALERTS_AFTER: LiteralString = """
MATCH (a:DeadlineAlert) WHERE a.seq > $after_seq
  AND ($states IS NULL OR a.state IN $states)
  AND ($since IS NULL OR a.detected_at >= $since)
RETURN a.seq AS seq, a.doc AS doc
ORDER BY a.seq LIMIT $limit
"""
_MAX_SEQ: LiteralString = "OPTIONAL MATCH (c:DeadlineSequence {name: 'alert'}) RETURN coalesce(c.value, 0) AS value"
_SINK_CURSOR: LiteralString = "MATCH (c:DeadlineSinkCursor {sink: $sink}) RETURN c.last_seq AS last_seq"
_SET_SINK_CURSOR: LiteralString = """
MERGE (c:DeadlineSinkCursor {sink: $sink})
ON CREATE SET c.last_seq = $seq
ON MATCH SET c.last_seq = CASE WHEN c.last_seq >= $seq THEN c.last_seq ELSE $seq END
"""
# Setting checked_at first takes the node's write lock, so the holder and expiry read next are the
# committed ones (Neo4j's pattern against lost updates): two claims of an expired lease cannot both win.
_CLAIM_LEASE: LiteralString = """
MERGE (l:DeadlineLease {name: $name})
SET l.checked_at = $now
WITH l
SET l += CASE WHEN l.holder IS NULL OR l.holder = $holder OR l.expires_at <= $now
              THEN {holder: $holder, expires_at: $until} ELSE {} END
RETURN l.holder AS holder
"""
_RELEASE_LEASE: LiteralString = "MATCH (l:DeadlineLease {name: $name, holder: $holder}) DELETE l"
_RECORD_FAILURE: LiteralString = """
MERGE (f:DeadlineDeliveryFailure {key: $key})
SET f.sink = $sink, f.seq = $seq, f.error = $error
"""
_DELIVERY_FAILURES: LiteralString = """
MATCH (f:DeadlineDeliveryFailure) WHERE f.sink = $sink
RETURN f.seq AS seq, f.error AS error ORDER BY f.seq
"""

# --- reports -------------------------------------------------------------------------------------
_MILESTONES_WHERE: LiteralString = """
MATCH (m:Milestone)
WHERE ($investigation_id IS NULL OR m.investigation_id = $investigation_id)
  AND ($states IS NULL OR m.state IN $states)
  AND ($due_since IS NULL OR m.due_at >= $due_since)
  AND ($due_until IS NULL OR m.due_at <= $due_until)
MATCH (i:Investigation {id: m.investigation_id})
WITH m, i ORDER BY m.due_at, m.id LIMIT $limit
RETURN [m.id, m.investigation_id, m.kind, m.person_id, m.started_at, m.due_at, m.at_risk_at, m.state, m.met_at,
        m.epoch, m.reason, m.evaluated_at, m.at_due] AS row, properties(i) AS inv
"""
_COMPLIANCE: dict[str, LiteralString] = {
    "region": """
MATCH (m:Milestone)
WHERE ($due_since IS NULL OR m.due_at >= $due_since) AND ($due_until IS NULL OR m.due_at <= $due_until)
MATCH (i:Investigation {id: m.investigation_id})
RETURN i.region AS grp, m.kind AS kind, m.person_id IS NOT NULL AS personal, m.state AS state, count(*) AS n
""",
    "team": """
MATCH (m:Milestone)
WHERE ($due_since IS NULL OR m.due_at >= $due_since) AND ($due_until IS NULL OR m.due_at <= $due_until)
MATCH (i:Investigation {id: m.investigation_id})
RETURN i.team AS grp, m.kind AS kind, m.person_id IS NOT NULL AS personal, m.state AS state, count(*) AS n
""",
}

#: Investigations' writes per transaction in :meth:`Neo4jDeadlineRepository.apply_evaluations`.
APPLY_CHUNK = 1000


def _key(*parts: Any) -> str:
    return json.dumps(list(parts), ensure_ascii=False)


def _inv_props(inv: Investigation) -> dict[str, Any]:
    props = dict(zip(INV_FIELDS, inv_values(inv), strict=True))
    props["case_key"] = inv.case_id if inv.kind.value == "case" else None
    return {k: v for k, v in props.items() if v is not None}


def _inv(props: dict[str, Any]) -> Investigation:
    return inv_from_row([props.get(name) for name in INV_FIELDS])


def _ms_props(m: Milestone, next_check: datetime | None, reason_json: str | None = None) -> dict[str, Any]:
    props = dict(zip(MS_FIELDS, (m.id, m.investigation_id, m.kind.value, m.person_id, *ms_values(m, reason_json)),
                     strict=True))
    props["next_check_at"] = us(next_check)
    return props


def _tracked_row(t: TrackedPerson) -> dict[str, Any]:
    return {
        "key": _key(t.investigation_id, t.person_id), "investigation_id": t.investigation_id,
        "person_id": t.person_id, "role": t.role, "first_seen_at": us(t.first_seen_at),
    }


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


# --- transaction functions (idempotent: they may be retried) ------------------------------------
def _run(tx: ManagedTransaction, query: LiteralString, **params: Any) -> None:
    tx.run(query, params).consume()


def _fetch(tx: ManagedTransaction, query: LiteralString, **params: Any) -> list[Any]:
    return list(tx.run(query, params))


def _fetch_many(tx: ManagedTransaction, queries: Sequence[tuple[LiteralString, dict[str, Any]]]) -> list[list[Any]]:
    return [list(tx.run(query, params)) for query, params in queries]


def _add_investigation_tx(
    tx: ManagedTransaction, inv: dict, milestones: list[dict], tracked: list[dict], dirty_at: int,
    request: dict | None,
) -> bool:
    taken = tx.run(_INVESTIGATION_EXISTS, {"id": inv["id"], "case_key": inv.get("case_key")}).single(strict=True)
    if taken["taken"]:
        return False
    _run(tx, _CREATE_INVESTIGATION, row=inv)
    if milestones:
        _run(tx, _INSERT_MILESTONES, rows=milestones)
    if tracked:
        _run(tx, _UPSERT_TRACKED, rows=tracked)
    _run(tx, _MARK_DIRTY, ids=[inv["id"]], at=dirty_at)
    if request is not None:
        _run(tx, _CREATE_ASSIST, row=request)
    return True


def _add_investigations_tx(tx: ManagedTransaction, rows: list[tuple[dict, list[dict]]]) -> int:
    ids = [inv["id"] for inv, _ in rows]
    cases = [inv["case_key"] for inv, _ in rows if inv.get("case_key") is not None]
    taken = {r["id"] for r in tx.run(_GET_INVESTIGATIONS, {"ids": ids})}
    taken_cases = {r["case_id"] for r in tx.run(_INVESTIGATIONS_FOR_CASES, {"ids": cases})}
    new = [
        (inv, ms) for inv, ms in rows if inv["id"] not in taken and inv.get("case_key") not in taken_cases
    ]
    if new:
        _run(tx, _CREATE_INVESTIGATIONS, rows=[inv for inv, _ in new])
        _run(tx, _INSERT_MILESTONES, rows=[m for _, ms in new for m in ms])
        _run(tx, _MARK_DIRTY_ROWS, rows=[{"id": inv["id"], "at": inv["opened_at"]} for inv, _ in new])
    return len(new)


def _update_investigation_tx(tx: ManagedTransaction, params: dict, at: int) -> None:
    _run(tx, _UPDATE_INVESTIGATION, **params)
    _run(tx, _MARK_DIRTY, ids=[params["id"]], at=at)


def _mark_dirty_tx(tx: ManagedTransaction, full: list[str], named: list[dict], at: int) -> None:
    if full:
        _run(tx, _MARK_DIRTY, ids=full, at=at)
    if named:
        _run(tx, _MARK_DIRTY_PERSONS, rows=named, at=at)


def _dirty_mark(r) -> DirtyMark:
    persons = r["persons"]
    return DirtyMark(dt(r["since"]), dt(r["changed_at"]), None if persons is None else frozenset(persons))


def _fact_tx(tx: ManagedTransaction, query: LiteralString, row: dict, dirty_ids: list[str], at: int) -> None:
    _run(tx, query, row=row)
    if dirty_ids:
        _run(tx, _MARK_DIRTY, ids=dirty_ids, at=at)


def _resolve_tx(tx: ManagedTransaction, key: str, at: int, outcome: str, investigation_id: str) -> int:
    n = tx.run(_RESOLVE_TRACKED, {"key": key, "at": at, "outcome": outcome}).single(strict=True)["n"]
    if n == 1:
        _run(tx, _MARK_DIRTY, ids=[investigation_id], at=at)
    return n


def _set_sink_cursor_tx(tx: ManagedTransaction, sink: str, seq: int, failure: dict | None) -> None:
    _run(tx, _SET_SINK_CURSOR, sink=sink, seq=seq)
    if failure is not None:
        _run(tx, _RECORD_FAILURE, **failure)


class _Conflict(Exception):
    """A milestone changed between the sweep's read and its write (or the write raced another)."""


def _apply_tx(tx: ManagedTransaction, plans: list[dict]) -> tuple[list[tuple[str, int]], dict[str, str]]:
    """Apply planned evaluation writes; returns (alert key, seq) inserted and the refused investigations.

    Plans whose milestones changed since they were read are refused (left out);
    the others are applied together. A conflict detected only while writing
    (another writer between the lock and the update: not expected, as the
    lock is held) raises :class:`_Conflict` and rolls the whole batch back.
    """
    refused: dict[str, str] = {}
    ids = [u["id"] for p in plans for u in p["updates"]]
    if ids:
        current = {r["id"]: (r["state"], r["epoch"], r["reason"]) for r in tx.run(_LOCK_MILESTONES, {"ids": ids})}
        for p in plans:
            for u in p["updates"]:
                found = current.get(u["id"])
                if found is None or found[:2] != (u["expected_state"], u["expected_epoch"]) or (
                    u["expected_reason"] is not None and found[2] != u["expected_reason"]
                ):
                    refused[p["investigation_id"]] = f"milestone {u['id']} changed since it was read"
                    break
    accepted = [p for p in plans if p["investigation_id"] not in refused]
    updates = [u for p in accepted for u in p["updates"]]
    if updates:
        n = tx.run(_UPDATE_MILESTONES, {"rows": updates}).single(strict=True)["n"]
        if n != len(updates):
            raise _Conflict(f"{len(updates) - n} milestone(s) changed while being written")
    new_milestones = [m for p in accepted for m in p["new_milestones"]]
    if new_milestones:
        _run(tx, _INSERT_MILESTONES, rows=new_milestones)
    changes = [p["facts_change"] for p in accepted if p["facts_change"] is not None]
    if changes:
        _run(tx, _SET_FACTS_CHANGE, rows=changes)
    digests = [{"id": p["investigation_id"], "digest": p["digest"]} for p in accepted if p["digest"] is not None]
    if digests:
        _run(tx, _SET_DIGEST, rows=digests)
    tracked = [t for p in accepted for t in p["tracked"]]
    if tracked:
        _run(tx, _UPSERT_TRACKED, rows=tracked)
    inserted: list[tuple[str, int]] = []
    alerts = [a for p in accepted for a in p["alerts"]]
    if alerts:
        last = tx.run(_LOCK_SEQUENCE).single(strict=True)["value"]  # serialises alert writers from here
        existing = {r["key"] for r in tx.run(_EXISTING_ALERTS, {"keys": [a["key"] for a in alerts]})}
        rows = []
        for alert in alerts:
            if alert["key"] in existing:
                continue
            existing.add(alert["key"])
            last += 1
            rows.append({**alert, "seq": last})
            inserted.append((alert["key"], last))
        if rows:
            _run(tx, _CREATE_ALERTS, rows=rows)
            _run(tx, _SET_SEQUENCE, value=last)
    tokens = [{"id": p["investigation_id"], "token": p["dirty_token"]} for p in accepted if p["dirty_token"] is not None]
    if tokens:
        _run(tx, _CLEAR_DIRTY, rows=tokens)
    return inserted, refused


def _plan(write: EvaluationWrite) -> dict[str, Any]:
    updates = [
        {
            "id": u.id, "expected_state": u.expected_state.value, "expected_epoch": u.expected_epoch,
            "expected_reason": u.expected_reason,
            "props": {
                "state": u.state.value, "met_at": u.met_at, "epoch": u.epoch, "reason": u.reason_json,
                "evaluated_at": u.evaluated_at, "next_check_at": u.next_check_at,
            },
            "at_due": u.at_due_json,
        }
        for u in write.updates
    ]
    return {
        "investigation_id": write.investigation_id,
        "updates": updates,
        "new_milestones": [{k: v for k, v in _ms_props(m, nxt).items() if v is not None} for m, nxt in write.new_milestones],
        "tracked": [_tracked_row(t) for t in write.new_tracked],
        "alerts": [
            {
                "key": a.key, "investigation_id": a.investigation_id, "milestone_id": a.milestone_id,
                "state": a.state.value, "detected_at": us(a.detected_at), "doc": a.model_dump_json(exclude={"seq"}),
            }
            for a in write.alerts
        ],
        "dirty_token": us(write.dirty_token),
        "facts_change": (
            {"id": write.investigation_id, "at": write.facts_change_at} if write.store_facts_change else None
        ),
        "digest": write.contacts_digest,
    }


class Neo4jDeadlineRepository:
    """Deadline nodes in the same Neo4j database as the graph (see module docstring)."""

    def __init__(self, store) -> None:  # store: tracing.store.neo4j.Neo4jStore
        self._store = store
        self._create_schema()

    def _create_schema(self) -> None:
        """Create missing constraints (first) and indexes, idempotently, and wait until they are online."""
        try:
            existing = {r["name"] for query in _SHOW_SCHEMA for r in self._read(query)}
        except Forbidden:
            existing = set()
        missing = [s for s in (*_CONSTRAINTS, *_INDEXES) if s.split()[2] not in existing]
        if not missing:
            return
        for statement in missing:
            # Schema commands cannot share a transaction with other writes: one each (idempotent).
            self._store.execute_write(_run, statement)
        self._store.execute_write(_run, _AWAIT_INDEXES, seconds=300)

    # --- helpers ---------------------------------------------------------------------------
    def _read(self, query: LiteralString, **params: Any) -> list[Any]:
        return self._store.execute_read(_fetch, query, **params)

    def _write(self, query: LiteralString, **params: Any) -> None:
        self._store.execute_write(_run, query, **params)

    # --- investigations ---------------------------------------------------------------------
    def add_investigation(
        self, investigation: Investigation, milestones: Sequence[Milestone], *, tracked: Sequence[TrackedPerson] = ()
    ) -> bool:
        return self._add(investigation, milestones, tracked, None)

    def _add(
        self, investigation: Investigation, milestones: Sequence[Milestone], tracked: Sequence[TrackedPerson],
        request: AssistRequest | None,
    ) -> bool:
        rows = [{k: v for k, v in _ms_props(m, m.at_risk_at).items() if v is not None} for m in milestones]
        request_row = None if request is None else {"id": request.id, "doc": request.model_dump_json()}
        try:
            return self._store.execute_write(
                _add_investigation_tx, _inv_props(investigation), rows, [_tracked_row(t) for t in tracked],
                us(investigation.opened_at), request_row,
            )
        except ConstraintError:  # lost a race with a concurrent opener of the same id or case
            return False

    def add_investigations(self, items: Sequence[tuple[Investigation, Sequence[Milestone]]]) -> int:
        """Bulk insert (imports, benchmarks), one transaction per 2,000; returns how many were new.

        Ids already stored are skipped; a concurrent insert of the same id fails the chunk.
        """
        added = 0
        for lo in range(0, len(items), 2_000):
            chunk = items[lo : lo + 2_000]
            rows = [
                (_inv_props(inv), [{k: v for k, v in _ms_props(m, m.at_risk_at).items() if v is not None} for m in ms])
                for inv, ms in chunk
            ]
            added += self._store.execute_write(_add_investigations_tx, rows)
        return added

    def get_investigations(self, ids: Iterable[str]) -> dict[str, Investigation]:
        unique = _unique(ids)
        if not unique:
            return {}
        return {r["props"]["id"]: _inv(r["props"]) for r in self._read(_GET_INVESTIGATIONS, ids=unique)}

    def investigation_ids_for_cases(self, case_ids: Iterable[str]) -> dict[str, str]:
        unique = _unique(case_ids)
        if not unique:
            return {}
        return {r["case_id"]: r["id"] for r in self._read(_INVESTIGATIONS_FOR_CASES, ids=unique)}

    def update_investigation(self, investigation: Investigation, *, now: datetime) -> None:
        row = dict(zip(INV_FIELDS, inv_values(investigation), strict=True))
        params = {k: row[k] for k in ("id", "region", "team", "status", "closed_at", "no_contacts_at")}
        self._store.execute_write(_update_investigation_tx, params, us(now))

    def milestones_of(self, ids: Iterable[str], *, full: bool = True) -> dict[str, list[Milestone]]:
        unique = _unique(ids)
        found: dict[str, list[Milestone]] = {}
        if not unique:
            return found
        for r in self._read(_MILESTONES_OF if full else _MILESTONES_OF_BRIEF, ids=unique):
            row = r["row"]
            found.setdefault(row[1], []).append(ms_from_row(row, full))
        for milestones in found.values():
            milestones.sort(key=lambda m: m.id)
        return found

    def clocks_of(self, ids: Iterable[str]) -> dict[str, list[Clock]]:
        unique = _unique(ids)
        found: dict[str, list[Clock]] = {}
        if not unique:
            return found
        for r in self._read(_CLOCKS_OF, ids=unique):
            clock = clock_from_row(r["row"])
            found.setdefault(clock.investigation_id, []).append(clock)
        for clocks in found.values():
            clocks.sort(key=lambda c: c.id)
        return found

    def tracked_brief_of(self, ids: Iterable[str]) -> dict[str, dict[str, Tracked]]:
        unique = _unique(ids)
        found: dict[str, dict[str, Tracked]] = {}
        if not unique:
            return found
        for r in self._read(_TRACKED_OF, ids=unique):
            found.setdefault(r["investigation_id"], {})[r["person_id"]] = (
                r["role"], r["first_seen_at"], r["resolved_at"]
            )
        return found

    def tracked_counts(self, ids: Iterable[str]) -> dict[str, int]:
        unique = _unique(ids)
        if not unique:
            return {}
        return {r["investigation_id"]: r["n"] for r in self._read(_TRACKED_COUNTS, ids=unique)}

    def tracked_of(self, ids: Iterable[str]) -> dict[str, dict[str, TrackedRow]]:
        unique = _unique(ids)
        found: dict[str, dict[str, TrackedRow]] = {}
        if not unique:
            return found
        for r in self._read(_TRACKED_OF, ids=unique):
            person = trusted(TrackedPerson, {
                "investigation_id": r["investigation_id"], "person_id": r["person_id"], "role": r["role"],
                "first_seen_at": dt(r["first_seen_at"]),
            })
            found.setdefault(r["investigation_id"], {})[r["person_id"]] = TrackedRow(
                person, dt(r["resolved_at"]), r["outcome"]
            )
        return found

    # --- facts -------------------------------------------------------------------------------
    def record_arrival(self, arrival: InvestigatorArrival, *, now: datetime | None = None) -> None:
        at = us(arrival.arrived_at)
        row = {
            "key": _key(arrival.investigation_id, arrival.investigator, at), "investigation_id": arrival.investigation_id,
            "investigator": arrival.investigator, "arrived_at": at,
        }
        self._store.execute_write(_fact_tx, _MERGE_ARRIVAL, row, [arrival.investigation_id], us(now or arrival.arrived_at))

    def arrivals_of(self, ids: Iterable[str]) -> dict[str, list[InvestigatorArrival]]:
        unique = _unique(ids)
        found: dict[str, list[InvestigatorArrival]] = {}
        if not unique:
            return found
        for r in self._read(_ARRIVALS_OF, ids=unique):
            found.setdefault(r["investigation_id"], []).append(InvestigatorArrival.model_construct(
                investigation_id=r["investigation_id"], investigator=r["investigator"], arrived_at=dt(r["arrived_at"])
            ))
        return found

    def record_isolation_arrival(
        self, person_id: str, site_id: str, arrived_at: datetime, *, now: datetime | None = None
    ) -> set[str]:
        watching = self.investigations_watching([person_id])
        at = us(arrived_at)
        row = {"key": _key(person_id, site_id, at), "person_id": person_id, "site_id": site_id, "arrived_at": at}
        self._store.execute_write(_fact_tx, _MERGE_ISOLATION, row, sorted(watching), us(now or arrived_at))
        return set(watching)

    def isolation_arrivals_of(self, person_ids: Iterable[str]) -> dict[str, IsolationArrival]:
        unique = _unique(person_ids)
        if not unique:
            return {}
        return {
            r["person_id"]: IsolationArrival.model_construct(
                person_id=r["person_id"], site_id=r["site_id"], arrived_at=dt(r["arrived_at"])
            )
            for r in self._read(_ISOLATION_OF, ids=unique)
        }

    def add_assist_request(
        self, request: AssistRequest, investigation: Investigation, milestones: Sequence[Milestone],
        tracked: Sequence[TrackedPerson],
    ) -> bool:
        return self._add(investigation, milestones, tracked, request)

    def get_assist_requests(self, ids: Iterable[str]) -> dict[str, AssistRequest]:
        unique = _unique(ids)
        if not unique:
            return {}
        found = (AssistRequest.model_validate_json(r["doc"]) for r in self._read(_GET_ASSIST, ids=unique))
        return {request.id: request for request in found}

    def resolve_assist_person(self, request_id: str, person_id: str, *, outcome: str, at: datetime) -> None:
        n = self._store.execute_write(_resolve_tx, _key(request_id, person_id), us(at), outcome, request_id)
        if n != 1:
            raise KeyError(f"{person_id!r} is not on assist request {request_id!r}")

    # --- work queues ----------------------------------------------------------------------------
    def investigations_watching(self, person_ids: Iterable[str]) -> dict[str, set[str]]:
        unique = _unique(person_ids)
        if not unique:
            return {}
        cases, tracked = self._store.execute_read(
            _fetch_many, [(_WATCHING_CASES, {"ids": unique}), (_WATCHING_TRACKED, {"ids": unique})]
        )
        found: dict[str, set[str]] = {}
        for r in (*cases, *tracked):
            found.setdefault(r["id"], set()).add(r["pid"])
        return found

    def mark_dirty(self, ids: Iterable[str], at: datetime, *, persons: Mapping[str, Iterable[str]] | None = None) -> int:
        unique = sorted(set(ids))  # a stable order: concurrent markers lock in the same order
        persons = persons or {}
        full = [i for i in unique if i not in persons]
        named = [{"id": i, "persons": sorted(set(persons[i]))} for i in unique if i in persons]
        if full or named:
            self._store.execute_write(_mark_dirty_tx, full, named, us(at))
        return len(unique)

    def due_for_sweep(self, now: datetime, *, limit: int) -> tuple[dict[str, DirtyMark], set[str]]:
        dirty, timed = self._store.execute_read(
            _fetch_many, [(_DIRTY, {"limit": limit}), (_TIMED, {"now": us(now), "limit": limit})]
        )
        return (
            {r["id"]: _dirty_mark(r) for r in dirty},
            {r["id"] for r in timed},
        )

    def evaluation_stamps(self, ids: Iterable[str]) -> dict[str, tuple[int | None, str | None]]:
        unique = _unique(ids)
        if not unique:
            return {}
        return {r["id"]: (r["at"], r["digest"]) for r in self._read(_EVALUATION_STAMPS, ids=unique)}

    def dirty_marks(self, *, limit: int) -> dict[str, DirtyMark]:
        return {r["id"]: _dirty_mark(r) for r in self._read(_DIRTY, limit=limit)}

    def due_clocks(self, now: datetime, *, limit: int) -> list[Clock]:
        return [clock_from_row(r["row"]) for r in self._read(_DUE_CLOCKS, now=us(now), limit=limit)]

    def apply_evaluations(self, writes: Sequence[EvaluationWrite]) -> tuple[list[Alert], dict[str, str]]:
        if not writes:
            return [], {}
        plans = [_plan(w) for w in writes]
        by_key = {a.key: a for w in writes for a in w.alerts}
        inserted: list[tuple[str, int]] = []
        refused: dict[str, str] = {}
        # One transaction per chunk: each investigation's write is atomic on its own, and a sweep of
        # thousands (the first after a bulk import) in one transaction outgrows the server's
        # transaction memory (dbms.memory.transaction.total.max), fails and is retried in vain.
        for start in range(0, len(plans), APPLY_CHUNK):
            chunk = plans[start:start + APPLY_CHUNK]
            try:
                one, why = self._store.execute_write(_apply_tx, chunk)
                inserted.extend(one)
                refused.update(why)
            except DriverError as error:
                # The server is out of reach (the driver gave up retrying): the earlier chunks are stored
                # and reported; these investigations stay dirty for the next sweep.
                for plan in chunk:
                    refused[plan["investigation_id"]] = f"{type(error).__name__}: {error}"
            except (_Conflict, Neo4jError):
                # Something in the chunk failed: apply each investigation's write on its own, so only
                # the failing ones are refused (as the SQLite adapter does with savepoints).
                for plan in chunk:
                    try:
                        one, why = self._store.execute_write(_apply_tx, [plan])
                    except (_Conflict, Neo4jError) as error:
                        refused[plan["investigation_id"]] = f"{type(error).__name__}: {error}"
                        continue
                    inserted.extend(one)
                    refused.update(why)
        return [by_key[key].model_copy(update={"seq": seq}) for key, seq in inserted], refused

    # --- alerts ------------------------------------------------------------------------------------
    def alerts(
        self, *, after_seq: int | None = None, investigation_id: str | None = None,
        states: Iterable[MilestoneState] | None = None, since: datetime | None = None, limit: int | None = None,
    ) -> list[Alert]:
        params = {
            "after_seq": after_seq, "investigation_id": investigation_id,
            "states": None if states is None else [MilestoneState(s).value for s in states],
            "since": us(since), "limit": _NO_LIMIT if limit is None else limit,
        }
        if investigation_id is not None:
            query = _ALERTS_OF  # index seek on the investigation
        elif after_seq is not None:
            query = _ALERTS_AFTER  # range seek on the seq constraint's index
        else:
            query = _ALERTS
        return [
            Alert.model_validate_json(r["doc"]).model_copy(update={"seq": r["seq"]}) for r in self._read(query, **params)
        ]

    def max_alert_seq(self) -> int:
        return self._read(_MAX_SEQ)[0]["value"]

    def sink_cursor(self, sink: str) -> int | None:
        rows = self._read(_SINK_CURSOR, sink=sink)
        return rows[0]["last_seq"] if rows else None

    def set_sink_cursor(self, sink: str, seq: int, *, failed: bool = False, error: str | None = None) -> None:
        failure = {"key": _key(sink, seq), "sink": sink, "seq": seq, "error": error} if failed else None
        self._store.execute_write(_set_sink_cursor_tx, sink, seq, failure)

    def delivery_failures(self, sink: str) -> list[tuple[int, str | None]]:
        return [(r["seq"], r["error"]) for r in self._read(_DELIVERY_FAILURES, sink=sink)]

    # --- the sweep lease ---------------------------------------------------------------------------
    def claim_sweep(self, holder: str, *, now: datetime, until: datetime) -> str:
        def claim(tx: ManagedTransaction) -> str:
            return _fetch(tx, _CLAIM_LEASE, name="sweep", holder=holder, now=us(now), until=us(until))[0]["holder"]

        return self._store.execute_write(claim)

    def release_sweep(self, holder: str) -> None:
        self._write(_RELEASE_LEASE, name="sweep", holder=holder)

    # --- reports -----------------------------------------------------------------------------------
    def milestones_where(
        self, *, states: Iterable[MilestoneState] | None = None, due_since: datetime | None = None,
        due_until: datetime | None = None, investigation_id: str | None = None, limit: int | None = None,
    ) -> list[tuple[Milestone, Investigation]]:
        rows = self._read(
            _MILESTONES_WHERE, investigation_id=investigation_id,
            states=None if states is None else [MilestoneState(s).value for s in states],
            due_since=us(due_since), due_until=us(due_until), limit=_NO_LIMIT if limit is None else limit,
        )
        return [(ms_from_row(r["row"]), _inv(r["inv"])) for r in rows]

    def compliance_rows(
        self, *, group_by: str, due_since: datetime | None = None, due_until: datetime | None = None
    ) -> list[ComplianceRow]:
        query = _COMPLIANCE.get(group_by)
        if query is None:
            raise ValueError(f"group_by must be 'region' or 'team', not {group_by!r}")
        rows = [
            ComplianceRow(group=r["grp"], kind=r["kind"], personal=r["personal"], state=MilestoneState(r["state"]),
                          count=r["n"])
            for r in self._read(query, due_since=us(due_since), due_until=us(due_until))
        ]
        return sorted(rows, key=lambda x: (x.group is not None, x.group or "", x.kind, x.personal, x.state.value))
