"""The 2+4+24+8 red line (流调红线): investigations, milestone clocks, assist requests, alerts, and the policy.

Pydantic v2, no I/O. Every figure and every definition of "complete" is a
setting of :class:`DeadlinePolicy`; the engine in :mod:`tracing.deadlines`
computes milestone states from what is in the graph.

Vocabulary
----------
investigation
    One case's 流调: opened when the case is reported; owns the four clocks.
    An assist request (协查) is also run as an investigation (``kind=assist``)
    with one clock.
milestone
    One clock: ``kind``, ``due_at`` and a state. Late-discovered persons who
    must be centrally isolated get a *personal* transfer milestone
    (``person_id`` set) in addition to the case's 8 h clock.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from .common import UtcDatetime
from .tracing import ContactClass

__all__ = [
    "Alert",
    "AlertSeverity",
    "AssistRequest",
    "ClockStart",
    "ComplianceLine",
    "DeadlinePolicy",
    "DueSnapshot",
    "Gap",
    "Investigation",
    "InvestigationKind",
    "InvestigationStatus",
    "InvestigatorArrival",
    "IsolationArrival",
    "LookBack",
    "Milestone",
    "MilestoneHours",
    "MilestoneKind",
    "MilestoneLookBack",
    "MilestoneReason",
    "MilestoneState",
    "TrackedPerson",
    "TransferPolicy",
    "FIELD_NAMES",
]


class MilestoneKind(StrEnum):
    ON_SCENE = "on_scene"  # 2 h: 到达现场
    CORE_INFO = "core_info"  # 4 h: 密接、次密接核心信息
    FULL_INFO = "full_info"  # 24 h: 居住、工作场所、行动轨迹、家庭关系 + 一般接触者
    TRANSFER = "transfer"  # 8 h: 转运至集中隔离场所
    ASSIST = "assist"  # 24 h: 协查

    @property
    def label(self) -> str:
        return _KIND_LABEL[self]


_KIND_LABEL = {
    MilestoneKind.ON_SCENE: "2h on scene 到达现场",
    MilestoneKind.CORE_INFO: "4h core info 核心信息",
    MilestoneKind.FULL_INFO: "24h all info 全部信息",
    MilestoneKind.TRANSFER: "8h transfer 转运隔离",
    MilestoneKind.ASSIST: "24h assist 协查",
}


class MilestoneState(StrEnum):
    """State of one clock at a moment.

    ``pending`` before ``due_at − at_risk_lead``; ``at_risk`` from then until
    ``due_at``; ``missed`` from ``due_at`` while unmet; ``met`` / ``met_late``
    once satisfied on or before / after ``due_at``. ``cancelled`` is for a
    personal transfer clock whose person is no longer required to be
    centrally isolated (re-derived away or downgraded).
    """

    PENDING = "pending"
    AT_RISK = "at_risk"
    MET = "met"
    MET_LATE = "met_late"
    MISSED = "missed"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        """Not (yet) satisfied: somebody still has work to do."""
        return self in (MilestoneState.PENDING, MilestoneState.AT_RISK, MilestoneState.MISSED)


class ClockStart(StrEnum):
    """Which event of the case starts the clocks (the directives do not say)."""

    REPORTED_AT = "reported_at"
    CONFIRMED_AT = "confirmed_at"


class TransferPolicy(StrEnum):
    """Who the 8 h transfer clock covers.

    ``all_isolated`` (wording A): everyone placed in centralized isolation,
    close and secondary contacts. ``close_first`` (wording B, 优先): close
    contacts only.
    """

    ALL_ISOLATED = "all_isolated"
    CLOSE_FIRST = "close_first"

    @property
    def classes(self) -> frozenset[ContactClass]:
        if self is TransferPolicy.CLOSE_FIRST:
            return frozenset({ContactClass.CLOSE})
        return frozenset({ContactClass.CLOSE, ContactClass.SECONDARY})


class InvestigationKind(StrEnum):
    CASE = "case"
    ASSIST = "assist"


class InvestigationStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class AlertSeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


#: Field names usable in requirement groups (see :class:`DeadlinePolicy`).
#: ``location`` means lat *and* lon; ``attr:<key>`` a non-empty ``Person.attributes[key]``.
FIELD_NAMES = frozenset({"name", "id_number", "phone", "address", "location", "region", "household_id"})

FieldGroups = tuple[tuple[str, ...], ...]


def _check_groups(groups: FieldGroups) -> FieldGroups:
    for group in groups:
        if not group:
            raise ValueError("a requirement group needs at least one field")
        for name in group:
            if name not in FIELD_NAMES and not (name.startswith("attr:") and len(name) > 5):
                raise ValueError(f"unknown person field {name!r}: use one of {sorted(FIELD_NAMES)} or attr:<key>")
    return groups


class MilestoneHours(BaseModel):
    """Hours of each clock; ``None`` means the region does not track it (× in the directives)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    on_scene: float | None = Field(default=2, gt=0)
    core_info: float | None = Field(default=4, gt=0)
    full_info: float | None = Field(default=24, gt=0)
    transfer: float | None = Field(default=8, gt=0)
    assist: float | None = Field(default=24, gt=0)

    def of(self, kind: MilestoneKind) -> timedelta | None:
        hours = getattr(self, kind.value)
        return None if hours is None else timedelta(hours=hours)


