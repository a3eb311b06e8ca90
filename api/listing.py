"""Keyset-paged listings of persons and places with region, status and time filters."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from graph_models import Person, PersonStatus, Place
from tracing.auth import in_region
from tracing.store import GraphStore
from tracing.store.sqlite import SQLiteStore

__all__ = ["list_persons", "list_places"]


def list_persons(
    store: GraphStore, *, region: str | None, statuses: Iterable[PersonStatus] | None = None, after: str | None = None,
    limit: int = 100, reported_since: datetime | None = None, reported_until: datetime | None = None,
) -> list[Person]:
    """Persons ordered by id after ``after``; ``region`` limits to a subtree (``""``: nothing); no statuses: any."""
    if region == "":
        return []
    return store.find_persons(
        region=region, statuses=list(statuses) if statuses else None, reported_since=reported_since,
        reported_until=reported_until, after=after, limit=limit,
    )


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
