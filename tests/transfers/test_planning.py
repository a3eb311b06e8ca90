"""The pure planner: capacity, households, priority, reserve sites, shortages, vehicles."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from graph_models.transfers import IsolationCategory as Cat
from graph_models.transfers import (
    IsolationPolicy,
    IsolationSite,
    PlanningOptions,
    Vehicle,
)
from tracing.transfers.planning import Candidate, haversine_km, plan_households

NOW = datetime(2022, 4, 20, 12, 0, tzinfo=UTC)
POLICY = IsolationPolicy()


def cand(pid, lat=39.90, lon=116.40, cat=Cat.CLOSE, hours_ago=10, household=None, region="110105"):
    return Candidate(person_id=pid, household=household or f"person:{pid}", category=cat,
                     exposed_at=NOW - timedelta(hours=hours_ago), lat=lat, lon=lon, region=region)


def site(sid, lat=39.90, lon=116.40, rooms=10, beds=1, status="active", **kw):
    return IsolationSite(id=sid, name=f"Site {sid}", lat=lat, lon=lon, rooms=rooms, beds_per_room=beds,
                         status=status, region=kw.pop("region", "110105"), **kw)


def van(vid, seats=7, lat=39.90, lon=116.40):
    return Vehicle(id=vid, seats=seats, base_lat=lat, base_lon=lon)


def plan(cands, sites, vehicles=(), **kw):
    return plan_households(cands, sites, list(vehicles), policy=kw.pop("policy", POLICY), now=NOW, **kw)


def random_instance(seed: int):
    rng = random.Random(seed)
    cands, h = [], 0
    while len(cands) < 400:
        h += 1
        lat, lon = 39.8 + rng.random() * 0.3, 116.2 + rng.random() * 0.4
        for _ in range(rng.choice([1, 1, 2, 3, 4, 6])):
            cands.append(cand(f"p{len(cands)}", lat, lon, rng.choice(list(Cat)), rng.randrange(1, 90), f"h{h}",
                              region=rng.choice(["110105", "110108"])))
    sites = [site(f"s{i}", 39.8 + rng.random() * 0.3, 116.2 + rng.random() * 0.4, rooms=rng.randint(0, 25),
                  beds=rng.choice([1, 2, 3]), status=rng.choice(["active", "active", "reserve", "closed"]),
                  accepts=frozenset(rng.sample(list(Cat), rng.randint(1, 4))))
             for i in range(25)]
    vehicles = [van(f"v{i}", rng.choice([4, 7, 12]), 39.8 + rng.random() * 0.3, 116.2 + rng.random() * 0.4)
                for i in range(6)]
    occupied = {"s0": {1, 2, 3}, "s1": {5}}
    return cands, sites, vehicles, occupied


@pytest.mark.parametrize("seed", range(8))
def test_random_plans_respect_every_constraint(seed):
    cands, sites, vehicles, occupied = random_instance(seed)
    result = plan(cands, sites, vehicles, occupied=occupied)
    by_id = {s.id: s for s in sites}
    cat_of = {c.person_id: c.category for c in cands}
    household_of = {c.person_id: c.household for c in cands}
    # Everybody is either placed or reported short, exactly once.
    placed = [a.person_id for a in result.assignments]
    short = [pid for s in result.shortages for pid in s.person_ids]
    assert sorted(placed + short) == sorted(c.person_id for c in cands)
    assert sum(s.persons for s in result.shortages) == len(short)
    rooms: dict[str, set[int]] = defaultdict(set)
    beds: Counter = Counter()
    room_households: dict[tuple, set[str]] = defaultdict(set)
    sites_of: dict[str, set[str]] = defaultdict(set)
    for a in result.assignments:
        s = by_id[a.site_id]
        assert s.status.value != "closed"
        assert cat_of[a.person_id] in s.accepts
        assert a.room not in occupied.get(a.site_id, ())
        rooms[a.site_id].add(a.room)
        beds[(a.site_id, a.room)] += 1
        room_households[(a.site_id, a.room)].add(household_of[a.person_id])
        sites_of[household_of[a.person_id]].add(a.site_id)
    for sid, used in rooms.items():  # capacity never exceeded
        assert max(used) <= by_id[sid].rooms
        assert len(used) + len(occupied.get(sid, ())) <= by_id[sid].rooms
    assert all(n <= by_id[s].beds_per_room for (s, _), n in beds.items())
    assert all(len(h) == 1 for h in room_households.values()), "one household per room"
    assert all(len(s) == 1 for s in sites_of.values()), "households never split across sites"
    # A household in several rooms is reported, and only if it is larger than its site's rooms.
    multi = {h for h in sites_of if len({a.room for a in result.assignments if household_of[a.person_id] == h}) > 1}
    assert multi == {s.household for s in result.split_households if s.reason == "rooms"}
    # Vehicles: seats never exceeded per trip; pickups before arrival; a household's trips reported if > 1.
    seats = {v.id: v.seats for v in vehicles}
    trips: Counter = Counter((a.vehicle_id, a.batch) for a in result.assignments if a.vehicle_id)
    assert all(n <= seats[v] for (v, _), n in trips.items())
    for a in result.assignments:
        assert a.vehicle_id is not None
        assert NOW <= a.planned_pickup_at < a.planned_arrival_at
    household_trips = defaultdict(set)
    for a in result.assignments:
        household_trips[a.household].add((a.vehicle_id, a.batch))
    assert {h for h, t in household_trips.items() if len(t) > 1} == {
        s.household for s in result.split_households if s.reason == "seats"}


def test_plan_is_deterministic():
    cands, sites, vehicles, occupied = random_instance(3)
    first = plan(cands, sites, vehicles, occupied=occupied)
    again = plan(list(reversed(cands)), list(reversed(sites)), list(reversed(vehicles)), occupied=occupied)
    assert first.id == again.id
    assert [(a.person_id, a.site_id, a.room, a.vehicle_id, a.batch) for a in first.assignments] == [
        (a.person_id, a.site_id, a.room, a.vehicle_id, a.batch) for a in again.assignments]


def test_nearest_site_with_free_capacity_by_great_circle_distance():
    near, far = site("near", 39.91, 116.40, rooms=1), site("far", 39.99, 116.40, rooms=5)
    result = plan([cand("a", hours_ago=30), cand("b", hours_ago=20), cand("c", hours_ago=10)], [far, near])
    got = {a.person_id: a.site_id for a in result.assignments}
    assert got == {"a": "near", "b": "far", "c": "far"}  # the earliest exposed gets the nearest room
    a = next(x for x in result.assignments if x.person_id == "a")
    assert a.distance_km == pytest.approx(haversine_km(39.90, 116.40, 39.91, 116.40), abs=1e-3)


def test_close_contacts_first_then_earliest_exposure():
    cands = [
        cand("sec-early", cat=Cat.SECONDARY, hours_ago=90),
        cand("arr", cat=Cat.OVERSEAS, hours_ago=95),
        cand("close-late", cat=Cat.CLOSE, hours_ago=5),
        cand("close-early", cat=Cat.CLOSE, hours_ago=40),
        cand("close-mid", cat=Cat.CLOSE, hours_ago=20),
    ]
    result = plan(cands, [site("s", rooms=3)], [van("v", seats=1)])
    assert [a.person_id for a in result.assignments] == ["close-early", "close-mid", "close-late"]
    assert result.shortages[0].person_ids == ["sec-early", "arr"]
    # One seat: trips follow priority too.
    pickups = sorted(result.assignments, key=lambda a: a.planned_pickup_at)
    assert [a.person_id for a in pickups] == ["close-early", "close-mid", "close-late"]
    assert [a.batch for a in pickups] == [1, 2, 3]


def test_reserve_sites_only_after_every_active_site_is_full():
    sites = [
        site("reserve-next-door", 39.9001, 116.4001, rooms=10, status="reserve"),
        site("active-far", 40.20, 116.40, rooms=2),
        site("active-near", 39.95, 116.40, rooms=1),
        site("closed-here", 39.90, 116.40, rooms=50, status="closed"),
    ]
    result = plan([cand(f"p{i}", hours_ago=50 - i) for i in range(5)], sites)
    got = [a.site_id for a in sorted(result.assignments, key=lambda a: a.person_id)]
    assert got == ["active-near", "active-far", "active-far", "reserve-next-door", "reserve-next-door"]


def test_shortage_is_reported_by_region_not_dropped():
    cands = [cand("a", region="110105"), cand("b", region="110105", household="H"),
             cand("c", region="110105", household="H", cat=Cat.SECONDARY), cand("d", region="110108", cat=Cat.RISK_AREA),
             cand("e", region="110108")]
    result = plan(cands, [site("s", rooms=1, accepts=frozenset({Cat.CLOSE}))])
    assert [a.person_id for a in result.assignments] == ["a"]
    short = {s.region: s for s in result.shortages}
    assert set(short) == {"110105", "110108"}
    assert (short["110105"].persons, short["110105"].households) == (2, 1)
    assert short["110105"].by_category == {Cat.CLOSE: 1, Cat.SECONDARY: 1}
    assert short["110108"].by_category == {Cat.CLOSE: 1, Cat.RISK_AREA: 1}
    assert result.unplaced == 4


def test_households_stay_together_and_oversize_households_are_reported():
    family = [cand(f"f{i}", household="FAM", hours_ago=10 + i) for i in range(3)]
    big = [cand(f"b{i}", household="BIG", lat=39.95, hours_ago=5) for i in range(5)]
    sites = [site("single", 39.90, 116.40, rooms=5, beds=1), site("family", 39.92, 116.40, rooms=3, beds=3)]
    result = plan(family + big, sites, [van("v7", seats=7), van("v3", seats=3)])
    fam = [a for a in result.assignments if a.household == "FAM"]
    assert {(a.site_id, a.room) for a in fam} == {("family", 1)}  # one room, nearest site that fits them
    assert len({(a.vehicle_id, a.batch) for a in fam}) == 1  # same vehicle, same trip
    bigs = [a for a in result.assignments if a.household == "BIG"]
    assert {a.site_id for a in bigs} == {"family"} and {a.room for a in bigs} == {2, 3}  # 5 people, 3-bed rooms
    assert [(s.household, s.reason, s.rooms) for s in result.split_households] == [("BIG", "rooms", 2)]


def test_household_larger_than_every_vehicle_is_split_over_trips_and_reported():
    fam = [cand(f"f{i}", household="FAM") for i in range(5)]
    result = plan(fam, [site("s", rooms=5, beds=5)], [van("v", seats=2)])
    assert len({(a.vehicle_id, a.batch) for a in result.assignments}) == 3
    assert [(s.household, s.reason, s.trips) for s in result.split_households] == [("FAM", "seats", 3)]


def test_pickup_order_is_nearest_neighbour_and_times_follow_the_speed_model():
    options = PlanningOptions(average_speed_kmh=60, road_factor=1.0, boarding_minutes=10, unloading_minutes=0)
    policy = IsolationPolicy(planning=options)
    cands = [cand("far", 39.90, 116.50, hours_ago=50), cand("near", 39.90, 116.42, hours_ago=10)]
    result = plan(cands, [site("s", 39.90, 116.60, rooms=5)], [van("v", seats=7, lat=39.90, lon=116.40)],
                  policy=policy)
    by = {a.person_id: a for a in result.assignments}
    assert (by["near"].pickup_order, by["far"].pickup_order) == (1, 2)
    leg1 = haversine_km(39.90, 116.40, 39.90, 116.42)
    leg2 = haversine_km(39.90, 116.42, 39.90, 116.50)
    leg3 = haversine_km(39.90, 116.50, 39.90, 116.60)
    assert by["near"].planned_pickup_at == pytest.approx(NOW + timedelta(hours=leg1 / 60), abs=timedelta(seconds=1))
    assert by["far"].planned_pickup_at == pytest.approx(
        NOW + timedelta(hours=(leg1 + leg2) / 60, minutes=10), abs=timedelta(seconds=1))
    assert by["far"].planned_arrival_at == pytest.approx(
        NOW + timedelta(hours=(leg1 + leg2 + leg3) / 60, minutes=20), abs=timedelta(seconds=1))


def test_without_vehicles_everyone_is_placed_and_listed_without_vehicle():
    result = plan([cand("a"), cand("b")], [site("s", rooms=5)], [])
    assert len(result.assignments) == 2 and result.without_vehicle == ["a", "b"]


def test_persons_without_coordinates_are_placed_by_region_and_listed():
    cands = [cand("located", 39.90, 116.40, region="110105"), Candidate(
        person_id="nowhere", household="person:nowhere", category=Cat.CLOSE, exposed_at=NOW, region="110105")]
    result = plan(cands, [site("s", rooms=5)], [van("v")])
    assert result.unlocated == ["nowhere"] and len(result.assignments) == 2
