"""trace_case and chain agree with a brute-force reading of the rules on random graphs."""

from __future__ import annotations

import random

import pytest

from graph_models import ChainDirection, ContactClass, TracingPolicy
from tests.builders import at, case, contact, person
from tracing import chain, trace_case
from tracing.store import GraphBatch

POLICY = TracingPolicy()


def random_graph(seed: int, n_persons: int = 12, n_events: int = 40):
    rng = random.Random(seed)
    ids = [f"P{i}" for i in range(n_persons)]
    persons = [case("P0", at(10, rng.randrange(24)))]
    for pid in ids[1:]:
        isolated = at(rng.randint(6, 14), rng.randrange(24)) if rng.random() < 0.3 else None
        persons.append(person(pid, isolated_at=isolated))
    events = []
    for k in range(n_events):
        a, b = rng.sample(ids, 2)
        start = at(rng.randint(3, 14), rng.randrange(24), rng.choice([0, 30]))
        events.append(
            contact(f"e{k}", a, b, start, hours=rng.choice([0.5, 1, 3, 12]),
                    closeness="close" if rng.random() < 0.7 else "general")
        )
    return persons, events


def reference_classes(persons, events, now):
    """The rules as written, by enumeration (no layering, no graph library)."""
    by_id = {p.id: p for p in persons}
    c = by_id["P0"]
    w_start, w_end = c.onset_at - POLICY.look_back, min(c.isolated_at or now, now)

    def until(pid):
        p = by_id[pid]
        return now if p.isolated_at is None else min(p.isolated_at, now)

    def touching(pid, e):
        return pid in (e.a, e.b)

    close: dict[str, object] = {}
    for e in events:
        if touching("P0", e) and e.closeness == "close" and e.end >= w_start and e.start < w_end:
            other = e.other("P0")
            t = max(e.start, w_start)
            close[other] = min(close.get(other, t), t)
    secondary: dict[str, object] = {}
    for x, tx in close.items():
        for e in events:
            if touching(x, e) and e.closeness == "close" and e.end >= tx and e.start < until(x):
                y = e.other(x)
                if y == "P0" or y in close:
                    continue
                t = max(e.start, tx)
                secondary[y] = min(secondary.get(y, t), t)
    general: dict[str, object] = {}
    for e in events:
        if touching("P0", e) and e.end >= w_start and e.start < w_end:
            other = e.other("P0")
            if other not in close and other not in secondary:
                general[other] = min(general.get(other, max(e.start, w_start)), max(e.start, w_start))
    result = {p: (ContactClass.CLOSE, t) for p, t in close.items()}
    result |= {p: (ContactClass.SECONDARY, t) for p, t in secondary.items()}
    result |= {p: (ContactClass.GENERAL, t) for p, t in general.items()}
    return result


def reference_descendants(persons, events, now, hops):
    """Enumerate every path of at most ``hops`` events and keep the time-respecting ones."""
    by_id = {p.id: p for p in persons}
    start = by_id["P0"].onset_at - POLICY.look_back
    close_events = [e for e in events if e.closeness == "close"]
    reached: dict[str, object] = {}

    def until(pid):
        p = by_id[pid]
        return now if p.isolated_at is None else min(p.isolated_at, now)

    def walk(node, arrival, depth, visited):
        if depth == hops:
            return
        for e in close_events:
            if node not in (e.a, e.b) or e.end < arrival or e.start >= until(node):
                continue
            nxt = e.other(node)
            if nxt in visited:
                continue
            t = max(e.start, arrival)
            if nxt not in reached or t < reached[nxt]:
                reached[nxt] = t
            walk(nxt, t, depth + 1, visited | {nxt})

    walk("P0", start, 0, {"P0"})
    return reached


@pytest.mark.parametrize("seed", range(40))
def test_trace_matches_reference(sqlite_store, seed):
    persons, events = random_graph(seed)
    sqlite_store.apply(GraphBatch(persons=persons, events=events))
    now = at(15)
    got = {c.person_id: (c.contact_class, c.exposed_at) for c in trace_case(sqlite_store, "P0", now=now).contacts}
    assert got == reference_classes(persons, events, now)


@pytest.mark.parametrize("seed", range(25))
def test_downstream_chain_matches_path_enumeration(sqlite_store, seed):
    persons, events = random_graph(seed, n_persons=9, n_events=22)
    sqlite_store.apply(GraphBatch(persons=persons, events=events))
    now = at(15)
    for hops in (1, 2, 3):
        result = chain(sqlite_store, "P0", direction=ChainDirection.DOWN, hops=hops, now=now)
        got = {m.person_id: m.reached_at for m in result.members if m.hops > 0}
        assert got == reference_descendants(persons, events, now, hops)
