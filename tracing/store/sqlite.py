"""Embedded SQLite adapter of the graph store: the default, no server needed.

Times are stored as integer microseconds since the Unix epoch (UTC) so that
window filters are plain integer comparisons on indexed columns. Every write
verb runs in one ``BEGIN IMMEDIATE`` transaction; WAL lets readers (another
process polling an import, the API) see only committed batches.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from contextlib import contextmanager
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import TypeVar

from pydantic_core import from_json

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
from .port import (
    PERSON_TIME_FIELDS,
    ContactRef,
    ContactSpan,
    GraphBatch,
    StoreCounts,
    check_person_fields,
    region_subtree_bounds,
)

R = TypeVar("R")
log = logging.getLogger("tracegraph.store")

# SQLite's default limit on bound parameters is 32766; stay well below it.
_CHUNK = 900


_to_us = to_epoch_us  # short local names: these run on every row
_from_us = from_epoch_us


_SCHEMA = """
CREATE TABLE IF NOT EXISTS persons (
    id TEXT PRIMARY KEY NOT NULL,
    status TEXT NOT NULL,
    household_id TEXT,
    region TEXT,
    onset_at INTEGER, sampled_at INTEGER, confirmed_at INTEGER, reported_at INTEGER, isolated_at INTEGER,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS persons_status ON persons(status);
CREATE INDEX IF NOT EXISTS persons_household ON persons(household_id);
CREATE TABLE IF NOT EXISTS places (
    id TEXT PRIMARY KEY NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contact_events (
    id TEXT PRIMARY KEY NOT NULL,
    a TEXT NOT NULL, b TEXT NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    kind TEXT NOT NULL, place_id TEXT, source TEXT NOT NULL, closeness TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS contact_events_a ON contact_events(a, start);
CREATE INDEX IF NOT EXISTS contact_events_b ON contact_events(b, start);
CREATE TABLE IF NOT EXISTS visits (
    id TEXT PRIMARY KEY NOT NULL,
    person_id TEXT NOT NULL, place_id TEXT NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS visits_person ON visits(person_id, start);
CREATE INDEX IF NOT EXISTS visits_place ON visits(place_id, start);
CREATE TABLE IF NOT EXISTS transmission_links (
    infector TEXT NOT NULL, infectee TEXT NOT NULL,
    exposure TEXT, exposed_at INTEGER,
    PRIMARY KEY (infector, infectee)
);
CREATE INDEX IF NOT EXISTS transmission_links_infectee ON transmission_links(infectee);
CREATE TABLE IF NOT EXISTS derived_contacts (
    case_id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    contact_class TEXT NOT NULL,
    source_id TEXT NOT NULL,
    exposed_at INTEGER NOT NULL,
    evidence TEXT NOT NULL,
    exposure_count INTEGER NOT NULL,
    derived_at INTEGER NOT NULL,
    PRIMARY KEY (case_id, person_id)
);
CREATE INDEX IF NOT EXISTS derived_person ON derived_contacts(person_id);
CREATE INDEX IF NOT EXISTS derived_source ON derived_contacts(source_id);
"""

_UPSERT_PERSON = """
INSERT INTO persons (id, status, household_id, region, onset_at, sampled_at, confirmed_at, reported_at,
                     isolated_at, doc)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET status=excluded.status, household_id=excluded.household_id,
    region=excluded.region, onset_at=excluded.onset_at, sampled_at=excluded.sampled_at,
    confirmed_at=excluded.confirmed_at, reported_at=excluded.reported_at,
    isolated_at=excluded.isolated_at, doc=excluded.doc
"""
_UPSERT_PLACE = "INSERT INTO places (id, doc) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET doc=excluded.doc"
_UPSERT_EVENT = """
INSERT INTO contact_events (id, a, b, start, "end", kind, place_id, source, closeness)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET a=excluded.a, b=excluded.b, start=excluded.start, "end"=excluded."end",
    kind=excluded.kind, place_id=excluded.place_id, source=excluded.source, closeness=excluded.closeness
"""
_UPSERT_VISIT = """
INSERT INTO visits (id, person_id, place_id, start, "end") VALUES (?, ?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET person_id=excluded.person_id, place_id=excluded.place_id,
    start=excluded.start, "end"=excluded."end"
"""
_UPSERT_LINK = """
INSERT INTO transmission_links (infector, infectee, exposure, exposed_at) VALUES (?, ?, ?, ?)
ON CONFLICT(infector, infectee) DO UPDATE SET exposure=excluded.exposure, exposed_at=excluded.exposed_at
"""
_INSERT_DERIVED = """
INSERT INTO derived_contacts (case_id, person_id, contact_class, source_id, exposed_at, evidence,
                              exposure_count, derived_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_EVENT_COLUMNS = 'id, a, b, start, "end", kind, place_id, source, closeness'
_VISIT_COLUMNS = 'id, person_id, place_id, start, "end"'
_SPAN_COLUMNS = 'id, a, b, start, "end", kind, closeness'
_DERIVED_COLUMNS = "case_id, person_id, contact_class, source_id, exposed_at, evidence, exposure_count"


def id_chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    """Distinct ``ids`` in lists small enough to bind as ``IN (?, …)`` parameters (also for sibling repositories)."""
    unique = list(dict.fromkeys(ids))
    for i in range(0, len(unique), _CHUNK):
        yield unique[i : i + _CHUNK]


def placeholders(n: int) -> str:
    """``?,?,…`` for ``n`` bound parameters."""
    return ",".join("?" * n)


_chunks, _marks = id_chunks, placeholders


def _window_sql(start: datetime | None, end: datetime | None) -> tuple[str, list[int]]:
    clauses, params = [], []
    if end is not None:
        clauses.append("start <= ?")
        params.append(_to_us(end))
    if start is not None:
        clauses.append('"end" >= ?')
        params.append(_to_us(start))
    return "".join(f" AND {c}" for c in clauses), params


def _event(row: tuple) -> ContactEvent:
    # Rows were validated on the way in; skip re-validation on this hot path.
    return ContactEvent.model_construct(
        id=row[0], a=row[1], b=row[2], start=_from_us(row[3]), end=_from_us(row[4]),
        kind=ContactKind(row[5]), place_id=row[6], source=ContactSource(row[7]), closeness=Closeness(row[8]),
    )


def _visit(row: tuple) -> Visit:
    return Visit.model_construct(
        id=row[0], person_id=row[1], place_id=row[2], start=_from_us(row[3]), end=_from_us(row[4])
    )


def _link(row: tuple) -> TransmissionLink:
    return TransmissionLink.model_construct(
        infector=row[0], infectee=row[1], exposure=row[2], exposed_at=_from_us(row[3])
    )


_CONTACT_CLASSES = {c.value: c for c in ContactClass}


def _derived(row: tuple) -> TracedContact:
    # Validated when derived; the deadline sweep reads thousands of these per tick.
    return TracedContact.model_construct(
        case_id=row[0], person_id=row[1], contact_class=ContactClass(row[2]), source_id=row[3],
        exposed_at=_from_us(row[4]), evidence=json.loads(row[5]), exposure_count=row[6],
    )


class _Checkpointer:
    """A daemon thread that checkpoints a WAL-mode database file every ``interval`` seconds.

    ``PASSIVE``: it copies what no reader still needs and never waits for a
    reader or a writer, so it cannot block the store's own connection. Every
    process with the file open runs one; two checkpoints at once are harmless
    (the second finds the checkpoint lock taken and tries again next time).
    """

    def __init__(self, path: str, *, interval: float = 0.5) -> None:
        self.path, self.interval = path, interval
        self.pages_copied = 0  # the most log pages one checkpoint found copied: for tests and curiosity
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sqlite-checkpoint:{Path(path).name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # A connection per checkpoint, closed right after: one held open in this daemon thread
        # would, at an exit without close(), keep the store's own connection from being the last
        # one, which is the one that checkpoints everything left and removes the log file.
        uri = f"{Path(self.path).resolve().as_uri()}?mode=rw"  # never create the file if it went away
        while not self._stopped.wait(self.interval):
            try:
                conn = sqlite3.connect(uri, uri=True)
                try:
                    _busy, _log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                finally:
                    conn.close()
                self.pages_copied = max(self.pages_copied, copied)
            except sqlite3.Error:  # e.g. the file went away in a test: try again, quietly
                log.debug("checkpoint of %s failed", self.path, exc_info=True)

    def stop(self) -> None:
        """Stop the thread. (The last connection to close checkpoints everything that is left.)"""
        self._stopped.set()
        self._thread.join()


class SQLiteStore:
    """Graph store in one SQLite file (or ``:memory:``).

    Safe to share between threads: one connection guarded by a lock, which
    is what SQLite serialises to anyway.
    """

    #: Reads run in this process (no server round trip): an async caller may run them inline.
    reads_in_process = True

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._checkpointer: _Checkpointer | None = None
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed batch survives a crash of the process,
            # which is the guarantee imports promise; only an OS crash may lose the last one.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=10000")
            # SQLite's default page cache is 2 MB; a city-scale graph is hundreds of MB and
            # tracing reads it randomly. A larger cache and memory-mapped reads keep it hot.
            self._conn.execute("PRAGMA cache_size=-262144")  # KiB: 256 MB
            self._conn.execute("PRAGMA mmap_size=1073741824")  # 1 GiB
            self._conn.execute("PRAGMA temp_store=MEMORY")
            # Checkpoints (copying the write-ahead log back into the database file) run in a
            # thread of their own instead of inside whichever commit crosses 1,000 log pages:
            # there they stalled that writer (a sweep, an audited request on the event loop) for
            # the whole copy, which SQLite does with the GIL released, i.e. on the other core.
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = _Checkpointer(self.path)
        self._conn.execute("PRAGMA foreign_keys=OFF")
        self._conn.executescript(_SCHEMA)

    # --- plumbing -------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on this database, for sibling repositories (deadlines, sites, ...).

        Commits when the block ends normally, rolls back on any exception.
        Repositories of other domains keep their own tables in the same file
        so that one backup, one migration and one connection cover them all.
        """
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """Run a read-only statement (with bound parameters) for a sibling repository."""
        return self._query(sql, params)

    def _query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _iter(self, columns: str, table: str, page: int = 10_000) -> Iterator[tuple]:
        # Keyset pages by rowid, each read under the lock, so a long iteration never
        # starves writers and never costs more than one index seek per page.
        last = -1
        while True:
            rows = self._query(
                f"SELECT rowid, {columns} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, page)
            )
            for row in rows:
                yield row[1:]
            if len(rows) < page:
                return
            last = rows[-1][0]

    # --- writes ---------------------------------------------------------------------
    def apply(self, batch: GraphBatch) -> None:
        person_rows = [
            (p.id, p.status.value, p.household_id, p.region, _to_us(p.onset_at), _to_us(p.sampled_at),
             _to_us(p.confirmed_at), _to_us(p.reported_at), _to_us(p.isolated_at), p.model_dump_json())
            for p in sorted(batch.persons, key=lambda p: p.id)
        ]
        place_rows = [(p.id, p.model_dump_json()) for p in sorted(batch.places, key=lambda p: p.id)]
        event_rows = [
            (e.id, e.a, e.b, _to_us(e.start), _to_us(e.end), e.kind.value, e.place_id, e.source.value,
             e.closeness.value)
            for e in batch.events
        ]
        visit_rows = [(v.id, v.person_id, v.place_id, _to_us(v.start), _to_us(v.end)) for v in batch.visits]
        link_rows = [(k.infector, k.infectee, k.exposure, _to_us(k.exposed_at)) for k in batch.links]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(_UPSERT_PERSON, person_rows)
            conn.executemany(_UPSERT_PLACE, place_rows)
            conn.executemany(_UPSERT_EVENT, event_rows)
            conn.executemany(_UPSERT_VISIT, visit_rows)
            conn.executemany(_UPSERT_LINK, link_rows)

        with self.transaction() as conn:
            write(conn)

    def delete_events(self, event_ids: Sequence[str]) -> int:
        deleted = 0

        def write(conn: sqlite3.Connection) -> None:
            nonlocal deleted
            for chunk in _chunks(event_ids):
                deleted += conn.execute(f"DELETE FROM contact_events WHERE id IN ({_marks(len(chunk))})", chunk).rowcount

        with self.transaction() as conn:
            write(conn)
        return deleted

    def replace_derived(self, case_id: str, contacts: Sequence[TracedContact], derived_at: datetime) -> None:
        stamp = _to_us(derived_at)
        rows = [
            (case_id, c.person_id, c.contact_class.value, c.source_id, _to_us(c.exposed_at),
             json.dumps(c.evidence), c.exposure_count, stamp)
            for c in contacts
        ]
        for c in contacts:
            if c.case_id != case_id:
                raise ValueError(f"derived contact {c.person_id!r} belongs to case {c.case_id!r}, not {case_id!r}")

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM derived_contacts WHERE case_id = ?", (case_id,))
            conn.executemany(_INSERT_DERIVED, rows)

        with self.transaction() as conn:
            write(conn)

    # --- reads ----------------------------------------------------------------------
    def get_persons(self, person_ids: Iterable[str]) -> dict[str, Person]:
        found: dict[str, Person] = {}
        for chunk in _chunks(person_ids):
            for pid, doc in self._query(f"SELECT id, doc FROM persons WHERE id IN ({_marks(len(chunk))})", chunk):
                found[pid] = Person.model_validate_json(doc)
        return found

    def isolation_times(self, person_ids: Iterable[str]) -> dict[str, datetime | None]:
        found: dict[str, datetime | None] = {}
        for chunk in _chunks(person_ids):
            sql = f"SELECT id, isolated_at FROM persons WHERE id IN ({_marks(len(chunk))})"
            found.update((pid, _from_us(at)) for pid, at in self._query(sql, chunk))
        return found

    def person_fields(self, person_ids: Iterable[str], fields: Sequence[str]) -> dict[str, tuple]:
        check_person_fields(fields)
        # Times come from their columns (already µs); every other field from the stored document, parsed
        # by pydantic-core's JSON reader (a dict, no model: the values were validated when written).
        times = [name for name in fields if name in PERSON_TIME_FIELDS]
        plain = [name for name in fields if name not in PERSON_TIME_FIELDS and not name.startswith("attr:")]
        keys = [name[5:] for name in fields if name.startswith("attr:")]
        # A row is assembled as (*times, *plain, *attribute values), then put in the order asked for.
        layout = [*times, *plain, *(f"attr:{k}" for k in keys)]
        order = itemgetter(*(layout.index(name) for name in fields)) if len(fields) > 1 else None
        columns = ", ".join(times)  # names from PERSON_TIME_FIELDS only
        found: dict[str, tuple] = {}
        for chunk in _chunks(person_ids):
            sql = f"SELECT id, {columns + ', ' if columns else ''}doc FROM persons WHERE id IN ({_marks(len(chunk))})"
            for row in self._query(sql, chunk):
                doc = from_json(row[-1])
                values = (*row[1:-1], *map(doc.get, plain))
                if keys:
                    attributes = doc.get("attributes") or {}
                    values = (*values, *map(attributes.get, keys))
                found[row[0]] = order(values) if order else values
        return found

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
        # Walks the primary key in id order and filters: a page stops after ``limit`` matches.
        clauses, params = ["id > ?"], [after or ""]
        if region is not None:
            exact, prefix = region_subtree_bounds(region)
            # substr, not LIKE: LIKE ignores ASCII case, and region codes are case-sensitive.
            clauses.append("(region = ? OR substr(region, 1, ?) = ?)")
            params += [exact, len(prefix), prefix]
        if statuses is not None:
            values = [PersonStatus(s).value for s in statuses]
            clauses.append(f"status IN ({_marks(len(values))})" if values else "0")
            params += values
        if reported_since is not None:
            clauses.append("reported_at >= ?")
            params.append(_to_us(reported_since))
        if reported_until is not None:
            clauses.append("reported_at <= ?")
            params.append(_to_us(reported_until))
        sql = f"SELECT doc FROM persons WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?"
        return [Person.model_validate_json(doc) for (doc,) in self._query(sql, [*params, limit])]

    def get_places(self, place_ids: Iterable[str]) -> dict[str, Place]:
        found: dict[str, Place] = {}
        for chunk in _chunks(place_ids):
            for pid, doc in self._query(f"SELECT id, doc FROM places WHERE id IN ({_marks(len(chunk))})", chunk):
                found[pid] = Place.model_validate_json(doc)
        return found

    def get_events(self, event_ids: Iterable[str]) -> dict[str, ContactEvent]:
        found: dict[str, ContactEvent] = {}
        for chunk in _chunks(event_ids):
            sql = f"SELECT {_EVENT_COLUMNS} FROM contact_events WHERE id IN ({_marks(len(chunk))})"
            for row in self._query(sql, chunk):
                found[row[0]] = _event(row)
        return found

    def persons_with_status(self, statuses: Iterable[PersonStatus]) -> list[Person]:
        values = [PersonStatus(s).value for s in statuses]
        if not values:
            return []
        rows = self._query(f"SELECT doc FROM persons WHERE status IN ({_marks(len(values))}) ORDER BY id", values)
        return [Person.model_validate_json(doc) for (doc,) in rows]

    def iter_persons(self) -> Iterator[Person]:
        for (doc,) in self._iter("doc", "persons"):
            yield Person.model_validate_json(doc)

    def iter_places(self) -> Iterator[Place]:
        for (doc,) in self._iter("doc", "places"):
            yield Place.model_validate_json(doc)

    def events_touching(
        self, person_ids: Iterable[str], *, start: datetime | None = None, end: datetime | None = None
    ) -> list[ContactEvent]:
        rows = self._rows_touching(_EVENT_COLUMNS, person_ids, start, end)
        return sorted((_event(row) for row in rows.values()), key=lambda e: (e.start, e.id))

    def read_transaction(self, fn: Callable[[SQLiteStore], R]) -> R:
        """``fn(self)``: a local read costs no round trip, so there is nothing to group.

        Each read inside is its own statement (as outside); the grouping, and
        the single snapshot, matter for servers (see ``Neo4jStore.read_transaction``).
        """
        return fn(self)

    def contact_spans(
        self,
        person_ids: Iterable[str],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        closeness: str | None = None,
    ) -> list[ContactSpan]:
        return [
            ContactSpan(row[0], row[1], row[2], _from_us(row[3]), _from_us(row[4]), row[5], row[6])
            for row in self._rows_touching(_SPAN_COLUMNS, person_ids, start, end, closeness).values()
        ]

    def _rows_touching(
        self, columns: str, person_ids: Iterable[str], start: datetime | None, end: datetime | None,
        closeness: str | None = None,
    ) -> dict[str, tuple]:
        """Rows (``columns``, the event id first) of the events with an endpoint among ``person_ids``, by id."""
        window, window_params = _window_sql(start, end)
        if closeness is not None:
            window, window_params = f"{window} AND closeness = ?", [*window_params, closeness]
        rows: dict[str, tuple] = {}
        for chunk in _chunks(person_ids):
            marks = _marks(len(chunk))
            # UNION ALL, not UNION: the dict drops the duplicates (an event between two of
            # the persons asked) without SQLite sorting every row to find them.
            sql = (
                f"SELECT {columns} FROM contact_events WHERE a IN ({marks}){window} "
                f"UNION ALL SELECT {columns} FROM contact_events WHERE b IN ({marks}){window}"
            )
            rows.update((row[0], row) for row in self._query(sql, [*chunk, *window_params, *chunk, *window_params]))
        return rows

    def _visits_by(self, column: str, ids: Iterable[str], start: datetime | None, end: datetime | None) -> list[Visit]:
        window, window_params = _window_sql(start, end)
        found: list[Visit] = []
        for chunk in _chunks(ids):
            sql = f"SELECT {_VISIT_COLUMNS} FROM visits WHERE {column} IN ({_marks(len(chunk))}){window}"
            found.extend(_visit(row) for row in self._query(sql, [*chunk, *window_params]))
        return sorted(found, key=lambda v: (v.start, v.id))

    def visits_of(
        self, person_ids: Iterable[str], *, start: datetime | None = None, end: datetime | None = None
    ) -> list[Visit]:
        return self._visits_by("person_id", person_ids, start, end)

    def visits_at(
        self, place_ids: Iterable[str], *, start: datetime | None = None, end: datetime | None = None
    ) -> list[Visit]:
        return self._visits_by("place_id", place_ids, start, end)

    def _links_by(self, column: str, ids: Iterable[str]) -> list[TransmissionLink]:
        found: list[TransmissionLink] = []
        for chunk in _chunks(ids):
            sql = (
                "SELECT infector, infectee, exposure, exposed_at FROM transmission_links "
                f"WHERE {column} IN ({_marks(len(chunk))})"
            )
            found.extend(_link(row) for row in self._query(sql, chunk))
        return sorted(found, key=lambda k: (k.infector, k.infectee))

    def links_from(self, infector_ids: Iterable[str]) -> list[TransmissionLink]:
        return self._links_by("infector", infector_ids)

    def links_to(self, infectee_ids: Iterable[str]) -> list[TransmissionLink]:
        return self._links_by("infectee", infectee_ids)

    def iter_links(self) -> Iterator[TransmissionLink]:
        for row in self._iter("infector, infectee, exposure, exposed_at", "transmission_links"):
            yield _link(row)

    def iter_events(self) -> Iterator[ContactEvent]:
        for row in self._iter(_EVENT_COLUMNS, "contact_events"):
            yield _event(row)

    def iter_event_rows(self) -> Iterator[tuple]:
        """Every contact event as its stored row ``(id, a, b, start_us, end_us, kind, place_id, source,
        closeness)``, without building models: what bulk exports (``neo4j_bulk.EventRow``) read."""
        return self._iter(_EVENT_COLUMNS, "contact_events", page=50_000)

    def iter_visits(self) -> Iterator[Visit]:
        for row in self._iter(_VISIT_COLUMNS, "visits"):
            yield _visit(row)

    def derived_for_case(self, case_id: str) -> list[TracedContact]:
        rows = self._query(
            f"SELECT {_DERIVED_COLUMNS} FROM derived_contacts WHERE case_id = ? ORDER BY exposed_at, person_id",
            (case_id,),
        )
        return [_derived(row) for row in rows]

    def derived_for_cases(self, case_ids: Iterable[str]) -> dict[str, list[TracedContact]]:
        found: dict[str, list[TracedContact]] = {cid: [] for cid in dict.fromkeys(case_ids)}
        for chunk in _chunks(found):
            sql = (
                f"SELECT {_DERIVED_COLUMNS} FROM derived_contacts WHERE case_id IN ({_marks(len(chunk))}) "
                "ORDER BY case_id, exposed_at, person_id"
            )
            for row in self._query(sql, chunk):
                found[row[0]].append(_derived(row))
        return found

    def contact_refs_for_cases(self, case_ids: Iterable[str]) -> dict[str, list[ContactRef]]:
        found: dict[str, list[ContactRef]] = {cid: [] for cid in dict.fromkeys(case_ids)}
        classes = _CONTACT_CLASSES
        for chunk in _chunks(found):
            sql = (
                f"SELECT case_id, person_id, contact_class FROM derived_contacts WHERE case_id IN ({_marks(len(chunk))}) "
                "ORDER BY case_id, exposed_at, person_id"
            )
            for case_id, person_id, contact_class in self._query(sql, chunk):
                found[case_id].append(ContactRef(person_id, classes[contact_class]))
        return found

    def iter_derived(self) -> Iterator[tuple[TracedContact, datetime]]:
        for row in self._iter(f"{_DERIVED_COLUMNS}, derived_at", "derived_contacts"):
            yield _derived(row[:7]), _from_us(row[7])

    def cases_deriving(self, person_ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(person_ids):
            marks = _marks(len(chunk))
            sql = (
                f"SELECT case_id FROM derived_contacts WHERE person_id IN ({marks}) "
                f"UNION SELECT case_id FROM derived_contacts WHERE source_id IN ({marks})"
            )
            found.update(case_id for (case_id,) in self._query(sql, [*chunk, *chunk]))
        return found

    def counts(self) -> StoreCounts:
        def count(table: str) -> int:
            return self._query(f"SELECT count(*) FROM {table}")[0][0]

        return StoreCounts(
            persons=count("persons"), places=count("places"), events=count("contact_events"),
            visits=count("visits"), links=count("transmission_links"), derived=count("derived_contacts"),
        )

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "SQLiteStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
