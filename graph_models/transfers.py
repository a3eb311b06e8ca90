"""Isolation sites, vehicles, transfers to centralized isolation (集中隔离) and the isolation policy.

Who is due for centralized isolation
------------------------------------
* close (密接) and secondary (次密接) contacts: from the derived relations of
  cases (the strongest class wins when a person is derived by several cases,
  then the earliest exposure);
* arrivals from mid/high-risk areas (中高风险地区来返人员) and overseas
  arrivals (境外返回人员): :class:`~graph_models.Person` has no field for
  them, so they are flagged in ``Person.attributes``:

  - ``attributes["arrival_category"]``: ``"risk_area"`` (also accepted:
    ``"mid_high_risk_area"``, ``"中高风险区"``) or ``"overseas"`` (also
    ``"境外"``), see :data:`ARRIVAL_CATEGORY_ATTRIBUTE` and
    :func:`arrival_category_of`;
  - ``attributes["arrived_at"]`` (optional): ISO 8601 time of arrival, used
    as the exposure time for priority and for counting isolation days.

Whether a category goes to centralized isolation at all, and for how long,
is :class:`IsolationPolicy` (a setting, not a constant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .common import DomainModel, UtcDatetime, as_utc

__all__ = [
    "ARRIVAL_CATEGORY_ATTRIBUTE",
    "ARRIVED_AT_ATTRIBUTE",
    "CapacityStandard",
    "CategoryRule",
    "CensusReport",
    "IsolationCategory",
    "IsolationCount",
    "IsolationPolicy",
    "IsolationSite",
    "IsolationStart",
    "PlannedTransfer",
    "PlanningOptions",
    "RegionCapacity",
    "Shortage",
    "SiteCapacity",
    "SiteKind",
    "SiteStatus",
    "SplitHousehold",
    "Transfer",
    "TransferPlan",
    "TransferState",
    "Vehicle",
    "arrival_category_of",
    "arrived_at_of",
]

#: ``Person.attributes`` key flagging an arrival from a mid/high-risk area or from overseas.
ARRIVAL_CATEGORY_ATTRIBUTE = "arrival_category"
#: ``Person.attributes`` key with the ISO 8601 arrival time of such a person (optional).
ARRIVED_AT_ATTRIBUTE = "arrived_at"


class IsolationCategory(StrEnum):
    """Why a person is in centralized isolation (the classes of the census)."""

    CLOSE = "close"  # 密接
    SECONDARY = "secondary"  # 次密接
    OVERSEAS = "overseas"  # 境外返回 (境外返市)
    RISK_AREA = "risk_area"  # 中高风险地区来返 (其他中高风险区)

    @property
    def label_zh(self) -> str:
        return _CATEGORY_ZH[self]


_CATEGORY_ZH = {
    IsolationCategory.CLOSE: "密接",
    IsolationCategory.SECONDARY: "次密接",
    IsolationCategory.OVERSEAS: "境外返市",
    IsolationCategory.RISK_AREA: "其他中高风险区",
}
_ARRIVAL_ALIASES = {
    "risk_area": IsolationCategory.RISK_AREA,
    "mid_high_risk_area": IsolationCategory.RISK_AREA,
    "中高风险区": IsolationCategory.RISK_AREA,
    "中高风险地区": IsolationCategory.RISK_AREA,
    "overseas": IsolationCategory.OVERSEAS,
    "境外": IsolationCategory.OVERSEAS,
    "境外返回": IsolationCategory.OVERSEAS,
}


def arrival_category_of(attributes: dict) -> IsolationCategory | None:
    """The arrival category flagged in ``Person.attributes`` (None if not an arrival or unknown value)."""
    value = attributes.get(ARRIVAL_CATEGORY_ATTRIBUTE)
    if not isinstance(value, str):
        return None
    return _ARRIVAL_ALIASES.get(value.strip().lower()) or _ARRIVAL_ALIASES.get(value.strip())


def arrived_at_of(attributes: dict) -> datetime | None:
    """``attributes["arrived_at"]`` as an aware UTC datetime (None if absent or unparsable)."""
    value = attributes.get(ARRIVED_AT_ATTRIBUTE)
    if not isinstance(value, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


class SiteKind(StrEnum):
    QUARANTINE_HOTEL = "quarantine_hotel"  # 隔离酒店
    DESIGNATED_HOSPITAL = "designated_hospital"  # 定点医院
    MAKESHIFT_HOSPITAL = "makeshift_hospital"  # 方舱医院
    HOME = "home"  # 居家 (home isolation: never a target of centralized planning)


class SiteStatus(StrEnum):
    ACTIVE = "active"  # 启用
    RESERVE = "reserve"  # 备用 (used only when every active site is full)
    CLOSED = "closed"  # 关闭


_ALL_CATEGORIES = frozenset(IsolationCategory)


class IsolationSite(DomainModel):
    """A centralized isolation site (集中隔离场所).

    Capacity is counted in rooms: one household per room (单人单间, families
    together) while it fits in ``beds_per_room``; a household larger than
    every room of every open site takes several rooms of one site.
    ``accepts`` defaults to every category, except for designated hospitals
    (cases, not contacts) and home isolation, which accept none.
    """

    id: str = Field(min_length=1, max_length=128)
    name: str
    kind: SiteKind = SiteKind.QUARANTINE_HOTEL
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    region: str | None = Field(default=None, description="Region code, e.g. 110105")
    address: str | None = None
    phone: str | None = None
    rooms: int = Field(ge=0)
    beds_per_room: int = Field(default=1, ge=1)
    status: SiteStatus = SiteStatus.ACTIVE
    accepts: frozenset[IsolationCategory] | None = Field(
        default=None, description="Categories this site takes; None = the default for its kind"
    )

    @model_validator(mode="after")
    def _default_accepts(self) -> IsolationSite:
        if self.accepts is None:
            if self.kind in (SiteKind.DESIGNATED_HOSPITAL, SiteKind.HOME):
                self.accepts = frozenset()
            else:
                self.accepts = _ALL_CATEGORIES
        return self

    @property
    def beds(self) -> int:
        return self.rooms * self.beds_per_room


class Vehicle(DomainModel):
    """A closed-loop transfer vehicle (闭环转运车辆) and where it starts from."""

    id: str = Field(min_length=1, max_length=128)
    seats: int = Field(ge=1, description="Passenger seats (driver and escort not counted)")
    base_lat: float = Field(ge=-90, le=90)
    base_lon: float = Field(ge=-180, le=180)
    base: str | None = Field(default=None, description="Name of the depot")
    plate: str | None = None
    region: str | None = None
    available: bool = True


class TransferState(StrEnum):
    PLANNED = "planned"  # confirmed plan, not picked up yet
    PICKED_UP = "picked_up"  # in the vehicle
    ARRIVED = "arrived"  # at the site: in centralized isolation
    DISCHARGED = "discharged"  # isolation over; home health monitoring
    CANCELLED = "cancelled"  # released by a re-plan or by hand


class Transfer(DomainModel):
    """One person's transfer to a site: written when a plan is confirmed.

    ``id`` is ``<plan_id>/<person_id>``, so confirming the same plan twice
    writes nothing new. A transfer occupies ``room`` (1-based slot) of its
    site from confirmation until discharge or cancellation.
    """

    id: str
    plan_id: str
    person_id: str
    household: str = Field(description="Household id, or the person id for a person without one")
    category: IsolationCategory
    exposed_at: UtcDatetime
    site_id: str
    room: int = Field(ge=1)
    vehicle_id: str | None = None
    batch: int | None = Field(default=None, ge=1, description="Trip number of the vehicle in this plan")
    pickup_order: int | None = Field(default=None, ge=1)
    planned_pickup_at: UtcDatetime | None = None
    planned_arrival_at: UtcDatetime | None = None
    confirmed_at: UtcDatetime
    picked_up_at: UtcDatetime | None = None
    arrived_at: UtcDatetime | None = None
    discharged_at: UtcDatetime | None = None
    cancelled_at: UtcDatetime | None = None
    home_monitoring_until: UtcDatetime | None = None

    @property
    def state(self) -> TransferState:
        if self.cancelled_at is not None:
            return TransferState.CANCELLED
        if self.discharged_at is not None:
            return TransferState.DISCHARGED
        if self.arrived_at is not None:
            return TransferState.ARRIVED
        if self.picked_up_at is not None:
            return TransferState.PICKED_UP
        return TransferState.PLANNED

    @property
    def occupies_room(self) -> bool:
        return self.cancelled_at is None and self.discharged_at is None


class CategoryRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    centralized: bool = Field(default=True, description="Goes to centralized isolation (else home isolation)")
    isolation_days: int = Field(default=7, ge=0)
    home_monitoring_days: int = Field(default=3, ge=0, description="居家健康监测 after discharge")


class IsolationStart(StrEnum):
    LAST_EXPOSURE = "last_exposure"  # 自最后接触之日起算 (arrivals: from arrival)
    ARRIVAL = "arrival"  # from arrival at the site


class PlanningOptions(BaseModel):
    """Travel-time model of the transfer plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    average_speed_kmh: float = Field(default=30, gt=0)
    road_factor: float = Field(default=1.3, ge=1, description="Road distance / great-circle distance")
    boarding_minutes: float = Field(default=5, ge=0, description="Per pickup stop")
    unloading_minutes: float = Field(default=20, ge=0, description="At the site, incl. disinfection (消杀)")
    lookahead: int = Field(default=32, ge=1, description="Queued households looked at to fill a vehicle's seats")

    def travel(self, km: float) -> timedelta:
        return timedelta(hours=km * self.road_factor / self.average_speed_kmh)


