"""Deadline service functions: open investigations, record facts, evaluate, sweep.

Every function takes the graph store and/or the deadline repository first,
options keyword-only, and ``now`` is always passed in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from graph_models import Person
from graph_models.deadlines import (
    Alert,
    AssistRequest,
    DeadlinePolicy,
    Investigation,
    InvestigationKind,
    InvestigationStatus,
    InvestigatorArrival,
    MilestoneKind,
    TrackedPerson,
)

from ..collector import collector_paused
from ..errors import CaseNotFound, TracingError
from ..store.port import GraphStore
from ..store.siblings import sibling_repository
from .engine import (
    Facts,
    InvestigationEvaluation,
    base_milestones,
    case_window,
    contacts_digest,
    crossing_is_time_only,
    evaluate_facts,
    evaluate_field_changes,
    missing_in,
    person_checks,
    plan_crossings,
    plan_write,
)
from .repository import Clock, DeadlineRepository, DirtyMark, EvaluationWrite
from .rows import us
from .settings import DeadlineSettings

if TYPE_CHECKING:  # the workers module imports this one
    from .workers import SweepWorkers

__all__ = [
    "InvestigationNotFound",
    "SweepResult",
    "after_graph_change",
    "assign_team",
    "close_investigation",
    "deadline_repository",
    "declare_no_contacts",
    "evaluate",
    "load_facts",
    "mark_dirty_for_persons",
    "open_assist_request",
    "open_investigation",
    "plan_dirty",
    "plan_evaluations",
    "plan_field_changes",
    "record_arrival",
    "record_isolation_arrival",
    "sweep_deadlines",
]

log = logging.getLogger("tracegraph.deadlines")


class InvestigationNotFound(TracingError):
    def __init__(self, investigation_id: str) -> None:
        super().__init__(f"investigation {investigation_id!r} does not exist")
        self.investigation_id = investigation_id


def _sqlite_repository(store: GraphStore) -> DeadlineRepository:
    from .sqlite import SQLiteDeadlineRepository

    return SQLiteDeadlineRepository(store)


def _neo4j_repository(store: GraphStore) -> DeadlineRepository:
    from .neo4j import Neo4jDeadlineRepository

    return Neo4jDeadlineRepository(store)


def deadline_repository(store: GraphStore) -> DeadlineRepository | None:
    """The deadline repository kept in the same database as ``store`` (one per store), if the backend has one.

    SQLite (:mod:`.sqlite`) and Neo4j (:mod:`.neo4j`); any other store gets None
    (graph-change hooks then do nothing).
    """
    try:
        return sibling_repository(store, "deadlines", sqlite=_sqlite_repository, neo4j=_neo4j_repository)
    except TypeError:
        return None


# --- opening and recording -------------------------------------------------------------------------


def investigation_id_for_case(case_id: str) -> str:
    return f"inv:{case_id}"


def _clock_start(case: Person, policy: DeadlinePolicy, now: datetime) -> tuple[datetime, str]:
    chosen = getattr(case, policy.clock_start.value)
    if chosen is not None:
        return chosen, policy.clock_start.value
    for name in ("reported_at", "confirmed_at"):
        if getattr(case, name) is not None:
            return getattr(case, name), name
    return now, "opened_at"


def open_investigation(
    store: GraphStore, repo: DeadlineRepository, case_id: str, *, policy: DeadlinePolicy, now: datetime,
    team: str | None = None, region: str | None = None,
) -> Investigation:
    """Open the investigation of a case and start its clocks (idempotent: returns the existing one).

    The clocks start at the case's ``policy.clock_start`` time (reported_at
    by default), falling back to the other of reported/confirmed, then to
    ``now`` (recorded as ``clock_source``).

    Raises
    ------
    CaseNotFound
        If ``case_id`` is not a confirmed or asymptomatic case in the graph.
    """
    existing = repo.investigation_ids_for_cases([case_id]).get(case_id)
    if existing is not None:
        return repo.get_investigations([existing])[existing]
    case = store.get_persons([case_id]).get(case_id)
    if case is None:
        raise CaseNotFound(case_id)
    if not case.is_case:
        raise CaseNotFound(case_id, f"is not a case (status {case.status.value})")
    start, source = _clock_start(case, policy, now)
    investigation = Investigation(
        id=investigation_id_for_case(case_id), kind=InvestigationKind.CASE, case_id=case_id,
        region=region or case.region, team=team, opened_at=now, clock_start_at=start, clock_source=source,
    )
    tracked = [
        TrackedPerson(investigation_id=investigation.id, person_id=c.person_id, role=c.contact_class.value,
                      first_seen_at=now)
        for c in store.derived_for_case(case_id)
    ]
    if not repo.add_investigation(investigation, base_milestones(investigation, policy=policy), tracked=tracked):
        # Lost a race with another opener: theirs stands.
        return repo.get_investigations([investigation.id])[investigation.id]
    return investigation


def open_assist_request(
    repo: DeadlineRepository, request: AssistRequest, *, policy: DeadlinePolicy, now: datetime
) -> Investigation:
    """Record a 协查 list and start its clock at ``received_at`` (idempotent by request id)."""
    existing = repo.get_investigations([request.id]).get(request.id)
    if existing is not None:
        return existing
    investigation = Investigation(
        id=request.id, kind=InvestigationKind.ASSIST, region=request.region, team=request.team, opened_at=now,
        clock_start_at=request.received_at, clock_source="received_at",
    )
    tracked = [
        TrackedPerson(investigation_id=request.id, person_id=pid, role="pushed", first_seen_at=request.received_at)
        for pid in dict.fromkeys(request.person_ids)
    ]
    repo.add_assist_request(request, investigation, base_milestones(investigation, policy=policy), tracked)
    return investigation


def _get(repo: DeadlineRepository, investigation_id: str) -> Investigation:
    found = repo.get_investigations([investigation_id]).get(investigation_id)
    if found is None:
        raise InvestigationNotFound(investigation_id)
    return found


def record_arrival(
    repo: DeadlineRepository, investigation_id: str, *, investigator: str, arrived_at: datetime, now: datetime
) -> None:
    """An investigator arrived on scene (the 2 h clock)."""
    _get(repo, investigation_id)
    repo.record_arrival(
        InvestigatorArrival(investigation_id=investigation_id, investigator=investigator, arrived_at=arrived_at),
        now=now,
    )


def record_isolation_arrival(
    repo: DeadlineRepository, person_id: str, site_id: str, arrived_at: datetime, *, now: datetime | None = None
) -> set[str]:
    """A person arrived at a central isolation site (the 8 h clock). For the transfers module to call."""
    return repo.record_isolation_arrival(person_id, site_id, arrived_at, now=now)


def declare_no_contacts(repo: DeadlineRepository, investigation_id: str, *, now: datetime) -> Investigation:
    """Investigators state the case has no (close/secondary) contacts: empty lists then count as complete."""
    inv = _get(repo, investigation_id).model_copy(update={"no_contacts_declared_at": now})
    repo.update_investigation(inv, now=now)
    return inv


def assign_team(repo: DeadlineRepository, investigation_id: str, team: str | None, *, now: datetime) -> Investigation:
    inv = _get(repo, investigation_id).model_copy(update={"team": team})
    repo.update_investigation(inv, now=now)
    return inv


def close_investigation(repo: DeadlineRepository, investigation_id: str, *, now: datetime) -> Investigation:
    inv = _get(repo, investigation_id).model_copy(update={"status": InvestigationStatus.CLOSED, "closed_at": now})
    repo.update_investigation(inv, now=now)
    return inv


# --- dirty marking (called after graph writes) ------------------------------------------------------


def mark_dirty_for_persons(
    repo: DeadlineRepository, person_ids: Iterable[str], *, now: datetime, case_ids: Iterable[str] = ()
) -> set[str]:
    """Mark every open investigation a change to ``person_ids`` can affect; returns their ids.

    Affected: the investigations of those persons' cases, those tracking
    them (derived contacts seen before, pushed persons), and those of
    ``case_ids`` (cases whose derived contacts changed). The marks of the
    first two name the persons (only their recorded fields changed, as far
    as those investigations are concerned); those of ``case_ids`` say that
    anything may have changed.
    """
    ids, case_ids = set(person_ids), set(case_ids)
    watching = repo.investigations_watching(ids) if ids else {}
    rederived = set(repo.investigations_watching(case_ids)) if case_ids else set()
    named = {inv_id: persons for inv_id, persons in watching.items() if inv_id not in rederived}
    affected = rederived | set(named)
    repo.mark_dirty(affected, now, persons=named)
    return affected


def after_graph_change(
    store: GraphStore, person_ids: Iterable[str], *, case_ids: Iterable[str] = (), now: datetime,
    policy: DeadlinePolicy | None = None, rederived: Iterable[str] = (),
) -> set[str]:
    """Hook for :func:`tracing.service.rederive_affected`: open investigations of newly reported
    cases (``policy.auto_open``) and mark affected ones dirty (see :func:`mark_dirty_for_persons`:
    ``case_ids`` are the cases whose derived contacts changed; ``rederived``, the other cases
    re-derived, are only candidates for opening). Never raises: deadline bookkeeping must not
    fail a graph write (errors are logged).
    """
    try:
        repo = deadline_repository(store)
        if repo is None:
            return set()
        # Hour figures are per-region settings: investigations opened here must use them.
        policy = policy or DeadlineSettings().policy
        ids, case_ids = set(person_ids), set(case_ids)
        if policy.auto_open:
            candidates = ids | case_ids | set(rederived)
            known = repo.investigation_ids_for_cases(candidates)
            for person in store.get_persons(candidates - set(known)).values():
                if person.is_case and getattr(person, policy.clock_start.value) is not None:
                    open_investigation(store, repo, person.id, policy=policy, now=now)
        return mark_dirty_for_persons(repo, ids, now=now, case_ids=case_ids)
    except Exception:  # noqa: BLE001 - see docstring
        log.exception("deadline bookkeeping after a graph change failed")
        return set()


# --- loading and evaluating -------------------------------------------------------------------------


def _stamps(repo: DeadlineRepository, ids: Iterable[str]) -> tuple[dict[str, int], dict[str, str]]:
    """:meth:`~.repository.DeadlineRepository.evaluation_stamps` as two dicts: facts-change times, digests."""
    changes: dict[str, int] = {}
    digests: dict[str, str] = {}
    for inv_id, (change, digest) in repo.evaluation_stamps(ids).items():
        if change is not None:
            changes[inv_id] = change
        if digest is not None:
            digests[inv_id] = digest
    return changes, digests


def _load_batch(
    store: GraphStore, repo: DeadlineRepository, ids: Sequence[str], *, policy: DeadlinePolicy,
    dirty: dict[str, DirtyMark],
) -> dict[str, Facts]:
    investigations = repo.get_investigations(ids)
    clocks = repo.clocks_of(ids)
    changes, digests = _stamps(repo, ids)
    tracked = repo.tracked_brief_of(ids)
    case_ids = [i for i, inv in investigations.items() if inv.kind is InvestigationKind.CASE]
    arrivals = repo.arrivals_of(case_ids) if case_ids else {}
    assist_ids = [i for i, inv in investigations.items() if inv.kind is InvestigationKind.ASSIST]
    requests = repo.get_assist_requests(assist_ids) if assist_ids else {}
    contacts = store.contact_refs_for_cases([
        inv.case_id for inv in investigations.values()
        if inv.kind is InvestigationKind.CASE and inv.status is InvestigationStatus.OPEN
    ])
    facts: dict[str, Facts] = {}
    wanted: set[str] = set()  # contacts, pushed persons and cases: the checks read a few fields of each
    no_contacts: list = []
    for inv_id, inv in investigations.items():
        f = facts[inv_id] = Facts(
            investigation=inv, milestones=clocks.get(inv_id, []), arrivals=arrivals.get(inv_id, no_contacts),
            tracked=tracked.get(inv_id, {}), dirty=dirty.get(inv_id), request=requests.get(inv_id),
            facts_change_at=changes.get(inv_id), contacts_digest=digests.get(inv_id),
        )
        if inv.status is InvestigationStatus.CLOSED:
            continue
        if inv.kind is InvestigationKind.CASE:
            f.contacts = contacts[inv.case_id]
            wanted.add(inv.case_id)
            wanted.update(c.person_id for c in f.contacts)
        else:
            wanted.update(f.tracked)
    checks = person_checks(policy)
    persons = store.person_fields(wanted, checks.fields) if wanted else {}
    windows: dict[str, tuple[datetime, datetime]] = {}
    for f in facts.values():
        f.persons = persons
        if f.investigation.kind is InvestigationKind.CASE and f.investigation.status is InvestigationStatus.OPEN:
            case_id = f.investigation.case_id
            f.case = persons.get(case_id)
            if f.case is not None and any(c.kind is MilestoneKind.FULL_INFO for c in f.milestones):
                window = case_window(f.case, checks, f.investigation, policy)
                if window is not None:
                    windows[case_id] = window
    if windows:
        start, end = min(w[0] for w in windows.values()), max(w[1] for w in windows.values())
        by_case: dict[str, list] = {}
        for visit in store.visits_of(windows, start=start, end=end):
            by_case.setdefault(visit.person_id, []).append(visit)
        if by_case:
            places = store.get_places({v.place_id for vs in by_case.values() for v in vs})
            for f in facts.values():
                case_id = f.investigation.case_id
                if f.case is not None and case_id in by_case:
                    lo, hi = windows[case_id]
                    f.case_visits = [v for v in by_case[case_id] if v.end >= lo and v.start <= hi]
                    f.places = places
    required = {c.person_id for f in facts.values() for c in f.contacts}
    isolation = repo.isolation_arrivals_of(required) if required else {}
    for f in facts.values():
        f.isolation = isolation
    return facts


def load_facts(
    store: GraphStore, repo: DeadlineRepository, ids: Sequence[str], *, policy: DeadlinePolicy,
    dirty: dict[str, DirtyMark] | None = None,
) -> tuple[dict[str, Facts], dict[str, str]]:
    """Facts of many investigations in a few batched reads; on a failure, retry one by one.

    Returns the facts and, per investigation that could not be loaded, the error.
    """
    dirty = dirty or {}
    try:
        return _load_batch(store, repo, ids, policy=policy, dirty=dirty), {}
    except Exception:  # noqa: BLE001 - isolate the bad investigation below
        if len(ids) == 1:
            raise
    facts, errors = {}, {}
    for inv_id in ids:
        try:
            facts.update(_load_batch(store, repo, [inv_id], policy=policy, dirty=dirty))
        except Exception as error:  # noqa: BLE001
            log.exception("loading investigation %s failed", inv_id)
            errors[inv_id] = f"{type(error).__name__}: {error}"
    return facts, errors


def evaluate(
    store: GraphStore, repo: DeadlineRepository, investigation_id: str, *, policy: DeadlinePolicy, now: datetime
) -> InvestigationEvaluation:
    """Milestone states of one investigation at ``now`` with reasons (who lacks what). Writes nothing.

    Raises
    ------
    InvestigationNotFound
    """
    facts, _ = load_facts(store, repo, [investigation_id], policy=policy)
    if investigation_id not in facts:
        raise InvestigationNotFound(investigation_id)
    return evaluate_facts(facts[investigation_id], policy=policy, now=now)


# --- the sweep -------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """What one sweep did. ``worker_cpu_ms``: CPU time its worker processes spent on it (none without workers)."""

    now: datetime
    evaluated: int = 0
    changed: int = 0
    alerts: list[Alert] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    elapsed_ms: float = 0.0
    worker_cpu_ms: float = 0.0


def plan_evaluations(
    store: GraphStore, repo: DeadlineRepository, ids: Sequence[str], *, policy: DeadlinePolicy, now: datetime,
    dirty: dict[str, DirtyMark],
) -> tuple[dict[str, EvaluationWrite], dict[str, str], list[str]]:
    """Load, evaluate and plan the writes of investigations ``ids`` (the sweep's dirty ones). Reads only.

    Returns the writes worth applying (by investigation id), per investigation that could
    not be loaded or evaluated the error (it stays queued), and the ids not found at all
    (see :func:`_drop_orphans`: the caller decides, as a worker may be looking at another database).
    """
    writes: dict[str, EvaluationWrite] = {}
    facts, errors = load_facts(store, repo, ids, policy=policy, dirty=dirty)
    missing = []
    for inv_id in ids:
        f = facts.get(inv_id)
        if f is None:
            if inv_id not in errors:
                missing.append(inv_id)
            continue
        try:
            write = plan_write(f, evaluate_facts(f, policy=policy, now=now))
        except Exception as error:  # noqa: BLE001 - one bad investigation must not stop the sweep
            log.exception("evaluating investigation %s failed", inv_id)
            errors[inv_id] = f"{type(error).__name__}: {error}"
            continue
        if (
            write.updates or write.new_milestones or write.new_tracked or write.alerts or write.dirty_token
            or write.store_facts_change or write.contacts_digest
        ):
            writes[inv_id] = write
    return writes, errors, missing


def plan_field_changes(
    store: GraphStore, repo: DeadlineRepository, marks: dict[str, DirtyMark], *, policy: DeadlinePolicy,
    now: datetime,
) -> tuple[dict[str, EvaluationWrite], dict[str, str], list[str]]:
    """Plan the writes of dirty investigations whose marks name persons (only their fields changed). Reads only.

    The shortcut of :func:`plan_evaluations` for the most common change, an
    investigator filling in a contact's details: instead of every fact of the
    investigation, it reads its stored clocks, its case's contacts and the
    named persons' fields, and re-checks those persons alone
    (:func:`~.engine.evaluate_field_changes`, which gives what a whole
    evaluation gives). A named person who is not one of the case's contacts
    changes no check. The stored reasons stand in for everyone else only if
    they were made from the same contact list under the same rules: the
    digest each evaluation stores (:func:`~.engine.contacts_digest`) must
    match the case's contacts now; if not (contacts persisted by a trace
    without a whole mark, a sweep between a re-derivation and its mark, a
    policy change) the investigation is evaluated whole.

    Returns the writes (by investigation id, one for each investigation handled),
    per investigation that failed the error, and the ids the shortcut does not apply
    to, to evaluate in full: assist requests, closed investigations, a mark naming
    the case itself, a future-dated fact taking effect, or stored clocks that cannot
    stand in for the facts.
    """
    ids = sorted(marks)
    investigations = repo.get_investigations(ids)
    changes, digests = _stamps(repo, ids)
    now_us = us(now)
    eligible, rest = [], []
    for inv_id in ids:
        inv, change = investigations.get(inv_id), changes.get(inv_id)
        if (
            inv is not None and inv.kind is InvestigationKind.CASE and inv.status is InvestigationStatus.OPEN
            and inv.case_id not in marks[inv_id].persons and (change is None or change > now_us)
        ):
            eligible.append(inv_id)
        else:
            rest.append(inv_id)
    writes: dict[str, EvaluationWrite] = {}
    errors: dict[str, str] = {}
    if not eligible:
        return writes, errors, rest
    checks = person_checks(policy)
    try:
        contacts = store.contact_refs_for_cases([investigations[i].case_id for i in eligible])
        touched: dict[str, list[str]] = {}
        for inv_id in eligible:
            named = marks[inv_id].persons
            touched[inv_id] = [c.person_id for c in contacts[investigations[inv_id].case_id] if c.person_id in named]
        wanted = {pid for pids in touched.values() for pid in pids}
        persons = store.person_fields(wanted, checks.fields) if wanted else {}
        clocks = repo.clocks_of(eligible)
    except Exception:  # noqa: BLE001 - the whole evaluation isolates what cannot be read, one by one
        log.exception("the sweep's shortcut could not read its batch: evaluating it whole")
        return writes, errors, ids
    for inv_id in eligible:
        inv, mark = investigations[inv_id], marks[inv_id]
        case_contacts = contacts[inv.case_id]
        if digests.get(inv_id) != contacts_digest(case_contacts, policy):
            rest.append(inv_id)  # not the contacts (or the rules) the stored reasons were made with
            continue
        fresh = {pid: missing_in(persons.get(pid), checks.core) for pid in touched[inv_id]}
        stored = clocks.get(inv_id, [])
        try:
            evaluation = evaluate_field_changes(
                inv, stored, case_contacts, fresh, dirty=mark, facts_change_at=changes.get(inv_id),
                policy=policy, now=now,
            )
            if evaluation is None:
                rest.append(inv_id)
                continue
            facts = Facts(investigation=inv, milestones=stored, dirty=mark, facts_change_at=changes.get(inv_id),
                          contacts_digest=digests.get(inv_id))
            writes[inv_id] = plan_write(facts, evaluation)
        except Exception as error:  # noqa: BLE001 - one bad investigation must not stop the sweep
            log.exception("evaluating investigation %s failed", inv_id)
            errors[inv_id] = f"{type(error).__name__}: {error}"
    return writes, errors, sorted(rest)


def plan_dirty(
    store: GraphStore, repo: DeadlineRepository, ids: Sequence[str], *, policy: DeadlinePolicy, now: datetime,
    dirty: dict[str, DirtyMark],
) -> tuple[dict[str, EvaluationWrite], dict[str, str], list[str]]:
    """:func:`plan_evaluations` of investigations ``ids``, through :func:`plan_field_changes` for those whose
    marks name persons (the same writes, fewer reads). Reads only; returns as :func:`plan_evaluations`."""
    named = {i: dirty[i] for i in ids if i in dirty and dirty[i].persons is not None}
    writes: dict[str, EvaluationWrite] = {}
    errors: dict[str, str] = {}
    whole = [i for i in ids if i not in named]
    if named:
        writes, errors, rest = plan_field_changes(store, repo, named, policy=policy, now=now)
        whole = sorted([*whole, *rest])
    missing: list[str] = []
    if whole:
        more, more_errors, missing = plan_evaluations(store, repo, whole, policy=policy, now=now, dirty=dirty)
        writes.update(more)
        errors.update(more_errors)
    return writes, errors, missing


def _drop_orphans(
    missing: Sequence[str], dirty: dict[str, DirtyMark], writes: dict[str, EvaluationWrite], errors: dict[str, str]
) -> None:
    """Investigations that do not exist: an error each, and a write that only clears an orphan dirty mark."""
    for inv_id in missing:
        errors[inv_id] = "investigation not found"
        if inv_id in dirty:
            writes[inv_id] = EvaluationWrite(investigation_id=inv_id, dirty_token=dirty[inv_id].changed_at)


def _apply(repo: DeadlineRepository, writes: dict[str, EvaluationWrite], result: SweepResult) -> None:
    """Apply planned writes (in investigation order) and add what they did to ``result``."""
    ordered = [writes[i] for i in sorted(writes)]
    result.changed += sum(bool(w.updates or w.new_milestones or w.alerts) for w in ordered)
    alerts, refused = repo.apply_evaluations(ordered)
    result.alerts.extend(alerts)
    result.errors.update(refused)


def _collect_share(
    store: GraphStore, repo: DeadlineRepository, workers: SweepWorkers, share, *, policy: DeadlinePolicy,
    now: datetime, dirty: dict[str, DirtyMark], result: SweepResult, alerts_before: int,
) -> None:
    """Add what a worker did with its share to ``result``. If the worker failed or timed out, or did not
    find investigations this process finds (it would be reading another database), the share is evaluated
    and written here instead: whatever the worker may have written is then already stored and is not
    written twice (the conflict checks and unique alert keys), what it did not write is written now, and
    the alerts it inserted (stored after ``alerts_before``) are added to ``result`` from the store."""
    try:
        done = share.result()
        result.worker_cpu_ms += done.cpu_ms
        if done.missing and repo.get_investigations(done.missing):
            raise RuntimeError(f"a sweep worker does not see {len(done.missing)} investigation(s) this process sees")
    except Exception:  # noqa: BLE001 - a lost worker costs time, never results
        log.exception("a sweep worker failed: evaluating its %d investigations here", len(share.ids))
        workers.restart()
        writes, errors, missing = plan_dirty(store, repo, share.ids, policy=policy, now=now, dirty=dirty)
        result.errors.update(errors)
        _drop_orphans(missing, dirty, writes, result.errors)
        _apply(repo, writes, result)
        ids, seen = set(share.ids), {a.key for a in result.alerts}
        result.alerts.extend(
            a for a in repo.alerts(after_seq=alerts_before) if a.investigation_id in ids and a.key not in seen
        )
        return
    result.changed += done.changed
    result.alerts.extend(done.alerts)
    result.errors.update(done.errors)
    if done.missing:
        orphans: dict[str, EvaluationWrite] = {}
        _drop_orphans(done.missing, dirty, orphans, result.errors)
        _apply(repo, orphans, result)


def sweep_deadlines(
    store: GraphStore, repo: DeadlineRepository, *, policy: DeadlinePolicy, now: datetime, limit: int = 20_000,
    workers: SweepWorkers | None = None,
) -> SweepResult:
    """Evaluate what can have changed since the last sweep and store state changes and alerts.

    Candidates are the dirty investigations and the clocks whose queue time
    (at-risk time, due time, or when a future-dated fact takes effect) is
    ≤ ``now``, both read from indexes: nothing else is looked at. Dirty
    investigations are evaluated from their facts; a clock merely reaching its
    at-risk or due time in an investigation whose facts did not change moves
    from its stored state alone (:func:`~.engine.plan_crossings`: the same
    result, without loading facts). Each investigation's write (milestones,
    alerts, clearing its dirty mark) is atomic and independent; alert keys are
    unique, so a repeated or concurrent sweep writes nothing twice. A failing
    investigation is logged, left queued and skipped.

    The cyclic garbage collector is paused meanwhile (:func:`~tracing.collector.collector_paused`):
    the facts of ~1,000 investigations are tens of thousands of small containers, alive until the
    sweep returns and free of cycles, and re-walking them was ~15 % of a sweep's time at 100k
    open investigations (a full pass every other sweep, ~50 ms).

    With ``workers`` (:class:`~.workers.SweepWorkers`), a large set of dirty
    investigations is split: worker processes load and evaluate their shares
    while this process does its own, and this process alone writes, as above.
    """
    with collector_paused():
        return _sweep(store, repo, policy=policy, now=now, limit=limit, workers=workers)


def _sweep(
    store: GraphStore, repo: DeadlineRepository, *, policy: DeadlinePolicy, now: datetime, limit: int,
    workers: SweepWorkers | None,
) -> SweepResult:
    started = time.perf_counter()
    dirty = repo.dirty_marks(limit=limit)
    own: list[str] = sorted(dirty)
    shares: list = []
    alerts_before = 0
    if workers is not None and dirty:  # first, so that the workers start while this process reads the crossings
        alerts_before = repo.max_alert_seq()  # to find what a worker that fails may have written
        own, shares = workers.submit_shares(own, dirty, policy=policy, now=now)
    try:
        result = _sweep_own(store, repo, policy=policy, now=now, limit=limit, dirty=dirty, own=own)
    except BaseException:
        # The workers write their shares: let them finish (or stop them) before this sweep gives up, so that
        # none is still writing when the next sweep reads the same marks.
        _settle(workers, shares)
        raise
    for share in shares:
        _collect_share(store, repo, workers, share, policy=policy, now=now, dirty=dirty, result=result,
                       alerts_before=alerts_before)
    if shares:
        result.alerts.sort(key=lambda a: a.seq or 0)  # the processes committed in either order
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    return result


def _settle(workers: SweepWorkers | None, shares: list) -> None:
    """Wait for the shares of a sweep that failed; stop the workers if that fails too."""
    for share in shares:
        try:
            share.result()
        except Exception:  # noqa: BLE001 - the sweep is failing already; its error is the one raised
            if workers is not None:
                workers.restart()


def _sweep_own(
    store: GraphStore, repo: DeadlineRepository, *, policy: DeadlinePolicy, now: datetime, limit: int,
    dirty: dict[str, DirtyMark], own: list[str],
) -> SweepResult:
    """The sweeping process's part of :func:`_sweep`: the clock crossings, its share of the dirty
    investigations and their writes."""
    crossing: dict[str, list[Clock]] = {}
    for clock in repo.due_clocks(now, limit=limit):
        if clock.investigation_id not in dirty:
            crossing.setdefault(clock.investigation_id, []).append(clock)
    investigations = repo.get_investigations(crossing) if crossing else {}
    changes, _ = _stamps(repo, crossing) if crossing else ({}, {})
    now_us = us(now)
    time_only: dict[str, list[Clock]] = {}
    full = set(dirty)
    for inv_id, clocks in crossing.items():
        inv, change = investigations.get(inv_id), changes.get(inv_id)
        if (
            inv is not None and inv.status is InvestigationStatus.OPEN
            and all(crossing_is_time_only(c, change, now_us) for c in clocks)
        ):
            time_only[inv_id] = clocks
        else:
            full.add(inv_id)
    result = SweepResult(now=now, evaluated=len(full) + len(time_only))
    if not full and not time_only:
        return result
    writes: dict[str, EvaluationWrite] = {}
    own = sorted({*own, *(full - set(dirty))})  # plus the crossings that need a whole evaluation
    if own:
        writes, result.errors, missing = plan_dirty(store, repo, own, policy=policy, now=now, dirty=dirty)
        _drop_orphans(missing, dirty, writes, result.errors)
    if time_only:  # while the workers (if any) finish their shares
        reaching_due = [i for i, clocks in time_only.items() if any(c.due_at <= now_us and not c.has_at_due for c in clocks)]
        known = repo.tracked_counts(reaching_due) if reaching_due else {}
        for inv_id, clocks in time_only.items():
            try:
                write = plan_crossings(investigations[inv_id], clocks, now=now, known_persons=known.get(inv_id, 0),
                                       facts_change_at=changes.get(inv_id))
            except Exception as error:  # noqa: BLE001
                log.exception("evaluating investigation %s failed", inv_id)
                result.errors[inv_id] = f"{type(error).__name__}: {error}"
                continue
            if write.updates or write.alerts:
                writes[inv_id] = write
    # Each process writes what it planned (each write is atomic on its own: separate batches store
    # exactly what one would).
    _apply(repo, writes, result)
    return result
