"""Pure evaluation of the 2+4+24+8 clocks from loaded facts. No I/O; ``now`` is always passed in.

:func:`evaluate_facts` turns the facts of one investigation (what the graph
and the deadline repository say, loaded by :mod:`tracing.deadlines.service`)
into the milestone states in force at ``now`` with the reason (who lacks
what). :func:`plan_write` compares that with the stored milestones and plans
the state changes and alerts the sweep writes. :func:`plan_crossings` plans a
time-only crossing (a clock reaching its at-risk or due time while none of
its investigation's facts changed) from the stored clocks alone.

The sweep's hot path works on :class:`Clock` (a stored milestone as plain
values, times in integer microseconds since the epoch, UTC) and plain tuples;
pydantic models are built only for output (alerts, :attr:`InvestigationEvaluation.milestones`).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from pydantic_core import from_json

from graph_models import ContactClass, Place, Visit
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
    TransferPolicy,
)

from ..store.port import ContactRef
from .repository import Clock, DirtyMark, EvaluationWrite, MilestoneUpdate, Tracked
from .rows import dt, us

__all__ = [
    "Clock",
    "ClockResult",
    "Facts",
    "PersonChecks",
    "InvestigationEvaluation",
    "base_milestones",
    "case_window",
    "contacts_digest",
    "evaluate_facts",
    "evaluate_field_changes",
    "missing_in",
    "person_checks",
    "natural_next_check",
    "next_check_at",
    "plan_crossings",
    "plan_write",
    "reason_json",
    "state_at",
]

_CORE_CLASSES = (ContactClass.CLOSE, ContactClass.SECONDARY)
_TRANSFER_CLASSES = {p: p.classes for p in TransferPolicy}  # a property building a new set on each read
_US = timedelta(microseconds=1)

_PENDING, _AT_RISK, _MISSED = MilestoneState.PENDING, MilestoneState.AT_RISK, MilestoneState.MISSED
_MET, _MET_LATE, _CANCELLED = MilestoneState.MET, MilestoneState.MET_LATE, MilestoneState.CANCELLED
_OPEN = frozenset({_PENDING, _AT_RISK, _MISSED})


@dataclass
class Facts:
    """Everything one evaluation reads, loaded in batches by the service.

    ``milestones`` are the stored clocks (sorted by id); ``tracked`` maps a
    person id to ``(role, first_seen_at µs, resolved_at µs | None)``;
    ``persons`` maps the id of each contact or pushed person, and ``case`` is the
    case, as the values the checks read (``person_checks(policy).fields``, as
    :meth:`~tracing.store.port.GraphReader.person_fields` returns them).
    """

    investigation: Investigation
    milestones: list[Clock]
    case: tuple | None = None
    contacts: list[ContactRef] = field(default_factory=list)
    persons: dict[str, tuple] = field(default_factory=dict)
    case_visits: list[Visit] = field(default_factory=list)
    places: dict[str, Place] = field(default_factory=dict)
    arrivals: list[InvestigatorArrival] = field(default_factory=list)
    isolation: dict[str, IsolationArrival] = field(default_factory=dict)
    tracked: dict[str, Tracked] = field(default_factory=dict)
    dirty: DirtyMark | None = None
    request: AssistRequest | None = None
    facts_change_at: int | None = None  # as stored by the previous evaluation
    contacts_digest: str | None = None  # as stored by the previous evaluation


@dataclass(slots=True)
class ClockResult:
    """One clock's state at ``now`` (not yet stored): the stored clock (or a new one) and its new values."""

    clock: Clock
    state: MilestoneState
    met_at: int | None
    summary: str
    gaps: list[tuple[str | None, str, list[str]]]
    new: bool = False

    @property
    def reason_json(self) -> str:
        return reason_json(self.summary, self.gaps)

    @property
    def reason(self) -> MilestoneReason:
        return _reason_model(self.summary, self.gaps)


@dataclass
class InvestigationEvaluation:
    """Clock states at ``now`` (new values, not yet stored) and persons seen for the first time.

    ``facts_change_at`` is the earliest time (µs) after ``now`` at which a
    recorded fact takes effect (a future-dated arrival, resolution or
    declaration), or None: until then only the clocks' own times move states.
    """

    investigation: Investigation
    now: datetime
    results: list[ClockResult]
    new_tracked: list[TrackedPerson]
    facts_change_at: int | None = None
    contacts_digest: str | None = None  # of the contacts evaluated (open case investigations), see contacts_digest()
    _milestones: list[Milestone] | None = field(default=None, repr=False, compare=False)

    @property
    def milestones(self) -> list[Milestone]:
        """The evaluated clocks as :class:`Milestone` models (built on first use: not on the sweep's path)."""
        if self._milestones is None:
            self._milestones = [_milestone_model(r, evaluated_at=self.now) for r in self.results]
        return self._milestones

    def by_id(self, milestone_id: str) -> Milestone:
        return next(m for m in self.milestones if m.id == milestone_id)

    def of(self, kind: MilestoneKind, person_id: str | None = None) -> Milestone:
        return next(m for m in self.milestones if m.kind is kind and m.person_id == person_id)