def _rules_2022() -> dict[IsolationCategory, CategoryRule]:
    return {
        IsolationCategory.CLOSE: CategoryRule(isolation_days=7, home_monitoring_days=3),
        IsolationCategory.SECONDARY: CategoryRule(isolation_days=7, home_monitoring_days=0),
        IsolationCategory.OVERSEAS: CategoryRule(isolation_days=7, home_monitoring_days=3),
        IsolationCategory.RISK_AREA: CategoryRule(isolation_days=7, home_monitoring_days=0),
    }


class IsolationPolicy(BaseModel):
    """Who goes to centralized isolation, for how long, in which order.

    Defaults follow the 2022 (9th edition) texts: 7 days of centralized
    isolation + 3 days of home health monitoring for close contacts and
    overseas arrivals; :meth:`edition_2020` gives the 14-day rules.
    ``priority`` orders the transfer queue (优先将密接转运): by category first,
    then by earliest exposure.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: dict[IsolationCategory, CategoryRule] = Field(default_factory=_rules_2022)
    priority: tuple[IsolationCategory, ...] = (
        IsolationCategory.CLOSE, IsolationCategory.SECONDARY, IsolationCategory.OVERSEAS, IsolationCategory.RISK_AREA,
    )
    count_from: IsolationStart = IsolationStart.LAST_EXPOSURE
    planning: PlanningOptions = Field(default_factory=PlanningOptions)

    @classmethod
    def edition_2020(cls) -> IsolationPolicy:
        """14 days of centralized isolation for everyone, no home monitoring after it."""
        return cls(rules={c: CategoryRule(isolation_days=14, home_monitoring_days=0) for c in IsolationCategory})

    def rule(self, category: IsolationCategory) -> CategoryRule:
        return self.rules.get(category) or CategoryRule(centralized=False)

    def rank(self, category: IsolationCategory) -> int:
        try:
            return self.priority.index(category)
        except ValueError:
            return len(self.priority)

    @property
    def centralized(self) -> frozenset[IsolationCategory]:
        return frozenset(c for c in IsolationCategory if self.rule(c).centralized)

    def isolation_ends(self, transfer: Transfer) -> datetime | None:
        """When ``transfer``'s centralized isolation ends (None before arrival)."""
        if transfer.arrived_at is None:
            return None
        start = transfer.exposed_at if self.count_from is IsolationStart.LAST_EXPOSURE else transfer.arrived_at
        return start + timedelta(days=self.rule(transfer.category).isolation_days)


