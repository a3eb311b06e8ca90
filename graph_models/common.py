"""Shared building blocks for the domain models: UTC timestamps and base config."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime.

    Naive datetimes are taken to be UTC already: importers convert local
    dates to UTC before building models, so a naive value here can only come
    from code that already works in UTC.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class DomainModel(BaseModel):
    """Base for every stored domain object: strict field names, no silent extras."""

    model_config = ConfigDict(extra="forbid", frozen=False, str_strip_whitespace=True)
