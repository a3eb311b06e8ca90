"""Independent readings of the real datasets for the import tests.

Expected numbers are computed with the ``csv`` module straight from the
files (found by the ``datasets`` fixture of tests/conftest.py), never copied
from the loader's output, so a wrong mapping or loader fails the tests.
"""

from __future__ import annotations

import csv
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from tracing.store import StoreCounts

#: NA tokens of the bundled mappings.
NA = frozenset({"", "NA", "-", " "})
REPO = Path(__file__).resolve().parents[2]


def rows_with_lines(path: Path) -> list[tuple[int, dict[str, str]]]:
    """``(line, row)`` for a CSV without line breaks inside fields: data row i (0-based) is on line i + 2.

    Fails if the file has a quoted line break (then this simple count would be wrong).
    """
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    physical = len(path.read_text(encoding="utf-8-sig").splitlines())
    assert physical == len(rows) + 1, f"{path.name} has line breaks inside fields"
    return [(i + 2, row) for i, row in enumerate(rows)]


def rows(path: Path) -> list[dict[str, str]]:
    return [row for _, row in rows_with_lines(path)]


def present(value: str | None) -> bool:
    return value is not None and value not in NA


def local_day(text: str, zone: str, *, end: bool = False) -> datetime:
    """Start (or last microsecond) of a local calendar day, as an aware datetime."""
    return datetime.combine(date.fromisoformat(text), time.max if end else time.min, tzinfo=ZoneInfo(zone))


def zero_counts() -> StoreCounts:
    return StoreCounts(persons=0, places=0, events=0, visits=0, links=0, derived=0)


#: A mapping for :func:`write_synthetic` files: persons first, then contacts.
SYNTHETIC_MAPPING = {
    "name": "synthetic",
    "timezone": "Asia/Shanghai",
    "files": [
        {"name": "persons", "path": "persons.csv",
         "records": [{"type": "person", "match_columns": True, "keep_other_columns": True}]},
        {"name": "contacts", "path": "contacts.csv", "records": [{"type": "event", "match_columns": True}]},
    ],
}


def write_synthetic(folder: Path, n_persons: int, n_events: int) -> None:
    """``persons.csv`` and ``contacts.csv`` with ``n_events`` distinct contact events between ``n_persons``."""
    import json
    from datetime import timedelta

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "persons.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "status", "onset_at", "age"])
        for i in range(n_persons):
            case = i % 50 == 0
            writer.writerow([f"P{i:06d}", "confirmed" if case else "none", "2022-03-01" if case else "", 20 + i % 60])
    base = datetime(2022, 3, 1, 8, 0)
    with open(folder / "contacts.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "start", "end", "kind"])
        for i in range(n_events):
            a = i % n_persons
            b = (a + 1 + (i * 7919) % (n_persons - 1)) % n_persons
            start = base + timedelta(minutes=i)  # distinct starts: every row is its own event
            writer.writerow([
                f"P{a:06d}", f"P{b:06d}", start.isoformat(timespec="minutes"),
                (start + timedelta(minutes=30)).isoformat(timespec="minutes"), "meal" if i % 3 == 0 else "workplace",
            ])
    (folder / "mapping.json").write_text(json.dumps(SYNTHETIC_MAPPING), encoding="utf-8")
