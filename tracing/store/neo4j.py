"""Neo4j adapter of the graph store (Neo4j 5.7+ server, Community or Enterprise, or Aura).

Data model
----------
``(:Person {id, …})`` and ``(:Place {id, …})`` nodes hold every field of the
model as a property (``None`` fields are absent; ``Person.attributes`` is a
JSON string). Edges are relationships:

* ``(:Person)-[:CONTACT {id, start, end, kind, place_id, source, closeness}]->(:Person)``
  from ``a`` to ``b`` (multi-edges allowed, upserted by ``id``);
* ``(:Person)-[:VISITED {id, start, end}]->(:Place)``;
* ``(:Person)-[:INFECTED {key, exposure, exposed_at}]->(:Person)`` keyed by the
  (infector, infectee) pair;
* derived relations, one relationship type per :class:`ContactClass`
  (``CLOSE_CONTACT``, ``SECONDARY_CONTACT``, ``GENERAL_CONTACT``) from the
  contact's ``source_id`` to its ``person_id``, with ``{key, case_id,
  exposed_at, evidence, exposure_count, derived_at}``.

``key`` properties are ``json.dumps([x, y])`` of a two-part key (pair of a
link; case and person of a derived relation): one indexed, unique, totally
ordered value that lets uniqueness constraints guard the key and lets the
``iter_*`` verbs page by keyset.

Times are stored, like in the SQLite adapter, as integer **microseconds since
the Unix epoch (UTC)**: window filters are integer comparisons that match
SQLite's exactly, and the round trip is lossless (a Neo4j ``DateTime`` would
be too, but costs more to compare and to convert in the driver).

Endpoints that were never upserted (a contact with a person nobody imported)
are created as *stub* nodes holding only ``id``. Real records carry
``record: true`` (indexed) and every read of persons or places filters on it,
so stubs stay invisible until an upsert fills them; an upsert replaces the
whole property map (``SET n = row``), so fields absent from the new version
are removed.

Every write verb is one managed transaction (``execute_write``, retried on
transient errors; the transaction functions are idempotent). Reads run in
``execute_read`` and consume their results inside. With a routing URI
(``neo4j://``, ``neo4j+s://``) all sessions share one bookmark manager, so a
read sees the writes before it even on a cluster.
Cypher is kept in module constants and takes parameters only.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from enum import Enum
from typing import Any, LiteralString, TypeVar

from neo4j import Driver, GraphDatabase, ManagedTransaction, NotificationDisabledClassification
from neo4j.exceptions import AuthError, Forbidden, ServiceUnavailable, TransientError

from graph_models import (
    Closeness,
    ContactClass,
    ContactEvent,
    ContactKind,
    ContactSource,
    Person,
    PersonStatus,
    Place,
    TracedContact,
    TransmissionLink,
    Visit,
)

from .codec import from_epoch_us, to_epoch_us
from .port import ContactRef, ContactSpan, GraphBatch, StoreCounts, check_person_fields, region_subtree_bounds

__all__ = ["Neo4jStore", "Neo4jUnavailable"]

#: Rows per page of the ``iter_*`` verbs (one read transaction each).
_PAGE = 10_000
#: Relationships (then nodes) deleted per transaction by :meth:`Neo4jStore.wipe`.
_WIPE_CHUNK = 10_000


R = TypeVar("R")


class Neo4jUnavailable(ConnectionError):
    """The Neo4j server could not be reached (or refused the credentials)."""


_to_us = to_epoch_us  # short local names: these run on every row
_from_us = from_epoch_us


def _pair_key(x: str, y: str) -> str:
    return json.dumps([x, y], ensure_ascii=False)


# --- schema ------------------------------------------------------------------------------
# Uniqueness constraints first: each also provides the index MERGE and the lookups seek on.
_DERIVED_TYPES = tuple(c.relation for c in ContactClass)
_CLASS_OF_TYPE = {c.relation: c for c in ContactClass}

_CONSTRAINTS: tuple[LiteralString, ...] = (
    "CREATE CONSTRAINT person_id IF NOT EXISTS FOR (n:Person) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT place_id IF NOT EXISTS FOR (n:Place) REQUIRE n.id IS UNIQUE",
    # Relationship property uniqueness constraints: Neo4j 5.7+, Community included.
    "CREATE CONSTRAINT contact_id IF NOT EXISTS FOR ()-[r:CONTACT]-() REQUIRE r.id IS UNIQUE",
    "CREATE CONSTRAINT visited_id IF NOT EXISTS FOR ()-[r:VISITED]-() REQUIRE r.id IS UNIQUE",
    "CREATE CONSTRAINT infected_key IF NOT EXISTS FOR ()-[r:INFECTED]-() REQUIRE r.key IS UNIQUE",
    "CREATE CONSTRAINT close_contact_key IF NOT EXISTS FOR ()-[r:CLOSE_CONTACT]-() REQUIRE r.key IS UNIQUE",
    "CREATE CONSTRAINT secondary_contact_key IF NOT EXISTS FOR ()-[r:SECONDARY_CONTACT]-() REQUIRE r.key IS UNIQUE",
    "CREATE CONSTRAINT general_contact_key IF NOT EXISTS FOR ()-[r:GENERAL_CONTACT]-() REQUIRE r.key IS UNIQUE",
)
_INDEXES: tuple[LiteralString, ...] = (
    "CREATE INDEX person_record IF NOT EXISTS FOR (n:Person) ON (n.record)",
    "CREATE INDEX person_status IF NOT EXISTS FOR (n:Person) ON (n.status)",
    "CREATE INDEX place_record IF NOT EXISTS FOR (n:Place) ON (n.record)",
    "CREATE INDEX close_contact_case IF NOT EXISTS FOR ()-[r:CLOSE_CONTACT]-() ON (r.case_id)",
    "CREATE INDEX secondary_contact_case IF NOT EXISTS FOR ()-[r:SECONDARY_CONTACT]-() ON (r.case_id)",
    "CREATE INDEX general_contact_case IF NOT EXISTS FOR ()-[r:GENERAL_CONTACT]-() ON (r.case_id)",
)
# No index on CONTACT.start / VISITED.start: every window filter of the port is anchored
# on a Person or Place id and filters the relationships while expanding from it.
_AWAIT_INDEXES: LiteralString = "CALL db.awaitIndexes($seconds)"
_SHOW_CONSTRAINTS: LiteralString = "SHOW CONSTRAINTS YIELD name"
_SHOW_INDEXES: LiteralString = "SHOW INDEXES YIELD name"


_SCHEMA_ATTEMPTS = 10


def _schema_name(statement: str) -> str:
    """``person_id`` of ``CREATE CONSTRAINT person_id IF NOT EXISTS …``."""
    return statement.split()[2]


# --- writes --------------------------------------------------------------------------------
_UPSERT_PERSONS: LiteralString = "UNWIND $rows AS row MERGE (n:Person {id: row.id}) SET n = row"
_UPSERT_PLACES: LiteralString = "UNWIND $rows AS row MERGE (n:Place {id: row.id}) SET n = row"
# Contact events are most of every import, so their upsert avoids per-row MERGEs: endpoints are
# merged once per distinct person, existing events found by their id (relationship uniqueness
# index), new ones CREATEd (a relationship MERGE between bound nodes scans their relationships,
# which is slow for busy persons), existing ones updated in place, and an event moved to other
# persons recreated. Deciding which is which happens in the same transaction, so a retry
# re-decides from scratch.
_EXISTING_EVENTS: LiteralString = """
UNWIND $ids AS eid
MATCH (x)-[r:CONTACT {id: eid}]->(y)
RETURN eid AS id, x.id AS a, y.id AS b
"""
_DELETE_EVENTS_BY_ID: LiteralString = "UNWIND $ids AS eid MATCH ()-[r:CONTACT {id: eid}]->() DELETE r"
# New events: their endpoints are merged once each, collected in the order of $ids, and every row
# picks its two nodes by position (row.ai, row.bi) instead of two index seeks per row.
_CREATE_EVENTS: LiteralString = """
UNWIND $ids AS pid
MERGE (p:Person {id: pid})
WITH collect(p) AS persons
UNWIND $rows AS row
WITH persons[row.ai] AS a, persons[row.bi] AS b, row
CREATE (a)-[:CONTACT {id: row.id, start: row.start, end: row.end, kind: row.kind, place_id: row.place_id,
                      source: row.source, closeness: row.closeness}]->(b)
