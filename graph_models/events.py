"""Dated edges of the contact graph: contact events, visits and transmission links."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from .common import DomainModel, UtcDatetime


class ContactKind(StrEnum):
    HOUSEHOLD = "household"  # 同住
    MEAL = "meal"  # 共餐
    VEHICLE = "vehicle"  # 同乘交通工具
    WORKPLACE = "workplace"  # 同工作场所
    HEALTHCARE = "healthcare"  # 诊疗、护理
    VENUE = "venue"  # 同一场所
    OTHER = "other"


class ContactSource(StrEnum):
    INTERVIEW = "interview"  # 流调询问
    BIG_DATA = "big_data"  # 大数据推送
    VENUE_SCAN = "venue_scan"  # 场所码
    ASSIST_REQUEST = "assist_request"  # 协查


class Closeness(StrEnum):
    CLOSE = "close"
    GENERAL = "general"


class ContactEvent(DomainModel):
    """One meeting of two persons. Undirected; two people can meet many times."""

    id: str = Field(min_length=1, max_length=128)
    a: str = Field(min_length=1)
    b: str = Field(min_length=1)
    start: UtcDatetime
    end: UtcDatetime
    kind: ContactKind = ContactKind.OTHER
    place_id: str | None = None
    source: ContactSource = ContactSource.INTERVIEW
    closeness: Closeness = Closeness.CLOSE

    @model_validator(mode="after")
    def _check(self) -> "ContactEvent":
        if self.a == self.b:
            raise ValueError(f"a contact needs two different persons (both are {self.a!r})")
        if self.end < self.start:
            raise ValueError(f"end {self.end.isoformat()} is before start {self.start.isoformat()}")
        return self

    def other(self, person_id: str) -> str:
        return self.b if person_id == self.a else self.a


class Visit(DomainModel):
    """A person at a place for a time (行动轨迹)."""

    id: str = Field(min_length=1, max_length=128)
    person_id: str = Field(min_length=1)
    place_id: str = Field(min_length=1)
    start: UtcDatetime
    end: UtcDatetime

    @model_validator(mode="after")
    def _check(self) -> "Visit":
        if self.end < self.start:
            raise ValueError(f"end {self.end.isoformat()} is before start {self.start.isoformat()}")
        return self


class TransmissionLink(DomainModel):
    """Who infected whom, as established (or suspected) by investigators.

    Unlike contact events these are directed and carry no interval: they
    describe a conclusion, and a case may have several candidate infectors.
    """

    infector: str = Field(min_length=1)
    infectee: str = Field(min_length=1)
    exposure: str | None = Field(default=None, description="How: 'Hospital room', 'family', 'funeral', ...")
    exposed_at: UtcDatetime | None = None

    @model_validator(mode="after")
    def _check(self) -> "TransmissionLink":
        if self.infector == self.infectee:
            raise ValueError(f"a person cannot infect themself ({self.infector!r})")
        return self
