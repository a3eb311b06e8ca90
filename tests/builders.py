"""Small helpers to build graphs by hand in tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from graph_models import ContactEvent, Person

BASE = datetime(2022, 4, 1, tzinfo=timezone.utc)


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """A time in April 2022 (UTC), by day of month."""
    return datetime(2022, 4, day, hour, minute, second, tzinfo=timezone.utc)


def case(pid: str, onset: datetime | None = None, **fields) -> Person:
    return Person(id=pid, status="confirmed", onset_at=onset, **fields)


def person(pid: str, **fields) -> Person:
    return Person(id=pid, **fields)


def contact(eid: str, a: str, b: str, start: datetime, hours: float = 1, **fields) -> ContactEvent:
    return ContactEvent(id=eid, a=a, b=b, start=start, end=start + timedelta(hours=hours), **fields)
