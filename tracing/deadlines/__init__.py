"""The 2+4+24+8 deadline engine (流调红线): milestone clocks computed from graph state.

Layers: :mod:`graph_models.deadlines` (models, policy) → :mod:`.engine` (pure
evaluation) → :mod:`.service` (load, evaluate, sweep; ``now`` injected) →
:mod:`.reports` → :mod:`.sinks` and :mod:`tracing.scheduler` (jobs) and
:mod:`.cli` (commands). Storage is behind :class:`.repository.DeadlineRepository`.
"""

from .service import (
    InvestigationNotFound,
    SweepResult,
    after_graph_change,
    assign_team,
    close_investigation,
    deadline_repository,
    declare_no_contacts,
    evaluate,
    mark_dirty_for_persons,
    open_assist_request,
    open_investigation,
    record_arrival,
    record_isolation_arrival,
    sweep_deadlines,
)

__all__ = [
    "InvestigationNotFound",
    "SweepResult",
    "after_graph_change",
    "assign_team",
    "close_investigation",
    "deadline_repository",
    "declare_no_contacts",
    "evaluate",
    "mark_dirty_for_persons",
    "open_assist_request",
    "open_investigation",
    "record_arrival",
    "record_isolation_arrival",
    "sweep_deadlines",
]
