"""Dirty marks naming persons, and the sweep's shortcut for them: when only some contacts' recorded
fields changed, re-checking those persons alone plans exactly the write a whole evaluation plans."""

from __future__ import annotations

import random
import sqlite3
from datetime import timedelta

import pytest

from graph_models import ContactEvent, Person
from graph_models.deadlines import MilestoneState
from tracing.deadlines import record_arrival, sweep_deadlines
from tracing.deadlines import service as deadline_service
from tracing.deadlines.engine import evaluate_facts, plan_write
from tracing.store.sqlite import SQLiteStore

from .story import CASE, INV, t
from .test_time_only import _comparable, _random_world


@pytest.fixture
def checked_shortcut(monkeypatch):
    """Every write the shortcut plans is checked against a whole evaluation of the same investigation."""
    original = deadline_service.plan_field_changes
    calls = []

    def checked(store, repo, marks, *, policy, now):
        writes, errors, rest = original(store, repo, marks, policy=policy, now=now)
        assert not errors
        for inv_id, write in writes.items():
            facts, failed = deadline_service.load_facts(store, repo, [inv_id], policy=policy, dirty=marks)
            assert not failed
            full = plan_write(facts[inv_id], evaluate_facts(facts[inv_id], policy=policy, now=now))
            assert _comparable(write) == _comparable(full), (inv_id, now, marks[inv_id])
            assert write.dirty_token == full.dirty_token == marks[inv_id].changed_at
            calls.append((inv_id, now, bool(write.updates)))
        checked.rest.extend(rest)
        return writes, errors, rest

    monkeypatch.setattr("tracing.deadlines.service.plan_field_changes", checked)
    checked.calls, checked.rest = calls, []
    return checked


def _marks(repo):
    return {i: m.persons for i, m in repo.dirty_marks(limit=100).items()}


# --- the marks ------------------------------------------------------------------------------------


def test_marks_name_persons_and_merge(make_story):
    story = make_story()
    story.write(t(9), persons=[CASE])
    story.clock.now = t(9)
    story.sweep()
    repo = story.repo
    assert repo.dirty_marks(limit=10) == {}
    repo.mark_dirty(["a", "b", "c"], t(9, 1), persons={"a": ["p1"], "b": ["p2", "p1"]})
    assert _marks(repo) == {"a": frozenset({"p1"}), "b": frozenset({"p1", "p2"}), "c": None}
    # Named marks merge by union; a full mark wins over a named one, either way round.
    repo.mark_dirty(["a", "b", "c"], t(9, 2), persons={"a": ["p3", "p1"], "c": ["p4"]})
    repo.mark_dirty(["b"], t(9, 3))
    assert _marks(repo) == {"a": frozenset({"p1", "p3"}), "b": None, "c": None}
    marks = repo.dirty_marks(limit=10)
    assert (marks["a"].since, marks["a"].changed_at) == (t(9, 1), t(9, 2))
    assert (marks["b"].since, marks["b"].changed_at) == (t(9, 1), t(9, 3))


def test_watching_says_which_persons(make_story):
    story = make_story()
    story.run(t(11, 15))  # the contacts found at 11:00 are tracked by the 11:15 sweep
    watching = story.repo.investigations_watching(["P0", "C1", "S1", "nobody"])
    assert watching == {INV: {"P0", "C1", "S1"}}


def test_a_contacts_field_change_names_the_contact_and_a_new_contact_marks_all(make_story):
    story = make_story()
    story.run(t(11, 15))
    story.update_person(t(11, 16), "C2", phone="13800000002")
    story.update_person(t(11, 17), "S1", address="3 Chaoyang Rd")
    assert _marks(story.repo) == {INV: frozenset({"C2", "S1"})}
    story.clock.now = t(11, 18)
    story.sweep()
    # A new contact changes who the case's contacts are: the whole investigation is evaluated.
    story.write(t(11, 19), persons=[Person(id="C9", name="n")], events=[
        ContactEvent(id="e9", a="P0", b="C9", start=t(10, day=19), end=t(11, day=19), kind="meal"),
    ])
    assert _marks(story.repo) == {INV: None}
    # So does a change to the case itself (it is named: the sweep evaluates all).
    story.clock.now = t(11, 21)
    story.sweep()
    story.update_person(t(11, 25), "P0", household_id="HH-P0")
    assert _marks(story.repo) == {INV: frozenset({"P0"})}


def test_older_database_gains_the_column_and_its_marks_stay_whole(tmp_path):
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE dl_dirty (investigation_id TEXT PRIMARY KEY NOT NULL, since INTEGER NOT NULL, "
                 "changed_at INTEGER NOT NULL)")
    conn.execute("INSERT INTO dl_dirty VALUES ('inv:X', 1, 2)")
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    try:
        from tracing.deadlines import deadline_repository

        repo = deadline_repository(store)
        [mark] = repo.dirty_marks(limit=10).values()
        assert mark.persons is None
        repo.mark_dirty(["inv:X", "inv:Y"], t(9), persons={"inv:X": ["p"], "inv:Y": ["p"]})
        assert _marks(repo) == {"inv:X": None, "inv:Y": frozenset({"p"})}
    finally:
        store.close()


# --- the shortcut ---------------------------------------------------------------------------------