class CapacityStandard(BaseModel):
    """Isolation rooms required per 10,000 residents (20 for Delta; plan ×3 for Omicron)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rooms_per_10k: float = Field(default=20, gt=0)
    multiplier: float = Field(default=1, gt=0)

    @classmethod
    def delta(cls) -> CapacityStandard:
        return cls(rooms_per_10k=20, multiplier=1)

    @classmethod
    def omicron(cls) -> CapacityStandard:
        return cls(rooms_per_10k=20, multiplier=3)

    @property
    def effective_per_10k(self) -> float:
        return self.rooms_per_10k * self.multiplier

    def required_rooms(self, population: int) -> int:
        return math.ceil(population / 10_000 * self.effective_per_10k)


# --- plans (proposals) -------------------------------------------------------------------------


@dataclass(slots=True)
class PlannedTransfer:
    """One person's place in a plan (a plain dataclass: plans hold tens of thousands of them)."""

    person_id: str
    household: str
    category: IsolationCategory
    exposed_at: datetime
    site_id: str
    room: int
    region: str | None = None
    vehicle_id: str | None = None
    batch: int | None = None
    pickup_order: int | None = None
    planned_pickup_at: datetime | None = None
    planned_arrival_at: datetime | None = None
    distance_km: float = 0.0


class Shortage(BaseModel):
    """Persons who could not be placed in a region (sites full, or none accepts them)."""

    region: str
    persons: int
    households: int
    rooms_needed: int
    by_category: dict[IsolationCategory, int]
    person_ids: list[str]