class DeadlinePolicy(BaseModel):
    """The red-line rules as settings.

    Requirement groups (``core_fields``, ``residence_fields``,
    ``family_fields``) are lists of alternatives: a person satisfies a group
    when *any* field in it is non-empty, and a requirement when *every* group
    is satisfied. Field names are :data:`FIELD_NAMES` or ``attr:<key>``.

    Definitions (defaults)
    ----------------------
    core information (4 h, and general contacts at 24 h, and assist persons)
        ``name``; ``id_number`` or ``phone``; current location = ``address``
        or ``lat``/``lon``. The contact class is always known for a derived
        contact (it is what derivation produces), so it needs no field.
    residence
        ``address`` or ``lat``/``lon`` of the case.
    workplace
        ``Person.attributes[workplace_attribute]`` non-empty (record e.g.
        ``"无 none"`` for a person without one), or a trajectory visit to a
        place whose ``kind`` is in ``workplace_place_kinds``.
    trajectory (行动轨迹)
        At least one visit overlapping each calendar day (at UTC offset
        ``day_offset``) of ``[onset or sampling − trajectory_look_back,
        min(isolated_at, clock start)]``.
    family relations
        ``household_id`` of the case (a one-person household still gets an id).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    clock_start: ClockStart = ClockStart.REPORTED_AT
    hours: MilestoneHours = Field(default_factory=MilestoneHours)
    region_hours: dict[str, MilestoneHours] = Field(
        default_factory=dict,
        description="Per-region hours by region-code prefix; the longest matching prefix wins.",
    )
    transfer_policy: TransferPolicy = Field(
        default=TransferPolicy.ALL_ISOLATED,
        description="Who the case's 8 h clock covers. Persons discovered after the clock started count "
        "towards it too, and also get their own discovered_at + 8 h clock.",
    )
    at_risk_lead: timedelta = Field(default=timedelta(minutes=30), ge=timedelta(0))
    core_fields: FieldGroups = (("name",), ("id_number", "phone"), ("address", "location"))
    residence_fields: FieldGroups = (("address", "location"),)
    family_fields: FieldGroups = (("household_id",),)
    workplace_attribute: str = "workplace"
    workplace_place_kinds: frozenset[str] = frozenset({"workplace", "office", "factory", "company", "school"})
    trajectory_look_back: timedelta = Field(
        default=timedelta(days=4), description="Keep equal to TracingPolicy.look_back."
    )
    day_offset: timedelta = Field(default=timedelta(hours=8), description="UTC offset of calendar days (UTC+8).")
    empty_contacts_meet: bool = Field(
        default=False,
        description="Whether 4 h / 8 h count as met while no contact is derived at all. Off by default: an "
        "empty list usually means 'not traced yet'; investigators declare 'no contacts' explicitly.",
    )
    auto_open: bool = Field(default=True, description="Open an investigation when a reported case appears in the graph.")

    @field_validator("core_fields", "residence_fields", "family_fields")
    @classmethod
    def _valid_groups(cls, value: FieldGroups) -> FieldGroups:
        return _check_groups(value)

    def hours_for(self, region: str | None) -> MilestoneHours:
        """Hours in force in ``region`` (longest matching code prefix), else the default."""
        if region:
            best = max((p for p in self.region_hours if region.startswith(p)), key=len, default=None)
            if best is not None:
                return self.region_hours[best]
        return self.hours


# --- stored objects -------------------------------------------------------------------------


class Investigation(BaseModel):
    """One 流调 (or one assist request, ``kind=assist``)."""

    id: str = Field(min_length=1, max_length=160)
    kind: InvestigationKind = InvestigationKind.CASE
    case_id: str | None = None
    region: str | None = None
    team: str | None = None
    opened_at: UtcDatetime
    clock_start_at: UtcDatetime
    clock_source: str = Field(description="reported_at, confirmed_at, received_at or opened_at (fallback)")
    status: InvestigationStatus = InvestigationStatus.OPEN
    closed_at: UtcDatetime | None = None
    no_contacts_declared_at: UtcDatetime | None = None


class Gap(BaseModel):
    """What one person (or the case) still lacks for a milestone."""

    person_id: str | None = None
    role: str = Field(description="case, close, secondary, general, pushed or investigation")
    missing: list[str]


class MilestoneReason(BaseModel):
    summary: str
    gaps: list[Gap] = Field(default_factory=list)

    def missing_of(self, person_id: str | None) -> list[str]:
        return [m for g in self.gaps if g.person_id == person_id for m in g.missing]


class Milestone(BaseModel):
    id: str
    investigation_id: str
    kind: MilestoneKind
    person_id: str | None = Field(default=None, description="Set on a personal transfer clock")
    started_at: UtcDatetime
    due_at: UtcDatetime
    at_risk_at: UtcDatetime
    state: MilestoneState = MilestoneState.PENDING
    met_at: UtcDatetime | None = None
    epoch: int = Field(default=0, description="Bumped whenever the milestone re-opens or moves backwards")
    reason: MilestoneReason = Field(default_factory=lambda: MilestoneReason(summary="not evaluated yet"))
    evaluated_at: UtcDatetime | None = None
    at_due: "DueSnapshot | None" = None
    # Set by repositories that load a milestone for the sweep without parsing its reason and snapshot
    # (the hot path): the stored reason as JSON, and whether a snapshot is stored.
    _stored_reason_json: str | None = PrivateAttr(default=None)
    _has_stored_at_due: bool = PrivateAttr(default=False)


class DueSnapshot(BaseModel):
    """What the engine saw at (the first sweep after) a milestone's due time, for look-backs (倒查)."""

    evaluated_at: UtcDatetime
    state: MilestoneState
    reason: MilestoneReason
    known_persons: int


