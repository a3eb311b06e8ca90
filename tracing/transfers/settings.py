"""Settings of transfers and the census (environment prefix ``TRACEGRAPH_TRANSFERS__``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from graph_models.transfers import CapacityStandard, IsolationPolicy

__all__ = ["TransferSettings"]


class TransferSettings(BaseSettings):
    """E.g. ``TRACEGRAPH_TRANSFERS__CAPACITY__MULTIPLIER=3`` (Omicron),
    ``TRACEGRAPH_TRANSFERS__POLICY__PLANNING__AVERAGE_SPEED_KMH=25``,
    ``TRACEGRAPH_TRANSFERS__POPULATION='{"110105": 3450000}'``.
    """

    model_config = SettingsConfigDict(env_prefix="TRACEGRAPH_TRANSFERS__", env_nested_delimiter="__", extra="ignore")

    policy: IsolationPolicy = Field(default_factory=IsolationPolicy)
    capacity: CapacityStandard = Field(default_factory=CapacityStandard)
    population: dict[str, int] = Field(default_factory=dict, description="Residents per region code")
    display_offset: timedelta = Field(default=timedelta(hours=8), description="UTC offset of manifest times")
