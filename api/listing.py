"""Keyset-paged listings of persons and places with region, status and time filters.

SQLite: one indexed query per page through :meth:`SQLiteStore.query`.
Other stores: a scan of ``iter_persons()`` (correct, O(n)); a
``list_persons`` verb on the store port would make it a seek there too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from graph_models import Person, PersonStatus, Place
from tracing.store.codec import to_epoch_us
from tracing.auth import in_region
from tracing.store import GraphStore
from tracing.store.sqlite import SQLiteStore

_us = to_epoch_us  # the storage time codec shared by every adapter

__all__ = ["list_persons", "list_places"]



def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _region_sql(region: str) -> tuple[str, list[str]]:
    if region.isdigit():
        return "region LIKE ? ESCAPE '\\'", [_like_escape(region) + "%"]
    return "(region = ? OR region LIKE ? ESCAPE '\\')", [region, _like_escape(region.rstrip("/")) + "/%"]


def list_persons(
    store: GraphStore, *, region: str | None, statuses: Iterable[PersonStatus] | None = None, after: str | None = None,
    limit: int = 100, reported_since: datetime | None = None, reported_until: datetime | None = None,
) -> list[Person]:
    """Persons ordered by id after ``after``; ``region`` limits to a subtree (``""``: nothing)."""
    if region == "":
        return []
    statuses = [PersonStatus(s).value for s in statuses] if statuses else None
    if isinstance(store, SQLiteStore):
        clauses, params = ["id > ?"], [after or ""]
        if region is not None:
            sql, extra = _region_sql(region)
            clauses.append(sql)
            params += extra
        if statuses:
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            params += statuses
        if reported_since is not None:
            clauses.append("reported_at >= ?")
            params.append(_us(reported_since))
        if reported_until is not None:
            clauses.append("reported_at <= ?")
            params.append(_us(reported_until))
        rows = store.query(f"SELECT doc FROM persons WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?", [*params, limit])
        return [Person.model_validate_json(doc) for (doc,) in rows]
    found = []
    for p in store.iter_persons():
        if after is not None and p.id <= after:
            continue
        if region is not None and not in_region(region, p.region):
            continue
        if statuses and p.status.value not in statuses:
            continue
        if reported_since is not None and (p.reported_at is None or p.reported_at < reported_since):
            continue
        if reported_until is not None and (p.reported_at is None or p.reported_at > reported_until):
            continue
        found.append(p)
    found.sort(key=lambda p: p.id)
    return found[:limit]


def list_places(store: GraphStore, *, region: str | None, after: str | None = None, limit: int = 100) -> list[Place]:
    if isinstance(store, SQLiteStore):
        rows = store.query("SELECT doc FROM places WHERE id > ? ORDER BY id", [after or ""]) if region else \
            store.query("SELECT doc FROM places WHERE id > ? ORDER BY id LIMIT ?", [after or "", limit])
        places = [Place.model_validate_json(doc) for (doc,) in rows]
    else:
        places = sorted((p for p in store.iter_places() if after is None or p.id > after), key=lambda p: p.id)
    if region:
        places = [p for p in places if in_region(region, p.region)]
    return places[:limit]
