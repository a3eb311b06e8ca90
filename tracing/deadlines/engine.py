"""Pure evaluation of the 2+4+24+8 clocks from loaded facts. No I/O; ``now`` is always passed in.

:func:`evaluate_facts` turns the facts of one investigation (what the graph
and the deadline repository say, loaded by :mod:`tracing.deadlines.service`)
into the milestone states in force at ``now`` with the reason (who lacks
what). :func:`plan_write` compares that with the stored milestones and plans
the state changes and alerts the sweep writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from graph_models import ContactClass, Person, Place, TracedContact, Visit
from graph_models.deadlines import (
    Alert,
    AlertSeverity,
    AssistRequest,
    DeadlinePolicy,
    DueSnapshot,
    Gap,
    Investigation,
    InvestigationKind,
    InvestigationStatus,
    InvestigatorArrival,
    IsolationArrival,
    Milestone,
    MilestoneKind,
    MilestoneReason,
    MilestoneState,
    TrackedPerson,
)

from .repository import DirtyMark, EvaluationWrite, MilestoneUpdate, TrackedRow

__all__ = [
    "Facts",
    "InvestigationEvaluation",
    "base_milestones",
    "evaluate_facts",
    "missing_groups",
    "next_check_at",
    "plan_write",
    "state_at",
    "trajectory_window",
]

_CORE_CLASSES = (ContactClass.CLOSE, ContactClass.SECONDARY)


@dataclass
class Facts:
    """Everything one evaluation reads, loaded in batches by the service."""

    investigation: Investigation
    milestones: list[Milestone]
    case: Person | None = None
    contacts: list[TracedContact] = field(default_factory=list)
    persons: dict[str, Person] = field(default_factory=dict)
    case_visits: list[Visit] = field(default_factory=list)
    places: dict[str, Place] = field(default_factory=dict)
    arrivals: list[InvestigatorArrival] = field(default_factory=list)
    isolation: dict[str, IsolationArrival] = field(default_factory=dict)
    tracked: dict[str, TrackedRow] = field(default_factory=dict)
    dirty: DirtyMark | None = None
    request: AssistRequest | None = None


@dataclass
class InvestigationEvaluation:
    """Milestone states at ``now`` (new values, not yet stored) and persons seen for the first time."""

    investigation: Investigation
    now: datetime
    milestones: list[Milestone]
    new_tracked: list[TrackedPerson]

    def by_id(self, milestone_id: str) -> Milestone:
        return next(m for m in self.milestones if m.id == milestone_id)

    def of(self, kind: MilestoneKind, person_id: str | None = None) -> Milestone:
        return next(m for m in self.milestones if m.kind is kind and m.person_id == person_id)


# --- small pure helpers ------------------------------------------------------------------------


def state_at(*, due_at: datetime, at_risk_at: datetime, met_at: datetime | None, now: datetime) -> MilestoneState:
    if met_at is not None:
        return MilestoneState.MET if met_at <= due_at else MilestoneState.MET_LATE
    if now >= due_at:
        return MilestoneState.MISSED
    if now >= at_risk_at:
        return MilestoneState.AT_RISK
    return MilestoneState.PENDING


def next_check_at(milestone: Milestone) -> datetime | None:
    """The next time-driven transition of a stored milestone (the sweep's time index)."""
    if milestone.state is MilestoneState.PENDING:
        return milestone.at_risk_at
    if milestone.state is MilestoneState.AT_RISK:
        return milestone.due_at
    return None


def milestone_id(investigation_id: str, kind: MilestoneKind, person_id: str | None = None) -> str:
    return f"{investigation_id}:{kind.value}" + (f":{person_id}" if person_id else "")


def new_milestone(
    investigation: Investigation, kind: MilestoneKind, *, started_at: datetime, duration: timedelta,
    policy: DeadlinePolicy, person_id: str | None = None,
) -> Milestone:
    due = started_at + duration
    return Milestone(
        id=milestone_id(investigation.id, kind, person_id), investigation_id=investigation.id, kind=kind,
        person_id=person_id, started_at=started_at, due_at=due, at_risk_at=max(started_at, due - policy.at_risk_lead),
    )


def base_milestones(investigation: Investigation, *, policy: DeadlinePolicy) -> list[Milestone]:
    """The clocks an investigation opens with (a region's × hours open none)."""
    hours = policy.hours_for(investigation.region)
    kinds = (
        [MilestoneKind.ASSIST]
        if investigation.kind is InvestigationKind.ASSIST
        else [MilestoneKind.ON_SCENE, MilestoneKind.CORE_INFO, MilestoneKind.FULL_INFO, MilestoneKind.TRANSFER]
    )
    found = []
    for kind in kinds:
        duration = hours.of(kind)
        if duration is not None:
            found.append(
                new_milestone(investigation, kind, started_at=investigation.clock_start_at, duration=duration, policy=policy)
            )
    return found


def _has(person: Person, name: str) -> bool:
    if name == "location":
        return person.lat is not None and person.lon is not None
    if name[:5] == "attr:":
        value = person.attributes.get(name[5:])
    else:
        value = getattr(person, name)
    return value is not None and value != ""


def missing_groups(person: Person | None, groups: tuple[tuple[str, ...], ...]) -> list[str]:
    """Labels (``"id_number|phone"``) of the requirement groups ``person`` does not satisfy."""
    if person is None:
        return ["person_record"]
    missing = []
    for group in groups:  # plain loops: this runs for every contact of every swept investigation
        for name in group:
            if _has(person, name):
                break
        else:
            missing.append("|".join(group))
    return missing


def trajectory_window(case: Person, investigation: Investigation, policy: DeadlinePolicy) -> tuple[datetime, datetime] | None:
    anchor = case.onset_at or case.sampled_at
    if anchor is None:
        return None
    end = investigation.clock_start_at
    if case.isolated_at is not None:
        end = min(end, case.isolated_at)
    start = anchor - policy.trajectory_look_back
    return start, max(start, end)


def uncovered_days(visits: list[Visit], start: datetime, end: datetime, offset: timedelta) -> list[date]:
    """Calendar days (at UTC ``offset``) of ``[start, end]`` that no visit overlaps."""
    first, last = (start + offset).date(), (end + offset).date()
    covered: set[date] = set()
    for v in visits:
        lo, hi = max(v.start, start), min(v.end, end)
        if lo > hi:
            continue
        day = (lo + offset).date()
        while day <= (hi + offset).date():
            covered.add(day)
            day += timedelta(days=1)
    days, day = [], first
    while day <= last:
        if day not in covered:
            days.append(day)
        day += timedelta(days=1)
    return days


# --- evaluation ---------------------------------------------------------------------------------------


def trusted(cls, values: dict):
    """``cls.model_construct(**values)`` for values that name every field, without its per-field work.

    For models built from trusted values on the sweep's hot path (reasons, gaps, rows read back).
    """
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


def _reason(summary: str, gaps: list[Gap] | None = None) -> MilestoneReason:
    return trusted(MilestoneReason, {"summary": summary, "gaps": gaps or []})


def _gap(person_id: str | None = None, role: str = "", missing: list[str] | None = None) -> Gap:
    return trusted(Gap, {"person_id": person_id, "role": role, "missing": missing or []})



@dataclass
class _Outcome:
    """Whether a milestone's condition holds at ``now``, since when if known, and why not."""

    satisfied: bool
    reason: MilestoneReason
    met_at: datetime | None = None  # exact time when the facts carry one (arrivals)


def _contacts_outcome(
    facts: Facts, persons: list[TracedContact], *, policy: DeadlinePolicy, now: datetime, what: str,
    check, empty_ok: bool, lacking: str = "incomplete",
) -> _Outcome:
    if not persons and not empty_ok:
        declared = facts.investigation.no_contacts_declared_at
        if not (policy.empty_contacts_meet or (declared is not None and declared <= now)):
            return _Outcome(False, _reason(summary=f"no {what} derived yet", gaps=[
                _gap(person_id=None, role="investigation", missing=[f"{what} (or a declaration of none)"])
            ]))
    gaps = []
    for contact in persons:
        missing = check(contact)
        if missing:
            gaps.append(_gap(person_id=contact.person_id, role=contact.contact_class.value, missing=missing))
    if gaps:
        return _Outcome(False, _reason(summary=f"{len(gaps)} of {len(persons)} {what} {lacking}", gaps=gaps))
    return _Outcome(True, _reason(summary=f"all {len(persons)} {what} complete"))


def _on_scene(facts: Facts, now: datetime) -> _Outcome:
    arrived = [a.arrived_at for a in facts.arrivals if a.arrived_at <= now]
    if arrived:
        return _Outcome(True, _reason(summary="investigator on scene"), met_at=min(arrived))
    return _Outcome(False, _reason(
        summary="no investigator arrival recorded", gaps=[_gap(role="investigation", missing=["investigator_arrival"])]
    ))


def _core(facts: Facts, policy: DeadlinePolicy, now: datetime) -> _Outcome:
    contacts = [c for c in facts.contacts if c.contact_class in _CORE_CLASSES]
    return _contacts_outcome(
        facts, contacts, policy=policy, now=now, what="close/secondary contacts", empty_ok=False,
        check=lambda c: missing_groups(facts.persons.get(c.person_id), policy.core_fields),
    )


def _full(facts: Facts, policy: DeadlinePolicy, now: datetime) -> _Outcome:
    gaps: list[Gap] = []
    case = facts.case
    if case is None:
        gaps.append(_gap(person_id=facts.investigation.case_id, role="case", missing=["person_record"]))
    else:
        missing = [f"residence:{g}" for g in missing_groups(case, policy.residence_fields)]
        workplace = _has(case, f"attr:{policy.workplace_attribute}") or any(
            (facts.places.get(v.place_id) and facts.places[v.place_id].kind in policy.workplace_place_kinds)
            for v in facts.case_visits
        )
        if not workplace:
            missing.append("workplace")
        window = trajectory_window(case, facts.investigation, policy)
        if window is None:
            missing.append("trajectory:window(onset_at|sampled_at)")
        else:
            visits = [v for v in facts.case_visits if v.end >= window[0] and v.start <= window[1]]
            missing.extend(f"trajectory:{d.isoformat()}" for d in uncovered_days(visits, *window, policy.day_offset))
        missing.extend(f"family:{g}" for g in missing_groups(case, policy.family_fields))
        if missing:
            gaps.append(_gap(person_id=case.id, role="case", missing=missing))
    general = [c for c in facts.contacts if c.contact_class is ContactClass.GENERAL]
    for contact in general:
        missing = missing_groups(facts.persons.get(contact.person_id), policy.core_fields)
        if missing:
            gaps.append(_gap(person_id=contact.person_id, role="general", missing=missing))
    if gaps:
        case_part = "case information incomplete" if gaps[0].role == "case" else "case information complete"
        n_general = sum(g.role == "general" for g in gaps)
        return _Outcome(False, _reason(
            summary=f"{case_part}; {n_general} of {len(general)} general contacts incomplete", gaps=gaps
        ))
    return _Outcome(True, _reason(summary=f"case information and all {len(general)} general contacts complete"))


def _transfer(facts: Facts, required: list[TracedContact], policy: DeadlinePolicy, now: datetime) -> _Outcome:
    arrived_times = []

    def check(contact: TracedContact) -> list[str]:
        arrival = facts.isolation.get(contact.person_id)
        if arrival is None or arrival.arrived_at > now:
            return ["isolation_arrival"]
        arrived_times.append(arrival.arrived_at)
        return []

    outcome = _contacts_outcome(
        facts, required, policy=policy, now=now, what="persons to isolate centrally", check=check, empty_ok=False,
        lacking="not yet at an isolation site",
    )
    if outcome.satisfied and arrived_times:
        outcome.met_at = max(arrived_times)
        outcome.reason = _reason(summary=f"all {len(required)} persons to isolate centrally have arrived")
    return outcome


def _assist(facts: Facts, policy: DeadlinePolicy, now: datetime) -> _Outcome:
    request = facts.request
    pushed = request.person_ids if request else sorted(facts.tracked)
    gaps = []
    for pid in pushed:
        row = facts.tracked.get(pid)
        if row is not None and row.resolved_at is not None and row.resolved_at <= now:
            continue
        missing = missing_groups(facts.persons.get(pid), policy.core_fields)
        if missing:
            gaps.append(_gap(person_id=pid, role="pushed", missing=missing))
    if gaps:
        return _Outcome(False, _reason(summary=f"{len(gaps)} of {len(pushed)} pushed persons not investigated", gaps=gaps))
    return _Outcome(True, _reason(summary=f"all {len(pushed)} pushed persons investigated"))


def _finish(stored: Milestone, outcome: _Outcome, *, change_time: datetime, now: datetime) -> Milestone:
    met_at = None
    if outcome.satisfied:
        if outcome.met_at is not None:
            met_at = outcome.met_at
        elif stored.met_at is not None and stored.state in (MilestoneState.MET, MilestoneState.MET_LATE):
            met_at = stored.met_at  # still satisfied: keep the time it became so
        else:
            met_at = change_time
        met_at = min(max(met_at, stored.started_at), now)
    state = state_at(due_at=stored.due_at, at_risk_at=stored.at_risk_at, met_at=met_at, now=now)
    return _copy(stored, {"state": state, "met_at": met_at, "reason": outcome.reason, "evaluated_at": now})


def _copy(m: Milestone, update: dict) -> Milestone:
    """``m.model_copy(update=update)`` (shallow) without its generic machinery: the sweep's hot path."""
    copy = Milestone.__new__(Milestone)
    object.__setattr__(copy, "__dict__", {**m.__dict__, **update})
    object.__setattr__(copy, "__pydantic_fields_set__", m.__pydantic_fields_set__ | update.keys())
    object.__setattr__(copy, "__pydantic_extra__", None)
    private = m.__pydantic_private__
    object.__setattr__(copy, "__pydantic_private__", None if private is None else dict(private))
    return copy


def evaluate_facts(facts: Facts, *, policy: DeadlinePolicy, now: datetime) -> InvestigationEvaluation:
    """Milestone states of one investigation at ``now``, with reasons. Pure.

    Persons seen for the first time are stamped with the earliest dirty
    mark (the graph write that revealed them) or ``now``; a late person who
    must be centrally isolated gets a personal transfer clock from then.
    Information milestones that become satisfied are stamped ``met_at`` =
    the latest dirty mark (the write that completed them) or ``now``.
    """
    inv = facts.investigation
    discovered_at = facts.dirty.since if facts.dirty else now
    change_time = facts.dirty.changed_at if facts.dirty else now
    stored = {m.id: m for m in facts.milestones}

    new_tracked: list[TrackedPerson] = []
    first_seen: dict[str, datetime] = {pid: row.person.first_seen_at for pid, row in facts.tracked.items()}
    if inv.kind is InvestigationKind.CASE:
        for contact in facts.contacts:
            row = facts.tracked.get(contact.person_id)
            if row is None or row.person.role != contact.contact_class.value:
                seen = row.person.first_seen_at if row else min(discovered_at, now)
                first_seen[contact.person_id] = seen
                new_tracked.append(TrackedPerson(
                    investigation_id=inv.id, person_id=contact.person_id, role=contact.contact_class.value,
                    first_seen_at=seen,
                ))

    transfer_classes = policy.transfer_policy.classes
    required = [c for c in facts.contacts if c.contact_class in transfer_classes]

    evaluated: list[Milestone] = []
    for m in facts.milestones:
        if m.person_id is not None:
            continue  # personal clocks below
        if m.kind is MilestoneKind.ON_SCENE:
            outcome = _on_scene(facts, now)
        elif m.kind is MilestoneKind.CORE_INFO:
            outcome = _core(facts, policy, now)
        elif m.kind is MilestoneKind.FULL_INFO:
            outcome = _full(facts, policy, now)
        elif m.kind is MilestoneKind.TRANSFER:
            outcome = _transfer(facts, required, policy, now)
        else:
            outcome = _assist(facts, policy, now)
        evaluated.append(_finish(m, outcome, change_time=change_time, now=now))

    # Personal transfer clocks: one per late-discovered person who must be centrally isolated.
    duration = policy.hours_for(inv.region).of(MilestoneKind.TRANSFER)
    required_ids = {c.person_id: c for c in required}
    personal_ids = {m.person_id for m in facts.milestones if m.kind is MilestoneKind.TRANSFER and m.person_id}
    if inv.kind is InvestigationKind.CASE and duration is not None:
        for pid, contact in sorted(required_ids.items()):
            if pid not in personal_ids and first_seen[pid] > inv.clock_start_at:
                fresh = new_milestone(inv, MilestoneKind.TRANSFER, started_at=first_seen[pid], duration=duration,
                                      policy=policy, person_id=pid)
                stored[fresh.id] = fresh
                personal_ids.add(pid)
    for pid in sorted(personal_ids):
        m = stored[milestone_id(inv.id, MilestoneKind.TRANSFER, pid)]
        if pid in required_ids:
            outcome = _transfer(facts, [required_ids[pid]], policy, now)
            evaluated.append(_finish(m, outcome, change_time=change_time, now=now))
        else:
            evaluated.append(_copy(m, {
                "state": MilestoneState.CANCELLED, "met_at": None, "evaluated_at": now,
                "reason": _reason(summary="no longer required to be centrally isolated"),
            }))
    return InvestigationEvaluation(investigation=inv, now=now, milestones=evaluated, new_tracked=new_tracked)


# --- planning the write ------------------------------------------------------------------------------

_RANK = {
    MilestoneState.PENDING: 0, MilestoneState.AT_RISK: 1, MilestoneState.MISSED: 2,
    MilestoneState.MET: 3, MilestoneState.MET_LATE: 3, MilestoneState.CANCELLED: 4,
}
_SEVERITY = {
    MilestoneState.PENDING: AlertSeverity.WARNING,  # re-opened
    MilestoneState.AT_RISK: AlertSeverity.WARNING,
    MilestoneState.MISSED: AlertSeverity.CRITICAL,
    MilestoneState.MET: AlertSeverity.INFO,
    MilestoneState.MET_LATE: AlertSeverity.INFO,
    MilestoneState.CANCELLED: AlertSeverity.INFO,
}


def _alert(inv: Investigation, m: Milestone, previous: MilestoneState | None, *, change_time: datetime, now: datetime) -> Alert:
    if m.state is MilestoneState.AT_RISK:
        at = m.at_risk_at
    elif m.state is MilestoneState.MISSED and previous in (None, MilestoneState.PENDING, MilestoneState.AT_RISK):
        at = m.due_at
    elif m.state in (MilestoneState.MET, MilestoneState.MET_LATE):
        at = m.met_at
    else:
        at = min(change_time, now)
    who = f" [{m.person_id}]" if m.person_id else ""
    return Alert(
        key=f"{m.id}#{m.epoch}:{m.state.value}", investigation_id=inv.id, milestone_id=m.id, kind=m.kind,
        person_id=m.person_id, state=m.state, previous_state=previous, severity=_SEVERITY[m.state], at=at,
        detected_at=now, due_at=m.due_at, region=inv.region, team=inv.team,
        summary=f"{m.kind.label}{who}: {m.state.value} — {m.reason.summary}",
    )


def plan_write(facts: Facts, evaluation: InvestigationEvaluation) -> EvaluationWrite:
    """State changes, new clocks, new tracked persons and one alert per state change. Pure.

    A move to a higher state (pending → at_risk → missed → met/met_late)
    keeps the milestone's epoch; any other move (re-opening a met clock,
    a due time moved later) starts a new epoch, so alert keys
    ``<milestone>#<epoch>:<state>`` are unique yet a re-opened clock can
    alert again. Closed investigations only leave the time index.
    """
    inv, now = facts.investigation, evaluation.now
    change_time = facts.dirty.changed_at if facts.dirty else now
    stored = {m.id: m for m in facts.milestones}
    write = EvaluationWrite(investigation_id=inv.id, dirty_token=facts.dirty.changed_at if facts.dirty else None)
    if inv.status is InvestigationStatus.CLOSED:
        for m in facts.milestones:
            if next_check_at(m) is not None:
                write.updates.append(MilestoneUpdate(m, m.state, m.epoch, None))
        return write
    write.new_tracked = list(evaluation.new_tracked)
    for m in evaluation.milestones:
        old = stored.get(m.id)
        if old is None:
            if m.state is not MilestoneState.PENDING:
                write.alerts.append(_alert(inv, m, None, change_time=change_time, now=now))
            write.new_milestones.append((m, next_check_at(m)))
            continue
        if m.state is not old.state:
            forward = _RANK[m.state] > _RANK[old.state] and old.state not in (
                MilestoneState.MET, MilestoneState.MET_LATE, MilestoneState.CANCELLED
            )
            m.epoch = old.epoch if forward else old.epoch + 1  # m is this evaluation's own copy
            write.alerts.append(_alert(inv, m, old.state, change_time=change_time, now=now))
        else:
            m.epoch = old.epoch
        had_snapshot = old.at_due is not None or old._has_stored_at_due
        snapshot = None
        if not had_snapshot and now >= m.due_at and old.state not in (MilestoneState.MET, MilestoneState.CANCELLED):
            snapshot = DueSnapshot(
                evaluated_at=now, state=m.state, reason=m.reason,
                known_persons=len(set(facts.tracked) | {t.person_id for t in evaluation.new_tracked}),
            )
        m.at_due = snapshot  # None: the stored snapshot (if any) is kept
        reason_json = m.reason.model_dump_json()
        old_reason_json = old._stored_reason_json or old.reason.model_dump_json()
        if snapshot is not None or (m.state, m.met_at, m.epoch, reason_json) != (
            old.state, old.met_at, old.epoch, old_reason_json
        ):
            write.updates.append(MilestoneUpdate(m, old.state, old.epoch, next_check_at(m), reason_json))
    return write
