"""Sweep mechanics: idempotence, index-driven candidates, failure isolation, clock start and region hours."""

from __future__ import annotations

from datetime import timedelta

from graph_models import Person
from graph_models.deadlines import AssistRequest, ClockStart, MilestoneHours, MilestoneKind, MilestoneState
from tracing.deadlines import open_assist_request, sweep_deadlines
from tracing.deadlines import engine

from .story import INV, CASE, t


def test_repeated_sweep_at_the_same_time_writes_nothing(make_story):
    story = make_story()
    story.run(t(13))
    count = len(story.repo.alerts())
    again = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(13))
    assert (again.evaluated, again.alerts) == (0, [])
    # Even a forced re-evaluation of everything (as after a crash before the dirty mark was cleared) adds nothing.
    story.repo.mark_dirty([INV], t(12, 59))
    forced = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(13))
    assert forced.evaluated == 1 and forced.alerts == []
    assert len(story.repo.alerts()) == count


def test_sweep_only_looks_at_dirty_and_due_investigations(make_story):
    story = make_story()
    story.run(t(9, 15))
    # Fifty quiet investigations whose next clock crossing is hours away.
    for i in range(50):
        story.write(t(9, 20), persons=[CASE.model_copy(update={"id": f"Q{i}", "reported_at": t(9, 20)})])
    first = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(9, 25))
    assert first.evaluated == 50  # the new ones were dirty
    quiet = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(9, 40))
    assert quiet.evaluated == 0
    # 10:30 is the 2 h at-risk time of INV only: one investigation by the due index, nothing else.
    crossing = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(10, 30))
    assert crossing.evaluated == 1 and [a.investigation_id for a in crossing.alerts] == [INV]


def test_one_failing_investigation_does_not_stop_the_sweep(make_story, monkeypatch):
    story = make_story()
    story.write(t(9), persons=[CASE, CASE.model_copy(update={"id": "P9"})])
    original = engine.evaluate_facts

    def flaky(facts, **kw):
        if facts.investigation.case_id == "P0":
            raise RuntimeError("boom")
        return original(facts, **kw)

    monkeypatch.setattr("tracing.deadlines.service.evaluate_facts", flaky)
    result = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(10, 30))
    assert set(result.errors) == {INV} and "boom" in result.errors[INV]
    assert [a.investigation_id for a in result.alerts] == ["inv:P9"]
    monkeypatch.undo()
    # The failed one stayed queued and is picked up next time.
    retry = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(10, 31))
    assert not retry.errors and [a.investigation_id for a in retry.alerts] == [INV]


def test_clock_start_confirmed_at_and_region_hours(make_story):
    story = make_story(
        clock_start=ClockStart.CONFIRMED_AT,
        region_hours={"1101": MilestoneHours(on_scene=3, transfer=None), "11": MilestoneHours(on_scene=1)},
    )
    story.write(t(9), persons=[CASE, CASE.model_copy(update={"id": "P2", "region": "120101"}),
                               CASE.model_copy(update={"id": "P3", "region": "110229"})])
    ms = story.repo.milestones_of(["inv:P0", "inv:P2", "inv:P3"])
    # P0: region 110105 → "1101" (longest prefix) → 3 h on scene, no 8 h clock (×); clocks from confirmed_at 08:00.
    assert {m.kind: m.due_at for m in ms["inv:P0"]} == {
        MilestoneKind.ON_SCENE: t(11), MilestoneKind.CORE_INFO: t(12), MilestoneKind.FULL_INFO: t(8, day=21)
    }
    assert {m.kind: m.due_at for m in ms["inv:P3"]}[MilestoneKind.ON_SCENE] == t(9)  # "11": 1 h
    assert {m.kind: m.due_at for m in ms["inv:P2"]}[MilestoneKind.TRANSFER] == t(16)  # default hours


def test_case_without_clock_field_is_not_auto_opened(make_story):
    story = make_story()
    story.write(t(9), persons=[Person(id="U1", status="confirmed", onset_at=t(8, day=18))])
    assert story.repo.investigation_ids_for_cases(["U1"]) == {}


def test_assist_request_clock(make_story):
    story = make_story()
    story.write(t(9), persons=[Person(id="X1", name="Pushed One", phone="13900000001", address="A"),
                               Person(id="X2", name="Pushed Two")])
    request = AssistRequest(id="AR-7", from_region="310101", region="110105", team="team-b", received_at=t(9),
                            person_ids=["X1", "X2", "X3"])
    inv = open_assist_request(story.repo, request, policy=story.policy, now=t(9, 5))
    assert open_assist_request(story.repo, request, policy=story.policy, now=t(9, 6)) == inv  # idempotent
    [clock] = story.repo.milestones_of(["AR-7"])["AR-7"]
    assert (clock.kind, clock.due_at) == (MilestoneKind.ASSIST, t(9, day=21))

    sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(9, 10))
    [clock] = story.repo.milestones_of(["AR-7"])["AR-7"]
    assert clock.state is MilestoneState.PENDING
    assert {g.person_id: g.missing for g in clock.reason.gaps} == {
        "X2": ["id_number|phone", "address|location"], "X3": ["person_record"]
    }
    # X2 completed by a graph write (marks the request dirty); X3 handed over out of area.
    story.write(t(15), persons=[Person(id="X2", name="Pushed Two", id_number="310101199001010000", address="B")])
    story.repo.resolve_assist_person("AR-7", "X3", outcome="handed_over", at=t(16))
    result = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(16, 5))
    [alert] = [a for a in result.alerts if a.investigation_id == "AR-7"]
    assert (alert.state, alert.at, alert.team) == (MilestoneState.MET, t(16), "team-b")


def test_assist_request_missed(make_story):
    story = make_story()
    request = AssistRequest(id="AR-8", received_at=t(9), person_ids=["Y1"])
    open_assist_request(story.repo, request, policy=story.policy, now=t(9))
    sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(9))
    states = []
    for now in (t(8, 29, day=21), t(8, 30, day=21), t(9, day=21), t(9, 1, day=21)):
        states += [a.state for a in sweep_deadlines(story.store, story.repo, policy=story.policy, now=now).alerts]
    assert states == [MilestoneState.AT_RISK, MilestoneState.MISSED]


def test_at_risk_lead_is_a_setting(make_story):
    story = make_story(at_risk_lead=timedelta(minutes=45))
    story.run(t(10, 15))
    assert [(a.milestone_id, a.state, a.at) for a in story.repo.alerts()] == [
        (f"{INV}:on_scene", MilestoneState.AT_RISK, t(10, 15))
    ]
