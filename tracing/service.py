"""Tracing service functions: load what an algorithm needs through the store port, run it, store results.

Every function takes the store first and keyword-only options, and the
clock (``now``) is always passed in, never read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timezone

import networkx as nx

from graph_models import (
    CASE_STATUSES,
    Chain,
    ChainDirection,
    ChainMember,
    ChainVia,
    Closeness,
    Cluster,
    ContactEvent,
    Person,
    SourceCandidate,
    TraceResult,
    TracingPolicy,
    Visit,
)

from graph_models.deadlines import DeadlinePolicy

from .deadlines.service import after_graph_change
from .errors import CaseNotFound, NoInfectiousWindow, PersonNotFound
from .store.port import GraphBatch, GraphReader, GraphStore
from .traversal.classify import add_close_spans, add_spans, classify_contacts, close_span_rule, infectious_window
from .traversal.temporal import iter_downstream_layers, iter_upstream_layers

__all__ = [
    "apply_and_rederive",
    "chain",
    "clusters",
    "mark_place_visitors",
    "rederive_affected",
    "source_candidates",
    "trace_case",
]

#: Lower bound for "any time" windows; real data never predates it.
_BEGINNING = datetime(1800, 1, 1, tzinfo=timezone.utc)
_CLOSE = Closeness.CLOSE.value


def _get_case(store: GraphReader, case_id: str) -> Person:
    person = store.get_persons([case_id]).get(case_id)
    if person is None:
        raise CaseNotFound(case_id)
    if not person.is_case:
        raise CaseNotFound(case_id, f"is not a case (status {person.status.value})")
    return person


def _isolation_limit(isolated_at: datetime | None, now: datetime) -> datetime:
    """Until when a person can pass infection on: isolation, or ``now`` (a future isolation is not yet in force)."""
    return now if isolated_at is None else min(isolated_at, now)


def _covisit_edges(
    store: GraphReader, person_id: str, *, start: datetime, end: datetime
) -> list[tuple[str, str, dict]]:
    """Co-presence (时空伴随) of ``person_id`` with others at a place, as general-contact edges."""
    own = store.visits_of([person_id], start=start, end=end)
    if not own:
        return []
    by_place: dict[str, list[Visit]] = defaultdict(list)
    for visit in store.visits_at({v.place_id for v in own}, start=start, end=end):
        if visit.person_id != person_id:
            by_place[visit.place_id].append(visit)
    edges = []
    for mine in own:
        for theirs in by_place.get(mine.place_id, ()):
            overlap_start, overlap_end = max(mine.start, theirs.start), min(mine.end, theirs.end)
            if overlap_start <= overlap_end:
                key = f"covisit:{mine.id}+{theirs.id}"
                edges.append((theirs.person_id, key, {"start": overlap_start, "end": overlap_end, "usable": False}))
    return edges


def trace_case(
    store: GraphStore,
    case_id: str,
    *,
    policy: TracingPolicy | None = None,
    now: datetime,
    persist: bool = True,
) -> TraceResult:
    """Derive the close, secondary and general contacts of one case, with evidence.

    Loads, through the port and in one read transaction, the case's
    contacts inside its infectious window, the contacts of its close-contact candidates from the window's
    opening on, and (if the policy says so) co-visits; classifies them with
    :func:`tracing.traversal.classify.classify_contacts`; and, unless
    ``persist`` is false, replaces the case's derived relations in the store
    (case -CLOSE_CONTACT-> person, close contact -SECONDARY_CONTACT-> person,
    case -GENERAL_CONTACT-> person).

    Raises
    ------
    CaseNotFound
        If ``case_id`` is unknown or not a confirmed/asymptomatic case.
    NoInfectiousWindow
        If the case has neither onset nor sampling time.
    """
    policy = policy or TracingPolicy()
    result = store.read_transaction(lambda reader: _derive_contacts(reader, case_id, policy=policy, now=now))
    if persist:
        store.replace_derived(case_id, result.contacts, derived_at=now)
    return result


def _derive_contacts(reader: GraphReader, case_id: str, *, policy: TracingPolicy, now: datetime) -> TraceResult:
    """The read-only part of :func:`trace_case`: load the neighbourhood, classify it."""
    case = _get_case(reader, case_id)
    window_start, window_end = infectious_window(case, policy=policy, now=now)

    G = nx.MultiGraph()
    G.add_node(case_id, until=window_end)
    direct = reader.contact_spans([case_id], start=window_start, end=window_end)
    add_spans(G, direct, policy)
    if policy.trace_secondary:
        is_close = close_span_rule(policy)
        candidates = {span.b if span.a == case_id else span.a for span in direct if is_close(span)}
        if candidates:
            isolated = reader.isolation_times(candidates)
            for person_id in candidates:
                G.nodes[person_id]["until"] = _isolation_limit(isolated.get(person_id), now)
            # Their non-close contacts lead nowhere: only close ones make secondary contacts.
            add_close_spans(G, reader.contact_spans(candidates, start=window_start, end=now, closeness=_CLOSE), policy)
    if policy.trace_general and policy.covisits_as_general:
        for other, key, data in _covisit_edges(reader, case_id, start=window_start, end=window_end):
            G.add_edge(case_id, other, key=key, **data)

    contacts = classify_contacts(G, case_id, policy=policy, window_start=window_start, window_end=window_end)
    return TraceResult(
        case_id=case_id, window_start=window_start, window_end=window_end, derived_at=now, contacts=contacts
    )


def touched_person_ids(store: GraphStore, batch: GraphBatch) -> set[str]:
    """Persons whose tracing a write of ``batch`` can change.

    Everyone the batch names, plus those who were at a newly visited place
    at an overlapping time (their co-visits change too).
    """
    touched = {p.id for p in batch.persons}
    touched.update(x for e in batch.events for x in (e.a, e.b))
    touched.update(x for k in batch.links for x in (k.infector, k.infectee))
    for visit in batch.visits:
        touched.add(visit.person_id)
        touched.update(v.person_id for v in store.visits_at([visit.place_id], start=visit.start, end=visit.end))
    return touched


def rederive_affected(
    store: GraphStore,
    person_ids: Iterable[str],
    *,
    policy: TracingPolicy | None = None,
    deadline_policy: DeadlinePolicy | None = None,
    now: datetime,
) -> list[str]:
    """Re-derive the contacts of every case a change to ``person_ids`` can affect.

    Affected are the cases among ``person_ids`` and every case whose derived
    relations mention one of them (a new contact of a close contact can
    make a secondary contact; a changed isolation time can remove one).
    A case that can no longer be traced (status changed, dates removed)
    loses its derived relations. Then the 2+4+24+8 investigations of those
    persons and cases are marked for re-evaluation (and newly reported cases
    get one), under ``deadline_policy`` (default: from settings).
    Returns the ids of the re-derived cases.
    """
    ids = set(person_ids)
    if not ids:
        return []
    persons = store.get_persons(ids)
    affected = {pid for pid, person in persons.items() if person.is_case} | store.cases_deriving(ids)
    before = store.contact_refs_for_cases(affected) if affected else {}
    for case_id in sorted(affected):
        try:
            trace_case(store, case_id, policy=policy, now=now, persist=True)
        except (CaseNotFound, NoInfectiousWindow):
            store.replace_derived(case_id, [], derived_at=now)
    # Derived contacts feed the 2+4+24+8 clocks: the investigations of cases whose contacts (who, which
    # class, in which order) changed must be re-evaluated whole; for the others, the persons' fields changed.
    after = store.contact_refs_for_cases(affected) if affected else {}
    changed = {case_id for case_id in affected if before.get(case_id) != after.get(case_id)}
    after_graph_change(store, ids, case_ids=changed, rederived=affected, now=now, policy=deadline_policy)
    return sorted(affected)


def apply_and_rederive(
    store: GraphStore,
    batch: GraphBatch,
    *,
    policy: TracingPolicy | None = None,
    deadline_policy: DeadlinePolicy | None = None,
    now: datetime,
) -> list[str]:
    """Write ``batch`` atomically, then re-derive the cases it affects. Returns their ids.

    The investigations of those who visited the places written are marked as well
    (:func:`mark_place_visitors`).
    """
    store.apply(batch)
    rederived = rederive_affected(
        store, touched_person_ids(store, batch), policy=policy, deadline_policy=deadline_policy, now=now
    )
    mark_place_visitors(store, [p.id for p in batch.places], deadline_policy=deadline_policy, now=now)
    return rederived


def mark_place_visitors(
    store: GraphStore, place_ids: Iterable[str], *, deadline_policy: DeadlinePolicy | None = None, now: datetime
) -> int:
    """After places were written: mark the investigations watching anyone who visited them. Returns how
    many persons that was.

    A place changes no tracing, but its kind may make it a workplace, which the all-information clock
    of every case that visited it checks (the marks name the visitors, so a case's own investigation is
    evaluated whole).
    """
    ids = list(dict.fromkeys(place_ids))
    visitors = {v.person_id for v in store.visits_at(ids)} if ids else set()
    if visitors:
        after_graph_change(store, visitors, now=now, policy=deadline_policy)
    return len(visitors)


# --- chains ----------------------------------------------------------------------------


def _chain_via_links(store: GraphReader, person_id: str, *, up: bool, hops: int) -> list[ChainMember]:
    members = {person_id: ChainMember(person_id=person_id, hops=0)}
    frontier = [person_id]
    for depth in range(1, hops + 1):
        links = store.links_to(frontier) if up else store.links_from(frontier)
        next_frontier: list[str] = []
        for link in sorted(links, key=lambda k: (k.infector, k.infectee)):
            parent, child = (link.infectee, link.infector) if up else (link.infector, link.infectee)
            if child in members:
                continue
            members[child] = ChainMember(
                person_id=child, hops=depth, parent_id=parent, reached_at=link.exposed_at,
                evidence=f"link:{link.infector}->{link.infectee}",
            )
            next_frontier.append(child)
        if not next_frontier:
            break
        frontier = next_frontier
    return list(members.values())


def _chain_via_contacts(
    store: GraphReader, root: Person, *, up: bool, hops: int, policy: TracingPolicy, now: datetime
) -> list[ChainMember]:
    anchor = root.onset_at or root.sampled_at
    G = nx.MultiGraph()
    G.add_node(root.id, until=_isolation_limit(root.isolated_at, now))
    loaded: set[str] = set()

    if up:
        deadline = anchor or now
        floor = deadline - policy.incubation_look_back * hops
        layers = iter_upstream_layers(G, root.id, deadline=deadline, max_hops=hops)
    else:
        floor = anchor - policy.look_back if anchor else _BEGINNING
        layers = iter_downstream_layers(G, root.id, start=floor, max_hops=hops)

    history = {}
    for layer, improved, history in layers:
        # Load lazily: the next layer only reads the neighbourhoods of the persons just
        # improved, and after the last layer nothing is read at all.
        fresh = improved - loaded
        if layer == hops or not fresh:
            continue
        loaded |= fresh
        # Chains move along close contacts only.
        add_close_spans(G, store.contact_spans(fresh, start=floor, end=now, closeness=_CLOSE), policy)
        # Downstream reads the isolation of the persons it relaxes from (the fresh ones);
        # upstream that of the neighbours it may step back to.
        needing = [n for n in (G.nodes if up else fresh) if "until" not in G.nodes[n]]
        isolated = store.isolation_times(needing)
        for node in needing:
            G.nodes[node]["until"] = _isolation_limit(isolated.get(node), now)

    # The evidence is the last step of the best path, i.e. the event of the best entry itself:
    # no need to walk the path back to the root (evidence_path) for every member.
    return [
        ChainMember(person_id=node, hops=entries[0][0], parent_id=best.parent, reached_at=best.at, evidence=best.event)
        for node, entries in history.items()
        for best in (entries[-1][1],)
    ]


def chain(
    store: GraphStore,
    person_id: str,
    *,
    direction: ChainDirection = ChainDirection.DOWN,
    via: ChainVia = ChainVia.CONTACTS,
    hops: int | None = None,
    policy: TracingPolicy | None = None,
    now: datetime,
) -> Chain:
    """Who a person's infection can have reached (down), or come from (up), within ``hops`` steps.

    ``via=CONTACTS`` follows close contact events along time-respecting
    paths (see :mod:`tracing.traversal.temporal`): downstream from the
    person's infectious window (or from any time, for a non-case), upstream
    back from its onset or sampling (or ``now``). ``via=LINKS`` follows the
    who-infected-whom links investigators recorded, ignoring time.

    Members include the root (hops 0); ``hops`` is the fewest steps needed;
    ``reached_at`` the earliest arrival (down) or latest useful departure
    (up) over paths of at most ``hops`` steps.

    Raises
    ------
    PersonNotFound
        If ``person_id`` is not in the graph.
    """
    policy = policy or TracingPolicy()
    hops = hops or policy.max_hops
    direction, via = ChainDirection(direction), ChainVia(via)

    def read_chain(reader: GraphReader) -> list[ChainMember]:
        root = reader.get_persons([person_id]).get(person_id)
        if root is None:
            raise PersonNotFound(person_id)
        up = direction is ChainDirection.UP
        if via is ChainVia.LINKS:
            return _chain_via_links(reader, person_id, up=up, hops=hops)
        return _chain_via_contacts(reader, root, up=up, hops=hops, policy=policy, now=now)

    members = store.read_transaction(read_chain)
    members.sort(key=lambda m: (m.hops, m.reached_at or _BEGINNING, m.person_id))
    return Chain(root_id=person_id, direction=direction, via=via, max_hops=hops, members=members)


# --- sources (溯源) ----------------------------------------------------------------------


def source_candidates(
    store: GraphStore, case_id: str, *, policy: TracingPolicy | None = None, now: datetime
) -> list[SourceCandidate]:
    """Who may have infected a case (溯源), most suspicious first.

    Candidates are everyone with a contact (of any closeness) or a co-visit
    with the case during its incubation look-back ``[anchor −
    policy.incubation_look_back, anchor]`` (anchor: onset, else sampling),
    plus recorded infectors. They are ranked by how many *other* confirmed
    or asymptomatic cases they are linked to (by contact or link), then
    cases before non-cases, then earliest contact.

    Raises
    ------
    CaseNotFound, NoInfectiousWindow
    """
    policy = policy or TracingPolicy()
    return store.read_transaction(lambda reader: _rank_sources(reader, case_id, policy=policy, now=now))


def _rank_sources(store: GraphReader, case_id: str, *, policy: TracingPolicy, now: datetime) -> list[SourceCandidate]:
    case = _get_case(store, case_id)
    anchor = case.onset_at or case.sampled_at
    if anchor is None:
        raise NoInfectiousWindow(case_id)
    start = anchor - policy.incubation_look_back

    evidence: dict[str, list[tuple[datetime | None, str]]] = defaultdict(list)
    for span in store.contact_spans([case_id], start=start, end=anchor):
        evidence[span.b if span.a == case_id else span.a].append((max(span.start, start), span.id))
    for other, key, data in _covisit_edges(store, case_id, start=start, end=anchor):
        evidence[other].append((data["start"], key))
    for link in store.links_to([case_id]):
        evidence[link.infector].append((link.exposed_at, f"link:{link.infector}->{case_id}"))
    if not evidence:
        return []

    candidates = set(evidence)
    partners: dict[str, set[str]] = defaultdict(set)
    for span in store.contact_spans(candidates, start=start - policy.incubation_look_back, end=now):
        if span.a in candidates:
            partners[span.a].add(span.b)
        if span.b in candidates:
            partners[span.b].add(span.a)
    for link in [*store.links_from(candidates), *store.links_to(candidates)]:
        partners[link.infector].add(link.infectee)
        partners[link.infectee].add(link.infector)
    everyone = candidates | {p for ps in partners.values() for p in ps}
    persons = store.get_persons(everyone)
    cases = {pid for pid, p in persons.items() if p.is_case and pid != case_id}

    ranked = []
    for person_id in candidates:
        times = [t for t, _ in evidence[person_id] if t is not None]
        ranked.append(
            SourceCandidate(
                person_id=person_id,
                is_case=person_id in cases,
                linked_cases=sorted((partners[person_id] & cases) - {person_id}),
                first_contact_at=min(times) if times else None,
                evidence=sorted({key for _, key in evidence[person_id]}),
            )
        )
    ranked.sort(key=lambda c: (-len(c.linked_cases), not c.is_case, c.first_contact_at or _BEGINNING, c.person_id))
    return ranked


# --- clusters ----------------------------------------------------------------------------


def clusters(
    store: GraphStore, *, via: ChainVia | None = ChainVia.LINKS, min_size: int = 2
) -> list[Cluster]:
    """Connected components of the transmission graph, largest first.

    ``via=LINKS`` joins persons by who-infected-whom links, ``CONTACTS`` by
    contact events, ``None`` by both. Components smaller than ``min_size``
    are left out. ``case_count`` counts confirmed and asymptomatic members.
    """
    via = ChainVia(via) if via is not None else None
    G = nx.Graph()
    if via in (ChainVia.LINKS, None):
        G.add_edges_from((k.infector, k.infectee) for k in store.iter_links())
    if via in (ChainVia.CONTACTS, None):
        G.add_edges_from((e.a, e.b) for e in store.iter_events())
    case_ids = {p.id for p in store.persons_with_status(CASE_STATUSES)}
    components = [sorted(c) for c in nx.connected_components(G) if len(c) >= min_size]
    components.sort(key=lambda members: (-len(members), members[0]))
    return [
        Cluster(id=i, size=len(members), case_count=sum(1 for m in members if m in case_ids), members=members)
        for i, members in enumerate(components, start=1)
    ]


def event_details(store: GraphStore, keys: Iterable[str]) -> dict[str, ContactEvent]:
    """Contact events behind evidence keys (co-visit and link keys are not events and are skipped)."""
    return store.get_events(k for k in keys if not k.startswith(("covisit:", "link:")))
