"""Persons: cases, contacts and everybody else in the graph."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from .common import DomainModel, UtcDatetime


class PersonStatus(StrEnum):
    """Infection status of a person (病例状态)."""

    CONFIRMED = "confirmed"  # 确诊病例
    ASYMPTOMATIC = "asymptomatic"  # 无症状感染者
    SUSPECTED = "suspected"  # 疑似病例
    NONE = "none"  # not (known to be) infected


#: Statuses whose holders are traced as index cases.
CASE_STATUSES: frozenset[PersonStatus] = frozenset({PersonStatus.CONFIRMED, PersonStatus.ASYMPTOMATIC})


class Person(DomainModel):
    """A person node.

    Dates are UTC. ``onset_at`` (symptom onset) or, for asymptomatic
    infections, ``sampled_at`` anchor the infectious window; ``isolated_at``
    closes it.
    """

    id: str = Field(min_length=1, max_length=128)
    name: str | None = None
    id_number: str | None = None
    phone: str | None = None
    household_id: str | None = None
    address: str | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    region: str | None = Field(default=None, description="Hierarchical region code, e.g. 110105")
    status: PersonStatus = PersonStatus.NONE
    onset_at: UtcDatetime | None = None
    sampled_at: UtcDatetime | None = None
    confirmed_at: UtcDatetime | None = None
    reported_at: UtcDatetime | None = None
    isolated_at: UtcDatetime | None = None
    attributes: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="Dataset-specific extras (age, sex, hospital, ...)"
    )

    @property
    def is_case(self) -> bool:
        return self.status in CASE_STATUSES

    @model_validator(mode="after")
    def _coordinates_come_in_pairs(self) -> "Person":
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon must be given together")
        return self
