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
            # The whole evaluation keeps the stored digest: the shortcut ran on the contacts it was made from.
            assert write.contacts_digest is None and full.contacts_digest is None
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


# --- where the stored reasons cannot stand in for the facts (found in review) ----------------------


def _contacts(story):
    return [c.person_id for c in story.store.contact_refs_for_cases(["P0"])["P0"]]


def test_a_former_contact_named_when_a_clock_is_due(make_story, checked_shortcut):
    story = make_story()
    story.run(t(11, 15))
    story.update_person(t(11, 20), "C1", isolated_at=t(12, day=19))  # isolated before meeting S1
    assert "S1" not in _contacts(story) and _marks(story.repo) == {INV: None}
    story.clock.now = t(11, 30)
    story.sweep()
    # S1 is still tracked, so its change names it; nobody named is a contact, yet the 4 h clock's
    # at-risk time (12:30) has come: the check that hands it to the whole evaluation must still run.
    story.update_person(t(12, 30), "S1", address="3 Chaoyang Rd")
    assert _marks(story.repo) == {INV: frozenset({"S1"})}
    story.clock.now = t(12, 30)
    [alert] = story.sweep().alerts
    assert (alert.milestone_id, alert.state) == (f"{INV}:core_info", MilestoneState.AT_RISK)


def test_a_sweep_between_a_rederivation_and_its_mark(make_story, checked_shortcut, monkeypatch):
    import tracing.service as tracing_service

    story = make_story()
    story.run(t(12, 15))
    story.update_person(t(12, 20), "S1", address="3 Chaoyang Rd")
    original = tracing_service.after_graph_change

    def sweep_first(*args, **kwargs):  # a concurrent sweep after replace_derived, before the whole mark
        story.clock.now = t(12, 22)
        story.sweep()
        return original(*args, **kwargs)

    monkeypatch.setattr(tracing_service, "after_graph_change", sweep_first)
    story.write(t(12, 22), persons=[Person(id="N", name="New", address="9 Rd")], events=[
        ContactEvent(id="eN", a="P0", b="N", start=t(10, day=19), end=t(11, day=19), kind="household"),
    ])
    assert checked_shortcut.rest[-1] == INV  # the contacts differ from the stored digest's: evaluated whole
    core = {m.kind.value: m for m in story.repo.milestones_of([INV])[INV]}["core_info"]
    assert core.state is not MilestoneState.MET and "N" in {g.person_id for g in core.reason.gaps}


def test_contacts_persisted_by_a_trace_without_a_mark(make_story, checked_shortcut):
    from graph_models import TracingPolicy
    from tracing.service import rederive_affected, trace_case
    from tracing.store.port import GraphBatch

    longer = TracingPolicy(look_back=timedelta(days=4))
    story = make_story()
    story.run(t(12, 15))
    story.write(t(12, 16), persons=[Person(id="N", name="New", address="9 Rd")], events=[
        ContactEvent(id="eN", a="P0", b="N", start=t(10, day=15), end=t(11, day=15), kind="household"),
    ])  # outside the story's 2-day look-back: not a contact yet
    story.clock.now = t(12, 20)
    story.sweep()
    trace_case(story.store, "P0", policy=longer, now=t(12, 25))  # persists N as a contact, marks nothing
    assert "N" in _contacts(story) and _marks(story.repo) == {}
    s1 = story.store.get_persons(["S1"])["S1"].model_copy(update={"address": "3 Chaoyang Rd"})
    story.store.apply(GraphBatch(persons=[s1]))
    rederive_affected(story.store, ["S1"], policy=longer, deadline_policy=story.policy, now=t(12, 26))
    assert _marks(story.repo) == {INV: frozenset({"S1"})}
    story.clock.now = t(12, 27)
    checked_shortcut.rest.clear()
    story.sweep()
    assert checked_shortcut.rest == [INV]
    core = {m.kind.value: m for m in story.repo.milestones_of([INV])[INV]}["core_info"]
    assert "N" in {g.person_id for g in core.reason.gaps}
    assert "N" in story.repo.tracked_brief_of([INV])[INV]  # tracked from now on: its own changes mark INV


def test_a_policy_change_between_sweeps(make_story, checked_shortcut):
    story = make_story()
    story.run(t(11, 15))
    story.update_person(t(11, 20), "C2", phone="13800000002")
    new = story.policy.model_copy(update={"core_fields": (("name",), ("id_number", "phone"))})
    checked_shortcut.rest.clear()
    sweep_deadlines(story.store, story.repo, policy=new, now=t(11, 25))
    assert checked_shortcut.rest == [INV]  # other rules than the stored reasons': evaluated whole
    core = {m.kind.value: m for m in story.repo.milestones_of([INV])[INV]}["core_info"]
    assert core.state is MilestoneState.MET  # S1 lacks only an address, no longer required


