"""API-only response and request shapes (domain models come from :mod:`graph_models`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from graph_models import ContactEvent, Person, TransmissionLink, UtcDatetime, Visit
from graph_models.deadlines import Investigation, Milestone
from tracing.auth import Role

__all__ = [
    "ArrivalIn", "DeadlineRow", "IsolationArrivalIn", "Me", "OpenInvestigationIn", "PersonLinks",
    "PersonVisits", "Ready", "Stats", "WriteResult",
]


class WriteResult(BaseModel):
    written: int = Field(description="Rows upserted")
    rederived_cases: list[str] = Field(description="Cases whose derived contacts (and clocks) were re-evaluated")


class Me(BaseModel):
    user: str
    role: Role
    region: str | None
    site_id: str | None
    permissions: list[str]
    masked: bool = Field(description="Responses to this user have PII masked")


class Ready(BaseModel):
    status: str
    store: str
    scheduler: str


class Stats(BaseModel):
    persons: int
    places: int
    events: int
    visits: int
    links: int
    derived: int


class PersonLinks(BaseModel):
    infectors: list[TransmissionLink]
    infectees: list[TransmissionLink]


class PersonVisits(BaseModel):
    person_id: str
    visits: list[Visit]


class OpenInvestigationIn(BaseModel):
    case_id: str = Field(min_length=1, max_length=128)
    team: str | None = Field(default=None, max_length=128)


class ArrivalIn(BaseModel):
    investigator: str = Field(min_length=1, max_length=128)
    arrived_at: UtcDatetime


class IsolationArrivalIn(BaseModel):
    person_id: str = Field(min_length=1, max_length=128)
    arrived_at: UtcDatetime


class DeadlineRow(BaseModel):
    investigation: Investigation
    milestone: Milestone


class LineListRow(BaseModel):
    """One case in the line list (一览表)."""

    id: str
    name: str | None = None
    id_number: str | None = None
    phone: str | None = None
    address: str | None = None
    region: str | None = None
    status: str
    sex: str | None = None
    age: str | None = None
    onset_at: UtcDatetime | None = None
    sampled_at: UtcDatetime | None = None
    confirmed_at: UtcDatetime | None = None
    reported_at: UtcDatetime | None = None
    isolated_at: UtcDatetime | None = None
    infectors: list[str] = Field(default_factory=list)
    close_contacts: int = 0
    secondary_contacts: int = 0


__all__ += ["LineListRow", "ContactEvent", "Person"]