"""
_UPDATE_EVENTS: LiteralString = """
UNWIND $rows AS row
MATCH ()-[r:CONTACT {id: row.id}]->()
SET r = row {.id, .start, .end, .kind, .place_id, .source, .closeness}
"""
_UPSERT_VISITS: LiteralString = """
UNWIND $rows AS row
MERGE (p:Person {id: row.person_id})
MERGE (l:Place {id: row.place_id})
WITH row, p, l
OPTIONAL MATCH (x)-[moved:VISITED {id: row.id}]->(y) WHERE x <> p OR y <> l
DELETE moved
WITH row, p, l
MERGE (p)-[r:VISITED {id: row.id}]->(l)
SET r = row {.id, .start, .end}
"""
_UPSERT_LINKS: LiteralString = """
UNWIND $rows AS row
MERGE (a:Person {id: row.infector})
MERGE (b:Person {id: row.infectee})
MERGE (a)-[r:INFECTED]->(b)
SET r = row {.key, .exposure, .exposed_at}
"""
_DELETE_EVENTS: LiteralString = """
UNWIND $ids AS eid
MATCH ()-[r:CONTACT {id: eid}]->()
DELETE r
RETURN count(*) AS deleted
"""
_DELETE_DERIVED: dict[str, LiteralString] = {
    "CLOSE_CONTACT": "MATCH ()-[r:CLOSE_CONTACT {case_id: $case_id}]->() DELETE r",
    "SECONDARY_CONTACT": "MATCH ()-[r:SECONDARY_CONTACT {case_id: $case_id}]->() DELETE r",
    "GENERAL_CONTACT": "MATCH ()-[r:GENERAL_CONTACT {case_id: $case_id}]->() DELETE r",
}
_CREATE_DERIVED: dict[str, LiteralString] = {
    "CLOSE_CONTACT": """
UNWIND $rows AS row
MERGE (s:Person {id: row.source_id})
MERGE (p:Person {id: row.person_id})
CREATE (s)-[r:CLOSE_CONTACT]->(p)
SET r = row {.key, .case_id, .exposed_at, .evidence, .exposure_count, .derived_at}
""",
    "SECONDARY_CONTACT": """
UNWIND $rows AS row
MERGE (s:Person {id: row.source_id})
MERGE (p:Person {id: row.person_id})
CREATE (s)-[r:SECONDARY_CONTACT]->(p)
SET r = row {.key, .case_id, .exposed_at, .evidence, .exposure_count, .derived_at}
""",
    "GENERAL_CONTACT": """
UNWIND $rows AS row
MERGE (s:Person {id: row.source_id})
MERGE (p:Person {id: row.person_id})
CREATE (s)-[r:GENERAL_CONTACT]->(p)
SET r = row {.key, .case_id, .exposed_at, .evidence, .exposure_count, .derived_at}
""",
}
_WIPE_RELATIONSHIPS: LiteralString = "MATCH ()-[r]->() WITH r LIMIT $limit DELETE r RETURN count(*) AS n"
_WIPE_NODES: LiteralString = "MATCH (n) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS n"

# --- reads ---------------------------------------------------------------------------------
_GET_PERSONS: LiteralString = """
UNWIND $ids AS pid
MATCH (n:Person {id: pid}) WHERE n.record = true
RETURN properties(n) AS props
"""
# Dynamic property reads ($fields are checked names); the attributes JSON only when asked for.
_PERSON_FIELDS_QUERY: LiteralString = """
UNWIND $ids AS pid
MATCH (n:Person {id: pid}) WHERE n.record = true
RETURN n.id AS id, [name IN $fields | n[name]] AS values, CASE WHEN $attributes THEN n.attributes END AS attributes
"""
_ISOLATION_TIMES: LiteralString = """
UNWIND $ids AS pid
MATCH (n:Person {id: pid}) WHERE n.record = true
RETURN n.id AS id, n.isolated_at AS isolated_at
"""
# One keyset page of a filtered listing. Without a status filter the id index is walked in order
# and filtered (a page stops after $limit matches); with one, the status index gives the few
# cases among a million persons, sorted afterwards.
_FIND_PERSONS_FILTER: LiteralString = """
WHERE n.id > $after AND n.record = true
  AND ($exact IS NULL OR n.region = $exact OR n.region STARTS WITH $prefix)
  AND ($since IS NULL OR n.reported_at >= $since) AND ($until IS NULL OR n.reported_at <= $until)