def test_a_mark_merged_after_the_sweep_read_it_survives_even_with_an_older_clock(make_story):
    from tracing.deadlines.service import evaluate

    story = make_story()
    story.run(t(11, 15))
    story.update_person(t(11, 20), "C1", name="Close One Again")
    repo = story.repo
    original = repo.dirty_marks

    def read_then_race(*, limit):
        marks = original(limit=limit)
        repo.dirty_marks = original
        story.update_person(t(11, 19), "C2", phone="13800000002")  # a slower request, begun at 11:19
        return marks

    repo.dirty_marks = read_then_race
    story.clock.now = t(11, 25)
    story.sweep()
    assert _marks(repo) == {INV: frozenset({"C1", "C2"})}  # not cleared: C2 was not re-checked yet
    story.clock.now = t(11, 30)
    story.sweep()
    assert repo.dirty_marks(limit=10) == {}
    whole = evaluate(story.store, repo, INV, policy=story.policy, now=t(11, 30))
    stored = {m.id: m for m in repo.milestones_of([INV])[INV]}
    assert whole.by_id(f"{INV}:core_info").reason == stored[f"{INV}:core_info"].reason


def test_one_unreadable_investigation_does_not_stop_the_others(make_story):
    story = make_story()
    story.write(t(9), persons=[Person(id="Q0", name="q", status="confirmed", onset_at=t(8, day=18),
                                      reported_at=t(9), isolated_at=t(9)), Person(id="QC", name="qc")],
                events=[ContactEvent(id="eq", a="Q0", b="QC", start=t(10, day=19), end=t(11, day=19),
                                     kind="household")])
    story.run(t(11, 15))
    story.update_person(t(11, 20), "QC", phone="1")
    story.update_person(t(11, 20), "C2", phone="13800000002")
    assert _marks(story.repo) == {"inv:Q0": frozenset({"QC"}), INV: frozenset({"C2"})}
    if isinstance(story.store, SQLiteStore):
        with story.store.transaction() as conn:
            conn.execute("UPDATE dl_milestones SET state = 'bogus' WHERE id = 'inv:Q0:on_scene'")
    else:
        story.store.execute_write(lambda tx: tx.run(
            "MATCH (m:Milestone {id: 'inv:Q0:on_scene'}) SET m.state = 'bogus'").consume())
    result = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(11, 25))
    assert set(result.errors) == {"inv:Q0"} and _marks(story.repo) == {"inv:Q0": frozenset({"QC"})}


def test_a_place_becoming_a_workplace_marks_the_cases_that_visited_it(make_story, checked_shortcut):
    from graph_models import Place
    from tracing.service import apply_and_rederive
    from tracing.store.port import GraphBatch

    from .story import TRACING

    story = make_story()
    story.run(t(14, 15))  # the case visited "mall" on 04-19 and has no workplace recorded yet
    full = {m.kind.value: m for m in story.repo.milestones_of([INV])[INV]}["full_info"]
    assert "workplace" in next(g.missing for g in full.reason.gaps if g.role == "case")
    apply_and_rederive(story.store, GraphBatch(places=[Place(id="mall", kind="office")]), policy=TRACING,
                       deadline_policy=story.policy, now=t(14, 20))
    assert _marks(story.repo) == {INV: frozenset({"P0"})}  # the case named: evaluated whole
    story.update_person(t(14, 25), "G1", phone="13800000005")
    story.clock.now = t(14, 30)
    checked_shortcut.rest.clear()
    story.sweep()
    assert checked_shortcut.rest == [INV]
    full = {m.kind.value: m for m in story.repo.milestones_of([INV])[INV]}["full_info"]
    assert "workplace" not in next(g.missing for g in full.reason.gaps if g.role == "case")


def test_a_second_sweeper_does_not_put_back_an_older_reason(make_story):
    """Two sweepers (the API's workers each run one): B plans from an older read and applies after A
    stored a newer reason: B's write is refused, not applied over A's (the shortcut trusts stored reasons)."""
    story = make_story()
    story.run(t(11, 15))  # the 4 h clock lacks C2's id/phone and S1's address
    story.update_person(t(11, 20), "S1", address="3 Chaoyang Rd")
    marks = story.repo.dirty_marks(limit=10)
    stale, errors, _ = deadline_service.plan_dirty(story.store, story.repo, sorted(marks), policy=story.policy,
                                                   now=t(11, 21), dirty=marks)  # sweeper B reads and plans
    assert not errors and [u.id for u in stale[INV].updates] == [f"{INV}:core_info"]
    story.update_person(t(11, 22), "C2", name=None)  # C2 now lacks a name too
    story.clock.now = t(11, 23)
    story.sweep()  # sweeper A: S1 complete, C2 lacks name and id/phone
    _, refused = story.repo.apply_evaluations([stale[INV]])  # B, late
    assert INV in refused
    core = {m.kind.value: m for m in story.repo.milestones_of([INV])[INV]}["core_info"]
    assert [(g.person_id, g.missing) for g in core.reason.gaps] == [("C2", ["name", "id_number|phone"])]
