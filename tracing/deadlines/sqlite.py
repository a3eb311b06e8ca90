"""SQLite adapter of :class:`~tracing.deadlines.repository.DeadlineRepository`.

Keeps its tables (prefix ``dl_``) in the graph store's database file through
:meth:`SQLiteStore.transaction` and :meth:`SQLiteStore.query`, so one backup
covers graph and deadlines. Times are integer microseconds since the epoch
(UTC), as in the graph tables. Every value is a bound parameter; only
placeholder lists and fixed column names are formatted into SQL.

Work queues
-----------
``dl_dirty``
    One row per investigation some write may have changed (``since`` =
    earliest, ``changed_at`` = latest marking, and at least 1 µs later at
    each marking, so that a mark made after the sweep read it, even with an
    older clock, survives the sweep's clear; ``persons``, a JSON array,
    when only those persons' recorded fields changed, NULL when anything
    may have). Cleared by the sweep with a token so a mark that raced the
    sweep survives.
``dl_milestones.next_check_at``
    The next time-driven transition of an unmet milestone (at-risk time
    while pending, due time while at risk), under a partial index: the
    sweep finds time crossings with one range scan, never a full scan.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime

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

from ..store.sqlite import id_chunks, placeholders
from .engine import trusted
from .repository import Clock, ComplianceRow, DirtyMark, EvaluationWrite, MilestoneUpdate, Tracked, TrackedRow
from .rows import clock_from_row, inv_from_row, inv_values, ms_from_row, ms_values
from .rows import dt as _dt
from .rows import us as _us

__all__ = ["SQLiteDeadlineRepository"]



_chunks, _marks = id_chunks, placeholders


SCHEMA = """
CREATE TABLE IF NOT EXISTS dl_investigations (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    case_id TEXT,
    region TEXT,
    team TEXT,
    opened_at INTEGER NOT NULL,
    clock_start_at INTEGER NOT NULL,
    clock_source TEXT NOT NULL,
    status TEXT NOT NULL,
    closed_at INTEGER,
    no_contacts_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS dl_investigations_case ON dl_investigations(case_id) WHERE kind = 'case';
CREATE TABLE IF NOT EXISTS dl_milestones (
    id TEXT PRIMARY KEY NOT NULL,
    investigation_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    person_id TEXT,
    started_at INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    at_risk_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    met_at INTEGER,
    epoch INTEGER NOT NULL,
    reason TEXT NOT NULL,
    evaluated_at INTEGER,
    at_due TEXT,
    next_check_at INTEGER
);
CREATE INDEX IF NOT EXISTS dl_milestones_investigation ON dl_milestones(investigation_id);
CREATE INDEX IF NOT EXISTS dl_milestones_state_due ON dl_milestones(state, due_at);
CREATE INDEX IF NOT EXISTS dl_milestones_due ON dl_milestones(due_at);
CREATE INDEX IF NOT EXISTS dl_milestones_next ON dl_milestones(next_check_at) WHERE next_check_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS dl_dirty (
    investigation_id TEXT PRIMARY KEY NOT NULL,
    since INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    persons TEXT
);
CREATE TABLE IF NOT EXISTS dl_tracked (
    investigation_id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    role TEXT NOT NULL,
    first_seen_at INTEGER NOT NULL,
    resolved_at INTEGER,
    outcome TEXT,
    PRIMARY KEY (investigation_id, person_id)
);
CREATE INDEX IF NOT EXISTS dl_tracked_person ON dl_tracked(person_id);
CREATE TABLE IF NOT EXISTS dl_arrivals (
    investigation_id TEXT NOT NULL,
    investigator TEXT NOT NULL,
    arrived_at INTEGER NOT NULL,
    PRIMARY KEY (investigation_id, investigator, arrived_at)
);
CREATE TABLE IF NOT EXISTS dl_isolation_arrivals (
    person_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    arrived_at INTEGER NOT NULL,
    PRIMARY KEY (person_id, site_id, arrived_at)
);
CREATE TABLE IF NOT EXISTS dl_assist_requests (
    id TEXT PRIMARY KEY NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dl_alerts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    investigation_id TEXT NOT NULL,
    milestone_id TEXT NOT NULL,
    state TEXT NOT NULL,
    detected_at INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dl_alerts_investigation ON dl_alerts(investigation_id, seq);
CREATE INDEX IF NOT EXISTS dl_alerts_detected ON dl_alerts(detected_at);
CREATE TABLE IF NOT EXISTS dl_leases (
    name TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dl_sink_cursors (
    sink TEXT PRIMARY KEY NOT NULL,
    last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dl_delivery_failures (
    sink TEXT NOT NULL,
    seq INTEGER NOT NULL,
    error TEXT,
    PRIMARY KEY (sink, seq)
);
"""

_INV_COLUMNS = (
    "id, kind, case_id, region, team, opened_at, clock_start_at, clock_source, status, closed_at, no_contacts_at"
)
_MS_COLUMNS = (
    "id, investigation_id, kind, person_id, started_at, due_at, at_risk_at, state, met_at, epoch, reason, "
    "evaluated_at, at_due"
)
_INSERT_MS = f"""
INSERT INTO dl_milestones ({_MS_COLUMNS}, next_check_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(id) DO NOTHING
"""
_UPDATE_MS = """
UPDATE dl_milestones SET state = ?, met_at = ?, epoch = ?, reason = ?, evaluated_at = ?, at_due = coalesce(?, at_due),
    next_check_at = ?
WHERE id = ? AND state = ? AND epoch = ? AND (? IS NULL OR reason = ?)
"""
# Most sweep updates change only the reason (who lacks what): this one leaves the state and queue indexes alone.
_UPDATE_MS_REASON = """
UPDATE dl_milestones SET met_at = ?, epoch = ?, reason = ?, evaluated_at = ?, at_due = coalesce(?, at_due)
WHERE id = ? AND state = ? AND epoch = ? AND next_check_at IS ? AND (? IS NULL OR reason = ?)
"""
# The sweep's light read: the snapshot only as presence (a constant, not its JSON).
_CLOCK_COLUMNS = (
    "id, investigation_id, kind, person_id, started_at, due_at, at_risk_at, state, met_at, epoch, reason, "
    "evaluated_at, CASE WHEN at_due IS NULL THEN NULL ELSE 1 END, next_check_at"
)
_DUE_CLOCKS = (
    f"SELECT {_CLOCK_COLUMNS} FROM dl_milestones WHERE next_check_at IS NOT NULL AND next_check_at <= ? "
    "ORDER BY next_check_at LIMIT ?"
)
_MARK_DIRTY = """
INSERT INTO dl_dirty (investigation_id, since, changed_at) VALUES (?, ?, ?)
ON CONFLICT(investigation_id) DO UPDATE SET since = min(since, excluded.since),
    changed_at = max(changed_at + 1, excluded.changed_at), persons = NULL
"""
# A mark naming the persons whose fields changed (a JSON array): merged by union, unless the stored
# mark already says anything may have changed (NULL), which it keeps.
_MARK_DIRTY_PERSONS = """
INSERT INTO dl_dirty (investigation_id, since, changed_at, persons) VALUES (?, ?, ?, ?)
ON CONFLICT(investigation_id) DO UPDATE SET since = min(since, excluded.since),
    changed_at = max(changed_at + 1, excluded.changed_at),
    persons = CASE WHEN dl_dirty.persons IS NULL THEN NULL ELSE (
        SELECT json_group_array(value) FROM (
            SELECT value FROM json_each(dl_dirty.persons) UNION SELECT value FROM json_each(excluded.persons)
        )
    ) END
"""
_SET_FACTS_CHANGE = "UPDATE dl_investigations SET facts_change_at = ? WHERE id = ?"
_SET_DIGEST = "UPDATE dl_investigations SET contacts_digest = ? WHERE id = ?"
_INSERT_ALERT = (
    "INSERT OR IGNORE INTO dl_alerts (key, investigation_id, milestone_id, state, detected_at, doc) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
# Takes the lease if free, expired or already ours; leaves another holder's live lease alone.
_CLAIM_LEASE = """
INSERT INTO dl_leases (name, holder, expires_at) VALUES (?, ?, ?)
ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE dl_leases.holder = excluded.holder OR dl_leases.expires_at <= ?
"""
# Clears a dirty mark unless the investigation was marked again after the evaluation read it.
_CLEAR_DIRTY = "DELETE FROM dl_dirty WHERE investigation_id = ? AND changed_at <= ?"
_INSERT_TRACKED = """
INSERT INTO dl_tracked (investigation_id, person_id, role, first_seen_at) VALUES (?, ?, ?, ?)
ON CONFLICT(investigation_id, person_id) DO UPDATE SET role = excluded.role
"""


_inv_row = inv_values
_inv = inv_from_row
_ms_values = ms_values
_ms = ms_from_row


class SQLiteDeadlineRepository:
    """Deadline tables in the same SQLite database as the graph (see module docstring)."""

    def __init__(self, store) -> None:  # store: tracing.store.sqlite.SQLiteStore
        self._store = store
        with store.transaction() as conn:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(dl_investigations)")}
            if "facts_change_at" not in columns:  # added after the first release: O(1) in SQLite
                conn.execute("ALTER TABLE dl_investigations ADD COLUMN facts_change_at INTEGER")
            if "contacts_digest" not in columns:  # NULL: the next named mark is evaluated whole, which stores it
                conn.execute("ALTER TABLE dl_investigations ADD COLUMN contacts_digest TEXT")
            if "persons" not in {row[1] for row in conn.execute("PRAGMA table_info(dl_dirty)")}:
                conn.execute("ALTER TABLE dl_dirty ADD COLUMN persons TEXT")  # NULL: the older marks are full ones

    # --- helpers ------------------------------------------------------------------------
    def _query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        return self._store.query(sql, params)

    def _in(self, sql: str, ids: Iterable[str], extra: Sequence = ()) -> Iterator[tuple]:
        """Run ``sql`` (with one ``{marks}`` placeholder list) over ``ids`` in chunks."""
        for chunk in _chunks(ids):
            yield from self._query(sql.format(marks=_marks(len(chunk))), [*chunk, *extra])

    # --- investigations -------------------------------------------------------------------
    def add_investigation(
        self, investigation: Investigation, milestones: Sequence[Milestone], *, tracked: Sequence[TrackedPerson] = ()
    ) -> bool:
        with self._store.transaction() as conn:
            return self._insert_investigation(conn, investigation, milestones, tracked)

    def _insert_investigation(
        self, conn: sqlite3.Connection, investigation: Investigation, milestones: Sequence[Milestone],
        tracked: Sequence[TrackedPerson],
    ) -> bool:
        cursor = conn.execute(
            f"INSERT INTO dl_investigations ({_INV_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            _inv_row(investigation),
        )
        if cursor.rowcount != 1:
            return False
        conn.executemany(
            _INSERT_MS,
            [(m.id, m.investigation_id, m.kind.value, m.person_id, *_ms_values(m), _us(m.at_risk_at)) for m in milestones],
        )
        conn.executemany(
            _INSERT_TRACKED, [(t.investigation_id, t.person_id, t.role, _us(t.first_seen_at)) for t in tracked]
        )
        stamp = _us(investigation.opened_at)
        conn.execute(_MARK_DIRTY, (investigation.id, stamp, stamp))
        return True

    def add_investigations(self, items: Sequence[tuple[Investigation, Sequence[Milestone]]]) -> int:
        """Bulk insert (imports, benchmarks); returns how many were new."""
        added = 0
        with self._store.transaction() as conn:
            for investigation, milestones in items:
                added += self._insert_investigation(conn, investigation, milestones, ())
        return added

    def get_investigations(self, ids: Iterable[str]) -> dict[str, Investigation]:
        sql = f"SELECT {_INV_COLUMNS} FROM dl_investigations WHERE id IN ({{marks}})"
        return {row[0]: _inv(row) for row in self._in(sql, ids)}

    def investigation_ids_for_cases(self, case_ids: Iterable[str]) -> dict[str, str]:
        sql = "SELECT case_id, id FROM dl_investigations WHERE kind = 'case' AND case_id IN ({marks})"
        return {case_id: inv_id for case_id, inv_id in self._in(sql, case_ids)}

    def update_investigation(self, investigation: Investigation, *, now: datetime) -> None:
        row = _inv_row(investigation)
        with self._store.transaction() as conn:
            conn.execute(
                "UPDATE dl_investigations SET region = ?, team = ?, status = ?, closed_at = ?, no_contacts_at = ? "
                "WHERE id = ?",
                (row[3], row[4], row[8], row[9], row[10], investigation.id),
            )
            conn.execute(_MARK_DIRTY, (investigation.id, _us(now), _us(now)))

    def milestones_of(self, ids: Iterable[str], *, full: bool = True) -> dict[str, list[Milestone]]:
        found: dict[str, list[Milestone]] = {}
        # No ORDER BY in SQL: it would make SQLite walk the primary key instead of the investigation index.
        sql = f"SELECT {_MS_COLUMNS} FROM dl_milestones WHERE investigation_id IN ({{marks}})"
        for row in self._in(sql, ids):
            found.setdefault(row[1], []).append(_ms(row, full))
        for milestones in found.values():
            milestones.sort(key=lambda m: m.id)
        return found

    def clocks_of(self, ids: Iterable[str]) -> dict[str, list[Clock]]:
        found: dict[str, list[Clock]] = {}
        sql = f"SELECT {_CLOCK_COLUMNS} FROM dl_milestones WHERE investigation_id IN ({{marks}})"
        for row in self._in(sql, ids):
            clock = clock_from_row(row)
            found.setdefault(clock.investigation_id, []).append(clock)
        for clocks in found.values():
            clocks.sort(key=lambda c: c.id)
        return found

    def tracked_brief_of(self, ids: Iterable[str]) -> dict[str, dict[str, Tracked]]:
        found: dict[str, dict[str, Tracked]] = {}
        sql = (
            "SELECT investigation_id, person_id, role, first_seen_at, resolved_at FROM dl_tracked "
            "WHERE investigation_id IN ({marks})"
        )
        for inv_id, pid, role, first_seen, resolved in self._in(sql, ids):
            by_person = found.get(inv_id)
            if by_person is None:
                by_person = found[inv_id] = {}
            by_person[pid] = (role, first_seen, resolved)
        return found

    def tracked_counts(self, ids: Iterable[str]) -> dict[str, int]:
        sql = "SELECT investigation_id, count(*) FROM dl_tracked WHERE investigation_id IN ({marks}) GROUP BY 1"
        return dict(self._in(sql, ids))

    def tracked_of(self, ids: Iterable[str]) -> dict[str, dict[str, TrackedRow]]:
        found: dict[str, dict[str, TrackedRow]] = {}
        sql = (
            "SELECT investigation_id, person_id, role, first_seen_at, resolved_at, outcome FROM dl_tracked "
            "WHERE investigation_id IN ({marks})"
        )
        for inv_id, pid, role, first_seen, resolved, outcome in self._in(sql, ids):
            person = trusted(TrackedPerson, {
                "investigation_id": inv_id, "person_id": pid, "role": role, "first_seen_at": _dt(first_seen)
            })
            found.setdefault(inv_id, {})[pid] = TrackedRow(person, _dt(resolved), outcome)
        return found

    # --- facts ------------------------------------------------------------------------------
    def record_arrival(self, arrival: InvestigatorArrival, *, now: datetime | None = None) -> None:
        stamp = _us(now or arrival.arrived_at)
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO dl_arrivals (investigation_id, investigator, arrived_at) VALUES (?, ?, ?)",
                (arrival.investigation_id, arrival.investigator, _us(arrival.arrived_at)),
            )
            conn.execute(_MARK_DIRTY, (arrival.investigation_id, stamp, stamp))

    def arrivals_of(self, ids: Iterable[str]) -> dict[str, list[InvestigatorArrival]]:
        found: dict[str, list[InvestigatorArrival]] = {}
        sql = (
            "SELECT investigation_id, investigator, arrived_at FROM dl_arrivals WHERE investigation_id IN ({marks}) "
            "ORDER BY arrived_at"
        )
        for inv_id, who, at in self._in(sql, ids):
            found.setdefault(inv_id, []).append(
                InvestigatorArrival.model_construct(investigation_id=inv_id, investigator=who, arrived_at=_dt(at))
            )
        return found

    def record_isolation_arrival(
        self, person_id: str, site_id: str, arrived_at: datetime, *, now: datetime | None = None
    ) -> set[str]:
        watching = self.investigations_watching([person_id])
        stamp = _us(now or arrived_at)
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO dl_isolation_arrivals (person_id, site_id, arrived_at) VALUES (?, ?, ?)",
                (person_id, site_id, _us(arrived_at)),
            )
            conn.executemany(_MARK_DIRTY, [(inv_id, stamp, stamp) for inv_id in watching])
        return set(watching)

    def isolation_arrivals_of(self, person_ids: Iterable[str]) -> dict[str, IsolationArrival]:
        found: dict[str, IsolationArrival] = {}
        sql = (
            "SELECT person_id, site_id, arrived_at FROM dl_isolation_arrivals WHERE person_id IN ({marks}) "
            "ORDER BY arrived_at DESC"
        )
        for pid, site, at in self._in(sql, person_ids):  # descending: the earliest wins
            found[pid] = IsolationArrival.model_construct(person_id=pid, site_id=site, arrived_at=_dt(at))
        return found

    def add_assist_request(
        self, request: AssistRequest, investigation: Investigation, milestones: Sequence[Milestone],
        tracked: Sequence[TrackedPerson],
    ) -> bool:
        with self._store.transaction() as conn:
            if not self._insert_investigation(conn, investigation, milestones, tracked):
                return False
            conn.execute(
                "INSERT INTO dl_assist_requests (id, doc) VALUES (?, ?)", (request.id, request.model_dump_json())
            )
        return True

    def get_assist_requests(self, ids: Iterable[str]) -> dict[str, AssistRequest]:
        sql = "SELECT id, doc FROM dl_assist_requests WHERE id IN ({marks})"
        return {rid: AssistRequest.model_validate_json(doc) for rid, doc in self._in(sql, ids)}

    def resolve_assist_person(self, request_id: str, person_id: str, *, outcome: str, at: datetime) -> None:
        with self._store.transaction() as conn:
            cursor = conn.execute(
                "UPDATE dl_tracked SET resolved_at = ?, outcome = ? WHERE investigation_id = ? AND person_id = ?",
                (_us(at), outcome, request_id, person_id),
            )
            if cursor.rowcount != 1:
                raise KeyError(f"{person_id!r} is not on assist request {request_id!r}")
            conn.execute(_MARK_DIRTY, (request_id, _us(at), _us(at)))

    # --- work queues ----------------------------------------------------------------------------
    def investigations_watching(self, person_ids: Iterable[str]) -> dict[str, set[str]]:
        ids = list(dict.fromkeys(person_ids))
        found: dict[str, set[str]] = {}
        for inv_id, person_id in self._in(
            "SELECT id, case_id FROM dl_investigations WHERE kind = 'case' AND case_id IN ({marks}) AND status = 'open'",
            ids,
        ):
            found.setdefault(inv_id, set()).add(person_id)
        for inv_id, person_id in self._in(
            "SELECT t.investigation_id, t.person_id FROM dl_tracked t JOIN dl_investigations i "
            "ON i.id = t.investigation_id WHERE t.person_id IN ({marks}) AND i.status = 'open'",
            ids,
        ):
            found.setdefault(inv_id, set()).add(person_id)
        return found

    def mark_dirty(self, ids: Iterable[str], at: datetime, *, persons: Mapping[str, Iterable[str]] | None = None) -> int:
        stamp = _us(at)
        persons = persons or {}
        full, named = [], []
        for inv_id in dict.fromkeys(ids):
            if inv_id in persons:
                named.append((inv_id, stamp, stamp, json.dumps(sorted(set(persons[inv_id])))))
            else:
                full.append((inv_id, stamp, stamp))
        if full or named:
            with self._store.transaction() as conn:
                if full:
                    conn.executemany(_MARK_DIRTY, full)
                if named:
                    conn.executemany(_MARK_DIRTY_PERSONS, named)
        return len(full) + len(named)

    def due_for_sweep(self, now: datetime, *, limit: int) -> tuple[dict[str, DirtyMark], set[str]]:
        dirty = self.dirty_marks(limit=limit)
        timed = {
            inv_id
            for (inv_id,) in self._query(
                "SELECT DISTINCT investigation_id FROM dl_milestones WHERE next_check_at IS NOT NULL "
                "AND next_check_at <= ? ORDER BY next_check_at LIMIT ?",
                (_us(now), limit),
            )
        }
        return dirty, timed

    def evaluation_stamps(self, ids: Iterable[str]) -> dict[str, tuple[int | None, str | None]]:
        sql = (
            "SELECT id, facts_change_at, contacts_digest FROM dl_investigations WHERE id IN ({marks}) "
            "AND (facts_change_at IS NOT NULL OR contacts_digest IS NOT NULL)"
        )
        return {inv_id: (change, digest) for inv_id, change, digest in self._in(sql, ids)}

    def dirty_marks(self, *, limit: int) -> dict[str, DirtyMark]:
        return {
            inv_id: DirtyMark(_dt(since), _dt(changed), None if persons is None else frozenset(json.loads(persons)))
            for inv_id, since, changed, persons in self._query(
                "SELECT investigation_id, since, changed_at, persons FROM dl_dirty ORDER BY since LIMIT ?", (limit,)
            )
        }

    def due_clocks(self, now: datetime, *, limit: int) -> list[Clock]:
        return [clock_from_row(row) for row in self._query(_DUE_CLOCKS, (_us(now), limit))]

    def apply_evaluations(self, writes: Sequence[EvaluationWrite]) -> tuple[list[Alert], dict[str, str]]:
        inserted: list[Alert] = []
        refused: dict[str, str] = {}
        if not writes:
            return inserted, refused
        with self._store.transaction() as conn:
            # Each update's WHERE is its conflict check (the stored state, epoch, reason when given and, for
            # a reason-only update, queue time must be those it was planned from). All writes go in as one
            # batch of statements; if any update finds its milestone changed (a concurrent sweep: rare,
            # one process holds the sweep lease) or anything else fails, the batch is rolled back and each
            # write applied on its own, so only the failing ones are refused.
            conn.execute("SAVEPOINT evaluations")
            try:
                inserted = self._apply_batch(conn, writes)
            except sqlite3.Error:
                conn.execute("ROLLBACK TO evaluations")
                inserted = self._apply_each(conn, writes, refused)
            conn.execute("RELEASE evaluations")
        return inserted, refused

    def _apply_batch(self, conn: sqlite3.Connection, writes: Sequence[EvaluationWrite]) -> list[Alert]:
        """Every (conflict-checked) write, statement kind by statement kind; the alerts actually inserted."""
        moved, reasons, new_milestones, facts_changes, tracked, alerts, tokens = [], [], [], [], [], [], []
        digests = []
        for w in writes:
            for u in w.updates:
                if _reason_only(u):
                    reasons.append((u.met_at, u.epoch, u.reason_json, u.evaluated_at, u.at_due_json, u.id,
                                    u.expected_state.value, u.expected_epoch, u.next_check_at, u.expected_reason,
                                    u.expected_reason))
                else:
                    moved.append((u.state.value, u.met_at, u.epoch, u.reason_json, u.evaluated_at, u.at_due_json,
                                  u.next_check_at, u.id, u.expected_state.value, u.expected_epoch, u.expected_reason,
                                  u.expected_reason))
            new_milestones.extend(
                (m.id, m.investigation_id, m.kind.value, m.person_id, *_ms_values(m), _us(next_check))
                for m, next_check in w.new_milestones
            )
            if w.store_facts_change:
                facts_changes.append((w.facts_change_at, w.investigation_id))
            if w.contacts_digest is not None:
                digests.append((w.contacts_digest, w.investigation_id))
            tracked.extend((t.investigation_id, t.person_id, t.role, _us(t.first_seen_at)) for t in w.new_tracked)
            alerts.extend(w.alerts)
            if w.dirty_token is not None:
                tokens.append((w.investigation_id, _us(w.dirty_token)))
        changed = conn.executemany(_UPDATE_MS, moved).rowcount if moved else 0
        if reasons:
            changed += conn.executemany(_UPDATE_MS_REASON, reasons).rowcount
        if changed != len(moved) + len(reasons):  # some milestone changed since it was read
            raise sqlite3.IntegrityError("a milestone changed since it was read")
        if new_milestones:
            conn.executemany(_INSERT_MS, new_milestones)
        if facts_changes:
            conn.executemany(_SET_FACTS_CHANGE, facts_changes)
        if digests:
            conn.executemany(_SET_DIGEST, digests)
        if tracked:
            conn.executemany(_INSERT_TRACKED, tracked)
        inserted = []
        if alerts:
            (last_seq,) = conn.execute("SELECT coalesce(max(seq), 0) FROM dl_alerts").fetchone()
            conn.executemany(_INSERT_ALERT, [_alert_row(a) for a in alerts])
            # Under the write lock every alert numbered after last_seq is one of ours; a key already
            # stored was skipped (a repeated sweep writes nothing twice).
            seqs = dict(conn.execute("SELECT key, seq FROM dl_alerts WHERE seq > ?", (last_seq,)))
            inserted = [trusted(Alert, {**a.__dict__, "seq": seqs[a.key]}) for a in alerts if a.key in seqs]
            inserted.sort(key=lambda a: a.seq)
        if tokens:
            conn.executemany(_CLEAR_DIRTY, tokens)
        return inserted

    def _apply_each(
        self, conn: sqlite3.Connection, writes: Sequence[EvaluationWrite], refused: dict[str, str]
    ) -> list[Alert]:
        """Each write atomically on its own (a savepoint each): the slow path after a failed batch."""
        inserted: list[Alert] = []
        for write in writes:
            conn.execute("SAVEPOINT evaluation")
            try:
                alerts = self._apply_one(conn, write)
            except _Conflict as conflict:
                conn.execute("ROLLBACK TO evaluation")
                refused[write.investigation_id] = str(conflict)
            except sqlite3.Error as error:
                conn.execute("ROLLBACK TO evaluation")
                refused[write.investigation_id] = f"{type(error).__name__}: {error}"
            else:
                inserted.extend(alerts)
            conn.execute("RELEASE evaluation")
        return inserted

    def _apply_one(self, conn: sqlite3.Connection, write: EvaluationWrite) -> list[Alert]:
        if write.updates:
            moved, reasons = [], []
            for u in write.updates:
                if _reason_only(u):
                    reasons.append((u.met_at, u.epoch, u.reason_json, u.evaluated_at, u.at_due_json, u.id,
                                    u.expected_state.value, u.expected_epoch, u.next_check_at, u.expected_reason,
                                    u.expected_reason))
                else:
                    moved.append((u.state.value, u.met_at, u.epoch, u.reason_json, u.evaluated_at, u.at_due_json,
                                  u.next_check_at, u.id, u.expected_state.value, u.expected_epoch, u.expected_reason,
                                  u.expected_reason))
            changed = 0
            if moved:
                changed += conn.executemany(_UPDATE_MS, moved).rowcount
            if reasons:
                changed += conn.executemany(_UPDATE_MS_REASON, reasons).rowcount
            if changed != len(write.updates):
                raise _Conflict(f"a milestone of {write.investigation_id} changed since it was read")
        for m, next_check in write.new_milestones:
            conn.execute(_INSERT_MS, (m.id, m.investigation_id, m.kind.value, m.person_id, *_ms_values(m), _us(next_check)))
        if write.store_facts_change:
            conn.execute(_SET_FACTS_CHANGE, (write.facts_change_at, write.investigation_id))
        if write.contacts_digest is not None:
            conn.execute(_SET_DIGEST, (write.contacts_digest, write.investigation_id))
        if write.new_tracked:
            conn.executemany(
                _INSERT_TRACKED,
                [(t.investigation_id, t.person_id, t.role, _us(t.first_seen_at)) for t in write.new_tracked],
            )
        alerts = []
        for alert in write.alerts:
            cursor = conn.execute(_INSERT_ALERT, _alert_row(alert))
            if cursor.rowcount == 1:
                alerts.append(trusted(Alert, {**alert.__dict__, "seq": cursor.lastrowid}))
        if write.dirty_token is not None:
            conn.execute(_CLEAR_DIRTY, (write.investigation_id, _us(write.dirty_token)))
        return alerts

    # --- the sweep lease ---------------------------------------------------------------------------
    def claim_sweep(self, holder: str, *, now: datetime, until: datetime) -> str:
        with self._store.transaction() as conn:  # the write lock makes the check and the claim one step
            conn.execute(_CLAIM_LEASE, ("sweep", holder, _us(until), _us(now)))
            (current,) = conn.execute("SELECT holder FROM dl_leases WHERE name = 'sweep'").fetchone()
        return current

    def release_sweep(self, holder: str) -> None:
        with self._store.transaction() as conn:
            conn.execute("DELETE FROM dl_leases WHERE name = 'sweep' AND holder = ?", (holder,))

    # --- alerts ------------------------------------------------------------------------------------
    def alerts(
        self, *, after_seq: int | None = None, investigation_id: str | None = None,
        states: Iterable[MilestoneState] | None = None, since: datetime | None = None, limit: int | None = None,
    ) -> list[Alert]:
        clauses, params = ["1 = 1"], []
        if after_seq is not None:
            clauses.append("seq > ?")
            params.append(after_seq)
        if investigation_id is not None:
            clauses.append("investigation_id = ?")
            params.append(investigation_id)
        if states is not None:
            values = [MilestoneState(s).value for s in states]
            clauses.append(f"state IN ({_marks(len(values))})")
            params.extend(values)
        if since is not None:
            clauses.append("detected_at >= ?")
            params.append(_us(since))
        sql = f"SELECT seq, doc FROM dl_alerts WHERE {' AND '.join(clauses)} ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [Alert.model_validate_json(doc).model_copy(update={"seq": seq}) for seq, doc in self._query(sql, params)]

    def max_alert_seq(self) -> int:
        return self._query("SELECT coalesce(max(seq), 0) FROM dl_alerts")[0][0]

    def sink_cursor(self, sink: str) -> int | None:
        rows = self._query("SELECT last_seq FROM dl_sink_cursors WHERE sink = ?", (sink,))
        return rows[0][0] if rows else None

    def set_sink_cursor(self, sink: str, seq: int, *, failed: bool = False, error: str | None = None) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT INTO dl_sink_cursors (sink, last_seq) VALUES (?, ?) "
                "ON CONFLICT(sink) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
                (sink, seq),
            )
            if failed:
                conn.execute(
                    "INSERT OR REPLACE INTO dl_delivery_failures (sink, seq, error) VALUES (?, ?, ?)", (sink, seq, error)
                )

    def delivery_failures(self, sink: str) -> list[tuple[int, str | None]]:
        return self._query("SELECT seq, error FROM dl_delivery_failures WHERE sink = ? ORDER BY seq", (sink,))

    # --- reports -----------------------------------------------------------------------------------
    def milestones_where(
        self, *, states: Iterable[MilestoneState] | None = None, due_since: datetime | None = None,
        due_until: datetime | None = None, investigation_id: str | None = None, limit: int | None = None,
    ) -> list[tuple[Milestone, Investigation]]:
        clauses, params = ["i.id = m.investigation_id"], []
        if states is not None:
            values = [MilestoneState(s).value for s in states]
            clauses.append(f"m.state IN ({_marks(len(values))})")
            params.extend(values)
        if due_since is not None:
            clauses.append("m.due_at >= ?")
            params.append(_us(due_since))
        if due_until is not None:
            clauses.append("m.due_at <= ?")
            params.append(_us(due_until))
        if investigation_id is not None:
            clauses.append("m.investigation_id = ?")
            params.append(investigation_id)
        columns = ", ".join(f"m.{c.strip()}" for c in _MS_COLUMNS.split(","))
        inv_columns = ", ".join(f"i.{c.strip()}" for c in _INV_COLUMNS.split(","))
        sql = (
            f"SELECT {columns}, {inv_columns} FROM dl_milestones m, dl_investigations i "
            f"WHERE {' AND '.join(clauses)} ORDER BY m.due_at, m.id"
        )
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        width = len(_MS_COLUMNS.split(","))
        return [(_ms(row[:width]), _inv(row[width:])) for row in self._query(sql, params)]

    def compliance_rows(
        self, *, group_by: str, due_since: datetime | None = None, due_until: datetime | None = None
    ) -> list[ComplianceRow]:
        column = {"region": "i.region", "team": "i.team"}.get(group_by)
        if column is None:
            raise ValueError(f"group_by must be 'region' or 'team', not {group_by!r}")
        clauses, params = ["i.id = m.investigation_id"], []
        if due_since is not None:
            clauses.append("m.due_at >= ?")
            params.append(_us(due_since))
        if due_until is not None:
            clauses.append("m.due_at <= ?")
            params.append(_us(due_until))
        sql = (
            f"SELECT {column}, m.kind, m.person_id IS NOT NULL, m.state, count(*) "
            f"FROM dl_milestones m, dl_investigations i WHERE {' AND '.join(clauses)} "
            f"GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        )
        return [
            ComplianceRow(group=g, kind=k, personal=bool(p), state=MilestoneState(s), count=n)
            for g, k, p, s, n in self._query(sql, params)
        ]


class _Conflict(Exception):
    pass


def _reason_only(u: MilestoneUpdate) -> bool:
    """Whether an update leaves the state and the queue time alone (then :data:`_UPDATE_MS_REASON` applies it)."""
    return u.state is u.expected_state and u.next_check_at == u.expected_next_check


def _alert_row(alert: Alert) -> tuple:
    return (alert.key, alert.investigation_id, alert.milestone_id, alert.state.value, _us(alert.detected_at),
            alert.model_dump_json(exclude={"seq"}))
