"""How every adapter stores time: integer microseconds since the Unix epoch, UTC.

Integers make window filters plain indexed comparisons in any backend and
round-trip exactly, so SQLite and Neo4j return the very same datetimes.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_epoch_us(value: datetime | None) -> int | None:
    """``value`` (naive means UTC) as microseconds since the epoch; ``None`` stays ``None``."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(value: int | None) -> datetime | None:
    """The aware UTC datetime for ``value`` microseconds since the epoch; ``None`` stays ``None``."""
    if value is None:
        return None
    return EPOCH + timedelta(microseconds=value)