class TrackedPerson(BaseModel):
    """A person an investigation watches, with when it first saw them (discovery time)."""

    investigation_id: str
    person_id: str
    role: str
    first_seen_at: UtcDatetime


class InvestigatorArrival(BaseModel):
    investigation_id: str
    investigator: str
    arrived_at: UtcDatetime


class IsolationArrival(BaseModel):
    person_id: str
    site_id: str
    arrived_at: UtcDatetime


class AssistRequest(BaseModel):
    """A list of persons pushed from another region (协查) to be investigated within the assist clock."""

    id: str = Field(min_length=1, max_length=160)
    from_region: str | None = None
    region: str | None = None
    team: str | None = None
    received_at: UtcDatetime
    person_ids: list[str] = Field(min_length=1)
    note: str | None = None


class Alert(BaseModel):
    """One state change of one milestone. ``key`` is unique: a repeated sweep cannot write it twice."""

    seq: int | None = None
    key: str
    investigation_id: str
    milestone_id: str
    kind: MilestoneKind
    person_id: str | None = None
    state: MilestoneState
    previous_state: MilestoneState | None = None
    severity: AlertSeverity
    at: UtcDatetime = Field(description="When the change took effect (at-risk time, due time, met time, …)")
    detected_at: UtcDatetime = Field(description="The sweep's `now`")
    due_at: UtcDatetime
    region: str | None = None
    team: str | None = None
    summary: str


Milestone.model_rebuild()


# --- reports --------------------------------------------------------------------------------------


class ComplianceLine(BaseModel):
    """Outcomes of one clock for one region or team (clocks due in the report window)."""

    group: str | None
    clock: str = Field(description="2h, 4h, 24h, 8h, 8h-personal or 24h-assist")
    kind: MilestoneKind
    personal: bool = False
    met: int = 0
    met_late: int = 0
    missed: int = 0
    open: int = Field(default=0, description="Pending or at risk: not decided yet")
    cancelled: int = 0

    @property
    def decided(self) -> int:
        return self.met + self.met_late + self.missed

    @property
    def on_time_rate(self) -> float | None:
        return self.met / self.decided if self.decided else None


class MilestoneLookBack(BaseModel):
    """倒查 of one clock: its state at due time and what was known then."""

    milestone: Milestone
    state_at_due: MilestoneState
    snapshot: DueSnapshot | None = Field(description="Reason as seen by the first sweep at or after due time")
    known_at_due: list[TrackedPerson] = Field(description="Persons discovered by due time")
    discovered_after_due: list[TrackedPerson]
    isolated_by_due: list[str] = Field(default_factory=list, description="Transfer clocks: arrived by due time")
    investigator_on_scene_at: UtcDatetime | None = None
    history: list[Alert]


class LookBack(BaseModel):
    investigation: Investigation
    milestones: list[MilestoneLookBack]
