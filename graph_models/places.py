"""Places persons visit: venues, hospitals, transport, homes."""

from __future__ import annotations

from pydantic import Field, model_validator

from .common import DomainModel


class Place(DomainModel):
    id: str = Field(min_length=1, max_length=128)
    name: str | None = None
    kind: str | None = Field(default=None, description="restaurant, hospital, market, cold_chain, ...")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    region: str | None = None

    @model_validator(mode="after")
    def _coordinates_come_in_pairs(self) -> "Place":
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon must be given together")
        return self
