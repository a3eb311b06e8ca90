"""Benchmark transfer planning: 50k people, 500 sites, 2,000 vehicles (target ≤ 1 s).

    python scripts/bench/bench_transfers.py                      # defaults, 5 runs
    python scripts/bench/bench_transfers.py --people 100000 --sites 1000 --vehicles 4000 --runs 3
    python scripts/bench/bench_transfers.py --tight              # sites too small: shortages + reserve sites

Synthetic city of ~60 × 60 km around (39.9, 116.4), 16 districts. People
live in households of 1–5 (mean ≈ 2.4) clustered around district centres;
40 % close contacts, 30 % secondary, 10 % overseas, 20 % risk-area
arrivals. Sites: 80 % active, 20 % reserve, 50–400 rooms of 1–3 beds (enough
rooms in total unless ``--tight``). Vehicles: 7–45 seats at 20 depots.
Only :func:`tracing.transfers.planning.plan_households` (the pure planner) is
timed; the checks afterwards (capacity, households, seats) are not.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from graph_models.transfers import (
    IsolationCategory,
    IsolationPolicy,
    IsolationSite,
    Vehicle,
)
from tracing.transfers.planning import Candidate, plan_households

NOW = datetime(2022, 4, 20, 12, 0, tzinfo=UTC)
CATEGORIES = [IsolationCategory.CLOSE] * 4 + [IsolationCategory.SECONDARY] * 3 + [IsolationCategory.OVERSEAS] + [
    IsolationCategory.RISK_AREA
] * 2


def build(people: int, n_sites: int, n_vehicles: int, *, tight: bool, seed: int = 7):
    rng = random.Random(seed)
    districts = [(39.6 + rng.random() * 0.55, 116.05 + rng.random() * 0.7) for _ in range(16)]
    candidates: list[Candidate] = []
    h = 0
    while len(candidates) < people:
        h += 1
        size = min(people - len(candidates), rng.choice([1, 1, 2, 2, 2, 3, 3, 4, 5]))
        d = rng.randrange(16)
        lat, lon = districts[d][0] + rng.gauss(0, 0.04), districts[d][1] + rng.gauss(0, 0.05)
        for k in range(size):
            candidates.append(Candidate(
                person_id=f"p{len(candidates):06d}", household=f"h{h:06d}", category=rng.choice(CATEGORIES),
                exposed_at=NOW - timedelta(hours=rng.randrange(1, 96)), lat=lat, lon=lon, region=f"1101{d:02d}",
            ))
    sites = []
    for i in range(n_sites):
        d = rng.randrange(16)
        sites.append(IsolationSite(
            id=f"s{i:04d}", name=f"Site {i}", lat=districts[d][0] + rng.gauss(0, 0.06),
            lon=districts[d][1] + rng.gauss(0, 0.07), region=f"1101{d:02d}",
            rooms=rng.randint(10, 60) if tight else rng.randint(50, 400), beds_per_room=rng.choice([1, 2, 2, 3]),
            status="reserve" if rng.random() < 0.2 else "active",
        ))
    depots = [(39.6 + rng.random() * 0.55, 116.05 + rng.random() * 0.7) for _ in range(20)]
    vehicles = [
        Vehicle(id=f"v{i:04d}", seats=rng.choice([7, 7, 12, 20, 30, 45]), base_lat=depots[i % 20][0],
                base_lon=depots[i % 20][1], base=f"depot {i % 20}")
        for i in range(n_vehicles)
    ]
    return candidates, sites, vehicles


def check(plan, candidates, sites, vehicles) -> None:
    site = {s.id: s for s in sites}
    seats = {v.id: v.seats for v in vehicles}
    rooms: dict[str, set[int]] = defaultdict(set)
    per_room: Counter = Counter()
    households: dict[str, set[str]] = defaultdict(set)
    trips: Counter = Counter()
    for a in plan.assignments:
        rooms[a.site_id].add(a.room)
        per_room[(a.site_id, a.room)] += 1
        households[a.household].add(a.site_id)
        if a.vehicle_id:
            trips[(a.vehicle_id, a.batch)] += 1
    assert all(len(r) <= site[s].rooms for s, r in rooms.items()), "rooms exceeded"
    assert all(n <= site[s].beds_per_room for (s, _), n in per_room.items()), "beds exceeded"
    assert all(len(s) == 1 for s in households.values()), "household split across sites"
    assert all(n <= seats[v] for (v, _), n in trips.items()), "seats exceeded"
    placed = len(plan.assignments) + plan.unplaced
    assert placed == len(candidates), (placed, len(candidates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--sites", type=int, default=500)
    parser.add_argument("--vehicles", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tight", action="store_true", help="too few rooms: exercises reserve sites and shortages")
    args = parser.parse_args()
    candidates, sites, vehicles = build(args.people, args.sites, args.vehicles, tight=args.tight)
    policy = IsolationPolicy()
    times, cpu = [], []
    plan = None
    for _ in range(args.runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        plan = plan_households(candidates, sites, vehicles, policy=policy, now=NOW)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    assert plan is not None
    check(plan, candidates, sites, vehicles)
    households = len({c.household for c in candidates})
    used_vehicles = len({a.vehicle_id for a in plan.assignments if a.vehicle_id})
    trips = len({(a.vehicle_id, a.batch) for a in plan.assignments if a.vehicle_id})
    last = max((a.planned_arrival_at for a in plan.assignments if a.planned_arrival_at), default=NOW)
    reserve = {s.id for s in sites if s.status.value == "reserve"}
    print(f"people {len(candidates)}, households {households}, sites {len(sites)} ({len(reserve)} reserve), "
          f"vehicles {len(vehicles)}")
    print(f"placed {len(plan.assignments)}, unplaced {plan.unplaced} in {len(plan.shortages)} regions, "
          f"in reserve sites {sum(a.site_id in reserve for a in plan.assignments)}, "
          f"split households {len(plan.split_households)}")
    print(f"vehicles used {used_vehicles}, trips {trips}, last planned arrival {last - NOW}")
    print(f"plan wall time over {args.runs} runs: min {min(times):.3f} s, median {statistics.median(times):.3f} s, "
          f"max {max(times):.3f} s")
    print(f"plan CPU time (process_time; robust to a busy machine): min {min(cpu):.3f} s, "
          f"median {statistics.median(cpu):.3f} s")


if __name__ == "__main__":
    main()
