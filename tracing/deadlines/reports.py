"""Reports: open / missed clocks, compliance rates per team or region, and the look-back (倒查)."""

from __future__ import annotations

from datetime import datetime

from graph_models.deadlines import (
    ComplianceLine,
    Investigation,
    LookBack,
    Milestone,
    MilestoneKind,
    MilestoneLookBack,
    MilestoneState,
)

from .repository import DeadlineRepository
from .service import InvestigationNotFound

__all__ = ["clock_label", "compliance", "look_back", "milestones_report"]

_CLOCK = {
    MilestoneKind.ON_SCENE: "2h", MilestoneKind.CORE_INFO: "4h", MilestoneKind.FULL_INFO: "24h",
    MilestoneKind.TRANSFER: "8h", MilestoneKind.ASSIST: "24h-assist",
}
_OPEN = (MilestoneState.PENDING, MilestoneState.AT_RISK, MilestoneState.MISSED)


def clock_label(kind: MilestoneKind, personal: bool = False) -> str:
    return _CLOCK[kind] + ("-personal" if personal else "")


def milestones_report(
    repo: DeadlineRepository, *, open_only: bool = False, missed_only: bool = False, since: datetime | None = None,
    until: datetime | None = None, investigation_id: str | None = None, limit: int | None = None,
) -> list[tuple[Milestone, Investigation]]:
    """Clocks due in ``[since, until]``: all, still open (pending, at risk, missed) or missed (now or ever: missed and met_late)."""
    states = None
    if missed_only:
        states = (MilestoneState.MISSED, MilestoneState.MET_LATE)
    elif open_only:
        states = _OPEN
    return repo.milestones_where(
        states=states, due_since=since, due_until=until, investigation_id=investigation_id, limit=limit
    )


def compliance(
    repo: DeadlineRepository, *, group_by: str = "region", since: datetime | None = None, until: datetime | None = None,
) -> list[ComplianceLine]:
    """Met on time / late / missed per region (or team) for each clock (2, 4, 24, 8, 8-personal, assist)."""
    lines: dict[tuple, ComplianceLine] = {}
    for row in repo.compliance_rows(group_by=group_by, due_since=since, due_until=until):
        kind = MilestoneKind(row.kind)
        key = (row.group or "", kind.value, row.personal)
        line = lines.get(key)
        if line is None:
            line = lines[key] = ComplianceLine(
                group=row.group, clock=clock_label(kind, row.personal), kind=kind, personal=row.personal
            )
        if row.state in (MilestoneState.PENDING, MilestoneState.AT_RISK):
            line.open += row.count
        else:
            field = row.state.value
            setattr(line, field, getattr(line, field) + row.count)
    order = {k: i for i, k in enumerate(_CLOCK)}
    return sorted(lines.values(), key=lambda x: (x.group or "", order[x.kind], x.personal))


def _state_at_due(m: Milestone, history, now: datetime) -> MilestoneState:
    state = MilestoneState.PENDING
    for alert in sorted(history, key=lambda a: (a.at, a.seq or 0)):
        if alert.at <= m.due_at:
            state = alert.state
    if state in (MilestoneState.PENDING, MilestoneState.AT_RISK) and now >= m.due_at:
        return MilestoneState.MISSED
    return state


def look_back(repo: DeadlineRepository, investigation_id: str, *, now: datetime) -> LookBack:
    """倒查: for each clock, its state at due time, who was known by then, and how it went.

    Built from what the store keeps with timestamps: discovery times of
    persons, arrivals, isolation arrivals, the alert history (one per state
    change) and the reason snapshot taken by the first sweep at or after
    due time. Person fields are not versioned, so "what was missing" at due
    time comes from that snapshot.

    Raises
    ------
    InvestigationNotFound
    """
    inv = repo.get_investigations([investigation_id]).get(investigation_id)
    if inv is None:
        raise InvestigationNotFound(investigation_id)
    milestones = repo.milestones_of([investigation_id]).get(investigation_id, [])
    tracked = [row.person for row in repo.tracked_of([investigation_id]).get(investigation_id, {}).values()]
    arrivals = repo.arrivals_of([investigation_id]).get(investigation_id, [])
    isolation = repo.isolation_arrivals_of([t.person_id for t in tracked])
    alerts = repo.alerts(investigation_id=investigation_id)
    found = []
    for m in milestones:
        history = [a for a in alerts if a.milestone_id == m.id]
        known = sorted((t for t in tracked if t.first_seen_at <= m.due_at), key=lambda t: (t.first_seen_at, t.person_id))
        later = sorted((t for t in tracked if t.first_seen_at > m.due_at), key=lambda t: (t.first_seen_at, t.person_id))
        isolated = []
        if m.kind is MilestoneKind.TRANSFER:
            subjects = [m.person_id] if m.person_id else [t.person_id for t in tracked if t.role in ("close", "secondary")]
            isolated = sorted(p for p in subjects if p in isolation and isolation[p].arrived_at <= m.due_at)
        on_scene = [a.arrived_at for a in arrivals if a.arrived_at <= m.due_at]
        found.append(MilestoneLookBack(
            milestone=m, state_at_due=_state_at_due(m, history, now), snapshot=m.at_due, known_at_due=known,
            discovered_after_due=later, isolated_by_due=isolated,
            investigator_on_scene_at=min(on_scene) if on_scene else None, history=history,
        ))
    order = {k: i for i, k in enumerate(_CLOCK)}
    found.sort(key=lambda x: (order[x.milestone.kind], x.milestone.person_id or ""))
    return LookBack(investigation=inv, milestones=found)