# --- small pure helpers ------------------------------------------------------------------------


def state_at(*, due_at, at_risk_at, met_at, now) -> MilestoneState:
    """The state at ``now`` (datetimes, or integer microseconds: any comparable times)."""
    if met_at is not None:
        return _MET if met_at <= due_at else _MET_LATE
    if now >= due_at:
        return _MISSED
    if now >= at_risk_at:
        return _AT_RISK
    return _PENDING


def next_check_at(milestone: Milestone) -> datetime | None:
    """The next time-driven transition of a stored milestone (the sweep's time index)."""
    if milestone.state is _PENDING:
        return milestone.at_risk_at
    if milestone.state is _AT_RISK:
        return milestone.due_at
    return None


def natural_next_check(state: MilestoneState, at_risk_at: int, due_at: int) -> int | None:
    """:func:`next_check_at` in microseconds: the clock's own next transition."""
    if state is _PENDING:
        return at_risk_at
    if state is _AT_RISK:
        return due_at
    return None


def _next_check(state: MilestoneState, clock: Clock, facts_change_at: int | None) -> int | None:
    """The queue time: the clock's own next transition, or earlier when a future-dated fact takes effect."""
    natural = natural_next_check(state, clock.at_risk_at, clock.due_at)
    if facts_change_at is not None and state in _OPEN and (natural is None or facts_change_at < natural):
        return facts_change_at
    return natural


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




_Groups = tuple[tuple[str, tuple[tuple[int, ...], ...]], ...]


@dataclass(frozen=True)
class PersonChecks:
    """A policy's requirements compiled against the values :meth:`~tracing.store.port.GraphReader.person_fields` reads.

    ``fields``: what the sweep reads of each person (contacts, pushed persons and cases alike).
    ``core`` / ``residence`` / ``family``: each group's label with its alternatives, an
    alternative being the indexes (into ``fields``) that must all be non-empty
    (``location`` is ``lat`` and ``lon``). The other attributes are indexes of single fields.
    """

    fields: tuple[str, ...]
    core: _Groups
    residence: _Groups
    family: _Groups
    workplace: int
    onset_at: int
    sampled_at: int
    isolated_at: int


def person_checks(policy: DeadlinePolicy) -> PersonChecks:
    """What the sweep reads and checks of a person under ``policy``."""
    return _compile_checks(policy.core_fields, policy.residence_fields, policy.family_fields, policy.workplace_attribute)


@functools.lru_cache(maxsize=64)
def _compile_checks(core, residence, family, workplace_attribute: str) -> PersonChecks:
    fields: list[str] = []

    def index(name: str) -> int:
        if name not in fields:
            fields.append(name)
        return fields.index(name)

    def compiled(groups) -> _Groups:
        return tuple(
            ("|".join(group), tuple((index("lat"), index("lon")) if n == "location" else (index(n),) for n in group))
            for group in groups
        )

    core_groups, residence_groups, family_groups = compiled(core), compiled(residence), compiled(family)
    singles = (index(f"attr:{workplace_attribute}"), index("onset_at"), index("sampled_at"), index("isolated_at"))
    return PersonChecks(tuple(fields), core_groups, residence_groups, family_groups, *singles)


def missing_in(values: tuple | None, groups: _Groups) -> list[str]:
    """Labels (``"id_number|phone"``) of the requirement groups the lean ``values`` do not satisfy.

    ``values`` as :meth:`~tracing.store.port.GraphReader.person_fields` reads them (None: no person
    record), ``groups`` compiled by :func:`person_checks`; a value counts when it is neither None nor "".
    """
    if values is None:
        return ["person_record"]
    missing = []
    for label, alternatives in groups:
        for indexes in alternatives:
            for i in indexes:
                value = values[i]
                if value is None or value == "":
                    break
            else:
                break  # every field of this alternative is there: the group is satisfied
        else:
            missing.append(label)
    return missing


