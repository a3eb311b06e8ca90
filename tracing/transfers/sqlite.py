"""SQLite adapter of :class:`~tracing.transfers.repository.TransferRepository`.

Keeps its tables (prefix ``tr_``) in the graph store's database file through
:meth:`SQLiteStore.transaction` and :meth:`SQLiteStore.query`. Sites,
vehicles and plans are JSON documents keyed by id; transfers have their
keys, filters and times (integer microseconds since the epoch, UTC) as
columns plus the document. SQL is constants with bound parameters only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from graph_models.transfers import (
    IsolationSite,
    Transfer,
    TransferPlan,
    TransferState,
    Vehicle,
)

from ..store.codec import to_epoch_us
from ..store.sqlite import SQLiteStore, id_chunks, placeholders
from .repository import InsertResult

_us = to_epoch_us  # the storage time codec shared by every adapter

__all__ = ["SQLiteTransferRepository"]


SCHEMA = """
CREATE TABLE IF NOT EXISTS tr_sites (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tr_vehicles (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tr_plans (id TEXT PRIMARY KEY NOT NULL, created_at INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tr_plans_created ON tr_plans(created_at);
CREATE TABLE IF NOT EXISTS tr_transfers (
    id TEXT PRIMARY KEY NOT NULL,
    plan_id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    household TEXT NOT NULL,
    site_id TEXT NOT NULL,
    room INTEGER NOT NULL,
    vehicle_id TEXT,
    batch INTEGER,
    pickup_order INTEGER,
    confirmed_at INTEGER NOT NULL,
    active INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tr_transfers_person ON tr_transfers(person_id);
CREATE INDEX IF NOT EXISTS tr_transfers_site ON tr_transfers(site_id, active);
CREATE INDEX IF NOT EXISTS tr_transfers_vehicle ON tr_transfers(vehicle_id, batch, pickup_order);
CREATE INDEX IF NOT EXISTS tr_transfers_plan ON tr_transfers(plan_id);
CREATE INDEX IF NOT EXISTS tr_transfers_active ON tr_transfers(active);
"""

_UPSERT_SITE = "INSERT INTO tr_sites (id, doc) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc"
_UPSERT_VEHICLE = "INSERT INTO tr_vehicles (id, doc) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc"
_UPSERT_PLAN = """
INSERT INTO tr_plans (id, created_at, doc) VALUES (?, ?, ?)
ON CONFLICT(id) DO UPDATE SET created_at = excluded.created_at, doc = excluded.doc
"""
_INSERT_TRANSFER = """
INSERT INTO tr_transfers (id, plan_id, person_id, household, site_id, room, vehicle_id, batch, pickup_order,
                          confirmed_at, active, doc)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_UPDATE_TRANSFER = "UPDATE tr_transfers SET active = ?, doc = ? WHERE id = ?"
_SELECT_T = "SELECT doc FROM tr_transfers"
_ORDER_T = " ORDER BY vehicle_id, batch, pickup_order, id"
_EXISTING_IDS = "SELECT id FROM tr_transfers WHERE id IN ({marks})"
_ACTIVE_OF_PERSONS = "SELECT person_id, id FROM tr_transfers WHERE active = 1 AND person_id IN ({marks})"
_ACTIVE_ROOMS = "SELECT site_id, room, household FROM tr_transfers WHERE active = 1 AND site_id IN ({marks})"
_GET_DOCS = "SELECT doc FROM tr_transfers WHERE id IN ({marks})"
_OF_PERSONS = "SELECT doc FROM tr_transfers WHERE person_id IN ({marks}) ORDER BY confirmed_at, id"


_chunks, _marks = id_chunks, placeholders


def _transfer(doc: str) -> Transfer:
    return Transfer.model_validate_json(doc)


class SQLiteTransferRepository:
    """Transfer repository in the same SQLite file as the graph."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        with store.transaction() as conn:
            for statement in SCHEMA.strip().split(";"):
                if statement.strip():
                    conn.execute(statement)

    def _in(self, sql: str, ids: Iterable[str], conn=None) -> list[tuple]:
        rows: list[tuple] = []
        for chunk in _chunks(ids):
            query = sql.format(marks=_marks(len(chunk)))
            rows.extend(conn.execute(query, chunk).fetchall() if conn is not None else self._store.query(query, chunk))
        return rows

    # --- sites and vehicles -------------------------------------------------------------------
    def upsert_sites(self, sites: Sequence[IsolationSite]) -> None:
        with self._store.transaction() as conn:
            conn.executemany(_UPSERT_SITE, [(s.id, s.model_dump_json()) for s in sites])

    def sites(self) -> list[IsolationSite]:
        return [IsolationSite.model_validate_json(d) for (d,) in self._store.query("SELECT doc FROM tr_sites ORDER BY id")]

    def upsert_vehicles(self, vehicles: Sequence[Vehicle]) -> None:
        with self._store.transaction() as conn:
            conn.executemany(_UPSERT_VEHICLE, [(v.id, v.model_dump_json()) for v in vehicles])

    def vehicles(self) -> list[Vehicle]:
        return [Vehicle.model_validate_json(d) for (d,) in self._store.query("SELECT doc FROM tr_vehicles ORDER BY id")]

    # --- plans --------------------------------------------------------------------------------
    def save_plan(self, plan: TransferPlan) -> None:
        with self._store.transaction() as conn:
            conn.execute(_UPSERT_PLAN, (plan.id, _us(plan.created_at), plan.model_dump_json()))

    def get_plan(self, plan_id: str) -> TransferPlan | None:
        rows = self._store.query("SELECT doc FROM tr_plans WHERE id = ?", (plan_id,))
        return TransferPlan.model_validate_json(rows[0][0]) if rows else None

    def latest_plan_id(self) -> str | None:
        rows = self._store.query("SELECT id FROM tr_plans ORDER BY created_at DESC, id DESC LIMIT 1")
        return rows[0][0] if rows else None

    # --- transfers ----------------------------------------------------------------------------
    def insert_transfers(
        self, transfers: Sequence[Transfer], *, release: Sequence[str] = (), now: datetime | None = None
    ) -> InsertResult:
        with self._store.transaction() as conn:
            released = [_transfer(d) for (d,) in self._in(_GET_DOCS, release, conn)]
            conn.executemany(_UPDATE_TRANSFER, [
                (0, t.model_copy(update={"cancelled_at": now or t.confirmed_at}).model_dump_json(), t.id)
                for t in released if t.state is TransferState.PLANNED
            ])
            ids = [t.id for t in transfers]
            existing = {i for (i,) in self._in(_EXISTING_IDS, ids, conn)}
            fresh = [t for t in transfers if t.id not in existing]
            busy = {pid: tid for pid, tid in self._in(_ACTIVE_OF_PERSONS, [t.person_id for t in fresh], conn)}
            rooms = {(s, r): h for s, r, h in self._in(_ACTIVE_ROOMS, {t.site_id for t in fresh}, conn)}
            inserted: list[str] = []
            refused: dict[str, str] = {}
            rows = []
            for t in fresh:
                if t.person_id in busy:
                    refused[t.id] = f"person already holds transfer {busy[t.person_id]}"
                    continue
                holder = rooms.get((t.site_id, t.room))
                if holder is not None and holder != t.household:
                    refused[t.id] = f"room {t.room} of {t.site_id} is held by household {holder}"
                    continue
                rooms[(t.site_id, t.room)] = t.household
                busy[t.person_id] = t.id
                inserted.append(t.id)
                rows.append((
                    t.id, t.plan_id, t.person_id, t.household, t.site_id, t.room, t.vehicle_id, t.batch,
                    t.pickup_order, _us(t.confirmed_at), int(t.occupies_room), t.model_dump_json(),
                ))
            conn.executemany(_INSERT_TRANSFER, rows)
        return InsertResult(inserted, sorted(existing), refused)

    def update_transfers(self, transfers: Sequence[Transfer]) -> None:
        with self._store.transaction() as conn:
            conn.executemany(_UPDATE_TRANSFER, [(int(t.occupies_room), t.model_dump_json(), t.id) for t in transfers])

    def active_transfers(self) -> list[Transfer]:
        return [_transfer(d) for (d,) in self._store.query(f"{_SELECT_T} WHERE active = 1 ORDER BY id")]

    def transfers_of(self, person_ids: Iterable[str]) -> dict[str, list[Transfer]]:
        found: dict[str, list[Transfer]] = {}
        for (doc,) in self._in(_OF_PERSONS, person_ids):
            t = _transfer(doc)
            found.setdefault(t.person_id, []).append(t)
        for items in found.values():
            items.sort(key=lambda t: (t.confirmed_at, t.id))
        return found

    def transfers(
        self, *, site_id: str | None = None, vehicle_id: str | None = None, plan_id: str | None = None,
        active_only: bool = False,
    ) -> list[Transfer]:
        clauses, params = [], []
        for column, value in (("site_id", site_id), ("vehicle_id", vehicle_id), ("plan_id", plan_id)):
            if value is not None:
                clauses.append(f"{column} = ?")  # fixed column names only
                params.append(value)
        if active_only:
            clauses.append("active = 1")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return [_transfer(d) for (d,) in self._store.query(_SELECT_T + where + _ORDER_T, params)]

