"""Neo4j adapter of :class:`~tracing.transfers.repository.TransferRepository`.

Nodes in the graph store's database, written through
:meth:`Neo4jStore.execute_write` / :meth:`Neo4jStore.execute_read`:

* ``(:IsolationSite {id, doc})``, ``(:Vehicle {id, doc})``,
  ``(:TransferPlan {id, created_at, doc})``;
* ``(:Transfer {id, plan_id, person_id, household, site_id, room, vehicle_id,
  batch, pickup_order, confirmed_at, active, doc})``.

``doc`` is the model's JSON; the other properties are the keys and filters
(times as integer microseconds since the epoch, UTC, as in the graph).
Uniqueness constraints on every ``id`` are created idempotently
(``IF NOT EXISTS``) when the repository is opened. Transaction functions
are idempotent (they may be retried) and consume their results. Cypher is
kept in constants and takes parameters only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, LiteralString

from neo4j import ManagedTransaction

from graph_models.transfers import (
    IsolationSite,
    Transfer,
    TransferPlan,
    TransferState,
    Vehicle,
)

from ..store.codec import to_epoch_us
from ..store.neo4j import Neo4jStore
from .repository import InsertResult

_us = to_epoch_us  # the storage time codec shared by every adapter

__all__ = ["Neo4jTransferRepository"]


SCHEMA: tuple[LiteralString, ...] = (
    "CREATE CONSTRAINT isolation_site_id IF NOT EXISTS FOR (n:IsolationSite) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT vehicle_id IF NOT EXISTS FOR (n:Vehicle) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT transfer_plan_id IF NOT EXISTS FOR (n:TransferPlan) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT transfer_id IF NOT EXISTS FOR (n:Transfer) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT transfer_lock_id IF NOT EXISTS FOR (n:TransferLock) REQUIRE n.id IS UNIQUE",
    "CREATE INDEX transfer_person IF NOT EXISTS FOR (n:Transfer) ON (n.person_id)",
    "CREATE INDEX transfer_site IF NOT EXISTS FOR (n:Transfer) ON (n.site_id)",
    "CREATE INDEX transfer_vehicle IF NOT EXISTS FOR (n:Transfer) ON (n.vehicle_id)",
    "CREATE INDEX transfer_plan IF NOT EXISTS FOR (n:Transfer) ON (n.plan_id)",
    "CREATE INDEX transfer_active IF NOT EXISTS FOR (n:Transfer) ON (n.active)",
    "CREATE INDEX transfer_plan_created IF NOT EXISTS FOR (n:TransferPlan) ON (n.created_at)",
)
_SHOW_SCHEMA: tuple[LiteralString, ...] = ("SHOW CONSTRAINTS YIELD name", "SHOW INDEXES YIELD name")
_AWAIT: LiteralString = "CALL db.awaitIndexes(300)"

_UPSERT_SITES: LiteralString = "UNWIND $rows AS row MERGE (n:IsolationSite {id: row.id}) SET n.doc = row.doc"
_UPSERT_VEHICLES: LiteralString = "UNWIND $rows AS row MERGE (n:Vehicle {id: row.id}) SET n.doc = row.doc"
_SITES: LiteralString = "MATCH (n:IsolationSite) RETURN n.doc AS doc ORDER BY n.id"
_VEHICLES: LiteralString = "MATCH (n:Vehicle) RETURN n.doc AS doc ORDER BY n.id"
_SAVE_PLAN: LiteralString = "MERGE (n:TransferPlan {id: $id}) SET n.created_at = $created_at, n.doc = $doc"
_GET_PLAN: LiteralString = "MATCH (n:TransferPlan {id: $id}) RETURN n.doc AS doc"
_LATEST_PLAN: LiteralString = "MATCH (n:TransferPlan) RETURN n.id AS id ORDER BY n.created_at DESC, n.id DESC LIMIT 1"
_GET_DOCS: LiteralString = "UNWIND $ids AS tid MATCH (t:Transfer {id: tid}) RETURN t.doc AS doc"
_EXISTING_IDS: LiteralString = "UNWIND $ids AS tid MATCH (t:Transfer {id: tid}) RETURN t.id AS id"
_ACTIVE_OF_PERSONS: LiteralString = """
UNWIND $ids AS pid
MATCH (t:Transfer {person_id: pid}) WHERE t.active = true
RETURN t.person_id AS person_id, t.id AS id
"""
_ACTIVE_ROOMS: LiteralString = """
UNWIND $ids AS sid
MATCH (t:Transfer {site_id: sid}) WHERE t.active = true
RETURN t.site_id AS site_id, t.room AS room, t.household AS household
"""
# Writing a property of one well-known node takes Neo4j's exclusive lock on it until the
# transaction ends: confirms (rare, human-paced) run one at a time, so the person and room
# checks below cannot both pass in two concurrent transactions.
_TAKE_CONFIRM_LOCK: LiteralString = "MERGE (l:TransferLock {id: 'confirm'}) SET l.held_at = timestamp()"
_CREATE_TRANSFERS: LiteralString = """
UNWIND $rows AS row
MERGE (t:Transfer {id: row.id})
SET t = row
"""
_UPDATE_TRANSFERS: LiteralString = """
UNWIND $rows AS row
MATCH (t:Transfer {id: row.id})
SET t.active = row.active, t.doc = row.doc
"""
_ACTIVE: LiteralString = "MATCH (t:Transfer) WHERE t.active = true RETURN t.doc AS doc ORDER BY t.id"
_OF_PERSONS: LiteralString = """
UNWIND $ids AS pid
MATCH (t:Transfer {person_id: pid})
RETURN t.doc AS doc ORDER BY t.confirmed_at, t.id
"""
_FILTERED: LiteralString = """
MATCH (t:Transfer)
WHERE ($site_id IS NULL OR t.site_id = $site_id)
  AND ($vehicle_id IS NULL OR t.vehicle_id = $vehicle_id)
  AND ($plan_id IS NULL OR t.plan_id = $plan_id)
  AND (NOT $active_only OR t.active = true)