class SplitHousehold(BaseModel):
    household: str
    size: int
    reason: str = Field(description="'rooms': larger than any room; 'seats': larger than any vehicle")
    rooms: int = 1
    trips: int = 1


class TransferPlan(BaseModel):
    """A proposal: nothing is written until it is confirmed."""

    id: str
    created_at: UtcDatetime
    assignments: list[PlannedTransfer]
    shortages: list[Shortage] = Field(default_factory=list)
    split_households: list[SplitHousehold] = Field(default_factory=list)
    unlocated: list[str] = Field(default_factory=list, description="Persons without coordinates (placed by region)")
    without_vehicle: list[str] = Field(default_factory=list, description="Placed persons no vehicle could take")
    released: list[str] = Field(default_factory=list, description="Pending transfers this plan replaces (re-plan)")
    elapsed_ms: float = 0.0

    @property
    def unplaced(self) -> int:
        return sum(s.persons for s in self.shortages)


# --- census ------------------------------------------------------------------------------------


class IsolationCount(BaseModel):
    total: int
    by_category: dict[IsolationCategory, int]


class SiteCapacity(BaseModel):
    site_id: str
    name: str
    status: SiteStatus
    region: str | None
    rooms: int
    occupied_rooms: int
    free_rooms: int
    persons: int


class RegionCapacity(BaseModel):
    """Isolation rooms of a region against the standard (rooms per 10,000 residents)."""

    region: str
    population: int
    rooms_active: int
    rooms_reserve: int
    free_rooms: int
    rooms_per_10k: float = Field(description="(active + reserve rooms) per 10,000 residents")
    required_rooms: int
    shortfall: int = Field(description="Rooms missing to meet the standard (0 if met)")


class CensusReport(BaseModel):
    """Who is in centralized isolation now, and what capacity is left (隔离人员统计)."""

    now: UtcDatetime
    isolating: IsolationCount = Field(description="Arrived at a site and not discharged: 正在集中隔离")
    in_transit: IsolationCount = Field(description="Picked up, not arrived yet")
    planned: IsolationCount = Field(description="Confirmed transfers not picked up yet")
    home_monitoring: int = Field(description="Discharged, still in home health monitoring")
    sites: list[SiteCapacity]
    regions: list[RegionCapacity]
    standard: CapacityStandard
    text: str = Field(description="The census line in the command centres' format")