RETURN properties(n) AS props ORDER BY n.id LIMIT $limit
"""
_FIND_PERSONS: LiteralString = "MATCH (n:Person) USING INDEX n:Person(id)" + _FIND_PERSONS_FILTER
_FIND_PERSONS_WITH_STATUS: LiteralString = """
UNWIND $statuses AS status
MATCH (n:Person {status: status}) USING INDEX n:Person(status)
WITH n""" + _FIND_PERSONS_FILTER
_GET_PLACES: LiteralString = """
UNWIND $ids AS pid
MATCH (n:Place {id: pid}) WHERE n.record = true
RETURN properties(n) AS props
"""
_PERSONS_WITH_STATUS: LiteralString = """
UNWIND $statuses AS status
MATCH (n:Person {status: status}) USING INDEX n:Person(status) WHERE n.record = true
RETURN properties(n) AS props
"""
# The hint keeps the planner on the id index (ordered, range from $after) rather than the record one.
_PAGE_PERSONS: LiteralString = """
MATCH (n:Person) USING INDEX n:Person(id) WHERE n.id > $after AND n.record = true
RETURN n.id AS key, properties(n) AS props ORDER BY n.id LIMIT $limit
"""
_PAGE_PLACES: LiteralString = """
MATCH (n:Place) USING INDEX n:Place(id) WHERE n.id > $after AND n.record = true
RETURN n.id AS key, properties(n) AS props ORDER BY n.id LIMIT $limit
"""
_GET_EVENTS: LiteralString = """
UNWIND $ids AS eid
MATCH (a:Person)-[r:CONTACT {id: eid}]->(b:Person)
RETURN r.id AS id, a.id AS a, b.id AS b, r.start AS start, r.end AS end, r.kind AS kind,
       r.place_id AS place_id, r.source AS source, r.closeness AS closeness
"""
# Anchored on the Person.id index; the window is filtered while expanding (overlap, inclusive).
_EVENTS_TOUCHING: LiteralString = """
UNWIND $ids AS pid
MATCH (:Person {id: pid})-[r:CONTACT]-()
WHERE ($end IS NULL OR r.start <= $end) AND ($start IS NULL OR r.end >= $start)
WITH DISTINCT r
RETURN r.id AS id, startNode(r).id AS a, endNode(r).id AS b, r.start AS start, r.end AS end, r.kind AS kind,
       r.place_id AS place_id, r.source AS source, r.closeness AS closeness
"""
# The same selection as _EVENTS_TOUCHING, only the columns traversals read, collected into one
# list: Bolt sends every record as its own message, decoded in Python, which cost more than the
# query itself; one list of lists is one message, unpacked by the Rust extension in one go.
_CONTACT_SPANS: LiteralString = """
UNWIND $ids AS pid
MATCH (:Person {id: pid})-[r:CONTACT]-()
WHERE ($end IS NULL OR r.start <= $end) AND ($start IS NULL OR r.end >= $start)
  AND ($closeness IS NULL OR r.closeness = $closeness)
WITH DISTINCT r
RETURN collect([r.id, startNode(r).id, endNode(r).id, r.start, r.end, r.kind, r.closeness]) AS rows
"""
_PAGE_EVENTS: LiteralString = """
MATCH (a:Person)-[r:CONTACT]->(b:Person) WHERE r.id > $after
RETURN r.id AS id, a.id AS a, b.id AS b, r.start AS start, r.end AS end, r.kind AS kind,
       r.place_id AS place_id, r.source AS source, r.closeness AS closeness