RETURN t.doc AS doc
ORDER BY t.vehicle_id, t.batch, t.pickup_order, t.id
"""


def _row(t: Transfer) -> dict[str, Any]:
    return {
        "id": t.id, "plan_id": t.plan_id, "person_id": t.person_id, "household": t.household,
        "site_id": t.site_id, "room": t.room, "vehicle_id": t.vehicle_id, "batch": t.batch,
        "pickup_order": t.pickup_order, "confirmed_at": _us(t.confirmed_at), "active": t.occupies_room,
        "doc": t.model_dump_json(),
    }


def _run(tx: ManagedTransaction, query: LiteralString, **params: Any) -> None:
    tx.run(query, params).consume()


def _docs(tx: ManagedTransaction, query: LiteralString, **params: Any) -> list[str]:
    return [record["doc"] for record in tx.run(query, params)]


def _insert_tx(
    tx: ManagedTransaction, rows: list[dict[str, Any]], release: list[str], cancelled_at: datetime | None
) -> InsertResult:
    # Idempotent as a whole: a retry re-reads what a failed attempt did not commit.
    _run(tx, _TAKE_CONFIRM_LOCK)
    cancel = []
    for doc in _docs(tx, _GET_DOCS, ids=release):
        t = Transfer.model_validate_json(doc)
        if t.state is TransferState.PLANNED:
            cancel.append(_row(t.model_copy(update={"cancelled_at": cancelled_at or t.confirmed_at})))
    if cancel:
        _run(tx, _UPDATE_TRANSFERS, rows=cancel)
    existing = {r["id"] for r in tx.run(_EXISTING_IDS, {"ids": [row["id"] for row in rows]})}
    fresh = [row for row in rows if row["id"] not in existing]
    busy = {r["person_id"]: r["id"] for r in tx.run(_ACTIVE_OF_PERSONS, {"ids": [row["person_id"] for row in fresh]})}
    rooms = {
        (r["site_id"], r["room"]): r["household"]
        for r in tx.run(_ACTIVE_ROOMS, {"ids": sorted({row["site_id"] for row in fresh})})
    }
    inserted, refused, write = [], {}, []
    for row in fresh:
        if row["person_id"] in busy:
            refused[row["id"]] = f"person already holds transfer {busy[row['person_id']]}"
            continue
        holder = rooms.get((row["site_id"], row["room"]))
        if holder is not None and holder != row["household"]:
            refused[row["id"]] = f"room {row['room']} of {row['site_id']} is held by household {holder}"
            continue
        rooms[(row["site_id"], row["room"])] = row["household"]
        busy[row["person_id"]] = row["id"]
        inserted.append(row["id"])
        write.append(row)
    if write:
        _run(tx, _CREATE_TRANSFERS, rows=write)
    return InsertResult(inserted, sorted(existing), refused)


class Neo4jTransferRepository:
    """Transfer repository in the same Neo4j database as the graph."""

    def __init__(self, store: Neo4jStore) -> None:
        self._store = store
        existing = {
            name for query in _SHOW_SCHEMA for name in store.execute_read(lambda tx, q: [r["name"] for r in tx.run(q)], query)
        }
        missing = [s for s in SCHEMA if s.split()[2] not in existing]
        for statement in missing:
            store.execute_write(_run, statement)
        if missing:
            store.execute_write(_run, _AWAIT)

    # --- sites and vehicles -------------------------------------------------------------------
    def upsert_sites(self, sites: Sequence[IsolationSite]) -> None:
        rows = [{"id": s.id, "doc": s.model_dump_json()} for s in sites]
        if rows:
            self._store.execute_write(_run, _UPSERT_SITES, rows=rows)

    def sites(self) -> list[IsolationSite]:
        return [IsolationSite.model_validate_json(d) for d in self._store.execute_read(_docs, _SITES)]

    def upsert_vehicles(self, vehicles: Sequence[Vehicle]) -> None:
        rows = [{"id": v.id, "doc": v.model_dump_json()} for v in vehicles]
        if rows:
            self._store.execute_write(_run, _UPSERT_VEHICLES, rows=rows)

    def vehicles(self) -> list[Vehicle]:
        return [Vehicle.model_validate_json(d) for d in self._store.execute_read(_docs, _VEHICLES)]

    # --- plans --------------------------------------------------------------------------------
    def save_plan(self, plan: TransferPlan) -> None:
        self._store.execute_write(
            _run, _SAVE_PLAN, id=plan.id, created_at=_us(plan.created_at), doc=plan.model_dump_json()
        )

    def get_plan(self, plan_id: str) -> TransferPlan | None:
        docs = self._store.execute_read(_docs, _GET_PLAN, id=plan_id)
        return TransferPlan.model_validate_json(docs[0]) if docs else None

    def latest_plan_id(self) -> str | None:
        ids = self._store.execute_read(lambda tx: [r["id"] for r in tx.run(_LATEST_PLAN)])
        return ids[0] if ids else None

    # --- transfers ----------------------------------------------------------------------------
    def insert_transfers(
        self, transfers: Sequence[Transfer], *, release: Sequence[str] = (), now: datetime | None = None
    ) -> InsertResult:
        rows = [_row(t) for t in transfers]
        return self._store.execute_write(_insert_tx, rows, list(dict.fromkeys(release)), now)

    def update_transfers(self, transfers: Sequence[Transfer]) -> None:
        rows = [{"id": t.id, "active": t.occupies_room, "doc": t.model_dump_json()} for t in transfers]
        if rows:
            self._store.execute_write(_run, _UPDATE_TRANSFERS, rows=rows)

    def active_transfers(self) -> list[Transfer]:
        return [Transfer.model_validate_json(d) for d in self._store.execute_read(_docs, _ACTIVE)]

    def transfers_of(self, person_ids: Iterable[str]) -> dict[str, list[Transfer]]:
        found: dict[str, list[Transfer]] = {}
        for doc in self._store.execute_read(_docs, _OF_PERSONS, ids=list(dict.fromkeys(person_ids))):
            t = Transfer.model_validate_json(doc)
            found.setdefault(t.person_id, []).append(t)
        return found

    def transfers(
        self, *, site_id: str | None = None, vehicle_id: str | None = None, plan_id: str | None = None,
        active_only: bool = False,
    ) -> list[Transfer]:
        docs = self._store.execute_read(
            _docs, _FILTERED, site_id=site_id, vehicle_id=vehicle_id, plan_id=plan_id, active_only=active_only
        )
        return [Transfer.model_validate_json(d) for d in docs]
