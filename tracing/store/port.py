"""The storage port: the few verbs tracing needs from any graph store.

Adapters (SQLite, Neo4j) implement :class:`GraphStore` and hold no tracing
rules: they store, look up by key and filter by time window, nothing more.
Every write verb is atomic: a batch is written whole or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol, TypeVar, runtime_checkable

from graph_models import (
    ContactClass,
    ContactEvent,
    Person,
    PersonStatus,
    Place,
    TracedContact,
    TransmissionLink,
    Visit,
)

R = TypeVar("R")


def region_subtree_bounds(region: str) -> tuple[str, str]:
    """``(exact, prefix)``: a region lies in ``region``'s subtree if it equals ``exact`` or starts with ``prefix``.

    Region codes are hierarchical: all-digit administrative codes (``11`` ⊃
    ``1101`` ⊃ ``110105``) nest by prefix; other codes are paths
    (``KR/Seoul`` ⊃ ``KR/Seoul/Gangnam-gu``) and nest by whole segments, so
    ``KR/Seoul`` does not contain ``KR/Seoulite``. The same rule as
    :func:`tracing.auth.scope.in_region`, in a form stores can index.
    """
    if region.isdigit():
        return region, region
    base = region.rstrip("/") or region  # "KR/Seoul/" names the same region as "KR/Seoul"
    return base, base + "/"


@dataclass
class GraphBatch:
    """Everything one atomic write puts into the graph (upserts by key).

    Keys: persons, places, events and visits by ``id``; transmission links
    by ``(infector, infectee)``.
    """

    persons: list[Person] = field(default_factory=list)
    places: list[Place] = field(default_factory=list)
    events: list[ContactEvent] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    links: list[TransmissionLink] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.persons) + len(self.places) + len(self.events) + len(self.visits) + len(self.links)


class ContactSpan(NamedTuple):
    """A contact event reduced to what traversals read, without building a model object.

    Traversals load hundreds to thousands of events per query; a plain tuple
    costs a fraction of a validated (or even constructed) :class:`ContactEvent`.
    ``start`` and ``end`` are aware UTC datetimes; ``kind`` and ``closeness``
    are the stored enum values (``ContactKind`` / ``Closeness`` strings).
    """

    id: str
    a: str
    b: str
    start: datetime
    end: datetime
    kind: str
    closeness: str


class ContactRef(NamedTuple):
    """A stored derived relation reduced to who and in which class (what the deadline sweep reads)."""

    person_id: str
    contact_class: ContactClass


#: Fields :meth:`GraphReader.person_fields` reads by name (``attributes`` is read per key, as ``attr:<key>``).
PERSON_FIELD_NAMES = frozenset(Person.model_fields) - {"attributes"}
#: Person fields stored as times (read back by :meth:`GraphReader.person_fields` as integer µs since the epoch).
PERSON_TIME_FIELDS = ("onset_at", "sampled_at", "confirmed_at", "reported_at", "isolated_at")


def check_person_fields(fields: Sequence[str]) -> None:
    """Raise ValueError unless every name is a :data:`PERSON_FIELD_NAMES` member or ``attr:<key>``."""
    for name in fields:
        if name not in PERSON_FIELD_NAMES and not (name.startswith("attr:") and len(name) > 5):
            raise ValueError(f"unknown person field {name!r}: use one of {sorted(PERSON_FIELD_NAMES)} or attr:<key>")


@dataclass(frozen=True)
class StoreCounts:
    persons: int
    places: int
    events: int
    visits: int
    links: int
    derived: int


@runtime_checkable
class GraphReader(Protocol):
    """The store's lookups by key and time window: what an algorithm reads.

    Time-window filters select records whose interval *overlaps*
    ``[start, end]`` (both inclusive); ``None`` leaves that side open.
    """

    def get_persons(self, person_ids: Iterable[str]) -> dict[str, Person]:
        """Persons by id; unknown ids are absent from the result."""

    def isolation_times(self, person_ids: Iterable[str]) -> dict[str, datetime | None]:
        """``isolated_at`` of the given persons (unknown ids absent): what traversals need, cheaply."""

    def person_fields(self, person_ids: Iterable[str], fields: Sequence[str]) -> dict[str, tuple]:
        """A few fields of persons by id, each person's as a tuple in ``fields`` order (unknown ids absent).

        A field is a :class:`Person` field name (:data:`PERSON_FIELD_NAMES`; times as integer µs since
        the epoch, UTC; ``status`` as its string value) or ``attr:<key>`` (that entry of ``attributes``,
        None when absent). The values :meth:`get_persons` would hold, without building and validating
        whole models: the deadline sweep checks a few fields of thousands of persons per tick.

        Raises
        ------
        ValueError
            For a name that is neither (see :func:`check_person_fields`).
        """

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
        """Up to ``limit`` persons with an id greater than ``after``, in id order, matching every filter given.

        One keyset page of a listing. ``region`` selects a subtree of the
        region hierarchy (see :func:`region_subtree_bounds`); ``statuses`` any
        of those statuses; ``reported_since`` / ``reported_until`` bound
        ``reported_at`` (inclusive; persons without it are left out).
        """

    def get_places(self, place_ids: Iterable[str]) -> dict[str, Place]: ...

    def get_events(self, event_ids: Iterable[str]) -> dict[str, ContactEvent]: ...

    def persons_with_status(self, statuses: Iterable[PersonStatus]) -> list[Person]: ...

    def events_touching(
        self, person_ids: Iterable[str], *, start: datetime | None = None, end: datetime | None = None
    ) -> list[ContactEvent]:
        """Contact events with either end in ``person_ids`` overlapping the window, ordered by start."""

    def contact_spans(
        self,
        person_ids: Iterable[str],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        closeness: str | None = None,
    ) -> list[ContactSpan]:
        """The events :meth:`events_touching` selects, as :class:`ContactSpan` tuples, in no particular order.

        The read traversals use: each event once, however many of ``person_ids`` it touches.
        ``closeness`` (a :class:`~graph_models.Closeness` value) keeps only the events recorded
        with it, so a traversal that only moves along close contacts does not read the others.
        """

    def visits_of(
        self, person_ids: Iterable[str], *, start: datetime | None = None, end: datetime | None = None
    ) -> list[Visit]: ...

    def visits_at(
        self, place_ids: Iterable[str], *, start: datetime | None = None, end: datetime | None = None
    ) -> list[Visit]: ...

    def links_from(self, infector_ids: Iterable[str]) -> list[TransmissionLink]: ...

    def links_to(self, infectee_ids: Iterable[str]) -> list[TransmissionLink]: ...

    def derived_for_case(self, case_id: str) -> list[TracedContact]:
        """The derived relations stored for ``case_id``, ordered by exposure time, then person id."""

    def derived_for_cases(self, case_ids: Iterable[str]) -> dict[str, list[TracedContact]]:
        """:meth:`derived_for_case` of many cases in one go (every given id is a key, maybe empty)."""

    def contact_refs_for_cases(self, case_ids: Iterable[str]) -> dict[str, list[ContactRef]]:
        """:meth:`derived_for_cases` reduced to person and class, in the same order, without decoding
        evidence or building models (the deadline sweep reads thousands per tick)."""

    def cases_deriving(self, person_ids: Iterable[str]) -> set[str]:
        """Ids of cases whose derived relations mention any of ``person_ids`` (as source or target)."""


@runtime_checkable
class GraphStore(GraphReader, Protocol):
    """A contact graph behind a small set of verbs: the reads of :class:`GraphReader`, and these."""

    # --- writes (each call is one transaction) ---------------------------------
    def apply(self, batch: GraphBatch) -> None:
        """Upsert everything in ``batch`` atomically; on any error nothing is written."""

    def delete_events(self, event_ids: Sequence[str]) -> int:
        """Remove contact events by id; returns how many existed."""

    def replace_derived(self, case_id: str, contacts: Sequence[TracedContact], derived_at: datetime) -> None:
        """Replace all derived relations of ``case_id`` with ``contacts`` atomically."""

    # --- reads -------------------------------------------------------------------
    def read_transaction(self, fn: Callable[[GraphReader], R]) -> R:
        """``fn(reader)``, the reads of ``reader`` grouped into one read transaction where that saves round trips.

        For an algorithm that makes several dependent reads (a trace makes
        five). ``fn`` must only read and must not keep state between calls: a
        server backend may run it again after a transient error.
        """

    def iter_persons(self) -> Iterator[Person]: ...

    def iter_places(self) -> Iterator[Place]: ...

    def iter_events(self) -> Iterator[ContactEvent]: ...

    def iter_visits(self) -> Iterator[Visit]: ...

    def iter_links(self) -> Iterator[TransmissionLink]: ...

    def iter_derived(self) -> Iterator[tuple[TracedContact, datetime]]:
        """Every stored derived relation with the time it was derived (for migrations and exports)."""

    def counts(self) -> StoreCounts: ...

    def close(self) -> None: ...