def case_window(
    case: tuple, checks: PersonChecks, investigation: Investigation, policy: DeadlinePolicy
) -> tuple[datetime, datetime] | None:
    """The trajectory window of a case (its lean values): onset (or sampling) − look-back to
    min(isolation, clock start); None without onset and sampling times."""
    anchor = case[checks.onset_at]
    if anchor is None:
        anchor = case[checks.sampled_at]
        if anchor is None:
            return None
    end = investigation.clock_start_at
    isolated = case[checks.isolated_at]
    if isolated is not None:
        end = min(end, dt(isolated))
    start = dt(anchor) - policy.trajectory_look_back
    return start, max(start, end)


def uncovered_days(visits: list[Visit], start: datetime, end: datetime, offset: timedelta) -> list[date]:
    """Calendar days (at UTC ``offset``) of ``[start, end]`` that no visit overlaps."""
    first, last = (start + offset).date(), (end + offset).date()
    if not visits:
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]
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


_quote = json.encoder.encode_basestring  # a JSON string literal, non-ASCII kept (what ensure_ascii=False writes)


def reason_json(summary: str, gaps: list[tuple[str | None, str, list[str]]]) -> str:
    """``MilestoneReason(summary, gaps).model_dump_json()``, byte for byte, from plain values.

    Spelled out with the C string quoter rather than a generic encoder: the sweep encodes
    every evaluated clock's reason (~4,000 per tick) to see whether it changed.
    """
    if not gaps:  # met clocks: few distinct summaries, each encoded once
        return _reason_without_gaps(summary)
    missing_json = _MISSING_JSON
    parts = []
    for person_id, role, missing in gaps:
        key = tuple(missing)
        encoded = missing_json.get(key)
        if encoded is None:
            encoded = ",".join(map(_quote, key))
            if len(missing_json) < 4096:
                missing_json[key] = encoded
        parts.append(
            f'{{"person_id":{"null" if person_id is None else _quote(person_id)},"role":{_quote(role)},'
            f'"missing":[{encoded}]}}'
        )
    return f'{{"summary":{_quote(summary)},"gaps":[{",".join(parts)}]}}'


#: Encoded ``missing`` lists: mostly a handful of requirement labels, each encoded once (bounded: dated
#: trajectory gaps keep changing).
_MISSING_JSON: dict[tuple[str, ...], str] = {}


@functools.lru_cache(maxsize=4096)
def _reason_without_gaps(summary: str) -> str:
    return f'{{"summary":{_quote(summary)},"gaps":[]}}'


def _reason_model(summary: str, gaps: list[tuple[str | None, str, list[str]]]) -> MilestoneReason:
    return trusted(MilestoneReason, {
        "summary": summary,
        "gaps": [trusted(Gap, {"person_id": p, "role": r, "missing": list(m)}) for p, r, m in gaps],
    })


def _milestone_model(r: ClockResult, *, evaluated_at: datetime, epoch: int | None = None) -> Milestone:
    c = r.clock
    return Milestone.model_construct(
        id=c.id, investigation_id=c.investigation_id, kind=c.kind, person_id=c.person_id,
        started_at=dt(c.started_at), due_at=dt(c.due_at), at_risk_at=dt(c.at_risk_at), state=r.state,
        met_at=dt(r.met_at), epoch=c.epoch if epoch is None else epoch, reason=r.reason, evaluated_at=evaluated_at,
        at_due=None,
    )


# --- evaluation ---------------------------------------------------------------------------------------

# An outcome: (satisfied, summary, gaps, met_at µs when the facts carry an exact time (arrivals) else None).
_Outcome = tuple[bool, str, list, int | None]


def _contacts_outcome(
    facts: Facts, persons: list[ContactRef], *, policy: DeadlinePolicy, now: datetime, what: str,
    check, empty_ok: bool, lacking: str = "incomplete",
) -> _Outcome:
    if not persons and not empty_ok:
        declared = facts.investigation.no_contacts_declared_at
        if not (policy.empty_contacts_meet or (declared is not None and declared <= now)):
            return False, f"no {what} derived yet", [(None, "investigation", [f"{what} (or a declaration of none)"])], None
    gaps = []
    for contact in persons:
        missing = check(contact)
        if missing:
            gaps.append((contact.person_id, contact.contact_class.value, missing))
    if gaps:
        return False, f"{len(gaps)} of {len(persons)} {what} {lacking}", gaps, None
    return True, f"all {len(persons)} {what} complete", [], None


def _on_scene(facts: Facts, now: datetime) -> _Outcome:
    arrived = [a.arrived_at for a in facts.arrivals if a.arrived_at <= now]
    if arrived:
        return True, "investigator on scene", [], us(min(arrived))
    return False, "no investigator arrival recorded", [(None, "investigation", ["investigator_arrival"])], None


