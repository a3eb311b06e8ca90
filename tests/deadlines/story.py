"""The acceptance story, driven by a fake clock.

Case P0 (confirmed, onset 04-18 08:00 UTC) is reported on 2022-04-20 at 09:00 UTC.
Ticks every 15 minutes; at a tick the sweep runs first, then whatever happens at that minute.

=======  =====================================================================================
09:00    case written (reported_at 09:00, address, no household, no workplace) → investigation
10:00    case household recorded (family relations)
10:30    investigator arrives (after the 10:30 sweep)
11:00    contacts found: C1 close (complete), C2 close (no id/phone), S1 secondary via C1 (no
         address); visit V2 fills trajectory day 04-19
12:00    C2 phone recorded
12:50    S1 address recorded
14:00    more contacts: C3 close (no name), S2 secondary via C3 (complete), G1 general (no id/phone)
14:40    C3 name recorded
15:00    case workplace recorded
16:30    C1, C2, C3 arrive at isolation site H1 (after the 16:30 sweep)
18:00    S1, S2 arrive at H1 (after the 18:00 sweep)
20:00    visit V3 fills trajectory day 04-20
+1 09:30 G1 phone recorded
=======  =====================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from graph_models import ContactEvent, Person, Place, TracingPolicy, Visit
from graph_models.deadlines import DeadlinePolicy
from tracing.deadlines import deadline_repository, record_arrival, sweep_deadlines
from tracing.deadlines.service import SweepResult, investigation_id_for_case
from tracing.service import rederive_affected, touched_person_ids
from tracing.store.port import GraphBatch

TRACING = TracingPolicy(look_back=timedelta(days=2))
INV = investigation_id_for_case("P0")


def t(hour: int, minute: int = 0, day: int = 20) -> datetime:
    return datetime(2022, 4, day, hour, minute, tzinfo=timezone.utc)


def policy(**changes) -> DeadlinePolicy:
    return DeadlinePolicy(trajectory_look_back=timedelta(days=2), **changes)


CASE = Person(
    id="P0", name="Case Zero", id_number="110105199001011234", address="1 Chaoyang Rd", region="110105",
    status="confirmed", onset_at=t(8, day=18), reported_at=t(9), confirmed_at=t(8, day=20), isolated_at=t(9),
)


def persons_at_11() -> list[Person]:
    return [
        Person(id="C1", name="Close One", id_number="110105199202020000", address="1 Chaoyang Rd"),
        Person(id="C2", name="Close Two", address="2 Chaoyang Rd"),
        Person(id="S1", name="Second One", phone="13800000001"),
    ]


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Story:
    store: object
    policy: DeadlinePolicy
    clock: Clock = field(default_factory=lambda: Clock(t(9)))
    results: list[SweepResult] = field(default_factory=list)

    @property
    def repo(self):
        return deadline_repository(self.store)

    def write(self, now: datetime, **batch) -> None:
        b = GraphBatch(**batch)
        self.store.apply(b)
        touched = touched_person_ids(self.store, b)
        rederive_affected(self.store, touched, policy=TRACING, deadline_policy=self.policy, now=now)

    def update_person(self, now: datetime, person_id: str, **fields) -> None:
        person = self.store.get_persons([person_id])[person_id]
        self.write(now, persons=[person.model_copy(update=fields)])

    def events(self) -> dict[datetime, Callable[[datetime], None]]:
        def at_09(now):
            self.write(now, persons=[CASE], places=[
                Place(id="home", kind="home"), Place(id="mall", kind="mall"), Place(id="cafe", kind="restaurant")
            ], visits=[Visit(id="V1", person_id="P0", place_id="home", start=t(0, day=16), end=t(0, day=18))])

        def at_11(now):
            self.write(now, persons=persons_at_11(), events=[
                ContactEvent(id="e1", a="P0", b="C1", start=t(10, day=19), end=t(11, day=19), kind="household"),
                ContactEvent(id="e2", a="P0", b="C2", start=t(12, day=19), end=t(13, day=19), kind="meal"),
                ContactEvent(id="e3", a="C1", b="S1", start=t(18, day=19), end=t(19, day=19), kind="meal"),
            ], visits=[Visit(id="V2", person_id="P0", place_id="mall", start=t(2, day=19), end=t(4, day=19))])

        def at_14(now):
            self.write(now, persons=[
                Person(id="C3", phone="13800000003", lat=39.9, lon=116.4),
                Person(id="S2", name="Second Two", phone="13800000004", address="4 Haidian Rd"),
                Person(id="G1", name="General One", address="5 Xicheng Rd"),
            ], events=[
                ContactEvent(id="e4", a="P0", b="C3", start=t(9, day=18), end=t(10, day=18), kind="workplace"),
                ContactEvent(id="e5", a="C3", b="S2", start=t(20, day=18), end=t(21, day=18), kind="meal"),
                ContactEvent(id="e6", a="P0", b="G1", start=t(15, day=19), end=t(16, day=19), kind="venue",
                             closeness="general"),
            ])

        def arrive(*pids):
            def go(now):
                for pid in pids:
                    self.repo.record_isolation_arrival(pid, "H1", now)
            return go

        return {
            t(9): at_09,
            t(10): lambda now: self.update_person(now, "P0", household_id="HH-P0"),
            t(10, 30): lambda now: record_arrival(self.repo, INV, investigator="inv-7", arrived_at=now, now=now),
            t(11): at_11,
            t(12): lambda now: self.update_person(now, "C2", phone="13800000002"),
            t(12, 50): lambda now: self.update_person(now, "S1", address="3 Chaoyang Rd"),
            t(14): at_14,
            t(14, 40): lambda now: self.update_person(now, "C3", name="Close Three"),
            t(15): lambda now: self.update_person(now, "P0", attributes={"workplace": "Chaoyang Mall, shop 12"}),
            t(16, 30): arrive("C1", "C2", "C3"),
            t(18): arrive("S1", "S2"),
            t(20): lambda now: self.write(now, visits=[
                Visit(id="V3", person_id="P0", place_id="cafe", start=t(0, day=20), end=t(1, day=20))
            ]),
            t(9, 30, day=21): lambda now: self.update_person(now, "G1", phone="13800000005"),
        }

    def sweep(self) -> SweepResult:
        result = sweep_deadlines(self.store, self.repo, policy=self.policy, now=self.clock.now)
        assert not result.errors, result.errors
        self.results.append(result)
        return result

    def run(self, until: datetime, *, start: datetime | None = None, sweep: Callable[[], object] | None = None,
            tick: timedelta = timedelta(minutes=15)) -> None:
        """Step the clock over ticks and event times in [start, until]; sweep first at ticks, then events."""
        start = start or t(9)
        events = {k: v for k, v in self.events().items() if start <= k <= until}
        ticks, now = set(), start
        while now <= until:
            ticks.add(now)
            now += tick
        for moment in sorted(ticks | set(events)):
            self.clock.now = moment
            if moment in ticks:
                (sweep or self.sweep)()
            if moment in events:
                events[moment](moment)
