"""Time-only crossings: a clock reaching its at-risk or due time in an investigation whose facts did not change
moves from its stored state alone, with exactly the write a full evaluation would plan."""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta

import pytest

from graph_models import ContactEvent, Person
from graph_models.deadlines import MilestoneState
from tracing.deadlines import record_arrival, sweep_deadlines
from tracing.deadlines import service as deadline_service
from tracing.deadlines.engine import evaluate_facts, plan_write

from .story import INV, CASE, t
from .test_storage import _plans


def _comparable(write):
    return (
        [dataclasses.astuple(u) for u in write.updates],
        [a.model_dump() for a in write.alerts],
        write.new_milestones, write.new_tracked, (write.store_facts_change, write.facts_change_at),
    )


@pytest.fixture
def checked_crossings(monkeypatch):
    """Every time-only plan is checked against the full evaluation of the same investigation at the same time."""
    original = deadline_service.plan_crossings
    calls = []

    def checked(inv, clocks, *, now, known_persons=None, facts_change_at=None):
        write = original(inv, clocks, now=now, known_persons=known_persons, facts_change_at=facts_change_at)
        store, repo, policy = checked.context
        facts, errors = deadline_service.load_facts(store, repo, [inv.id], policy=policy)
        assert not errors and facts[inv.id].dirty is None
        full = plan_write(facts[inv.id], evaluate_facts(facts[inv.id], policy=policy, now=now))
        # The full evaluation also looks at the clocks that did not cross: they must not change either.
        assert _comparable(write) == _comparable(full), (inv.id, now)
        calls.append((inv.id, now, len(write.alerts)))
        return write

    monkeypatch.setattr("tracing.deadlines.service.plan_crossings", checked)
    checked.calls = calls
    return checked


def _random_world(story, rng: random.Random, n_cases: int) -> list[tuple]:
    """Cases reported 09:00–12:00 with random contacts (some incomplete) and a timeline of later facts."""
    later = []
    for k in range(n_cases):
        reported = t(9) + timedelta(minutes=rng.randrange(0, 180, 5))
        case = CASE.model_copy(update={
            "id": f"K{k}", "reported_at": reported, "household_id": rng.choice([None, f"H{k}"]),
            "attributes": rng.choice([{}, {"workplace": "w"}]),
        })
        contacts, events = [], []
        for j in range(rng.randrange(0, 4)):
            pid = f"K{k}c{j}"
            contacts.append(Person(id=pid, name=rng.choice([None, "n"]), phone=rng.choice([None, "1"]),
                                   address=rng.choice([None, "a"])))
            closeness = rng.choice(["close", "close", "general"])
            events.append(ContactEvent(id=f"e{k}-{j}", a=case.id, b=pid, start=t(10, day=19), end=t(11, day=19),
                                       kind="meal", closeness=closeness))
        story.write(reported, persons=[case, *contacts], events=events)
        inv = f"inv:{case.id}"
        for person in contacts:  # completed later (dirty), maybe
            if rng.random() < 0.5:
                later.append((reported + timedelta(minutes=rng.randrange(30, 600, 5)), "complete", person.id, inv))
            if rng.random() < 0.4:
                later.append((reported + timedelta(minutes=rng.randrange(60, 700, 5)), "isolate", person.id, inv))
        if rng.random() < 0.6:  # some arrivals are recorded ahead of time (future-dated facts)
            recorded = reported + timedelta(minutes=rng.randrange(10, 200, 5))
            arrived = recorded + timedelta(minutes=rng.choice([0, 0, 20, 200]))
            later.append((recorded, "arrive", arrived, inv))
    return sorted(later, key=lambda x: (x[0], x[1], str(x[2])))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_time_only_crossings_equal_full_evaluation(make_story, checked_crossings, seed):
    story = make_story()
    checked_crossings.context = (story.store, story.repo, story.policy)
    rng = random.Random(seed)
    later = _random_world(story, rng, 6)
    now, end = t(9), t(14, day=21)
    while now <= end:
        for when, what, subject, inv in [x for x in later if x[0] <= now]:
            later.remove((when, what, subject, inv))
            if what == "complete":
                story.update_person(when, subject, name="n", phone="2", address="b")
            elif what == "isolate":
                story.repo.record_isolation_arrival(subject, "H1", when, now=when)
            else:
                record_arrival(story.repo, inv, investigator="i", arrived_at=subject, now=when)
        story.clock.now = now
        story.sweep()
        now += timedelta(minutes=rng.choice([5, 15, 45]))
    assert checked_crossings.calls and sum(n for _, _, n in checked_crossings.calls) > 0
    # Everything was decided by the end, and a repeated sweep finds nothing to do.
    states = {m.state for ms in story.repo.milestones_of(story.repo.get_investigations(
        [f"inv:K{k}" for k in range(6)])).values() for m in ms}
    assert not states & {MilestoneState.PENDING, MilestoneState.AT_RISK}
    again = sweep_deadlines(story.store, story.repo, policy=story.policy, now=end)
    assert (again.evaluated, again.alerts) == (0, [])


def test_story_crossings_are_time_only(make_story, checked_crossings):
    story = make_story()
    checked_crossings.context = (story.store, story.repo, story.policy)
    story.run(t(10, 30))
    # 10:30: INV's 2 h clock reaches its at-risk time; nothing changed since 09:45: no facts are loaded.
    assert checked_crossings.calls[-1][:2] == (INV, t(10, 30))


def test_future_dated_fact_is_evaluated_when_it_takes_effect(make_story):
    story = make_story()
    story.write(t(9), persons=[CASE])
    story.clock.now = t(9)
    story.sweep()
    # Recorded at 09:05 that the investigator will be (was planned to be) on scene at 09:40.
    record_arrival(story.repo, INV, investigator="inv-7", arrived_at=t(9, 40), now=t(9, 5))
    story.clock.now = t(9, 10)
    assert story.sweep().alerts == []  # not yet on scene
    [on_scene] = [c for c in story.repo.clocks_of([INV])[INV] if c.id.endswith(":on_scene")]
    assert on_scene.state is MilestoneState.PENDING and on_scene.next_check_at == int(t(9, 40).timestamp() * 1e6)
    story.clock.now = t(9, 45)  # the queue brings it back when the fact takes effect, before its at-risk time
    [alert] = story.sweep().alerts
    assert (alert.milestone_id, alert.state, alert.at) == (f"{INV}:on_scene", MilestoneState.MET, t(9, 40))


def test_due_clocks_are_read_through_the_index(make_story):
    story = make_story()
    story.run(t(9, 15))
    assert [c.investigation_id for c in story.repo.due_clocks(t(10, 30), limit=10)] == [INV]
    if type(story.store).__name__ == "SQLiteStore":
        from tracing.deadlines import sqlite as adapter

        [plan] = _plans(story.store, [(adapter._DUE_CLOCKS, (0, 10))])
        assert "dl_milestones_next" in plan and "SCAN dl_milestones" not in plan.replace("USING INDEX", ""), plan
    else:
        from tracing.deadlines import neo4j as adapter

        [plan] = _plans(story.store, [(adapter._DUE_CLOCKS, {"now": 0, "limit": 10})])
        assert "NodeByLabelScan" not in plan and "AllNodesScan" not in plan, plan
        assert "dl_milestone_next_check" in plan or "NodeIndexSeekByRange" in plan, plan
