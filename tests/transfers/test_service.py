"""Plan → confirm → pick up → arrive → discharge, and the census, on every backend."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from graph_models.transfers import IsolationCategory as Cat
from graph_models.transfers import (
    IsolationPolicy,
    IsolationSite,
    SiteStatus,
    TransferState,
)
from tracing.transfers import (
    PlanNotFound,
    census,
    confirm_arrival,
    confirm_plan,
    discharge_due,
    plan_transfers,
    record_pickup,
)
from tracing.transfers.service import due_candidates

from .conftest import DUE, NOW, SITES

POLICY = IsolationPolicy()


def _placed(repo):
    return {t.person_id: t for t in repo.active_transfers()}


def test_due_persons_come_from_derived_contacts_and_arrival_flags(store, repo):
    got = {c.person_id: c for c in due_candidates(store, repo, policy=POLICY, now=NOW)}
    assert set(got) == DUE  # not the case, not the general contact, not an unknown flag
    assert got["A1"].category is Cat.OVERSEAS and got["A1"].exposed_at.isoformat() == "2022-04-19T06:00:00+00:00"
    assert got["R1"].category is Cat.RISK_AREA and got["R1"].exposed_at == NOW
    assert got["S1"].category is Cat.SECONDARY and got["C1"].household == got["C2"].household == "H1"
    # The late-2022 rules drop secondary contacts from centralized isolation.
    rules = dict(POLICY.rules)
    rules[Cat.SECONDARY] = rules[Cat.SECONDARY].model_copy(update={"centralized": False})
    late = {c.person_id for c in due_candidates(store, repo, policy=IsolationPolicy(rules=rules), now=NOW)}
    assert late == DUE - {"S1"}


def test_plan_is_a_proposal_and_confirm_is_idempotent(store, repo):
    plan = plan_transfers(store, policy=POLICY, now=NOW)
    assert {a.person_id for a in plan.assignments} == DUE and not plan.shortages
    assert repo.active_transfers() == []  # nothing written by planning
    assert repo.get_plan(plan.id).assignments == plan.assignments  # the proposal is stored as is
    rows = {a.person_id: a for a in plan.assignments}
    assert rows["C1"].site_id == rows["C2"].site_id and rows["C1"].room == rows["C2"].room
    assert (rows["C1"].vehicle_id, rows["C1"].batch) == (rows["C2"].vehicle_id, rows["C2"].batch)
    assert {a.site_id for a in plan.assignments} <= {"H-EAST", "H-WEST"}  # no reserve, no hospital

    first = confirm_plan(repo, plan.id, now=NOW)
    assert sorted(first.inserted) == sorted(f"{plan.id}/{p}" for p in DUE) and not first.refused
    again = confirm_plan(repo, now=NOW + timedelta(minutes=5))  # the latest plan, again
    assert again.inserted == [] and sorted(again.existing) == sorted(first.inserted)
    placed = _placed(repo)
    assert set(placed) == DUE and all(t.state is TransferState.PLANNED for t in placed.values())
    assert placed["C3"].confirmed_at == NOW
    # Everyone is placed: a new plan has nothing to do.
    assert plan_transfers(store, policy=POLICY, now=NOW + timedelta(minutes=10)).assignments == []


def test_confirm_unknown_plan_raises(store, repo):
    with pytest.raises(PlanNotFound):
        confirm_plan(repo, "nope", now=NOW)


def test_a_stale_plan_cannot_double_book(store, repo):
    first = plan_transfers(store, policy=POLICY, now=NOW)
    second = plan_transfers(store, policy=POLICY, now=NOW + timedelta(minutes=1))  # same people, same rooms
    assert confirm_plan(repo, first.id, now=NOW).inserted
    late = confirm_plan(repo, second.id, now=NOW + timedelta(minutes=2))
    assert late.inserted == [] and len(late.refused) == len(DUE)
    assert all("already holds" in reason for reason in late.refused.values())
    assert len(repo.active_transfers()) == len(DUE)


def test_concurrent_confirms_of_competing_plans_book_each_person_once(store, repo):
    # Two command-centre desks confirm competing plans at the same moment: the checks and
    # the insert of one must not interleave with the other's (SQLite BEGIN IMMEDIATE; a
    # lock node on Neo4j).
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    plans = [plan_transfers(store, policy=POLICY, now=NOW + timedelta(minutes=i)) for i in range(4)]
    barrier = Barrier(len(plans))

    def confirm(plan_id: str):
        barrier.wait()
        return confirm_plan(repo, plan_id, now=NOW + timedelta(minutes=10))

    with ThreadPoolExecutor(len(plans)) as pool:
        results = list(pool.map(confirm, [p.id for p in plans]))
    assert sum(len(r.inserted) for r in results) == len(DUE)
    assert sorted(t.person_id for t in repo.active_transfers()) == sorted(DUE)


def test_capacity_is_never_exceeded_across_plans(store, repo):
    repo.upsert_sites([s.model_copy(update={"rooms": 1}) if s.id == "H-EAST" else s for s in SITES])
    plan = plan_transfers(store, policy=POLICY, now=NOW)
    confirm_plan(repo, plan.id, now=NOW)
    rooms = {}
    for t in repo.active_transfers():
        rooms.setdefault(t.site_id, set()).add(t.room)
    sites = {s.id: s for s in repo.sites()}
    assert all(len(r) <= sites[s].rooms for s, r in rooms.items())
    assert len(rooms["H-EAST"]) == 1 and "H-RESERVE" in rooms  # spill-over to the reserve site


def test_shortage_is_reported_when_every_site_is_full(store, repo):
    repo.upsert_sites([s.model_copy(update={"rooms": 1}) for s in SITES])
    plan = plan_transfers(store, policy=POLICY, now=NOW)
    # One room each: C3 (first) takes East's only room, S1 West's, A1 the reserve's; the H1 household
    # (two people, no free room for two anywhere) and R1 are short, reported by region.
    assert {a.person_id: a.site_id for a in plan.assignments} == {"C3": "H-EAST", "S1": "H-WEST", "A1": "H-RESERVE"}
    short = {s.region: s for s in plan.shortages}
    assert (short["110105"].person_ids, short["110105"].households) == (["C1", "C2"], 1)
    assert short["110108"].person_ids == ["R1"] and short["110108"].by_category == {Cat.RISK_AREA: 1}


def test_replan_never_moves_someone_already_picked_up(store, repo):
    plan = plan_transfers(store, policy=POLICY, now=NOW)
    confirm_plan(repo, plan.id, now=NOW)
    record_pickup(repo, ["C1", "C2"], picked_up_at=NOW + timedelta(minutes=20), now=NOW + timedelta(minutes=20))
    before = _placed(repo)
    # East hotel closes: a re-plan moves the others, not the household already in the vehicle.
    repo.upsert_sites([s.model_copy(update={"status": SiteStatus.CLOSED}) if s.id == "H-EAST" else s for s in SITES])
    replan = plan_transfers(store, policy=POLICY, now=NOW + timedelta(minutes=30), replan=True)
    assert {a.person_id for a in replan.assignments} == DUE - {"C1", "C2"}
    assert all(a.site_id != "H-EAST" for a in replan.assignments)
    result = confirm_plan(repo, replan.id, now=NOW + timedelta(minutes=31))
    assert not result.refused
    after = _placed(repo)
    assert set(after) == DUE
    assert after["C1"] == before["C1"] and after["C2"] == before["C2"]
    assert after["C3"].plan_id == replan.id and after["C3"].site_id != "H-EAST"
    old_c3 = [t for t in repo.transfers_of(["C3"])["C3"] if t.plan_id == plan.id]
    assert old_c3[0].state is TransferState.CANCELLED


def test_arrival_and_discharge_free_the_room_and_start_home_monitoring(store, repo):
    plan = plan_transfers(store, policy=POLICY, now=NOW)
    confirm_plan(repo, plan.id, now=NOW)
    arrived_at = NOW + timedelta(hours=2)
    result = confirm_arrival(store, repo, ["C3", "A1", "nobody"], arrived_at=arrived_at, now=arrived_at)
    assert {t.person_id for t in result.arrived} == {"C3", "A1"} and result.unknown == ["nobody"]
    again = confirm_arrival(store, repo, ["C3"], arrived_at=arrived_at, now=arrived_at)
    assert again.arrived == [] and again.already == ["C3"]
    # Close contact C3: 7 days from last exposure (04-18 09:00); overseas A1: from arrival 04-19 06:00.
    assert discharge_due(repo, policy=POLICY, now=NOW + timedelta(days=4)) == []
    gone = discharge_due(repo, policy=POLICY, now=NOW + timedelta(days=5, hours=1))
    assert {t.person_id for t in gone} == {"C3"}
    c3 = repo.transfers_of(["C3"])["C3"][-1]
    assert c3.state is TransferState.DISCHARGED
    assert c3.home_monitoring_until == NOW + timedelta(days=8, hours=1)
    room_before = census(repo, policy=POLICY, now=NOW)
    east = next(s for s in room_before.sites if s.site_id == c3.site_id)
    assert c3.room not in {t.room for t in repo.active_transfers() if t.site_id == c3.site_id}
    assert east.occupied_rooms == len({t.room for t in repo.active_transfers() if t.site_id == c3.site_id})
    # Discharged persons are not due again for the same exposure.
    assert "C3" not in {c.person_id for c in due_candidates(store, repo, policy=POLICY, now=NOW + timedelta(days=6))}


def test_census_adds_up_by_class(store, repo):
    plan = plan_transfers(store, policy=POLICY, now=NOW)
    confirm_plan(repo, plan.id, now=NOW)
    arriving = ["C1", "C2", "C3", "S1", "A1"]
    confirm_arrival(store, repo, arriving, arrived_at=NOW + timedelta(hours=3), now=NOW + timedelta(hours=3))
    record_pickup(repo, ["R1"], picked_up_at=NOW + timedelta(hours=3), now=NOW + timedelta(hours=3))
    report = census(repo, policy=POLICY, now=NOW + timedelta(hours=4), population={"110105": 30_000, "110108": 500})
    iso = report.isolating
    assert iso.total == len(arriving) == sum(iso.by_category.values())
    assert iso.by_category == {Cat.CLOSE: 3, Cat.SECONDARY: 1, Cat.OVERSEAS: 1, Cat.RISK_AREA: 0}
    assert report.in_transit.total == 1 and report.in_transit.by_category[Cat.RISK_AREA] == 1
    assert report.text == "正在集中隔离5人(其中密接3人,次密接1人,境外返市1人,其他中高风险区0人)"
    numbers = [int(n) for n in re.findall(r"(\d+)人", report.text)]
    assert numbers[0] == sum(numbers[1:])
    by_site = {s.site_id: s for s in report.sites}
    assert by_site["H-EAST"].free_rooms == by_site["H-EAST"].rooms - by_site["H-EAST"].occupied_rooms
    assert sum(s.persons for s in report.sites) == len(DUE)
    regions = {r.region: r for r in report.regions}
    # 110105: East 3 + hospital 0 (no region) active, 20 reserve; 30k residents need 60 rooms at 20/10k.
    assert (regions["110105"].rooms_active, regions["110105"].rooms_reserve) == (3, 20)
    assert regions["110105"].required_rooms == 60 and regions["110105"].shortfall == 37
    assert regions["110105"].rooms_per_10k == pytest.approx(23 / 3, abs=0.01)
    assert regions["110108"].required_rooms == 1 and regions["110108"].shortfall == 0


def test_census_against_the_omicron_standard(store, repo):
    from graph_models.transfers import CapacityStandard

    report = census(repo, policy=POLICY, now=NOW, standard=CapacityStandard.omicron(), population={"110108": 10_000})
    assert report.regions[0].required_rooms == 60 and report.regions[0].shortfall == 58


def test_sites_and_vehicles_round_trip(store, repo):
    assert [s.id for s in repo.sites()] == sorted(s.id for s in SITES)
    hosp = next(s for s in repo.sites() if s.id == "HOSP")
    assert hosp.accepts == frozenset()  # designated hospitals take cases, not contacts
    repo.upsert_sites([IsolationSite(id="HOSP", name="改 changed", lat=1, lon=1, rooms=1)])
    assert next(s for s in repo.sites() if s.id == "HOSP").name == "改 changed"
    assert [v.id for v in repo.vehicles()] == ["V1", "V2"]