def _core(facts: Facts, policy: DeadlinePolicy, now: datetime, checks: PersonChecks, missing_of=None) -> _Outcome:
    """``missing_of(person_id)``: a contact's missing core fields (default: checked on ``facts.persons``)."""
    contacts = [c for c in facts.contacts if c.contact_class in _CORE_CLASSES]
    missing_of = missing_of or _checked_on(facts.persons, checks)
    return _contacts_outcome(
        facts, contacts, policy=policy, now=now, what="close/secondary contacts", empty_ok=False,
        check=lambda c: missing_of(c.person_id),
    )


def _checked_on(persons: dict[str, tuple], checks: PersonChecks):
    """``missing_of`` for :func:`_core` / :func:`_full`: the core fields a person lacks in ``persons``."""
    return lambda person_id: missing_in(persons.get(person_id), checks.core)


#: ``trajectory:<day>`` labels, built once per calendar day (a case without visits lacks ~7 of them at each evaluation).
_DAY_LABELS: dict[date, str] = {}


def _full(
    facts: Facts, policy: DeadlinePolicy, now: datetime, checks: PersonChecks, missing_of=None,
    case_missing: list[str] | None = None,
) -> _Outcome:
    """``missing_of`` as in :func:`_core` (for general contacts); ``case_missing``: what the case lacks,
    if already known (default: checked on ``facts.case`` and its visits)."""
    gaps: list = []
    case, case_id = facts.case, facts.investigation.case_id
    if case_missing is not None:
        if case_missing:
            gaps.append((case_id, "case", case_missing))
    elif case is None:
        gaps.append((case_id, "case", ["person_record"]))
    else:
        missing = [f"residence:{g}" for g in missing_in(case, checks.residence)]
        workplace = case[checks.workplace]
        if (workplace is None or workplace == "") and not any(
            (facts.places.get(v.place_id) and facts.places[v.place_id].kind in policy.workplace_place_kinds)
            for v in facts.case_visits
        ):
            missing.append("workplace")
        window = case_window(case, checks, facts.investigation, policy)
        if window is None:
            missing.append("trajectory:window(onset_at|sampled_at)")
        else:
            visits = [v for v in facts.case_visits if v.end >= window[0] and v.start <= window[1]]
            labels = _DAY_LABELS
            for day in uncovered_days(visits, *window, policy.day_offset):
                label = labels.get(day)
                if label is None:
                    label = labels[day] = f"trajectory:{day.isoformat()}"
                missing.append(label)
        missing.extend(f"family:{g}" for g in missing_in(case, checks.family))
        if missing:
            gaps.append((case_id, "case", missing))
    general = [c for c in facts.contacts if c.contact_class is ContactClass.GENERAL]
    missing_of = missing_of or _checked_on(facts.persons, checks)
    for contact in general:
        missing = missing_of(contact.person_id)
        if missing:
            gaps.append((contact.person_id, "general", missing))
    if gaps:
        case_part = "case information incomplete" if gaps[0][1] == "case" else "case information complete"
        n_general = sum(g[1] == "general" for g in gaps)
        return False, f"{case_part}; {n_general} of {len(general)} general contacts incomplete", gaps, None
    return True, f"case information and all {len(general)} general contacts complete", [], None


def _transfer(facts: Facts, required: list[ContactRef], policy: DeadlinePolicy, now: datetime) -> _Outcome:
    arrived_times = []
    isolation = facts.isolation

    def check(contact: ContactRef) -> list[str]:
        arrival = isolation.get(contact.person_id)
        if arrival is None or arrival.arrived_at > now:
            return ["isolation_arrival"]
        arrived_times.append(arrival.arrived_at)
        return []

    outcome = _contacts_outcome(
        facts, required, policy=policy, now=now, what="persons to isolate centrally", check=check, empty_ok=False,
        lacking="not yet at an isolation site",
    )
    if outcome[0] and arrived_times:
        return True, f"all {len(required)} persons to isolate centrally have arrived", [], us(max(arrived_times))
    return outcome


def _assist(facts: Facts, policy: DeadlinePolicy, now_us: int, checks: PersonChecks) -> _Outcome:
    request = facts.request
    pushed = request.person_ids if request else sorted(facts.tracked)
    gaps = []
    for pid in pushed:
        row = facts.tracked.get(pid)
        if row is not None and row[2] is not None and row[2] <= now_us:
            continue
        missing = missing_in(facts.persons.get(pid), checks.core)
        if missing:
            gaps.append((pid, "pushed", missing))
    if gaps:
        return False, f"{len(gaps)} of {len(pushed)} pushed persons not investigated", gaps, None
    return True, f"all {len(pushed)} pushed persons investigated", [], None


