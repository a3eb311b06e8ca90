"""The deadline repository port: the few verbs the deadline engine needs from storage.

Adapters hold no red-line rules: they store, look up by key, keep the two
work queues (the dirty set and the ``next_check_at`` index) and apply a
planned write atomically. Every verb takes and returns batches keyed by
id, so a Neo4j adapter maps each to one ``UNWIND $rows … MERGE`` query
(milestones as ``(:Milestone {id})``, the dirty set as ``(:DeadlineDirty)``
nodes, the time index as a range index on ``Milestone.next_check_at``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from graph_models.deadlines import (
    Alert,
    AssistRequest,
    Investigation,
    InvestigatorArrival,
    IsolationArrival,
    Milestone,
    MilestoneKind,
    MilestoneState,
    TrackedPerson,
)

__all__ = [
    "Clock",
    "ComplianceRow",
    "DeadlineRepository",
    "DirtyMark",
    "EvaluationWrite",
    "MilestoneUpdate",
    "Tracked",
    "TrackedRow",
]


@dataclass(frozen=True)
class DirtyMark:
    """An investigation some graph write may have changed: earliest and latest marking time.

    ``persons``: when every write since the last sweep changed only recorded fields of
    persons (name, phone, location, dates…; not who is whose contact, nor arrivals), those
    persons; None when anything may have changed. The sweep re-checks only the named persons
    of such a mark (:func:`~tracing.deadlines.service.plan_field_changes`).
    """

    since: datetime
    changed_at: datetime
    persons: frozenset[str] | None = None


@dataclass(frozen=True)
class TrackedRow:
    person: TrackedPerson
    resolved_at: datetime | None = None
    outcome: str | None = None


#: A tracked person as the sweep reads it: ``(role, first_seen_at µs, resolved_at µs | None)``.
Tracked = tuple[str, int, int | None]


@dataclass(slots=True)
class Clock:
    """A stored milestone as the sweep reads it: plain values, times in integer µs since the epoch (UTC).

    ``reason_json`` is the stored reason (None: never stored, a new clock);
    ``has_at_due`` whether a due-time snapshot is stored; ``next_check_at``
    the clock's place in the time queue.
    """

    id: str
    investigation_id: str
    kind: MilestoneKind
    person_id: str | None
    started_at: int
    due_at: int
    at_risk_at: int
    state: MilestoneState
    met_at: int | None
    epoch: int
    reason_json: str | None
    evaluated_at: int | None
    has_at_due: bool
    next_check_at: int | None


@dataclass(slots=True)
class MilestoneUpdate:
    """New values of a stored milestone (times in µs), applied only if it still has ``expected_state``/``expected_epoch``
    (and, when given, ``expected_reason``: the reason it was planned from).

    Its times (started, due, at-risk) never change. ``at_due_json`` None keeps the stored snapshot.
    Checking the reason matters since stored reasons stand in for facts (the sweep's shortcut): a
    write planned from an older read, by a second sweeper, must not put back an older reason.
    """

    id: str
    state: MilestoneState
    met_at: int | None
    epoch: int
    reason_json: str
    evaluated_at: int | None
    at_due_json: str | None
    next_check_at: int | None
    expected_state: MilestoneState
    expected_epoch: int
    expected_next_check: int | None = None  # the stored queue time (an adapter may skip rewriting it if unchanged)
    expected_reason: str | None = None  # the stored reason as read (None: not checked)


@dataclass
class EvaluationWrite:
    """Everything one evaluation of one investigation writes; applied all or nothing.

    ``dirty_token`` clears the investigation's dirty mark unless it was
    marked again after that time (a write that raced the sweep keeps it dirty).
    """

    investigation_id: str
    updates: list[MilestoneUpdate] = field(default_factory=list)
    new_milestones: list[tuple[Milestone, datetime | None]] = field(default_factory=list)
    new_tracked: list[TrackedPerson] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    dirty_token: datetime | None = None
    #: New earliest time (µs) a future-dated fact of the investigation takes effect, stored when ``store_facts_change``.
    facts_change_at: int | None = None
    store_facts_change: bool = False
    #: New fingerprint of the contact list (and rules) the stored reasons were made from; None keeps the stored one.
    contacts_digest: str | None = None


@dataclass(frozen=True)
class ComplianceRow:
    group: str | None
    kind: str
    personal: bool
    state: MilestoneState
    count: int


@runtime_checkable
class DeadlineRepository(Protocol):
    """Investigations, milestones, facts the clocks read, the work queues and alerts."""

    # --- investigations and their facts --------------------------------------------------
    def add_investigation(
        self, investigation: Investigation, milestones: Sequence[Milestone], *, tracked: Sequence[TrackedPerson] = ()
    ) -> bool:
        """Insert an investigation with its milestones and marks it dirty; False if the id exists."""

    def get_investigations(self, ids: Iterable[str]) -> dict[str, Investigation]: ...

    def investigation_ids_for_cases(self, case_ids: Iterable[str]) -> dict[str, str]:
        """Case id → id of its (case-kind) investigation."""

    def update_investigation(self, investigation: Investigation, *, now: datetime) -> None:
        """Store changed team / status / declarations and mark it dirty."""

    def milestones_of(self, ids: Iterable[str], *, full: bool = True) -> dict[str, list[Milestone]]:
        """Milestones per investigation. ``full=False`` (the sweep) may skip parsing reasons and
        snapshots, setting ``_stored_reason_json`` / ``_has_stored_at_due`` instead."""

    def clocks_of(self, ids: Iterable[str]) -> dict[str, list[Clock]]:
        """The sweep's light copy of :meth:`milestones_of`: clocks per investigation, sorted by id."""

    def tracked_of(self, ids: Iterable[str]) -> dict[str, dict[str, TrackedRow]]: ...

    def tracked_brief_of(self, ids: Iterable[str]) -> dict[str, dict[str, Tracked]]:
        """The sweep's light copy of :meth:`tracked_of`: person id → ``(role, first_seen_at µs, resolved_at µs)``."""

    def tracked_counts(self, ids: Iterable[str]) -> dict[str, int]:
        """Number of tracked persons per investigation (absent: none)."""

    def record_arrival(self, arrival: InvestigatorArrival, *, now: datetime | None = None) -> None:
        """An investigator on scene (2 h clock); marks the investigation dirty."""

    def arrivals_of(self, ids: Iterable[str]) -> dict[str, list[InvestigatorArrival]]: ...

    def record_isolation_arrival(
        self, person_id: str, site_id: str, arrived_at: datetime, *, now: datetime | None = None
    ) -> set[str]:
        """A person arrived at an isolation site; marks every investigation watching them dirty."""

    def isolation_arrivals_of(self, person_ids: Iterable[str]) -> dict[str, IsolationArrival]:
        """Earliest recorded isolation arrival per person."""

    def add_assist_request(
        self, request: AssistRequest, investigation: Investigation, milestones: Sequence[Milestone],
        tracked: Sequence[TrackedPerson],
    ) -> bool: ...

    def get_assist_requests(self, ids: Iterable[str]) -> dict[str, AssistRequest]: ...

    def resolve_assist_person(self, request_id: str, person_id: str, *, outcome: str, at: datetime) -> None: ...

    # --- work queues ----------------------------------------------------------------------
    def investigations_watching(self, person_ids: Iterable[str]) -> dict[str, set[str]]:
        """Open investigations whose case, tracked persons or pushed persons include any of ``person_ids``,
        each with those of ``person_ids`` it watches."""

    def mark_dirty(self, ids: Iterable[str], at: datetime, *, persons: Mapping[str, Iterable[str]] | None = None) -> int:
        """Queue investigations ``ids`` for the sweep; returns how many.

        An investigation in ``persons`` gets a mark naming those persons (only their recorded
        fields changed); the others a mark that anything may have changed. Marks merge: the
        earliest ``since``, the latest ``changed_at``, the union of named persons, and a mark
        that anything changed wins over any naming persons. Each merge moves ``changed_at`` on by at
        least 1 µs (``max(stored + 1 µs, at)``): the sweep clears a mark only if ``changed_at`` is still
        the one it read, so a mark made after that read survives even when its writer's clock was behind.
        """

    def due_for_sweep(self, now: datetime, *, limit: int) -> tuple[dict[str, DirtyMark], set[str]]:
        """Dirty investigations, and those with a milestone whose ``next_check_at`` ≤ ``now`` (by index)."""

    def evaluation_stamps(self, ids: Iterable[str]) -> dict[str, tuple[int | None, str | None]]:
        """What the last evaluation of each investigation stored for the next: the earliest time (µs) a
        future-dated fact takes effect and :attr:`EvaluationWrite.contacts_digest` (None: none stored;
        investigations with neither are absent)."""

    def dirty_marks(self, *, limit: int) -> dict[str, DirtyMark]:
        """The dirty queue (by index on ``since``, earliest first, at most ``limit``)."""

    def due_clocks(self, now: datetime, *, limit: int) -> list[Clock]:
        """Clocks whose ``next_check_at`` ≤ ``now`` (by index, earliest first, at most ``limit``)."""

    def apply_evaluations(self, writes: Sequence[EvaluationWrite]) -> tuple[list[Alert], dict[str, str]]:
        """Apply each write atomically (independently of the others).

        Returns the alerts actually inserted (with ``seq``; a key already
        stored is skipped) and, per investigation whose write was refused
        (a concurrent change) or failed, the reason.
        """

    def claim_sweep(self, holder: str, *, now: datetime, until: datetime) -> str:
        """Take or renew the store's sweep lease for ``holder`` until ``until``, unless another holder's
        lease is still live at ``now``. Returns the holder after the call (``holder``: claimed).
        Atomic: of two processes claiming an expired lease at once, one gets it."""

    def release_sweep(self, holder: str) -> None:
        """Give up the sweep lease if ``holder`` holds it (a clean shutdown: the next process need not wait)."""

    # --- alerts and reports ---------------------------------------------------------------
    def alerts(
        self, *, after_seq: int | None = None, investigation_id: str | None = None,
        states: Iterable[MilestoneState] | None = None, since: datetime | None = None, limit: int | None = None,
    ) -> list[Alert]: ...

    def max_alert_seq(self) -> int: ...

    def sink_cursor(self, sink: str) -> int | None: ...

    def set_sink_cursor(self, sink: str, seq: int, *, failed: bool = False, error: str | None = None) -> None: ...

    def milestones_where(
        self, *, states: Iterable[MilestoneState] | None = None, due_since: datetime | None = None,
        due_until: datetime | None = None, investigation_id: str | None = None, limit: int | None = None,
    ) -> list[tuple[Milestone, Investigation]]: ...

    def compliance_rows(
        self, *, group_by: str, due_since: datetime | None = None, due_until: datetime | None = None
    ) -> list[ComplianceRow]:
        """Milestone counts by (region|team, kind, personal, state) for clocks due in the window."""
