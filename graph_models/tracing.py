"""Results of tracing: classified contacts with evidence, chains, sources and clusters."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from .common import UtcDatetime


class ContactClass(StrEnum):
    """Classes of traced persons, strongest first."""

    CLOSE = "close"  # 密切接触者 (密接)
    SECONDARY = "secondary"  # 密接的密接 (次密接)
    GENERAL = "general"  # 一般接触者

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def relation(self) -> str:
        """Name of the derived relationship stored in the graph."""
        return _RELATION[self]

    @property
    def label_zh(self) -> str:
        return _LABEL_ZH[self]


_RANK = {ContactClass.CLOSE: 0, ContactClass.SECONDARY: 1, ContactClass.GENERAL: 2}
_RELATION = {
    ContactClass.CLOSE: "CLOSE_CONTACT",
    ContactClass.SECONDARY: "SECONDARY_CONTACT",
    ContactClass.GENERAL: "GENERAL_CONTACT",
}
_LABEL_ZH = {ContactClass.CLOSE: "密接", ContactClass.SECONDARY: "次密接", ContactClass.GENERAL: "一般接触者"}


class TracedContact(BaseModel):
    """One person derived as a contact of a case, with the evidence for it.

    ``source_id`` is the upstream person of the derived relation: the case for
    close and general contacts, the close contact for secondary contacts.
    ``evidence`` is the time-respecting path, as contact-event ids (or
    ``visit:<id>+<id>`` pairs for co-visits), from the case to the person.
    """

    case_id: str
    person_id: str
    contact_class: ContactClass
    source_id: str
    exposed_at: UtcDatetime
    evidence: list[str] = Field(min_length=1)
    exposure_count: int = Field(default=1, ge=1, description="Qualifying events between source and person")


class TraceResult(BaseModel):
    case_id: str
    window_start: UtcDatetime
    window_end: UtcDatetime
    derived_at: UtcDatetime
    contacts: list[TracedContact]

    def of_class(self, contact_class: ContactClass) -> list[TracedContact]:
        return [c for c in self.contacts if c.contact_class is contact_class]

    @property
    def close(self) -> list[TracedContact]:
        return self.of_class(ContactClass.CLOSE)

    @property
    def secondary(self) -> list[TracedContact]:
        return self.of_class(ContactClass.SECONDARY)

    @property
    def general(self) -> list[TracedContact]:
        return self.of_class(ContactClass.GENERAL)


class ChainDirection(StrEnum):
    UP = "up"
    DOWN = "down"


class ChainVia(StrEnum):
    LINKS = "links"  # who-infected-whom links
    CONTACTS = "contacts"  # time-respecting close contact events


class ChainMember(BaseModel):
    person_id: str
    hops: int = Field(ge=0)
    parent_id: str | None = None
    reached_at: UtcDatetime | None = Field(default=None, description="Earliest time-respecting arrival")
    evidence: str | None = Field(default=None, description="Event id or link that reached this person")


class Chain(BaseModel):
    root_id: str
    direction: ChainDirection
    via: ChainVia
    max_hops: int
    members: list[ChainMember]

    @property
    def person_ids(self) -> set[str]:
        return {m.person_id for m in self.members if m.hops > 0}


class SourceCandidate(BaseModel):
    """A person who may have infected a case (溯源)."""

    person_id: str
    is_case: bool
    linked_cases: list[str] = Field(description="Other cases this person has contacts or links with")
    first_contact_at: UtcDatetime | None = None
    evidence: list[str]


class Cluster(BaseModel):
    id: int = Field(description="1-based rank by size")
    size: int
    case_count: int
    members: list[str]