def _finish(stored: Clock, outcome: _Outcome, *, change_time: int, now: int) -> ClockResult:
    satisfied, summary, gaps, exact = outcome
    met_at = None
    if satisfied:
        if exact is not None:
            met_at = exact
        elif stored.met_at is not None and stored.state in (_MET, _MET_LATE):
            met_at = stored.met_at  # still satisfied: keep the time it became so
        else:
            met_at = change_time
        met_at = min(max(met_at, stored.started_at), now)
    if met_at is not None:
        state = _MET if met_at <= stored.due_at else _MET_LATE
    elif now >= stored.due_at:
        state = _MISSED
    elif now >= stored.at_risk_at:
        state = _AT_RISK
    else:
        state = _PENDING
    return ClockResult(stored, state, met_at, summary, gaps)


def _facts_change_at(facts: Facts, required: list[ContactRef], now: datetime) -> int | None:
    """The earliest time after ``now`` at which a recorded, future-dated fact of this investigation takes effect."""
    times = [a.arrived_at for a in facts.arrivals if a.arrived_at > now]
    declared = facts.investigation.no_contacts_declared_at
    if declared is not None and declared > now:
        times.append(declared)
    for contact in required:
        arrival = facts.isolation.get(contact.person_id)
        if arrival is not None and arrival.arrived_at > now:
            times.append(arrival.arrived_at)
    found = us(min(times)) if times else None
    now_us = us(now)
    for row in facts.tracked.values():
        if row[2] is not None and row[2] > now_us and (found is None or row[2] < found):
            found = row[2]
    return found


def _new_clock(inv: Investigation, kind: MilestoneKind, person_id: str, started_at: int, duration: int, lead: int) -> Clock:
    due = started_at + duration
    return Clock(
        id=milestone_id(inv.id, kind, person_id), investigation_id=inv.id, kind=kind, person_id=person_id,
        started_at=started_at, due_at=due, at_risk_at=max(started_at, due - lead), state=_PENDING, met_at=None,
        epoch=0, reason_json=None, evaluated_at=None, has_at_due=False, next_check_at=None,
    )


