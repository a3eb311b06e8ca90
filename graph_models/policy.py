"""Tracing policy: the rules that differ between directives, as settings rather than constants."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from .events import ContactKind


class TracingPolicy(BaseModel):
    """How contacts of a case are classified.

    Defaults follow the 2021–2022 national protocols (look-back of 4 days
    before onset or sampling; close and secondary contacts both traced). Older
    protocols used 2 days; the late-2022 rules dropped secondary contacts
    (``trace_secondary=False``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    look_back: timedelta = Field(
        default=timedelta(days=4),
        description="How far before onset (or sampling, for asymptomatic cases) the infectious window opens.",
    )
    close_kinds: frozenset[ContactKind] = Field(
        default=frozenset(ContactKind),
        description="Contact kinds that can make a close contact; an event must also be marked closeness=close.",
    )
    min_close_duration: timedelta = Field(
        default=timedelta(0), description="Shorter close-marked events count only as general contacts."
    )
    trace_secondary: bool = Field(default=True, description="Derive 次密接 at all (dropped in late-2022 rules).")
    trace_general: bool = Field(default=True, description="Derive 一般接触者.")
    covisits_as_general: bool = Field(
        default=True,
        description="Persons at the same place at an overlapping time as the case (时空伴随) are general contacts.",
    )
    max_hops: int = Field(default=3, ge=1, le=20, description="Default hop limit for downstream chains.")
    incubation_look_back: timedelta = Field(
        default=timedelta(days=14), description="How far back 溯源 looks for the source of a case."
    )