ORDER BY r.id LIMIT $limit
"""
_VISITS_OF: LiteralString = """
UNWIND $ids AS pid
MATCH (p:Person {id: pid})-[r:VISITED]->(l:Place)
WHERE ($end IS NULL OR r.start <= $end) AND ($start IS NULL OR r.end >= $start)
RETURN DISTINCT r.id AS id, p.id AS person_id, l.id AS place_id, r.start AS start, r.end AS end
"""
_VISITS_AT: LiteralString = """
UNWIND $ids AS lid
MATCH (p:Person)-[r:VISITED]->(l:Place {id: lid})
WHERE ($end IS NULL OR r.start <= $end) AND ($start IS NULL OR r.end >= $start)
RETURN DISTINCT r.id AS id, p.id AS person_id, l.id AS place_id, r.start AS start, r.end AS end
"""
_PAGE_VISITS: LiteralString = """
MATCH (p:Person)-[r:VISITED]->(l:Place) WHERE r.id > $after
RETURN r.id AS id, p.id AS person_id, l.id AS place_id, r.start AS start, r.end AS end
ORDER BY r.id LIMIT $limit
"""
_LINKS_FROM: LiteralString = """
UNWIND $ids AS pid
MATCH (a:Person {id: pid})-[r:INFECTED]->(b:Person)
RETURN DISTINCT a.id AS infector, b.id AS infectee, r.exposure AS exposure, r.exposed_at AS exposed_at
"""
_LINKS_TO: LiteralString = """
UNWIND $ids AS pid
MATCH (a:Person)-[r:INFECTED]->(b:Person {id: pid})
RETURN DISTINCT a.id AS infector, b.id AS infectee, r.exposure AS exposure, r.exposed_at AS exposed_at
"""
_PAGE_LINKS: LiteralString = """
MATCH (a:Person)-[r:INFECTED]->(b:Person) WHERE r.key > $after
RETURN r.key AS key, a.id AS infector, b.id AS infectee, r.exposure AS exposure, r.exposed_at AS exposed_at
ORDER BY r.key LIMIT $limit
"""
_DERIVED_COLUMNS = """
RETURN r.key AS key, type(r) AS type, r.case_id AS case_id, endNode(r).id AS person_id,
       startNode(r).id AS source_id, r.exposed_at AS exposed_at, r.evidence AS evidence,
       r.exposure_count AS exposure_count, r.derived_at AS derived_at"""
_DERIVED_FOR_CASE: LiteralString = (
    "MATCH ()-[r:CLOSE_CONTACT {case_id: $case_id}]->()" + _DERIVED_COLUMNS
    + "\nUNION ALL\nMATCH ()-[r:SECONDARY_CONTACT {case_id: $case_id}]->()" + _DERIVED_COLUMNS
    + "\nUNION ALL\nMATCH ()-[r:GENERAL_CONTACT {case_id: $case_id}]->()" + _DERIVED_COLUMNS
)
# Many cases in one read: one index seek per case and derived type.
_DERIVED_FOR_CASES: LiteralString = (
    "UNWIND $case_ids AS cid MATCH ()-[r:CLOSE_CONTACT {case_id: cid}]->()" + _DERIVED_COLUMNS
    + "\nUNION ALL\nUNWIND $case_ids AS cid MATCH ()-[r:SECONDARY_CONTACT {case_id: cid}]->()" + _DERIVED_COLUMNS
    + "\nUNION ALL\nUNWIND $case_ids AS cid MATCH ()-[r:GENERAL_CONTACT {case_id: cid}]->()" + _DERIVED_COLUMNS
)
_REF_COLUMNS = "\nRETURN r.case_id AS case_id, endNode(r).id AS person_id, type(r) AS type, r.exposed_at AS exposed_at"
_CONTACT_REFS_FOR_CASES: LiteralString = (
    "UNWIND $case_ids AS cid MATCH ()-[r:CLOSE_CONTACT {case_id: cid}]->()" + _REF_COLUMNS
    + "\nUNION ALL\nUNWIND $case_ids AS cid MATCH ()-[r:SECONDARY_CONTACT {case_id: cid}]->()" + _REF_COLUMNS
    + "\nUNION ALL\nUNWIND $case_ids AS cid MATCH ()-[r:GENERAL_CONTACT {case_id: cid}]->()" + _REF_COLUMNS
)
# One keyset page over the three derived types: each branch is an index-backed range seek of at
# most $limit rows; the caller merges them in key order (so grouped by case) and keeps $limit.
_PAGE_DERIVED: LiteralString = (
    "MATCH ()-[r:CLOSE_CONTACT]->() WHERE r.key > $after" + _DERIVED_COLUMNS + " ORDER BY key LIMIT $limit"
    + "\nUNION ALL\nMATCH ()-[r:SECONDARY_CONTACT]->() WHERE r.key > $after" + _DERIVED_COLUMNS
    + " ORDER BY key LIMIT $limit"
    + "\nUNION ALL\nMATCH ()-[r:GENERAL_CONTACT]->() WHERE r.key > $after" + _DERIVED_COLUMNS
    + " ORDER BY key LIMIT $limit"
)
_CASES_DERIVING: LiteralString = """
UNWIND $ids AS pid
MATCH (:Person {id: pid})-[r:CLOSE_CONTACT|SECONDARY_CONTACT|GENERAL_CONTACT]-()
RETURN DISTINCT r.case_id AS case_id
"""
# Each an O(1) count-store lookup, or one index seek for the real persons and places.
_COUNTS: dict[str, LiteralString] = {
    "persons": "MATCH (n:Person) WHERE n.record = true RETURN count(n) AS n",
    "places": "MATCH (n:Place) WHERE n.record = true RETURN count(n) AS n",
    "events": "MATCH ()-[r:CONTACT]->() RETURN count(r) AS n",
    "visits": "MATCH ()-[r:VISITED]->() RETURN count(r) AS n",
    "links": "MATCH ()-[r:INFECTED]->() RETURN count(r) AS n",
    "close": "MATCH ()-[r:CLOSE_CONTACT]->() RETURN count(r) AS n",
    "secondary": "MATCH ()-[r:SECONDARY_CONTACT]->() RETURN count(r) AS n",
    "general": "MATCH ()-[r:GENERAL_CONTACT]->() RETURN count(r) AS n",
}


# --- conversions ---------------------------------------------------------------------------
def _node_props(model: Person | Place) -> dict[str, Any]:
    """The full property map of a person or place node (``None`` fields left out)."""
    props: dict[str, Any] = {}
    for name, value in model.model_dump(exclude_none=True).items():
        if isinstance(value, datetime):
            value = _to_us(value)
        elif isinstance(value, Enum):
            value = value.value
        elif isinstance(value, dict):
            if not value:
                continue
            value = json.dumps(value, ensure_ascii=False)
        props[name] = value
    props["record"] = True
    return props


_PERSON_TIMES = ("onset_at", "sampled_at", "confirmed_at", "reported_at", "isolated_at")


_PERSON_FIELDS = frozenset(Person.model_fields)
_PLACE_FIELDS = frozenset(Place.model_fields)


def _person(props: dict[str, Any]) -> Person:
    # Only the model's fields: the marker, and anything an analyst added by hand, stay in the graph.
    data = {k: v for k, v in props.items() if k in _PERSON_FIELDS}
    for name in _PERSON_TIMES:
        if name in data:
            data[name] = _from_us(data[name])
    if "attributes" in data:
        data["attributes"] = json.loads(data["attributes"])
    return Person.model_validate(data)


def _place(props: dict[str, Any]) -> Place:
    return Place.model_validate({k: v for k, v in props.items() if k in _PLACE_FIELDS})


def _event_row(e: ContactEvent) -> dict[str, Any]:
    return {
        "id": e.id, "a": e.a, "b": e.b, "start": _to_us(e.start), "end": _to_us(e.end),
        "kind": ContactKind(e.kind).value, "place_id": e.place_id, "source": ContactSource(e.source).value,
        "closeness": Closeness(e.closeness).value,
    }


def _event(r: Any) -> ContactEvent:
    # Rows were validated on the way in; skip re-validation on this hot path (as the SQLite adapter does).
    return ContactEvent.model_construct(
        id=r["id"], a=r["a"], b=r["b"], start=_from_us(r["start"]), end=_from_us(r["end"]),
        kind=ContactKind(r["kind"]), place_id=r["place_id"], source=ContactSource(r["source"]),
        closeness=Closeness(r["closeness"]),
    )


def _visit_row(v: Visit) -> dict[str, Any]:
    return {
        "id": v.id, "person_id": v.person_id, "place_id": v.place_id, "start": _to_us(v.start), "end": _to_us(v.end),
    }


def _visit(r: Any) -> Visit:
    return Visit.model_construct(
        id=r["id"], person_id=r["person_id"], place_id=r["place_id"], start=_from_us(r["start"]),
        end=_from_us(r["end"]),
    )


def _link_row(k: TransmissionLink) -> dict[str, Any]:
    return {
        "key": _pair_key(k.infector, k.infectee), "infector": k.infector, "infectee": k.infectee,
        "exposure": k.exposure, "exposed_at": _to_us(k.exposed_at),
    }


def _link(r: Any) -> TransmissionLink:
    return TransmissionLink.model_construct(
        infector=r["infector"], infectee=r["infectee"], exposure=r["exposure"], exposed_at=_from_us(r["exposed_at"])
    )


def _derived(r: Any) -> TracedContact:
    return TracedContact(
        case_id=r["case_id"], person_id=r["person_id"], contact_class=_CLASS_OF_TYPE[r["type"]],
        source_id=r["source_id"], exposed_at=_from_us(r["exposed_at"]), evidence=list(r["evidence"]),
        exposure_count=r["exposure_count"],
    )


def _last_by_key(rows: Iterable[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Rows sorted by key, the last of duplicates winning (as consecutive upserts would).

    A missing key (``None``) is kept as is: the MERGE on it fails inside the
    transaction, so the whole batch is rejected.
    """
    unique: dict[Any, dict[str, Any]] = {}
    for row in rows:
        unique[row.get(key)] = row
    return sorted(unique.values(), key=lambda row: (row.get(key) is not None, row.get(key) or ""))


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _window(start: datetime | None, end: datetime | None) -> dict[str, int | None]:
    return {"start": _to_us(start), "end": _to_us(end)}