def evaluate_facts(facts: Facts, *, policy: DeadlinePolicy, now: datetime) -> InvestigationEvaluation:
    """Clock states of one investigation at ``now``, with reasons. Pure.

    Persons seen for the first time are stamped with the earliest dirty
    mark (the graph write that revealed them) or ``now``; a late person who
    must be centrally isolated gets a personal transfer clock from then.
    Information milestones that become satisfied are stamped ``met_at`` =
    the latest dirty mark (the write that completed them) or ``now``.
    """
    inv = facts.investigation
    now_us = us(now)
    discovered_at = us(facts.dirty.since) if facts.dirty else now_us
    change_time = us(facts.dirty.changed_at) if facts.dirty else now_us

    new_tracked: list[TrackedPerson] = []
    tracked = facts.tracked
    first_seen: dict[str, int] = {pid: row[1] for pid, row in tracked.items()}
    if inv.kind is InvestigationKind.CASE:
        for contact in facts.contacts:
            row = tracked.get(contact.person_id)
            role = contact.contact_class.value
            if row is None or row[0] != role:
                seen = row[1] if row else min(discovered_at, now_us)
                first_seen[contact.person_id] = seen
                new_tracked.append(trusted(TrackedPerson, {
                    "investigation_id": inv.id, "person_id": contact.person_id, "role": role, "first_seen_at": dt(seen),
                }))

    transfer_classes = _TRANSFER_CLASSES[policy.transfer_policy]
    required = [c for c in facts.contacts if c.contact_class in transfer_classes]

    results: list[ClockResult] = []
    personal: dict[str, Clock] = {}
    checks = person_checks(policy)
    for m in facts.milestones:
        kind = m.kind
        if m.person_id is not None:
            if kind is MilestoneKind.TRANSFER:
                personal[m.person_id] = m
            continue  # personal clocks below
        if kind is MilestoneKind.ON_SCENE:
            outcome = _on_scene(facts, now)
        elif kind is MilestoneKind.CORE_INFO:
            outcome = _core(facts, policy, now, checks)
        elif kind is MilestoneKind.FULL_INFO:
            outcome = _full(facts, policy, now, checks)
        elif kind is MilestoneKind.TRANSFER:
            outcome = _transfer(facts, required, policy, now)
        else:
            outcome = _assist(facts, policy, now_us, checks)
        results.append(_finish(m, outcome, change_time=change_time, now=now_us))

    # Personal transfer clocks: one per late-discovered person who must be centrally isolated.
    required_ids = {c.person_id: c for c in required}
    fresh_ids: set[str] = set()
    if inv.kind is InvestigationKind.CASE and required_ids:
        clock_start = us(inv.clock_start_at)
        late = [pid for pid in sorted(required_ids) if pid not in personal and first_seen[pid] > clock_start]
        duration = policy.hours_for(inv.region).of(MilestoneKind.TRANSFER) if late else None
        if duration is not None:
            for pid in late:
                personal[pid] = _new_clock(inv, MilestoneKind.TRANSFER, pid, first_seen[pid], duration // _US,
                                           policy.at_risk_lead // _US)
                fresh_ids.add(pid)
    for pid in sorted(personal):
        m = personal[pid]
        if pid in required_ids:
            result = _finish(m, _transfer(facts, [required_ids[pid]], policy, now), change_time=change_time, now=now_us)
        else:
            result = ClockResult(m, _CANCELLED, None, "no longer required to be centrally isolated", [])
        result.new = pid in fresh_ids
        results.append(result)
    digest = None
    if inv.kind is InvestigationKind.CASE and inv.status is InvestigationStatus.OPEN:
        digest = contacts_digest(facts.contacts, policy)
    return InvestigationEvaluation(
        investigation=inv, now=now, results=results, new_tracked=new_tracked,
        facts_change_at=_facts_change_at(facts, required, now), contacts_digest=digest,
    )


_NO_GAPS = '"gaps":[]}'  # how reason_json ends a reason without gaps


def contacts_digest(contacts: list[ContactRef], policy: DeadlinePolicy) -> str:
    """A fingerprint of a case's contact list (who, which class, in which order) and of the rules the
    core and all-information checks apply.

    Each evaluation stores it; :func:`evaluate_field_changes` may take the stored reasons for the
    facts only where the contacts and rules are still those they were made from.
    """
    digest = hashlib.blake2b(_rules_key(
        policy.core_fields, policy.residence_fields, policy.family_fields, policy.workplace_attribute,
        tuple(sorted(policy.workplace_place_kinds)), policy.trajectory_look_back, policy.day_offset,
        policy.empty_contacts_meet,
    ), digest_size=8)
    digest.update("\x1f".join(f"{c.person_id}\x1e{c.contact_class.value}" for c in contacts).encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _rules_key(*rules) -> bytes:
    return repr(rules).encode()


def evaluate_field_changes(
    inv: Investigation, clocks: list[Clock], contacts: list[ContactRef], fresh: dict[str, list[str]], *,
    dirty: DirtyMark, facts_change_at: int | None, policy: DeadlinePolicy, now: datetime,
) -> InvestigationEvaluation | None:
    """What :func:`evaluate_facts` gives when only recorded fields of some contacts changed. Pure.

    ``inv``: an open case investigation whose dirty mark (``dirty``) names
    persons, none of them its case; ``clocks``: its stored clocks;
    ``contacts``: its case's derived contacts, unchanged since the clocks
    were last evaluated (a change of who is whose contact, or of class,
    marks the investigation for a whole evaluation instead); ``fresh``:
    the named persons among ``contacts`` with the core fields each lacks
    now; ``facts_change_at``: as stored, None or after ``now``.

    Only the core-information clock (when a close or secondary contact is
    named) and the all-information clock (a general contact) can move; each
    is re-evaluated with the named contacts' fresh checks and every other
    person's as its stored reason records them (a contact absent from the
    reason's gaps was complete), by the same rules as :func:`evaluate_facts`.
    The other clocks keep their stored state: the checks below hand back
    any investigation with a clock that time has moved.

    Returns None when the stored clocks cannot stand in for the facts (a clock
    never evaluated, one past its due time without its due-time snapshot,
    one whose queue time has come, one that starts after ``now`` or was met
    before it started (a case reported with a future time), a reason naming
    a person who is no longer such a contact or saying none were derived):
    evaluate those in full.
    """
    now_us = us(now)
    kinds = set()
    roles: dict[str, str] = {}
    for contact in contacts:
        roles[contact.person_id] = contact.contact_class.value  # the role a gap of theirs carries
        if contact.person_id in fresh:
            kinds.add(MilestoneKind.FULL_INFO if contact.contact_class is ContactClass.GENERAL else MilestoneKind.CORE_INFO)
    chosen = []
    for c in clocks:
        if (c.next_check_at is not None and c.next_check_at <= now_us) or c.started_at > now_us or (
            c.met_at is not None and c.met_at < c.started_at
        ):
            return None  # due now, or evaluated before its clock started: its stored values may move
        if not c.has_at_due and now_us >= c.due_at and c.state is not _MET and c.state is not _CANCELLED:
            return None  # a whole evaluation stores its due-time snapshot now (see plan_write)
        if c.person_id is None and c.kind in kinds:
            if c.reason_json is None:
                return None
            chosen.append(c)
    facts = Facts(investigation=inv, milestones=chosen, contacts=contacts, dirty=dirty, facts_change_at=facts_change_at)
    change_time = us(dirty.changed_at)
    checks = person_checks(policy)
    results = []
    for c in chosen:
        known: dict[str, list[str]] = {}
        case_missing: list[str] = []
        gaps = [] if c.reason_json.endswith(_NO_GAPS) else from_json(c.reason_json)["gaps"]  # met: nobody lacks anything
        for gap in gaps:
            person_id, role = gap["person_id"], gap["role"]
            if role == "case":
                case_missing = gap["missing"]
            elif person_id is None or roles.get(person_id) != role:
                return None  # the stored reason is not about these contacts: the facts moved on
            else:
                known[person_id] = gap["missing"]

        def missing_of(person_id: str, known=known) -> list[str]:
            found = fresh.get(person_id)
            return known.get(person_id, []) if found is None else found

        if c.kind is MilestoneKind.CORE_INFO:
            outcome = _core(facts, policy, now, checks, missing_of)
        else:
            outcome = _full(facts, policy, now, checks, missing_of, case_missing)
        results.append(_finish(c, outcome, change_time=change_time, now=now_us))
    return InvestigationEvaluation(
        investigation=inv, now=now, results=results, new_tracked=[], facts_change_at=facts_change_at,
    )


# --- planning the write ------------------------------------------------------------------------------

_RANK = {_PENDING: 0, _AT_RISK: 1, _MISSED: 2, _MET: 3, _MET_LATE: 3, _CANCELLED: 4}
_SEVERITY = {
    _PENDING: AlertSeverity.WARNING,  # re-opened
    _AT_RISK: AlertSeverity.WARNING,
    _MISSED: AlertSeverity.CRITICAL,
    _MET: AlertSeverity.INFO,
    _MET_LATE: AlertSeverity.INFO,
    _CANCELLED: AlertSeverity.INFO,
}
_FINAL = (_MET, _MET_LATE, _CANCELLED)


def _alert(
    inv: Investigation, c: Clock, state: MilestoneState, met_at: int | None, epoch: int, summary: str,
    previous: MilestoneState | None, *, change_time: int, now: datetime, now_us: int,
) -> Alert:
    if state is _AT_RISK:
        at = c.at_risk_at
    elif state is _MISSED and previous in (None, _PENDING, _AT_RISK):
        at = c.due_at
    elif state is _MET or state is _MET_LATE:
        at = met_at
    else:
        at = min(change_time, now_us)
    who = f" [{c.person_id}]" if c.person_id else ""
    return trusted(Alert, {
        "seq": None, "key": f"{c.id}#{epoch}:{state.value}", "investigation_id": inv.id, "milestone_id": c.id,
        "kind": c.kind, "person_id": c.person_id, "state": state, "previous_state": previous,
        "severity": _SEVERITY[state], "at": dt(at), "detected_at": now, "due_at": dt(c.due_at),
        "region": inv.region, "team": inv.team, "summary": f"{c.kind.label}{who}: {state.value} — {summary}",
    })


def _snapshot_json(now: datetime, state: MilestoneState, reason: str, known_persons: int) -> str:
    return DueSnapshot(
        evaluated_at=now, state=state, reason=MilestoneReason.model_validate_json(reason), known_persons=known_persons
    ).model_dump_json()


def plan_write(facts: Facts, evaluation: InvestigationEvaluation) -> EvaluationWrite:
    """State changes, new clocks, new tracked persons and one alert per state change. Pure.

    A move to a higher state (pending → at_risk → missed → met/met_late)
    keeps the milestone's epoch; any other move (re-opening a met clock,
    a due time moved later) starts a new epoch, so alert keys
    ``<milestone>#<epoch>:<state>`` are unique yet a re-opened clock can
    alert again. Closed investigations only leave the time index.
    """
    inv, now = facts.investigation, evaluation.now
    now_us = us(now)
    change_time = us(facts.dirty.changed_at) if facts.dirty else now_us
    write = EvaluationWrite(investigation_id=inv.id, dirty_token=facts.dirty.changed_at if facts.dirty else None)
    if inv.status is InvestigationStatus.CLOSED:
        for c in facts.milestones:
            if c.next_check_at is not None or natural_next_check(c.state, c.at_risk_at, c.due_at) is not None:
                write.updates.append(MilestoneUpdate(
                    c.id, c.state, c.met_at, c.epoch, c.reason_json, c.evaluated_at, None, None, c.state, c.epoch,
                    c.next_check_at, c.reason_json,
                ))
        return write
    write.new_tracked = list(evaluation.new_tracked)
    facts_change_at = evaluation.facts_change_at
    if facts_change_at != facts.facts_change_at:
        write.facts_change_at, write.store_facts_change = facts_change_at, True
    if evaluation.contacts_digest is not None and evaluation.contacts_digest != facts.contacts_digest:
        write.contacts_digest = evaluation.contacts_digest
    known_persons = None
    for r in evaluation.results:
        c, state = r.clock, r.state
        if r.new:
            if state is not _PENDING:
                write.alerts.append(_alert(inv, c, state, r.met_at, 0, r.summary, None, change_time=change_time,
                                           now=now, now_us=now_us))
            nxt = _next_check(state, c, facts_change_at)
            write.new_milestones.append((_milestone_model(r, evaluated_at=now, epoch=0), dt(nxt)))
            continue
        old_state = c.state
        if state is not old_state:
            forward = _RANK[state] > _RANK[old_state] and old_state not in _FINAL
            epoch = c.epoch if forward else c.epoch + 1
            write.alerts.append(_alert(inv, c, state, r.met_at, epoch, r.summary, old_state, change_time=change_time,
                                       now=now, now_us=now_us))
        else:
            epoch = c.epoch
        reason = r.reason_json
        snapshot = None
        if not c.has_at_due and now_us >= c.due_at and old_state is not _MET and old_state is not _CANCELLED:
            if known_persons is None:
                known_persons = len(set(facts.tracked) | {t.person_id for t in evaluation.new_tracked})
            snapshot = _snapshot_json(now, state, reason, known_persons)
        nxt = _next_check(state, c, facts_change_at)
        if (
            snapshot is not None or state is not old_state or r.met_at != c.met_at or epoch != c.epoch
            or reason != c.reason_json or nxt != c.next_check_at
        ):
            write.updates.append(MilestoneUpdate(
                c.id, state, r.met_at, epoch, reason, now_us, snapshot, nxt, old_state, c.epoch, c.next_check_at,
                c.reason_json,
            ))
    return write


def crossing_is_time_only(clock: Clock, facts_change_at: int | None, now_us: int) -> bool:
    """Whether a clock found by the time index can move from its stored values alone.

    True when it has been evaluated before, no future-dated fact of its
    investigation has taken effect since (``facts_change_at``, as stored by
    the last evaluation, is None or still ahead) and its queue time is its own
    next transition (at-risk time while pending, due time while at risk).
    """
    return (
        clock.reason_json is not None
        and (facts_change_at is None or facts_change_at > now_us)
        and clock.next_check_at is not None
        and clock.next_check_at == natural_next_check(clock.state, clock.at_risk_at, clock.due_at)
    )


def plan_crossings(
    inv: Investigation, clocks: list[Clock], *, now: datetime, known_persons: int | None = None,
    facts_change_at: int | None = None,
) -> EvaluationWrite:
    """The write of a time-only crossing: ``clocks`` (stored, :func:`crossing_is_time_only`) reached their
    at-risk or due time and none of ``inv``'s facts changed since they were evaluated. Pure.

    This is what :func:`plan_write` after :func:`evaluate_facts` gives then: an unmet clock's outcome
    and reason depend on the facts only, so only the state moves forward (pending → at_risk → missed,
    same epoch) with one alert; the first sweep at or after due time stores the due-time snapshot
    (``known_persons``: the investigation's tracked persons; needed only when a clock reaches its due time).
    ``facts_change_at`` (stored, still ahead) keeps its place in the queue.
    """
    now_us = us(now)
    write = EvaluationWrite(investigation_id=inv.id)
    for c in sorted(clocks, key=lambda c: c.id):
        state = _MISSED if now_us >= c.due_at else _AT_RISK if now_us >= c.at_risk_at else _PENDING
        if state is c.state:
            continue
        summary = json.loads(c.reason_json)["summary"]
        write.alerts.append(_alert(inv, c, state, None, c.epoch, summary, c.state, change_time=now_us, now=now,
                                   now_us=now_us))
        snapshot = None
        if not c.has_at_due and now_us >= c.due_at:
            if known_persons is None:
                raise ValueError("known_persons is needed when a clock reaches its due time")
            snapshot = _snapshot_json(now, state, c.reason_json, known_persons)
        write.updates.append(MilestoneUpdate(
            c.id, state, None, c.epoch, c.reason_json, now_us, snapshot, _next_check(state, c, facts_change_at),
            c.state, c.epoch, c.next_check_at, c.reason_json,
        ))
    return write
