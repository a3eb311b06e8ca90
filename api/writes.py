"""Batch writes: check every row against the writer's scope first, then one atomic write and re-derivation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from graph_models import TracingPolicy
from graph_models.deadlines import DeadlinePolicy
from tracing import service
from tracing.auth import User, sees_all, visible
from tracing.store import GraphBatch, GraphStore

from .errors import ApiProblem, RowError
from .schemas import WriteResult

__all__ = ["apply_batch", "reject_rows", "scope_errors_for_links", "scope_errors_for_persons"]

_OUT_OF_SCOPE = "not writable: unknown or outside your region"


def reject_rows(errors: list[dict]) -> None:
    if errors:
        rows = len({e["index"] for e in errors})
        raise ApiProblem(422, "Batch rejected", f"{rows} invalid row(s); nothing was written", errors=errors)


def duplicate_errors(ids: Sequence[str], field: str = "id") -> list[dict]:
    seen: dict[str, int] = {}
    errors = []
    for i, key in enumerate(ids):
        if key in seen:
            errors.append(RowError(i, field, f"duplicate of row {seen[key]}"))
        else:
            seen[key] = i
    return errors


def scope_errors_for_persons(store: GraphStore, user: User, persons) -> list[dict]:
    """A region-limited writer may create or change only persons in their subtree."""
    if sees_all(user):
        return []
    existing = store.get_persons(p.id for p in persons)
    errors = []
    for i, p in enumerate(persons):
        old = existing.get(p.id)
        if not visible(user, p.region):
            errors.append(RowError(i, "region", "outside your region"))
        elif old is not None and not visible(user, old.region):
            errors.append(RowError(i, "id", _OUT_OF_SCOPE))
    return errors


def scope_errors_for_links(store: GraphStore, user: User, pairs: Sequence[tuple[str, str]], fields=("a", "b")) -> list[dict]:
    """Edges between two persons: both must exist, and one must be in the writer's region (cross-region contacts are normal)."""
    known = store.get_persons({x for pair in pairs for x in pair})
    errors = []
    for i, pair in enumerate(pairs):
        missing = [f for f, pid in zip(fields, pair) if pid not in known]
        for f in missing:
            errors.append(RowError(i, f, "no such person"))
        if not missing and not any(visible(user, known[pid].region) for pid in pair):
            errors.append(RowError(i, fields[0], _OUT_OF_SCOPE))
    return errors


def apply_batch(
    store: GraphStore, batch: GraphBatch, *, policy: TracingPolicy, deadline_policy: DeadlinePolicy, now: datetime
) -> WriteResult:
    rederived = service.apply_and_rederive(store, batch, policy=policy, deadline_policy=deadline_policy, now=now)
    return WriteResult(written=len(batch), rederived_cases=rederived)