# --- transaction functions (idempotent: they may be retried) --------------------------------
def _run(tx: ManagedTransaction, query: LiteralString, **params: Any) -> None:
    tx.run(query, params).consume()


def _fetch(tx: ManagedTransaction, query: LiteralString, **params: Any) -> list[Any]:
    return list(tx.run(query, params))


def _fetch_single(tx: ManagedTransaction, query: LiteralString, **params: Any) -> Any:
    # For queries that aggregate into one record (see _CONTACT_SPANS).
    return tx.run(query, params).single(strict=True)[0]


def _upsert_events(tx: ManagedTransaction, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        # MERGE on a null key raises; a MATCH on one would silently drop the row.
        if row["id"] is None or row["a"] is None or row["b"] is None:
            raise ValueError(f"contact event without id or endpoints: {row!r}")
    existing = {r["id"]: (r["a"], r["b"]) for r in tx.run(_EXISTING_EVENTS, {"ids": [row["id"] for row in rows]})}
    moved = [row["id"] for row in rows if row["id"] in existing and existing[row["id"]] != (row["a"], row["b"])]
    if moved:
        _run(tx, _DELETE_EVENTS_BY_ID, ids=moved)
    stays = set(existing) - set(moved)
    fresh = [row for row in rows if row["id"] not in stays]
    if fresh:
        # Events that stay keep their endpoints, so only new ones need theirs merged.
        ids = sorted({row["a"] for row in fresh} | {row["b"] for row in fresh})
        position = {pid: i for i, pid in enumerate(ids)}
        for row in fresh:  # our own row dicts; a retry sets the same values again
            row["ai"], row["bi"] = position[row["a"]], position[row["b"]]
        _run(tx, _CREATE_EVENTS, ids=ids, rows=fresh)
    if stays:
        _run(tx, _UPDATE_EVENTS, rows=[row for row in rows if row["id"] in stays])


def _apply_tx(tx: ManagedTransaction, persons, places, events, visits, links) -> None:
    if persons:
        _run(tx, _UPSERT_PERSONS, rows=persons)
    if places:
        _run(tx, _UPSERT_PLACES, rows=places)
    if events:
        _upsert_events(tx, events)
    if visits:
        _run(tx, _UPSERT_VISITS, rows=visits)
    if links:
        _run(tx, _UPSERT_LINKS, rows=links)


def _replace_derived_tx(tx: ManagedTransaction, case_id: str, rows_by_type: dict[str, list[dict]]) -> None:
    for rel_type in _DERIVED_TYPES:
        _run(tx, _DELETE_DERIVED[rel_type], case_id=case_id)
    for rel_type, rows in rows_by_type.items():
        if rows:
            _run(tx, _CREATE_DERIVED[rel_type], rows=rows)


def _delete_events_tx(tx: ManagedTransaction, ids: list[str]) -> int:
    return tx.run(_DELETE_EVENTS, {"ids": ids}).single(strict=True)["deleted"]


def _count_tx(tx: ManagedTransaction, query: LiteralString, **params: Any) -> int:
    return tx.run(query, params).single(strict=True)["n"]


def _counts_tx(tx: ManagedTransaction) -> dict[str, int]:
    return {name: _count_tx(tx, query) for name, query in _COUNTS.items()}


class _KeyedReads:
    """The store's lookups by key and time window, over whatever runs a query (see subclasses).

    Shared by :class:`Neo4jStore` (a read transaction per call) and
    :class:`_TransactionReads` (every call inside one transaction).
    """

    def _read(self, query: LiteralString, **params: Any) -> list[Any]:
        raise NotImplementedError

    def _read_single(self, query: LiteralString, **params: Any) -> Any:
        """The only column of the only record of an aggregating query (see _CONTACT_SPANS)."""
        raise NotImplementedError

    def get_persons(self, person_ids: Iterable[str]) -> dict[str, Person]:
        ids = _unique(person_ids)
        if not ids:
            return {}
        return {p.id: p for p in (_person(r["props"]) for r in self._read(_GET_PERSONS, ids=ids))}

    def person_fields(self, person_ids: Iterable[str], fields: Sequence[str]) -> dict[str, tuple]:
        check_person_fields(fields)
        ids = _unique(person_ids)
        if not ids:
            return {}
        # Times are stored as µs already; attributes as one JSON string (see _node_props).
        plain = [name for name in fields if not name.startswith("attr:")]
        keys = {i: name[5:] for i, name in enumerate(fields) if name.startswith("attr:")}
        found: dict[str, tuple] = {}
        for r in self._read(_PERSON_FIELDS_QUERY, ids=ids, fields=plain, attributes=bool(keys)):
            if not keys:
                found[r["id"]] = tuple(r["values"])
                continue
            attributes = json.loads(r["attributes"]) if r["attributes"] else {}
            plain_values = iter(r["values"])
            found[r["id"]] = tuple(
                attributes.get(keys[i]) if i in keys else next(plain_values) for i in range(len(fields))
            )
        return found

    def isolation_times(self, person_ids: Iterable[str]) -> dict[str, datetime | None]:
        ids = _unique(person_ids)
        if not ids:
            return {}
        return {r["id"]: _from_us(r["isolated_at"]) for r in self._read(_ISOLATION_TIMES, ids=ids)}

    def find_persons(
        self,
        *,
        region: str | None = None,
        statuses: Iterable[PersonStatus] | None = None,
        reported_since: datetime | None = None,
        reported_until: datetime | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[Person]:
        exact, prefix = region_subtree_bounds(region) if region is not None else (None, None)
        params = {
            "after": after or "", "exact": exact, "prefix": prefix, "limit": limit,
            "since": _to_us(reported_since), "until": _to_us(reported_until),
        }
        if statuses is None:
            rows = self._read(_FIND_PERSONS, **params)
        else:
            values = _unique(PersonStatus(s).value for s in statuses)
            rows = self._read(_FIND_PERSONS_WITH_STATUS, statuses=values, **params) if values else []
        return [_person(r["props"]) for r in rows]

    def get_places(self, place_ids: Iterable[str]) -> dict[str, Place]:
        ids = _unique(place_ids)
        if not ids:
            return {}
        return {p.id: p for p in (_place(r["props"]) for r in self._read(_GET_PLACES, ids=ids))}

    def get_events(self, event_ids: Iterable[str]) -> dict[str, ContactEvent]:
        ids = _unique(event_ids)
        if not ids:
            return {}
        return {r["id"]: _event(r) for r in self._read(_GET_EVENTS, ids=ids)}

    def persons_with_status(self, statuses: Iterable[PersonStatus]) -> list[Person]:
        values = _unique(PersonStatus(s).value for s in statuses)
        if not values:
            return []
        persons = [_person(r["props"]) for r in self._read(_PERSONS_WITH_STATUS, statuses=values)]
        return sorted(persons, key=lambda p: p.id)

    def events_touching(
        self, person_ids: Iterable[str], *, start: datetime | None = None, end: datetime | None = None
    ) -> list[ContactEvent]:
        ids = _unique(person_ids)
        if not ids:
            return []
        events = [_event(r) for r in self._read(_EVENTS_TOUCHING, ids=ids, **_window(start, end))]
        return sorted(events, key=lambda e: (e.start, e.id))

    def contact_spans(
        self,
        person_ids: Iterable[str],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        closeness: str | None = None,
    ) -> list[ContactSpan]:
        ids = _unique(person_ids)
        if not ids:
            return []
        rows = self._read_single(_CONTACT_SPANS, ids=ids, closeness=closeness, **_window(start, end))
        return [ContactSpan(r[0], r[1], r[2], _from_us(r[3]), _from_us(r[4]), r[5], r[6]) for r in rows]

    def visits_of(
        self, person_ids: Iterable[str], *, start: datetime | None = None, end: datetime | None = None
    ) -> list[Visit]:
        return self._visits(_VISITS_OF, person_ids, start, end)

    def visits_at(
        self, place_ids: Iterable[str], *, start: datetime | None = None, end: datetime | None = None
    ) -> list[Visit]:
        return self._visits(_VISITS_AT, place_ids, start, end)

    def _visits(
        self, query: LiteralString, ids: Iterable[str], start: datetime | None, end: datetime | None
    ) -> list[Visit]:
        unique = _unique(ids)
        if not unique:
            return []
        visits = [_visit(r) for r in self._read(query, ids=unique, **_window(start, end))]
        return sorted(visits, key=lambda v: (v.start, v.id))

    def links_from(self, infector_ids: Iterable[str]) -> list[TransmissionLink]:
        return self._links(_LINKS_FROM, infector_ids)

    def links_to(self, infectee_ids: Iterable[str]) -> list[TransmissionLink]:
        return self._links(_LINKS_TO, infectee_ids)

    def _links(self, query: LiteralString, ids: Iterable[str]) -> list[TransmissionLink]:
        unique = _unique(ids)
        if not unique:
            return []
        links = [_link(r) for r in self._read(query, ids=unique)]
        return sorted(links, key=lambda k: (k.infector, k.infectee))

    def derived_for_case(self, case_id: str) -> list[TracedContact]:
        contacts = [_derived(r) for r in self._read(_DERIVED_FOR_CASE, case_id=case_id)]
        return sorted(contacts, key=lambda c: (c.exposed_at, c.person_id))

    def derived_for_cases(self, case_ids: Iterable[str]) -> dict[str, list[TracedContact]]:
        found: dict[str, list[TracedContact]] = {cid: [] for cid in _unique(case_ids)}
        if found:
            for row in self._read(_DERIVED_FOR_CASES, case_ids=list(found)):
                found[row["case_id"]].append(_derived(row))
            for contacts in found.values():
                contacts.sort(key=lambda c: (c.exposed_at, c.person_id))
        return found

    def contact_refs_for_cases(self, case_ids: Iterable[str]) -> dict[str, list[ContactRef]]:
        rows_of: dict[str, list[tuple[int, str, ContactClass]]] = {cid: [] for cid in _unique(case_ids)}
        if rows_of:
            for row in self._read(_CONTACT_REFS_FOR_CASES, case_ids=list(rows_of)):
                rows_of[row["case_id"]].append((row["exposed_at"], row["person_id"], _CLASS_OF_TYPE[row["type"]]))
        # The order of derived_for_cases: exposure time, then person id.
        return {cid: [ContactRef(pid, cls) for _, pid, cls in sorted(rows)] for cid, rows in rows_of.items()}

    def cases_deriving(self, person_ids: Iterable[str]) -> set[str]:
        ids = _unique(person_ids)
        if not ids:
            return set()
        return {r["case_id"] for r in self._read(_CASES_DERIVING, ids=ids)}



class _TransactionReads(_KeyedReads):
    """The keyed reads inside one managed read transaction (see :meth:`Neo4jStore.read_transaction`)."""

    def __init__(self, tx: ManagedTransaction) -> None:
        self._tx = tx

    def _read(self, query: LiteralString, **params: Any) -> list[Any]:
        return _fetch(self._tx, query, **params)

    def _read_single(self, query: LiteralString, **params: Any) -> Any:
        return _fetch_single(self._tx, query, **params)


class Neo4jStore(_KeyedReads):
    """Graph store in a Neo4j database.

    Parameters
    ----------
    uri : str
        ``bolt://host:7687`` (one server), ``neo4j://host:7687`` (routing:
        cluster, or a single instance) or ``neo4j+s://….databases.neo4j.io``
        (Aura).
    auth : (user, password) or None
        ``None`` for a server with authentication disabled.
    database : str
        Passed to every session.
    **driver_config
        Passed to :meth:`neo4j.GraphDatabase.driver` (e.g. ``connection_timeout``,
        ``max_connection_pool_size``).

    Raises
    ------
    Neo4jUnavailable
        If the server cannot be reached or refuses the credentials: the
        constructor checks connectivity, so a down server fails fast.

    Safe to share between threads: the driver is; each call opens its own session.
    """

    def __init__(
        self, uri: str, *, auth: tuple[str, str] | None, database: str = "neo4j", **driver_config: Any
    ) -> None:
        self.uri = uri
        self.database = database
        self.page_size = _PAGE
        driver_config.setdefault("connection_timeout", 15.0)
        # "Property key does not exist" (e.g. no event with a place_id yet) is expected in a
        # schema-optional graph; without this the driver logs it as a warning on every read.
        driver_config.setdefault(
            "notifications_disabled_classifications", [NotificationDisabledClassification.UNRECOGNIZED]
        )
        # Routing (cluster, Aura): reads may go to another member than the write before them, so
        # every session shares one bookmark manager (causal consistency across calls). A direct
        # bolt:// connection talks to one server, where a committed write is already visible.
        self._bookmarks = GraphDatabase.bookmark_manager() if uri.split(":", 1)[0].startswith("neo4j") else None
        self._driver: Driver = GraphDatabase.driver(uri, auth=auth, **driver_config)
        try:
            try:
                self._driver.verify_connectivity()
            except (ServiceUnavailable, AuthError, OSError) as error:
                raise Neo4jUnavailable(
                    f"cannot connect to Neo4j at {uri} (database {database!r}): {error}"
                ) from error
            self._create_schema()
        except BaseException:
            self._driver.close()
            raise

    @classmethod
    def from_env(cls, url: str) -> "Neo4jStore":
        """Open ``url`` with ``TRACEGRAPH_NEO4J_USER`` / ``_PASSWORD`` (no auth if neither is set)
        and ``TRACEGRAPH_NEO4J_DATABASE`` (default ``neo4j``)."""
        user = os.environ.get("TRACEGRAPH_NEO4J_USER") or None
        password = os.environ.get("TRACEGRAPH_NEO4J_PASSWORD") or None
        if (user is None) != (password is None):
            raise ValueError("set both TRACEGRAPH_NEO4J_USER and TRACEGRAPH_NEO4J_PASSWORD, or neither")
        auth = (user, password) if user is not None and password is not None else None
        return cls(url, auth=auth, database=os.environ.get("TRACEGRAPH_NEO4J_DATABASE") or "neo4j")

    # --- plumbing -------------------------------------------------------------------
    def _session(self):
        return self._driver.session(database=self.database, bookmark_manager=self._bookmarks)

    def _write(self, fn, *args: Any, **kwargs: Any) -> Any:
        with self._session() as session:
            return session.execute_write(fn, *args, **kwargs)

    def _read(self, query: LiteralString, **params: Any) -> list[Any]:
        with self._session() as session:
            return session.execute_read(_fetch, query, **params)

    def _read_single(self, query: LiteralString, **params: Any) -> Any:
        with self._session() as session:
            return session.execute_read(_fetch_single, query, **params)

    def read_transaction(self, fn: Callable[[Any], R]) -> R:
        """``fn(reader)`` with every keyed read of ``reader`` in one managed read transaction.

        One snapshot and one BEGIN/COMMIT for all of them: a trace makes five
        reads, and on a 2-CPU machine each transaction's round trips cost about
        as much client CPU as decoding its rows. ``fn`` may be retried on
        transient errors, so it must only read and keep no state across calls.
        """
        with self._session() as session:
            return session.execute_read(lambda tx: fn(_TransactionReads(tx)))

    def execute_write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(tx, *args, **kwargs)`` in one managed write transaction, for sibling repositories.

        The counterpart of :meth:`SQLiteStore.transaction`: repositories of
        other domains (deadlines, transfers, users, audit) keep their nodes in
        the same database. ``fn`` may be retried on transient errors, so it
        must be idempotent and consume its results before returning.
        """
        return self._write(fn, *args, **kwargs)

    def execute_read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(tx, *args, **kwargs)`` in one managed read transaction (see :meth:`execute_write`)."""
        with self._session() as session:
            return session.execute_read(fn, *args, **kwargs)

    def _pages(self, query: LiteralString, key: str) -> Iterator[Any]:
        # Keyset pages on an indexed, unique key: each page is one short read transaction
        # and one index range seek, whatever the size of the graph.
        after = ""
        while True:
            rows = self._read(query, after=after, limit=self.page_size)
            yield from rows
            if len(rows) < self.page_size:
                return
            after = rows[-1][key]

    def _create_schema(self) -> None:
        """Create the missing indexes, then the missing constraints, and wait until all are online.

        Idempotent (``IF NOT EXISTS``). What already exists is skipped without a
        schema write, so a user without schema privileges can open a prepared database.
        """
        try:
            existing = {
                record["name"]
                for query in (_SHOW_CONSTRAINTS, _SHOW_INDEXES)
                for record in self._driver.execute_query(query, database_=self.database).records
            }
        except Forbidden:
            existing = set()
        # Over an already loaded graph (after neo4j-admin import: 1M persons, 5M events) building the
        # indexes takes a while. CREATE INDEX returns at once and Neo4j populates in the background,
        # so the plain indexes go first; CREATE CONSTRAINT builds its index before it returns, and two
        # built side by side deadlock when the first one finishes (Neo4j aborts the other, which
        # starts over): the constraints go one after another, the largest (contact_id) first, while
        # the plain indexes populate beside it.
        constraints = sorted(_CONSTRAINTS, key=lambda statement: _schema_name(statement) != "contact_id")
        missing = [statement for statement in (*_INDEXES, *constraints) if _schema_name(statement) not in existing]
        with self._driver.session(database=self.database) as session:
            for statement in missing:
                # A schema write can still meet a lock held by a background population: Neo4j
                # aborts it as a deadlock and it is simply run again. Retried here rather than by
                # the driver, which would print a deadlock report as a warning for a harmless retry.
                for attempt in range(_SCHEMA_ATTEMPTS):
                    try:
                        session.run(statement).consume()
                        break
                    except TransientError:
                        if attempt == _SCHEMA_ATTEMPTS - 1:
                            raise
                        time.sleep(0.2 * (attempt + 1))
        if missing:
            self._driver.execute_query(_AWAIT_INDEXES, seconds=300, database_=self.database)

    # --- writes ---------------------------------------------------------------------
    def apply(self, batch: GraphBatch) -> None:
        persons = _last_by_key((_node_props(p) for p in batch.persons), "id")
        places = _last_by_key((_node_props(p) for p in batch.places), "id")
        events = _last_by_key((_event_row(e) for e in batch.events), "id")
        visits = _last_by_key((_visit_row(v) for v in batch.visits), "id")
        links = sorted(
            {(k.infector, k.infectee): _link_row(k) for k in batch.links}.values(),
            key=lambda row: row["key"],
        )
        if not (persons or places or events or visits or links):
            return
        self._write(_apply_tx, persons, places, events, visits, links)

    def delete_events(self, event_ids: Sequence[str]) -> int:
        ids = _unique(event_ids)
        if not ids:
            return 0
        return self._write(_delete_events_tx, ids)

    def replace_derived(self, case_id: str, contacts: Sequence[TracedContact], derived_at: datetime) -> None:
        stamp = _to_us(derived_at)
        rows_by_type: dict[str, list[dict]] = {t: [] for t in _DERIVED_TYPES}
        seen: set[str] = set()
        for c in contacts:
            if c.case_id != case_id:
                raise ValueError(f"derived contact {c.person_id!r} belongs to case {c.case_id!r}, not {case_id!r}")
            if c.person_id in seen:
                raise ValueError(f"person {c.person_id!r} is derived twice for case {case_id!r}")
            seen.add(c.person_id)
            rows_by_type[ContactClass(c.contact_class).relation].append({
                "key": _pair_key(case_id, c.person_id), "source_id": c.source_id, "person_id": c.person_id,
                "case_id": case_id, "exposed_at": _to_us(c.exposed_at), "evidence": list(c.evidence),
                "exposure_count": c.exposure_count, "derived_at": stamp,
            })
        for rows in rows_by_type.values():
            rows.sort(key=lambda row: row["key"])
        self._write(_replace_derived_tx, case_id, rows_by_type)

    def wipe(self) -> None:
        """Delete every node and relationship (the schema stays). For tests and resets."""
        for query in (_WIPE_RELATIONSHIPS, _WIPE_NODES):
            while self._write(_count_tx, query, limit=_WIPE_CHUNK):
                pass

    def iter_persons(self) -> Iterator[Person]:
        for row in self._pages(_PAGE_PERSONS, "key"):
            yield _person(row["props"])

    def iter_places(self) -> Iterator[Place]:
        for row in self._pages(_PAGE_PLACES, "key"):
            yield _place(row["props"])

    def iter_links(self) -> Iterator[TransmissionLink]:
        for row in self._pages(_PAGE_LINKS, "key"):
            yield _link(row)

    def iter_events(self) -> Iterator[ContactEvent]:
        for row in self._pages(_PAGE_EVENTS, "id"):
            yield _event(row)

    def iter_visits(self) -> Iterator[Visit]:
        for row in self._pages(_PAGE_VISITS, "id"):
            yield _visit(row)

    def iter_derived(self) -> Iterator[tuple[TracedContact, datetime]]:
        # Ordered by key, i.e. by (case, person): each case's relations come together.
        after = ""
        while True:
            rows = self._read(_PAGE_DERIVED, after=after, limit=self.page_size)
            rows = sorted(rows, key=lambda row: row["key"])[: self.page_size]
            for row in rows:
                yield _derived(row), _from_us(row["derived_at"])
            if len(rows) < self.page_size:
                return
            after = rows[-1]["key"]

    def counts(self) -> StoreCounts:
        with self._session() as session:
            n = session.execute_read(_counts_tx)
        return StoreCounts(
            persons=n["persons"], places=n["places"], events=n["events"], visits=n["visits"], links=n["links"],
            derived=n["close"] + n["secondary"] + n["general"],
        )

    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> "Neo4jStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
