"""The isolation census (pure): who is where, free rooms, rooms per 10,000 residents.

The census line follows the command centres' format, e.g.
``正在集中隔离339人(其中密接2人,次密接95人,境外返市24人,其他中高风险区218人)``: every
category is listed, so the parts always add up to the total.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from graph_models.transfers import (
    CapacityStandard,
    CensusReport,
    IsolationCategory,
    IsolationCount,
    IsolationPolicy,
    IsolationSite,
    RegionCapacity,
    SiteCapacity,
    SiteStatus,
    Transfer,
    TransferState,
)

__all__ = ["build_census", "census_line"]


def _count(transfers: Sequence[Transfer], order: Sequence[IsolationCategory]) -> IsolationCount:
    counts = Counter(t.category for t in transfers)
    return IsolationCount(total=len(transfers), by_category={c: counts.get(c, 0) for c in order})


def census_line(count: IsolationCount, order: Sequence[IsolationCategory]) -> str:
    """``正在集中隔离N人(其中密接a人,次密接b人,境外返市c人,其他中高风险区d人)``."""
    parts = ",".join(f"{c.label_zh}{count.by_category.get(c, 0)}人" for c in order)
    return f"正在集中隔离{count.total}人(其中{parts})"


def build_census(
    transfers: Sequence[Transfer],
    sites: Sequence[IsolationSite],
    *,
    now: datetime,
    policy: IsolationPolicy,
    standard: CapacityStandard,
    population: Mapping[str, int] | None = None,
) -> CensusReport:
    """Census from every transfer that is active or in home monitoring, and the sites.

    ``population`` maps region code → residents; a site counts for a region
    when its region code starts with it.
    """
    order = list(policy.priority) + [c for c in IsolationCategory if c not in policy.priority]
    by_state: dict[TransferState, list[Transfer]] = defaultdict(list)
    for t in transfers:
        by_state[t.state].append(t)
    home = sum(
        1 for t in by_state[TransferState.DISCHARGED] if t.home_monitoring_until and t.home_monitoring_until > now
    )
    rooms_held: dict[str, set[int]] = defaultdict(set)
    persons_at: Counter = Counter()
    for t in transfers:
        if t.occupies_room:
            rooms_held[t.site_id].add(t.room)
            persons_at[t.site_id] += 1
    capacities = []
    for s in sorted(sites, key=lambda s: s.id):
        occupied = len(rooms_held.get(s.id, ()))
        free = 0 if s.status is SiteStatus.CLOSED else max(0, s.rooms - occupied)
        capacities.append(SiteCapacity(
            site_id=s.id, name=s.name, status=s.status, region=s.region, rooms=s.rooms,
            occupied_rooms=occupied, free_rooms=free, persons=persons_at.get(s.id, 0),
        ))
    regions = []
    for region, people in sorted((population or {}).items()):
        inside = [c for c in capacities if c.region and c.region.startswith(region)]
        active = sum(c.rooms for c in inside if c.status is SiteStatus.ACTIVE)
        reserve = sum(c.rooms for c in inside if c.status is SiteStatus.RESERVE)
        required = standard.required_rooms(people)
        regions.append(RegionCapacity(
            region=region, population=people, rooms_active=active, rooms_reserve=reserve,
            free_rooms=sum(c.free_rooms for c in inside),
            rooms_per_10k=round((active + reserve) / people * 10_000, 2) if people else 0.0,
            required_rooms=required, shortfall=max(0, required - active - reserve),
        ))
    isolating = _count(by_state[TransferState.ARRIVED], order)
    return CensusReport(
        now=now, isolating=isolating, in_transit=_count(by_state[TransferState.PICKED_UP], order),
        planned=_count(by_state[TransferState.PLANNED], order), home_monitoring=home, sites=capacities,
        regions=regions, standard=standard, text=census_line(isolating, order),
    )