def test_story_takes_the_shortcut_with_the_same_outcome(make_story, checked_shortcut):
    story = make_story()
    story.run(t(9, 30, day=21) + timedelta(minutes=15))
    # 12:00 C2's phone, 12:50 S1's address, 14:40 C3's name, +1 09:30 G1's phone: contacts' fields only.
    times = {now for _, now, _ in checked_shortcut.calls}
    # (12:50's S1 is swept at 13:00, when the 4 h clock is due: that sweep evaluates the investigation whole.)
    assert {t(12, 15), t(14, 45), t(9, 45, day=21)} <= times, sorted(times)
    assert t(13) not in times
    assert [(i, changed) for i, now, changed in checked_shortcut.calls if now == t(12, 15)] == [(INV, True)]
    by_id = {m.id: m for m in story.repo.milestones_of([INV])[INV]}
    assert by_id[f"{INV}:full_info"].state is MilestoneState.MET_LATE
    assert by_id[f"{INV}:full_info"].met_at == t(9, 30, day=21)  # the write that completed G1


@pytest.mark.parametrize(("seed", "changes"), [
    (4, {}), (5, {}), (6, {}), (7, {}),
    (8, {"transfer_policy": "close_first"}), (9, {"transfer_policy": "close_first", "empty_contacts_meet": True}),
    (10, {"core_fields": (("name",), ("phone",))}),
])
def test_shortcut_equals_whole_evaluation(make_story, checked_shortcut, seed, changes):
    story = make_story(**changes)
    rng = random.Random(seed)
    later = _random_world(story, rng, 8)
    for k in range(8):  # fields that change back and forth, and now and then a new contact
        for _ in range(rng.randrange(0, 4)):
            later.append((t(9) + timedelta(minutes=rng.randrange(30, 900, 5)), "edit", f"K{k}c{rng.randrange(3)}", ""))
        if rng.random() < 0.3:
            later.append((t(12, 5) + timedelta(minutes=rng.randrange(0, 500, 5)), "new", f"K{k}", ""))
        if rng.random() < 0.5:  # met by a contact, not the case: the case is not among the persons written
            later.append((t(12, 5) + timedelta(minutes=rng.randrange(0, 500, 5)), "new", f"K{k}c0", ""))
    later.sort(key=lambda x: (x[0], x[1], str(x[2])))
    now, end = t(9), t(14, day=21)
    known = {p for p in story.store.get_persons([f"K{k}c{j}" for k in range(8) for j in range(3)])}
    while now <= end:
        for item in [x for x in later if x[0] <= now]:
            later.remove(item)
            when, what, subject, inv = item
            if what == "complete":
                story.update_person(when, subject, name="n", phone="2", address="b")
            elif what == "edit" and subject in known:
                story.update_person(when, subject, **rng.choice([{"phone": None}, {"phone": "9"}, {"name": ""},
                                                                {"address": "c"}, {"name": "m", "phone": None}]))
            elif what == "new" and subject.startswith("K") and (subject in known or "c" not in subject):
                pid = f"{subject}n{when:%H%M}"
                story.write(when, persons=[Person(id=pid, phone=rng.choice([None, "1"]))], events=[ContactEvent(
                    id=f"e-{pid}", a=subject, b=pid, start=t(10, day=19), end=t(11, day=19), kind="meal",
                    closeness=rng.choice(["close", "general"]),
                )])
            elif what == "isolate":
                story.repo.record_isolation_arrival(subject, "H1", when, now=when)
            elif what == "arrive":
                record_arrival(story.repo, inv, investigator="i", arrived_at=subject, now=when)
        story.clock.now = now
        story.sweep()
        now += timedelta(minutes=rng.choice([5, 15, 45]))
    assert sum(changed for _, _, changed in checked_shortcut.calls) > 0, "the shortcut never changed a clock"
    again = sweep_deadlines(story.store, story.repo, policy=story.policy, now=end)
    assert (again.evaluated, again.alerts) == (0, [])


def test_a_mark_naming_someone_else_only_clears(make_story, checked_shortcut):
    story = make_story()
    story.run(t(11, 15))
    checked_shortcut.calls.clear()
    before = {m.id: (m.state, m.reason) for m in story.repo.milestones_of([INV])[INV]}
    story.repo.mark_dirty([INV], t(11, 20), persons={INV: ["not-a-contact"]})
    story.clock.now = t(11, 20)
    result = story.sweep()
    assert (result.evaluated, result.alerts, story.repo.dirty_marks(limit=10)) == (1, [], {})
    assert checked_shortcut.calls == [(INV, t(11, 20), False)]
    assert {m.id: (m.state, m.reason) for m in story.repo.milestones_of([INV])[INV]} == before


def test_marks_naming_the_case_or_with_a_due_clock_are_evaluated_whole(make_story, checked_shortcut):
    story = make_story()
    story.run(t(11, 15))
    checked_shortcut.calls.clear(), checked_shortcut.rest.clear()
    story.repo.mark_dirty([INV], t(11, 20), persons={INV: ["P0"]})
    story.clock.now = t(11, 20)
    story.sweep()
    assert checked_shortcut.calls == [] and checked_shortcut.rest == [INV]
    # 12:40: the 4 h clock's at-risk time has come; a named mark then is evaluated whole too.
    story.repo.mark_dirty([INV], t(12, 40), persons={INV: ["C2"]})
    story.clock.now = t(12, 40)
    story.sweep()
    assert checked_shortcut.calls == [] and story.repo.dirty_marks(limit=10) == {}
