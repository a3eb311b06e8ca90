"""The acceptance story (see story.py): every milestone state, alert and reason, both 8 h policies."""

from __future__ import annotations

from graph_models.deadlines import MilestoneKind, MilestoneState, TransferPolicy
from tracing.deadlines import evaluate

from .story import INV, t

END = t(10, 30, day=21)

# (milestone id suffix, state, effective time, detected by the sweep at) — worked out by hand from the story.
EXPECTED_ALL_ISOLATED = [
    ("on_scene", "at_risk", t(10, 30), t(10, 30)),
    ("on_scene", "met", t(10, 30), t(10, 45)),
    ("core_info", "at_risk", t(12, 30), t(12, 30)),
    ("core_info", "met", t(12, 50), t(13)),
    ("core_info", "missed", t(14), t(14, 15)),  # C3 found at 14:00 without a name re-opens it, after due
    ("core_info", "met_late", t(14, 40), t(14, 45)),
    ("transfer", "at_risk", t(16, 30), t(16, 30)),
    ("transfer:C1", "met", t(16, 30), t(16, 45)),
    ("transfer:C2", "met", t(16, 30), t(16, 45)),
    ("transfer:C3", "met", t(16, 30), t(16, 45)),
    ("transfer", "missed", t(17), t(17)),  # S1, S2 (secondary) still not transferred
    ("transfer", "met_late", t(18), t(18, 15)),
    ("transfer:S1", "met", t(18), t(18, 15)),
    ("transfer:S2", "met", t(18), t(18, 15)),
    ("full_info", "at_risk", t(8, 30, day=21), t(8, 30, day=21)),
    ("full_info", "missed", t(9, day=21), t(9, day=21)),
    ("full_info", "met_late", t(9, 30, day=21), t(9, 45, day=21)),
]

EXPECTED_CLOSE_FIRST_TRANSFER = [
    ("transfer", "at_risk", t(16, 30), t(16, 30)),
    ("transfer", "met", t(16, 30), t(16, 45)),  # close contacts C1–C3 arrived 16:30, before 17:00
    ("transfer:C1", "met", t(16, 30), t(16, 45)),
    ("transfer:C2", "met", t(16, 30), t(16, 45)),
    ("transfer:C3", "met", t(16, 30), t(16, 45)),
]


def _alerts(story):
    return [
        (a.milestone_id.removeprefix(f"{INV}:"), a.state.value, a.at, a.detected_at)
        for a in sorted(story.repo.alerts(), key=lambda a: (a.detected_at, a.milestone_id.count(":"), a.milestone_id))
    ]


def _ms(story, suffix: str):
    found = {m.id: m for m in story.repo.milestones_of([INV])[INV]}
    return found[f"{INV}:{suffix}"]


def _gaps(milestone) -> dict:
    return {g.person_id: g.missing for g in milestone.reason.gaps}


def test_story_all_isolated_alerts(make_story):
    story = make_story()
    story.run(END)
    assert _alerts(story) == EXPECTED_ALL_ISOLATED
    final = {m.id.removeprefix(f"{INV}:"): m.state for m in story.repo.milestones_of([INV])[INV]}
    assert final == {
        "on_scene": MilestoneState.MET, "core_info": MilestoneState.MET_LATE, "full_info": MilestoneState.MET_LATE,
        "transfer": MilestoneState.MET_LATE, "transfer:C1": MilestoneState.MET, "transfer:C2": MilestoneState.MET,
        "transfer:C3": MilestoneState.MET, "transfer:S1": MilestoneState.MET, "transfer:S2": MilestoneState.MET,
    }
    # One alert per state change; severities follow the state.
    alerts = story.repo.alerts()
    assert len({a.key for a in alerts}) == len(alerts)
    assert {a.state.value: a.severity.value for a in alerts} == {
        "at_risk": "warning", "missed": "critical", "met": "info", "met_late": "info"
    }


