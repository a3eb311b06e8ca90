"""Row codecs shared by the deadline repository adapters (SQLite, Neo4j).

Times are stored as integer microseconds since the Unix epoch (UTC), as in
the graph stores. Rows read back were validated on the way in, so the
sweep's hot path builds models without re-validating them.
"""

from __future__ import annotations

from collections.abc import Sequence

from graph_models.deadlines import (
    DueSnapshot,
    Investigation,
    InvestigationKind,
    InvestigationStatus,
    Milestone,
    MilestoneKind,
    MilestoneReason,
    MilestoneState,
)

from ..store.codec import from_epoch_us, to_epoch_us
from .repository import Clock

us = to_epoch_us  # the storage time codec shared by every adapter
dt = from_epoch_us

__all__ = ["CLOCK_FIELDS", "INV_FIELDS", "MS_FIELDS", "clock_from_row", "dt", "inv_from_row", "inv_values", "ms_from_row", "ms_values", "us"]


#: Stored fields of an investigation, in row order.
INV_FIELDS = (
    "id", "kind", "case_id", "region", "team", "opened_at", "clock_start_at", "clock_source", "status", "closed_at",
    "no_contacts_at",
)
#: Stored fields of a milestone, in row order (``next_check_at`` is kept apart: it is the queue, not the model).
MS_FIELDS = (
    "id", "investigation_id", "kind", "person_id", "started_at", "due_at", "at_risk_at", "state", "met_at", "epoch",
    "reason", "evaluated_at", "at_due",
)


def inv_values(inv: Investigation) -> tuple:
    """An investigation as a row in :data:`INV_FIELDS` order."""
    return (
        inv.id, inv.kind.value, inv.case_id, inv.region, inv.team, us(inv.opened_at), us(inv.clock_start_at),
        inv.clock_source, inv.status.value, us(inv.closed_at), us(inv.no_contacts_declared_at),
    )


_INV_MODEL_FIELDS = frozenset(Investigation.model_fields)
_INV_KINDS = {k.value: k for k in InvestigationKind}
_INV_STATUSES = {s.value: s for s in InvestigationStatus}


def inv_from_row(row: Sequence) -> Investigation:
    """An investigation from a row in :data:`INV_FIELDS` order (stored rows were validated on the way in)."""
    inv = Investigation.__new__(Investigation)
    object.__setattr__(inv, "__dict__", {
        "id": row[0], "kind": _INV_KINDS[row[1]], "case_id": row[2], "region": row[3], "team": row[4],
        "opened_at": dt(row[5]), "clock_start_at": dt(row[6]), "clock_source": row[7],
        "status": _INV_STATUSES[row[8]], "closed_at": None if row[9] is None else dt(row[9]),
        "no_contacts_declared_at": None if row[10] is None else dt(row[10]),
    })
    object.__setattr__(inv, "__pydantic_fields_set__", set(_INV_MODEL_FIELDS))
    object.__setattr__(inv, "__pydantic_extra__", None)
    object.__setattr__(inv, "__pydantic_private__", None)
    return inv


def ms_values(m: Milestone, reason_json: str | None = None) -> tuple:
    """The mutable part of a milestone row: started_at … at_due (:data:`MS_FIELDS` [4:])."""
    return (
        us(m.started_at), us(m.due_at), us(m.at_risk_at), m.state.value, us(m.met_at), m.epoch,
        reason_json or m.reason.model_dump_json(), us(m.evaluated_at),
        m.at_due.model_dump_json() if m.at_due else None,
    )


_UNPARSED = MilestoneReason.model_construct(summary="(not loaded)", gaps=[])
_MS_MODEL_FIELDS = frozenset(Milestone.model_fields)


def ms_from_row(row: Sequence, full: bool = True) -> Milestone:
    """A milestone from a row in :data:`MS_FIELDS` order.

    ``full=False`` (the sweep) leaves the reason and snapshot unparsed and sets
    ``_stored_reason_json`` / ``_has_stored_at_due`` instead.
    """
    values = {
        "id": row[0], "investigation_id": row[1], "kind": MilestoneKind(row[2]), "person_id": row[3],
        "started_at": dt(row[4]), "due_at": dt(row[5]), "at_risk_at": dt(row[6]), "state": MilestoneState(row[7]),
        "met_at": dt(row[8]), "epoch": row[9],
        "reason": MilestoneReason.model_validate_json(row[10]) if full else _UNPARSED,
        "evaluated_at": dt(row[11]),
        "at_due": DueSnapshot.model_validate_json(row[12]) if full and row[12] else None,
    }
    # What Milestone.model_construct does, minus its per-field default handling (every field is given):
    # rows were validated on the way in, and this is the sweep's hot path.
    m = Milestone.__new__(Milestone)
    object.__setattr__(m, "__dict__", values)
    object.__setattr__(m, "__pydantic_fields_set__", set(_MS_MODEL_FIELDS))
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", {
        "_stored_reason_json": None if full else row[10], "_has_stored_at_due": not full and row[12] is not None,
    })
    return m


#: Stored fields of a :class:`~tracing.deadlines.repository.Clock`, in row order (``at_due`` read as presence only).
CLOCK_FIELDS = (
    "id", "investigation_id", "kind", "person_id", "started_at", "due_at", "at_risk_at", "state", "met_at", "epoch",
    "reason", "evaluated_at", "at_due", "next_check_at",
)
_KINDS = {k.value: k for k in MilestoneKind}
_STATES = {s.value: s for s in MilestoneState}


def clock_from_row(row: Sequence):
    """A light clock from a row in :data:`CLOCK_FIELDS` order (``at_due`` may be any non-null marker)."""
    return Clock(
        row[0], row[1], _KINDS[row[2]], row[3], row[4], row[5], row[6], _STATES[row[7]], row[8], row[9], row[10],
        row[11], row[12] is not None, row[13],
    )
