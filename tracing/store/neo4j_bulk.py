"""Initial loads of Neo4j through ``neo4j-admin database import full``: the CSV files it reads.

``store.apply`` writes through Cypher transactions, which a single writer on a
small machine cannot push much past ~20k contact events per second. The
offline importer builds the store files directly, several times faster, but
only into an empty (or overwritten) database. :class:`BulkWriter` writes its
input: one header file and one data file per node label and relationship
type, plus ``import.args``, the importer's arguments (picocli reads them with
``@import.args``), so that::

    cd DIR && neo4j-admin database import full --overwrite-destination @import.args neo4j

(or ``scripts/neo4j/neo4j.sh import DIR`` for the project's embedded server)
builds exactly the graph :class:`~tracing.store.neo4j.Neo4jStore` would have
written with ``apply``: the same labels, relationship types, property names,
types and time encodings (integer microseconds since the epoch), ``record:
true`` on real persons and places, ``id``-only stub nodes for endpoints
nobody imported. Constraints and indexes are not in the files: the adapter
creates them when it first opens the imported database (a duplicate
contact event id fails there). Nodes carry a dense integer import id
(``--id-type=integer``, not stored) besides their ``id`` property, so the
writer itself rejects a duplicate person or place id, and an endpoint that
was never written when ``stubs=False``.

Rows are checked as they are written (ids present, ``a != b``, ``start <=
end``, enum values known); the first bad one raises :class:`BulkInputError`
naming it, and nothing is left behind: files go to a temporary directory that
is renamed to its final name only by :meth:`BulkWriter.close` after success.

Speed: contact events can be given as plain tuples (:meth:`BulkWriter.event_rows`)
with times already in microseconds, the generator's and the SQLite store's
own shape; they go to ``csv.writer.writerows`` without building a model
object each.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

from graph_models import (
    Closeness,
    ContactClass,
    ContactEvent,
    ContactKind,
    ContactSource,
    Person,
    Place,
    TracedContact,
    TransmissionLink,
    Visit,
)

from .codec import to_epoch_us
from .neo4j import _pair_key  # the adapter's key text for links and derived relations
from .port import PERSON_TIME_FIELDS

__all__ = ["ARGS_FILE", "BulkInputError", "BulkWriter", "EventRow", "write_store"]

#: The importer's arguments, one per line, with paths relative to the directory.
ARGS_FILE = "import.args"

#: ``(id, a, b, start_us, end_us, kind, place_id, source, closeness)``: enum values as strings
#: (or ``StrEnum`` members), ``place_id`` ``None`` or a string, times integer µs since the epoch.
EventRow = tuple[str, str, str, int, int, str, "str | None", str, str]

_KINDS = frozenset(k.value for k in ContactKind)
_SOURCES = frozenset(s.value for s in ContactSource)
_CLOSENESS = frozenset(c.value for c in Closeness)

_PERSON_TIMES = frozenset(PERSON_TIME_FIELDS)
_FLOATS = frozenset({"lat", "lon"})
#: Node property columns in model field order; ``record`` (a real record, not a stub) last.
_PERSON_FIELDS = tuple(Person.model_fields)
_PLACE_FIELDS = tuple(Place.model_fields)
_person_values = attrgetter(*_PERSON_FIELDS)
_PERSON_TIME_COLUMNS = tuple(i for i, name in enumerate(_PERSON_FIELDS) if name in _PERSON_TIMES)
_ATTRIBUTES = _PERSON_FIELDS.index("attributes")
_encode = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(value, ensure_ascii=False), less overhead


def _column(name: str) -> str:
    if name in _PERSON_TIMES:
        return f"{name}:long"
    if name in _FLOATS:
        return f"{name}:double"
    return name


# file stem -> (label or relationship type, header columns). A relationship file with a
# ``:TYPE`` column (derived relations) carries its type on each row.
#
# Nodes are found by a dense integer import id (``--id-type=integer``, one id space per label;
# or, when ``close`` finds the numbers can be the node ids, ``--id-type=actual`` without id
# spaces): the first column, unnamed, so it is not stored; ``id`` is an ordinary string
# property. The importer maps integers much faster than strings (no string hashing and
# collision checks); the writer keeps the string -> integer dict and checks what the
# importer no longer can (a duplicate person or place id, an endpoint never written).
_FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "persons": ("Person", (":ID(Person)", *map(_column, _PERSON_FIELDS), "record:boolean")),
    "person_stubs": ("Person", (":ID(Person)", "id")),
    "places": ("Place", (":ID(Place)", *map(_column, _PLACE_FIELDS), "record:boolean")),
    "place_stubs": ("Place", (":ID(Place)", "id")),
    # In EventRow order: the importer finds the endpoints by their column type, wherever they are.
    "contacts": ("CONTACT", (
        "id", ":START_ID(Person)", ":END_ID(Person)", "start:long", "end:long", "kind", "place_id", "source",
        "closeness",
    )),
    "visits": ("VISITED", (":START_ID(Person)", ":END_ID(Place)", "id", "start:long", "end:long")),
    "links": ("INFECTED", (":START_ID(Person)", ":END_ID(Person)", "key", "exposure", "exposed_at:long")),
    "derived": ("", (
        ":START_ID(Person)", ":END_ID(Person)", ":TYPE", "key", "case_id", "exposed_at:long", "evidence:string[]",
        "exposure_count:long", "derived_at:long",
    )),
}
_NODE_FILES = ("persons", "person_stubs", "places", "place_stubs")
#: Separates the elements of ``evidence`` (event ids) in one CSV field; ids never contain it.
_ARRAY_DELIMITER = "\x1f"


class BulkInputError(ValueError):
    """A row that the importer must not get; nothing was written."""


def _us(value: datetime | None) -> int | None:
    return None if value is None else to_epoch_us(value)


def _bad_event(row: Sequence[Any]) -> str | None:
    """Why ``row`` is not a storable contact event, or ``None``."""
    if len(row) != 9:
        return f"expected 9 fields, got {len(row)}"
    event_id, a, b, start, end, kind, place_id, source, closeness = row
    for name, value in (("id", event_id), ("a", a), ("b", b)):
        if not isinstance(value, str) or not value:
            return f"{name} is missing"
    if a == b:
        return f"a contact needs two different persons (both are {a!r})"
    if not isinstance(start, int) or not isinstance(end, int):
        return "start and end must be integer microseconds"
    if end < start:
        return "end is before start"
    if kind not in _KINDS:
        return f"unknown kind {kind!r}"
    if source not in _SOURCES:
        return f"unknown source {source!r}"
    if closeness not in _CLOSENESS:
        return f"unknown closeness {closeness!r}"
    if place_id is not None and not isinstance(place_id, str):
        return "place_id must be a string"
    return None


def _plain_event_lines(rows: Sequence[EventRow], num: dict[str, str]) -> str | None:
    """The CSV lines of checked event rows by plain formatting (twice csv.writer's speed), or ``None``.

    Endpoints become their integer import ids (``num``, which must hold
    them, as text: an f-string of the nine fields is faster than ``%``
    formatting a new tuple of them). ``None`` when some field would need
    quoting (a comma, quote or line break in an id): the caller then uses
    csv.writer. Whether any does is read off the text: exactly 8 commas and one newline per row and no
    quote. An absent place is formatted as ``None`` and blanked afterwards,
    which is safe only if ``,None,`` occurs once per such row (no event id,
    kind or source is "None": enums and ids checked before).
    """
    text = "".join([f"{i},{num[a]},{num[b]},{s},{e},{k},{p},{src},{c}\n" for i, a, b, s, e, k, p, src, c in rows])
    n = len(rows)
    if text.count(",") != 8 * n or text.count("\n") != n or '"' in text or "\r" in text:
        return None
    without_place = sum(row[6] is None for row in rows)
    if without_place:
        if text.count(",None,") != without_place:
            return None
        text = text.replace(",None,", ",,")
    return text


class BulkWriter:
    """Writes the importer's CSV files for a whole graph into ``directory`` (which must not exist yet).

    Use as a context manager, or call :meth:`close` (success) / :meth:`abort`.
    Persons and places first is not required: an endpoint gets its integer
    import id when first seen, as a person or place or as an endpoint.

    Parameters
    ----------
    directory : path
        Created by :meth:`close`; until then the files live in a sibling temporary directory.
    stubs : bool
        Write ``id``-only stub nodes for the endpoints of events, visits, links
        and derived relations that were never written as a person or place,
        as ``apply`` creates them. With ``False``, such an endpoint is a
        :class:`BulkInputError` at :meth:`close`.
    """

    def __init__(self, directory: str | os.PathLike[str], *, stubs: bool = True) -> None:
        self.directory = Path(directory)
        if self.directory.exists():
            raise FileExistsError(f"{self.directory} already exists: the importer's files go into a new directory")
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.directory.name}.", dir=self.directory.parent))
        self.counts: dict[str, int] = dict.fromkeys(_FILES, 0)
        self._multiline: set[str] = set()
        self._handles: dict[str, Any] = {}
        self._stubs = stubs
        # Integer import id (as text) of every person / place id seen (written or referenced), and
        # the written ones.
        self._person_num: dict[str, str] = {}
        self._place_num: dict[str, str] = {}
        self._person_ids: set[str] = set()
        self._place_ids: set[str] = set()
        # Whether the import ids can be the node ids themselves (--id-type=actual): every person and
        # place block got fresh numbers, contiguous with the previous block of its file.
        self._actual = True
        self._next_id: dict[str, int] = {}  # node file stem -> number after its last block
        self._first_id: dict[str, int] = {}
        self._done = False
        try:
            for stem in _FILES:
                self._handles[stem] = open(self._tmp / f"{stem}.csv", "w", newline="", encoding="utf-8")
        except BaseException:
            self.abort()
            raise

    # --- writing ----------------------------------------------------------------------
    def _write(self, stem: str, rows: Sequence[Sequence[Any]]) -> None:
        """Write ``rows`` to ``stem``'s file, noting whether any field spans lines."""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        text = buffer.getvalue()
        # csv quotes a field holding a line break, so the file has more line ends than rows.
        if stem not in self._multiline and text.count("\n") != len(rows):
            self._multiline.add(stem)
        self._handles[stem].write(text)
        self.counts[stem] += len(rows)

    def _nums(self, num: dict[str, str], ids: Iterable[str]) -> list[str]:
        """The integer import ids of ``ids`` (``num`` is persons' or places'), new ones numbered on.

        Persons and places share one numbering (0, 1, … in the order first
        seen), so that the numbers can be the node ids themselves.
        """
        # setdefault's default is read before insertion: a new id gets the size of both dicts.
        other = len(self._place_num if num is self._person_num else self._person_num)
        return [num.setdefault(i, str(len(num) + other)) for i in ids]

    def persons(self, persons: Iterable[Person]) -> int:
        """Write persons (all fields; ``None`` ones absent, ``attributes`` as JSON, times as µs)."""
        rows = []
        fields_of, times, attributes, encode, us = _person_values, _PERSON_TIME_COLUMNS, _ATTRIBUTES, _encode, to_epoch_us
        for person in persons:
            row = list(fields_of(person))
            for i in times:
                if row[i] is not None:
                    row[i] = us(row[i])
            # The adapter's JSON text (json.dumps(..., ensure_ascii=False)); an empty dict is no property.
            row[attributes] = encode(row[attributes]) if row[attributes] else None
            rows.append(row)
        return self._write_records("persons", "person", rows, self._person_num, self._person_ids)

    def places(self, places: Iterable[Place]) -> int:
        """Write places (all fields, ``None`` ones absent)."""
        rows = [[getattr(place, name) for name in _PLACE_FIELDS] for place in places]
        return self._write_records("places", "place", rows, self._place_num, self._place_ids)

    def _write_records(
        self, stem: str, noun: str, rows: list[list[Any]], num: dict[str, str], written_ids: set[str]
    ) -> int:
        """Write node rows (id first) behind their import id, marked as real records (``record: true``)."""
        ids = [row[0] for row in rows]
        for n, node_id in enumerate(ids):
            if not node_id:
                raise BulkInputError(f"{noun} #{self.counts[stem] + n + 1}: id is missing")
        # The importer would only see the same integer twice: name the duplicate here.
        new = set(ids)
        if len(new) != len(ids) or not written_ids.isdisjoint(new):
            seen = set(written_ids)
            for n, node_id in enumerate(ids):
                if node_id in seen:
                    raise BulkInputError(f"{noun} #{self.counts[stem] + n + 1}: duplicate id {node_id!r}")
                seen.add(node_id)
        written_ids |= new
        before = len(self._person_num) + len(self._place_num)
        nums = self._nums(num, ids)
        if self._actual:
            # Fresh numbers (none seen as an endpoint before), right after this file's previous block.
            fresh = len(self._person_num) + len(self._place_num) == before + len(ids)
            if not fresh or self._next_id.get(stem, before) != before:
                self._actual = False
            self._first_id.setdefault(stem, before)
            self._next_id[stem] = before + len(ids)
        for row, k in zip(rows, nums):
            row.insert(0, k)
            row.append("true")
        self._write(stem, rows)
        return len(rows)

    def event_rows(self, rows: Sequence[EventRow]) -> int:
        """Write contact events given as :data:`EventRow` tuples (the fast path of initial loads)."""
        if not isinstance(rows, (list, tuple)):
            rows = list(rows)
        # One C-speed pass finds whether any row is off, then a slow pass says which and why.
        kinds, sources, closeness = _KINDS, _SOURCES, _CLOSENESS
        if not all(
            len(r) == 9 and r[0] and r[1] and r[2] and r[1] != r[2] and type(r[3]) is int and type(r[4]) is int
            and r[3] <= r[4] and r[5] in kinds and r[7] in sources and r[8] in closeness
            and isinstance(r[0], str) and isinstance(r[1], str) and isinstance(r[2], str)
            and (r[6] is None or isinstance(r[6], str))
            for r in rows
        ):
            for n, row in enumerate(rows):
                problem = _bad_event(row)
                if problem is not None:
                    event_id = row[0] if row else None
                    raise BulkInputError(
                        f"contact event #{self.counts['contacts'] + n + 1} (id {event_id!r}): {problem}"
                    )
        num = self._person_num
        try:
            text = _plain_event_lines(rows, num)
        except KeyError:  # an endpoint not seen yet: number every new one, then format
            self._nums(num, [end for r in rows for end in (r[1], r[2])])
            text = _plain_event_lines(rows, num)
        if text is None:
            self._write("contacts", [(r[0], num[r[1]], num[r[2]], *r[3:]) for r in rows])
        else:
            self._handles["contacts"].write(text)
            self.counts["contacts"] += len(rows)
        return len(rows)

    def events(self, events: Iterable[ContactEvent]) -> int:
        """Write contact events given as models."""
        return self.event_rows([
            (e.id, e.a, e.b, _us(e.start), _us(e.end), ContactKind(e.kind).value, e.place_id,
             ContactSource(e.source).value, Closeness(e.closeness).value)
            for e in events
        ])

    def visits(self, visits: Iterable[Visit]) -> int:
        rows = []
        for v in visits:
            start, end = _us(v.start), _us(v.end)
            if not (v.id and v.person_id and v.place_id) or start is None or end is None or end < start:
                raise BulkInputError(f"visit #{self.counts['visits'] + len(rows) + 1} (id {v.id!r}): "
                                     "id, person, place, start and end are required and end may not precede start")
            rows.append((v.person_id, v.place_id, v.id, start, end))
        persons = self._nums(self._person_num, (r[0] for r in rows))
        places = self._nums(self._place_num, (r[1] for r in rows))
        self._write("visits", [(a, b, *r[2:]) for a, b, r in zip(persons, places, rows)])
        return len(rows)

    def _person_pairs(self, stem: str, rows: list[tuple[Any, ...]]) -> None:
        """Write relationship rows whose first two fields are person ids, as their import ids."""
        ends = self._nums(self._person_num, [end for r in rows for end in (r[0], r[1])])
        self._write(stem, [(a, b, *r[2:]) for a, b, r in zip(ends[0::2], ends[1::2], rows)])

    def links(self, links: Iterable[TransmissionLink]) -> int:
        """Write transmission links (one per (infector, infectee): the importer does not merge duplicates)."""
        rows = []
        for k in links:
            if not (k.infector and k.infectee):
                raise BulkInputError(f"transmission link #{self.counts['links'] + len(rows) + 1}: "
                                     "infector and infectee are required")
            rows.append((k.infector, k.infectee, _pair_key(k.infector, k.infectee), k.exposure, _us(k.exposed_at)))
        self._person_pairs("links", rows)
        return len(rows)

    def derived(self, contacts: Iterable[tuple[TracedContact, datetime]]) -> int:
        """Write derived relations with the time they were derived (what ``iter_derived`` yields)."""
        rows = []
        for c, derived_at in contacts:
            evidence = list(c.evidence)
            if any(_ARRAY_DELIMITER in event_id for event_id in evidence):
                raise BulkInputError(f"derived contact {c.person_id!r} of case {c.case_id!r}: evidence id "
                                     "holds the array delimiter U+001F")
            rows.append((
                c.source_id, c.person_id, ContactClass(c.contact_class).relation, _pair_key(c.case_id, c.person_id),
                c.case_id, _us(c.exposed_at), _ARRAY_DELIMITER.join(evidence) if evidence else None,
                c.exposure_count, _us(derived_at),
            ))
        self._person_pairs("derived", rows)
        return len(rows)

    # --- finishing --------------------------------------------------------------------
    def _args(self, actual: bool) -> list[str]:
        args = [f"--id-type={'actual' if actual else 'integer'}", f"--array-delimiter=U+{ord(_ARRAY_DELIMITER):04X}"]
        if self._multiline:
            # Slower parsing, so only when some field really spans lines (names, addresses).
            args.append("--multiline-fields=true")
        stems = list(_FILES)
        if actual:  # node files in the order of their ids (the importer numbers nodes as it reads them)
            stems.sort(key=lambda stem: (stem not in _NODE_FILES, self._first_id.get(stem, len(_FILES))))
        for stem in stems:
            name = _FILES[stem][0]
            files = f"{stem}.header.csv,{stem}.csv"
            if stem in _NODE_FILES:
                args.append(f"--nodes={name}={files}")
            elif stem == "derived":
                args.append(f"--relationships={files}")
            else:
                args.append(f"--relationships={name}={files}")
        return args

    def close(self) -> Path:
        """Finish the files (stub nodes, ``import.args``) and move them to :attr:`directory`."""
        if self._done:
            return self.directory
        try:
            for stem, noun, num, written in (
                ("person_stubs", "person", self._person_num, self._person_ids),
                ("place_stubs", "place", self._place_num, self._place_ids),
            ):
                missing = [(k, i) for i, k in num.items() if i not in written] if len(num) != len(written) else []
                if missing and not self._stubs:
                    raise BulkInputError(f"{len(missing)} {noun} id(s) are endpoints but were never written "
                                         f"(e.g. {missing[0][1]!r}) and stubs=False")
                self._write(stem, missing)
            # Without stubs (numbered when first referenced, between the blocks) and with every
            # file's numbers in one fresh block, the numbers are the node ids: the importer then
            # needs no id mapping at all (relationship import ~30% faster at 1M / 5M than integers).
            actual = self._actual and not self.counts["person_stubs"] and not self.counts["place_stubs"]
            for stem, (_, header) in _FILES.items():
                text = ",".join(header)
                if actual:  # one id space: no groups
                    text = text.replace("(Person)", "").replace("(Place)", "")
                (self._tmp / f"{stem}.header.csv").write_text(text + "\n", encoding="utf-8")
            for handle in self._handles.values():
                handle.close()
            (self._tmp / ARGS_FILE).write_text("\n".join(self._args(actual)) + "\n", encoding="utf-8")
            self._tmp.rename(self.directory)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return self.directory

    def abort(self) -> None:
        """Drop everything written so far."""
        for handle in self._handles.values():
            handle.close()
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._done = True

    def __enter__(self) -> "BulkWriter":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_store(source: Any, directory: str | os.PathLike[str], *, batch_size: int = 50_000) -> dict[str, int]:
    """Write every record of ``source`` (any :class:`~tracing.store.port.GraphStore`) as importer files.

    Returns the rows written per file stem. Raises :class:`BulkInputError`
    (nothing written) on a record the importer must not get.
    """
    from itertools import islice

    def chunks(items: Iterable[Any]):
        iterator = iter(items)
        while chunk := list(islice(iterator, batch_size)):
            yield chunk

    with BulkWriter(directory) as writer:
        for chunk in chunks(source.iter_persons()):
            writer.persons(chunk)
        for chunk in chunks(source.iter_places()):
            writer.places(chunk)
        event_rows = getattr(source, "iter_event_rows", None)  # a store that has its rows in EventRow shape
        if event_rows is not None:
            for chunk in chunks(event_rows()):
                writer.event_rows(chunk)
        else:
            for chunk in chunks(source.iter_events()):
                writer.events(chunk)
        for chunk in chunks(source.iter_visits()):
            writer.visits(chunk)
        for chunk in chunks(source.iter_links()):
            writer.links(chunk)
        for chunk in chunks(source.iter_derived()):
            writer.derived(chunk)
    return dict(writer.counts)