def test_story_reasons_along_the_way(make_story):
    story = make_story()
    story.run(t(9, 15))
    full = _ms(story, "full_info")
    assert _gaps(full) == {"P0": ["workplace", "trajectory:2022-04-19", "trajectory:2022-04-20", "family:household_id"]}
    assert _gaps(_ms(story, "on_scene")) == {None: ["investigator_arrival"]}
    assert _ms(story, "core_info").reason.summary == "no close/secondary contacts derived yet"
    assert [m.state for m in story.repo.milestones_of([INV])[INV]] == [MilestoneState.PENDING] * 4
    assert {m.kind: m.due_at for m in story.repo.milestones_of([INV])[INV]} == {
        MilestoneKind.ON_SCENE: t(11), MilestoneKind.CORE_INFO: t(13), MilestoneKind.FULL_INFO: t(9, day=21),
        MilestoneKind.TRANSFER: t(17),
    }

    story.run(t(11, 15), start=t(9, 30))
    assert _gaps(_ms(story, "core_info")) == {"C2": ["id_number|phone"], "S1": ["address|location"]}
    assert _ms(story, "core_info").state is MilestoneState.PENDING
    assert _gaps(_ms(story, "transfer")) == {p: ["isolation_arrival"] for p in ("C1", "C2", "S1")}
    assert _gaps(_ms(story, "full_info")) == {"P0": ["workplace", "trajectory:2022-04-20"]}
    # Late-discovered persons: own clocks from discovery (11:00) + 8 h, for everyone centrally isolated.
    for pid in ("C1", "C2", "S1"):
        personal = _ms(story, f"transfer:{pid}")
        assert (personal.started_at, personal.due_at, personal.state) == (t(11), t(19), MilestoneState.PENDING)

    story.run(t(12, 30), start=t(11, 30))
    core = _ms(story, "core_info")
    assert core.state is MilestoneState.AT_RISK and _gaps(core) == {"S1": ["address|location"]}
    at_risk_alert = story.repo.alerts(states=[MilestoneState.AT_RISK])[-1]
    assert at_risk_alert.milestone_id == f"{INV}:core_info" and "1 of 3" in at_risk_alert.summary

    story.run(t(14, 15), start=t(12, 45))
    core = _ms(story, "core_info")
    assert core.state is MilestoneState.MISSED and _gaps(core) == {"C3": ["name"]}
    assert core.epoch == 1  # re-opened after being met
    for pid in ("C3", "S2"):
        personal = _ms(story, f"transfer:{pid}")
        assert (personal.started_at, personal.due_at) == (t(14), t(22))
    assert not any(m.person_id == "G1" for m in story.repo.milestones_of([INV])[INV])  # general: no transfer
    assert _gaps(_ms(story, "full_info")) == {"P0": ["workplace", "trajectory:2022-04-20"], "G1": ["id_number|phone"]}

    story.run(t(17), start=t(14, 30))
    transfer = _ms(story, "transfer")
    assert transfer.state is MilestoneState.MISSED
    assert _gaps(transfer) == {"S1": ["isolation_arrival"], "S2": ["isolation_arrival"]}
    assert transfer.at_due is not None and {g.person_id for g in transfer.at_due.reason.gaps} == {"S1", "S2"}

    story.run(t(8, 30, day=21), start=t(17, 15))
    full = _ms(story, "full_info")
    assert full.state is MilestoneState.AT_RISK and _gaps(full) == {"G1": ["id_number|phone"]}


def test_evaluate_is_pure_and_uses_the_injected_clock(make_story):
    story = make_story()
    story.run(t(12, 45))  # S1's address comes at 12:50
    before = (story.repo.alerts(), story.repo.milestones_of([INV]))
    result = evaluate(story.store, story.repo, INV, policy=story.policy, now=t(13, 5))
    core = result.of(MilestoneKind.CORE_INFO)
    assert core.state is MilestoneState.MISSED and _gaps(core) == {"S1": ["address|location"]}
    assert result.of(MilestoneKind.ON_SCENE).state is MilestoneState.MET
    assert result.of(MilestoneKind.TRANSFER).state is MilestoneState.PENDING
    assert (story.repo.alerts(), story.repo.milestones_of([INV])) == before  # nothing written


def test_story_close_first(make_story):
    story = make_story(transfer_policy=TransferPolicy.CLOSE_FIRST)
    story.run(END)
    transfer_alerts = [a for a in _alerts(story) if a[0].startswith("transfer")]
    assert transfer_alerts == EXPECTED_CLOSE_FIRST_TRANSFER
    # Secondary contacts get no 8 h clock under close_first; the other clocks are as under all_isolated.
    assert {m.person_id for m in story.repo.milestones_of([INV])[INV] if m.person_id} == {"C1", "C2", "C3"}
    assert [a for a in _alerts(story) if not a[0].startswith("transfer")] == [
        a for a in EXPECTED_ALL_ISOLATED if not a[0].startswith("transfer")
    ]


def test_late_contact_downgraded_cancels_its_personal_clock(make_story):
    story = make_story()
    story.run(t(14, 15))
    assert _ms(story, "transfer:S2").state is MilestoneState.PENDING
    story.store.delete_events(["e5"])  # C3–S2 meeting retracted: S2 is no longer a secondary contact
    from tracing.deadlines import mark_dirty_for_persons
    from tracing.service import rederive_affected

    affected = rederive_affected(story.store, ["C3", "S2"], now=t(14, 20))
    mark_dirty_for_persons(story.repo, ["C3", "S2"], case_ids=affected, now=t(14, 20))
    story.clock.now = t(14, 30)
    story.sweep()
    personal = _ms(story, "transfer:S2")
    assert personal.state is MilestoneState.CANCELLED
    assert [a.state for a in story.repo.alerts(investigation_id=INV) if a.milestone_id.endswith(":S2")] == [
        MilestoneState.CANCELLED
    ]
    assert "S2" not in _gaps(_ms(story, "transfer"))
