#!/usr/bin/env python3
"""Deterministic synthetic outbreak in a city, for benchmarks and load tests.

The same ``(n_persons, n_events, seed, days, case_rate)`` always gives the
same graph, byte for byte, whichever sink it goes to (store batches or CSV).

Structure
---------
* **Households** of 1–6 persons (shared ``household_id`` and region). Every
  pair of members has household contacts covering the whole period: one
  event per night when the event budget allows, otherwise nights merged into
  multi-day intervals (see "Event budget").
* **Workplaces and school classes** (heavy-tailed sizes, 2–500), plus a few
  clinics: each member meets one to three ring neighbours of its group on
  repeated random weekdays.
* **Gatherings** on every day (more at weekends): meals (cliques of 2–8,
  close), venue encounters (2 to ~150 persons, mostly ``closeness=general``),
  shared rides and clinic consultations. Participants are drawn by a
  Pareto-distributed activity weight, so a few super-spreaders attend many
  of them and the degree distribution is heavy-tailed. Venue popularity is
  Zipf-like.
* **Cases**: ``case_rate`` of the persons (default 1%), 85% confirmed with an
  onset, 15% asymptomatic with a sampling time. About a third are seeded in
  the community, the rest infected by an earlier case's household member,
  colleague or a community contact, which spreads onsets over ~30 days.
  Many of these infections get a ``TransmissionLink``. Cases are isolated
  shortly after their report; most of their household members are
  quarantined too, and isolated persons have no contacts outside their
  household afterwards.
* Timestamps fall in ``[start, start + days)`` (default 2022-04-01, 45
  days), at minute resolution, UTC. ``now`` is the end of the period.

Event budget
------------
``n_events`` is met exactly: 25% for households, 35% for workplaces and
schools (both spread evenly over their pairs), the rest (plus whatever the
isolation rules drop) for gatherings, split over the days. At 5 events per
person (the 100k / 500k benchmark size) a household pair gets about one
interval spanning the period and a pair of colleagues meets two or three
times; with a bigger budget household contacts become nightly.

Use
---
As a module (``scripts/`` on ``sys.path``)::

    from generate_outbreak import Outbreak, generate
    for batch in generate(100_000, 500_000, seed=1):   # GraphBatch chunks
        store.apply(batch)

    outbreak = Outbreak(100_000, 500_000, seed=1)
    outbreak.case_ids, outbreak.now                     # for tracing afterwards

As a command writing CSV files that ``tracegraph import FILE --kind ...``
reads without any ``--map`` (columns are named after the model fields)::

    python scripts/generate_outbreak.py --persons 100000 --events 500000 --seed 1 --out var/outbreak
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import sys
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from graph_models import (  # noqa: E402
    Closeness,
    ContactEvent,
    ContactKind,
    ContactSource,
    Person,
    PersonStatus,
    Place,
    TransmissionLink,
    Visit,
)
from tracing.store.port import GraphBatch  # noqa: E402

__all__ = ["DEFAULT_START", "Outbreak", "OutbreakStats", "generate", "write_csv"]

DEFAULT_START = datetime(2022, 4, 1, tzinfo=timezone.utc)
DAY = 1440  # minutes

HOUSEHOLD_SIZES = (1, 2, 3, 4, 5, 6)
HOUSEHOLD_WEIGHTS = (27, 30, 20, 14, 6, 3)
SHARE_HOUSEHOLD = 0.25
SHARE_WORK = 0.35
#: Relative frequency of gathering kinds (by events produced, roughly).
GATHERING_WEIGHTS = {"meal": 0.15, "venue": 0.16, "vehicle": 0.06, "healthcare": 0.03}
WEEKEND_BOOST = 1.3
ACTIVITY_ALPHA = 1.5  # Pareto shape of the activity weight: mean 3, heavy tail
ACTIVITY_CAP = 400.0
NEVER = 1 << 30  # "not isolated", in minutes

REGIONS = tuple(f"3301{d:02d}" for d in range(1, 17))
VENUE_KINDS = ("restaurant", "mall", "market", "gym", "bar", "cinema", "supermarket", "church", "karaoke", "hotel")

KINDS = ContactKind
SOURCES = ContactSource
CLOSE, GENERAL = Closeness.CLOSE, Closeness.GENERAL

PERSON_COLUMNS = (
    "id", "household_id", "region", "status", "onset_at", "sampled_at", "confirmed_at", "reported_at",
    "isolated_at", "age", "sex",
)
PLACE_COLUMNS = ("id", "name", "kind", "region")
EVENT_COLUMNS = ("id", "a", "b", "start", "end", "kind", "place_id", "source", "closeness")
VISIT_COLUMNS = ("id", "person_id", "place_id", "start", "end")
LINK_COLUMNS = ("infector", "infectee", "exposure", "exposed_at")


@dataclass
class OutbreakStats:
    """What was generated, for reports (filled in as the events stream out)."""

    persons: int = 0
    households: int = 0
    places: int = 0
    cases: int = 0
    confirmed: int = 0
    asymptomatic: int = 0
    isolated: int = 0
    links: int = 0
    events: int = 0
    visits: int = 0
    events_by_kind: dict[str, int] | None = None
    degree_mean: float = 0.0
    degree_p50: int = 0
    degree_p99: int = 0
    degree_max: int = 0


class Outbreak:
    """One synthetic city: structure and cases are built at once, events stream on demand.

    Parameters
    ----------
    n_persons, n_events : int
        Exact numbers of persons and contact events.
    seed : int
        Everything random derives from it.
    days : int
        Length of the period; ``now`` is ``start + days``.
    start : datetime
        First day (aware, UTC).
    case_rate : float
        Fraction of persons who are confirmed or asymptomatic cases.
    visits : bool
        Also produce ``Visit`` records for meal and venue gatherings (not
        counted in ``n_events``; they do not change the events).
    """

    def __init__(
        self,
        n_persons: int,
        n_events: int,
        *,
        seed: int = 1,
        days: int = 45,
        start: datetime = DEFAULT_START,
        case_rate: float = 0.01,
        visits: bool = False,
    ) -> None:
        if n_persons < 2:
            raise ValueError("need at least 2 persons")
        if n_events < 0 or days < 7:
            raise ValueError("need n_events >= 0 and days >= 7")
        self.n_persons, self.n_events, self.seed, self.days = n_persons, n_events, seed, days
        self.start = start.astimezone(timezone.utc)
        self.now = self.start + timedelta(days=days)
        self.end_minute = days * DAY  # exclusive
        self.with_visits = visits
        self._lenient = False
        self.stats = OutbreakStats(persons=n_persons)

        width = max(7, len(str(n_persons)))
        self.ids = [f"P{i + 1:0{width}d}" for i in range(n_persons)]
        self._event_width = max(8, len(str(n_events)))
        self._dt = [self.start + timedelta(minutes=m) for m in range(self.end_minute + 3 * DAY)]
        self._iso: list[str] | None = None
        self.weekend = [(self.start + timedelta(days=d)).weekday() >= 5 for d in range(days)]

        rng = random.Random(f"{seed}:structure")
        self._build_households(rng)
        self._build_groups(rng)
        self._build_places(rng)
        self.activity_cum = list(accumulate(min(ACTIVITY_CAP, rng.paretovariate(ACTIVITY_ALPHA)) for _ in range(n_persons)))
        self._build_cases(random.Random(f"{seed}:cases"), case_rate)
        self._plan_events(random.Random(f"{seed}:plan"))

    # --- structure -----------------------------------------------------------------
    def _build_households(self, rng: random.Random) -> None:
        n = self.n_persons
        cum = list(accumulate(HOUSEHOLD_WEIGHTS))
        self.hh_start = array("i")
        self.hh_of = array("i", bytes(4 * n))
        self.age = array("b", bytes(n))
        self.sex = bytearray(n)  # 0 F, 1 M
        self.hh_region: list[str] = []
        region_cum = list(accumulate(1 / (i + 1) ** 0.6 for i in range(len(REGIONS))))
        p = 0
        while p < n:
            size = min(rng.choices(HOUSEHOLD_SIZES, cum_weights=cum)[0], n - p)
            h = len(self.hh_start)
            self.hh_start.append(p)
            self.hh_region.append(rng.choices(REGIONS, cum_weights=region_cum)[0])
            head = rng.randint(20, 88)
            for k in range(size):
                person = p + k
                self.hh_of[person] = h
                if k == 0:
                    age = head
                elif k == 1 and rng.random() < 0.8:
                    age = max(18, min(95, head + rng.randint(-6, 6)))
                elif head < 60 and rng.random() < 0.75:
                    age = rng.randint(0, min(18, max(0, head - 18)))
                else:
                    age = rng.randint(18, 95)
                self.age[person] = age
                self.sex[person] = rng.random() < 0.5
            p += size
        self.hh_start.append(n)
        self.stats.households = len(self.hh_start) - 1
        hw = len(str(self.stats.households))
        self.hh_ids = [f"H{h + 1:0{max(6, hw)}d}" for h in range(self.stats.households)]

    def household_members(self, person: int) -> range:
        h = self.hh_of[person]
        return range(self.hh_start[h], self.hh_start[h + 1])

    def _build_groups(self, rng: random.Random) -> None:
        """Workplaces, school classes and clinics: flat member array with offsets."""
        n = self.n_persons
        workers = [p for p in range(n) if 22 <= self.age[p] <= 64 and rng.random() < 0.78]
        students = [p for p in range(n) if 5 <= self.age[p] <= 18]
        rng.shuffle(workers)
        rng.shuffle(students)
        students.sort(key=lambda p: self.age[p])  # classes of one age (stable: shuffled within)
        n_staff = max(2, len(workers) // 150)
        staff, workers = workers[:n_staff], workers[n_staff:]

        self.group_kind: list[str] = []  # workplace, school, clinic
        self.goff = array("i", [0])
        self.gmem = array("i")
        self.grp_of = array("i", [-1]) * n

        def add(kind: str, members: list[int]) -> None:
            g = len(self.group_kind)
            self.group_kind.append(kind)
            self.gmem.extend(members)
            self.goff.append(len(self.gmem))
            for m in members:
                self.grp_of[m] = g

        i = 0
        while i < len(workers):
            size = max(2, min(500, int(rng.lognormvariate(math.log(8), 1.1))))
            add("workplace", workers[i : i + size])
            i += size
        i = 0
        while i < len(students):
            size = rng.randint(25, 42)
            add("school", students[i : i + size])
            i += size
        i = 0
        while i < len(staff):
            size = rng.randint(4, 25)
            add("clinic", staff[i : i + size])
            i += size
        self.clinics = [g for g, kind in enumerate(self.group_kind) if kind == "clinic"]

    def group_members(self, g: int) -> array:
        return self.gmem[self.goff[g] : self.goff[g + 1]]

    def _build_places(self, rng: random.Random) -> None:
        """Venues (Zipf popularity), transit lines; groups are places too."""
        n_venues = max(20, self.n_persons // 150)
        vw = max(5, len(str(n_venues)))
        self.venues = [f"V{v + 1:0{vw}d}" for v in range(n_venues)]
        self.venue_kind = [rng.choice(VENUE_KINDS) for _ in range(n_venues)]
        self.venue_region = [rng.choice(REGIONS) for _ in range(n_venues)]
        ranks = list(range(1, n_venues + 1))
        rng.shuffle(ranks)
        self.venue_cum = list(accumulate(1.0 / r for r in ranks))
        self.restaurants = [v for v in range(n_venues) if self.venue_kind[v] == "restaurant"] or [0]
        self.restaurant_cum = list(accumulate(1.0 / ranks[v] for v in self.restaurants))
        n_lines = max(5, self.n_persons // 5000)
        self.lines = [f"T{t + 1:04d}" for t in range(n_lines)]
        gw = max(5, len(str(len(self.group_kind))))
        prefix = {"workplace": "W", "school": "S", "clinic": "C"}
        self.group_place = [f"{prefix[k]}{g + 1:0{gw}d}" for g, k in enumerate(self.group_kind)]
        self.stats.places = n_venues + n_lines + len(self.group_kind)

    # --- cases -----------------------------------------------------------------------
    def _pick_active(self, rng: random.Random, k: int = 1) -> list[int]:
        return rng.choices(range(self.n_persons), cum_weights=self.activity_cum, k=k)

    def _build_cases(self, rng: random.Random, case_rate: float) -> None:
        n = self.n_persons
        n_cases = min(n, max(1, round(n * case_rate)))
        infected: dict[int, int] = {}  # person -> infection minute
        order: list[int] = []
        links: list[tuple[int, int, str, int]] = []
        latest_infection = int((self.days - 12) * DAY)
        attempts = 0
        while len(order) < n_cases and attempts < 50 * n_cases:
            attempts += 1
            if not order or rng.random() < 0.33:
                person = self._pick_active(rng)[0]
                at = rng.randint(2 * DAY, int(self.days * 0.55) * DAY)
                infector, how = None, None
            else:
                infector = order[rng.randrange(len(order))]
                at = infected[infector] + rng.randint(2 * DAY, 6 * DAY)
                if at > latest_infection:
                    continue
                roll = rng.random()
                members = self.household_members(infector)
                g = self.grp_of[infector]
                if roll < 0.45 and len(members) > 1:
                    person, how = rng.choice(members), "household"
                elif roll < 0.75 and g >= 0:
                    person, how = rng.choice(self.group_members(g)), "workplace" if self.group_kind[g] != "school" else "school"
                else:
                    person, how = self._pick_active(rng)[0], "venue"
            if person in infected:
                continue
            infected[person] = at
            order.append(person)
            if infector is not None and rng.random() < (0.7 if how != "venue" else 0.2):
                links.append((infector, person, how, at))

        # Dates (minutes); None where unknown.
        self.status = {}  # person -> PersonStatus, cases only
        self.case_dates: dict[int, tuple[int | None, ...]] = {}
        self.iso_at = array("i", [NEVER]) * n
        for person in order:
            at = infected[person]
            if rng.random() < 0.15:
                status, onset = PersonStatus.ASYMPTOMATIC, None
                sampled = at + rng.randint(2 * DAY, 6 * DAY)
            else:
                status = PersonStatus.CONFIRMED
                onset = at + rng.randint(2 * DAY, 7 * DAY)
                sampled = onset + rng.randint(120, 2 * DAY)
            confirmed = sampled + rng.randint(360, 1800)
            reported = confirmed + rng.randint(0, 360)
            isolated = reported + rng.randint(0, 720) if rng.random() < 0.9 else None
            self.status[person] = status
            self.case_dates[person] = (onset, sampled, confirmed, reported, isolated)
            if isolated is not None:
                self.iso_at[person] = min(self.iso_at[person], isolated)
            for member in self.household_members(person):  # 居家/集中隔离 of the household
                if member != person and rng.random() < 0.85:
                    self.iso_at[member] = min(self.iso_at[member], reported + rng.randint(120, DAY))
        self.case_order = order
        self.case_ids = sorted(self.ids[p] for p in order)
        self.links = links
        self.stats.cases = len(order)
        self.stats.confirmed = sum(1 for s in self.status.values() if s is PersonStatus.CONFIRMED)
        self.stats.asymptomatic = self.stats.cases - self.stats.confirmed
        self.stats.links = len(links)
        self.stats.isolated = sum(1 for v in self.iso_at if v < NEVER)

    # --- event plan --------------------------------------------------------------------
    def _plan_events(self, rng: random.Random) -> None:
        """Spread the household and workplace budgets over their pairs and days."""
        days = self.days
        # Household pairs.
        ha, hb = array("i"), array("i")
        for h in range(self.stats.households):
            lo, hi = self.hh_start[h], self.hh_start[h + 1]
            for x in range(lo, hi):
                for y in range(x + 1, hi):
                    ha.append(x)
                    hb.append(y)
        self.ha, self.hb = ha, hb
        budget = round(self.n_events * SHARE_HOUSEHOLD)
        per_pair = self._spread(rng, budget, len(ha), cap=days)
        self.house_day = [(array("i"), array("h")) for _ in range(days)]
        planned = 0
        for pair, k in enumerate(per_pair):
            if not k:
                continue
            bounds = [round(i * days / k) for i in range(k + 1)]
            for s, e in zip(bounds, bounds[1:]):
                self.house_day[s][0].append(pair)
                self.house_day[s][1].append(e)
            planned += k

        # Colleague pairs: ring neighbours, density chosen so pairs meet repeatedly.
        work_budget = round(self.n_events * SHARE_WORK)
        members_total = len(self.gmem)
        ring = max(1, min(3, round(work_budget / max(1, members_total) / 3)))
        wa, wb, wg = array("i"), array("i"), array("i")
        for g in range(len(self.group_kind)):
            m = self.group_members(g)
            s = len(m)
            if s < 2:
                continue
            if s * (s - 1) // 2 <= ring * s:
                for x in range(s):
                    for y in range(x + 1, s):
                        wa.append(m[x]), wb.append(m[y]), wg.append(g)
            else:
                for j in range(1, ring + 1):
                    for x in range(s):
                        wa.append(m[x]), wb.append(m[(x + j) % s]), wg.append(g)
        self.wa, self.wb, self.wg = wa, wb, wg
        weekdays = [d for d in range(days) if not self.weekend[d]]
        per_pair = self._spread(rng, work_budget, len(wa), cap=len(weekdays))
        self.work_day = [array("i") for _ in range(days)]
        for pair, k in enumerate(per_pair):
            for d in rng.sample(weekdays, k) if k else ():
                self.work_day[d].append(pair)
            planned += k

        # Gatherings take the rest, more at weekends.
        rest = max(0, self.n_events - planned)
        weights = [WEEKEND_BOOST if w else 1.0 for w in self.weekend]
        total = sum(weights)
        cum = [round(rest * c / total) for c in accumulate(weights)]
        self.gathering_quota = [b - a for a, b in zip([0, *cum], cum)]

    @staticmethod
    def _spread(rng: random.Random, budget: int, pairs: int, *, cap: int) -> list[int]:
        """``budget`` events over ``pairs`` pairs as evenly as possible, at most ``cap`` each."""
        if not pairs or budget <= 0:
            return [0] * pairs
        base, rem = divmod(budget, pairs)
        if base >= cap:
            return [cap] * pairs
        counts = [base] * pairs
        for pair in rng.sample(range(pairs), rem):
            counts[pair] += 1
        return counts

    # --- events ------------------------------------------------------------------------
    def event_days(self) -> Iterator[tuple[list[tuple], list[tuple]]]:
        """Per day, in day order: that day's events and visits, each sorted by start.

        Event rows are ``(id, a, b, start, end, kind, place_id, source,
        closeness)`` and visit rows ``(id, person_id, place_id, start, end)``,
        with ``start``/``end`` in minutes since :attr:`start` and enums as
        members. Restartable: every call yields the same rows.
        """
        rng = random.Random(f"{self.seed}:events")
        vrng = random.Random(f"{self.seed}:visits")
        ids, iso, end_limit = self.ids, self.iso_at, self.end_minute - 1
        degree = array("i", bytes(4 * self.n_persons))
        by_kind: dict[str, int] = {k.value: 0 for k in KINDS}
        next_event = next_visit = 0
        ew = self._event_width
        carry = 0
        weights = list(GATHERING_WEIGHTS.values())
        kinds = list(GATHERING_WEIGHTS)
        for d in range(self.days):
            base = d * DAY
            raw: list[tuple] = []  # (start, end, a, b, kind, place, source, closeness)
            visits: list[tuple] = []  # (start, end, person, place)
            # Household nights (home isolation does not stop them).
            pairs, ends = self.house_day[d]
            for pair, e in zip(pairs, ends):
                s = base + 1080 + rng.randint(0, 180)
                end = min(e * DAY + 420 + rng.randint(0, 90), end_limit)
                raw.append((s, end, self.ha[pair], self.hb[pair], KINDS.HOUSEHOLD, None, SOURCES.INTERVIEW, CLOSE))
            # Colleagues and classmates on weekdays.
            for pair in self.work_day[d]:
                a, b = self.wa[pair], self.wb[pair]
                s = base + 480 + rng.randint(0, 300)
                if s >= iso[a] or s >= iso[b]:
                    carry += 1
                    continue
                end = min(s + rng.randint(30, 360), end_limit)
                close = CLOSE if rng.random() < 0.85 else GENERAL
                source = SOURCES.INTERVIEW if rng.random() < 0.8 else SOURCES.BIG_DATA
                raw.append((s, end, a, b, KINDS.WORKPLACE, self.group_place[self.wg[pair]], source, close))
            # Gatherings until the day's quota is met.
            quota = self.gathering_quota[d] + carry
            carry = 0
            got = misses = 0
            while got < quota:
                kind = rng.choices(kinds, weights)[0]
                # In a tiny graph everybody may be isolated: then let gatherings ignore isolation.
                self._lenient = misses > 200
                made = getattr(self, f"_{kind}")(rng, vrng, base, d, visits)
                if not made:
                    misses += 1
                    if misses > 20_000:
                        raise RuntimeError(f"cannot place {quota - got} more events on day {d}: graph too small?")
                    continue
                misses = 0
                if got + len(made) > quota:
                    made = made[: quota - got]
                raw.extend(made)
                got += len(made)

            raw.sort(key=lambda r: r[0])
            rows = []
            for s, end, a, b, kind, place, source, close in raw:
                rows.append((f"E{next_event + 1:0{ew}d}", ids[a], ids[b], s, end, kind, place, source, close))
                next_event += 1
                degree[a] += 1
                degree[b] += 1
                by_kind[kind.value] += 1
            visit_rows = []
            if self.with_visits:
                visits.sort(key=lambda v: v[0])
                for s, end, person, place in visits:
                    visit_rows.append((f"VS{next_visit + 1:0{ew}d}", ids[person], place, s, end))
                    next_visit += 1
            yield rows, visit_rows

        degrees = sorted(degree)
        self.stats.events = next_event
        self.stats.visits = next_visit
        self.stats.events_by_kind = {k: v for k, v in by_kind.items() if v}
        self.stats.degree_mean = round(sum(degrees) / len(degrees), 2)
        self.stats.degree_p50 = degrees[len(degrees) // 2]
        self.stats.degree_p99 = degrees[min(len(degrees) - 1, int(len(degrees) * 0.99))]
        self.stats.degree_max = degrees[-1]

    def _present(self, people: list[int], at: int) -> list[int]:
        """Distinct ``people`` not isolated at ``at``."""
        if self._lenient:
            return list(dict.fromkeys(people))
        iso = self.iso_at
        return [p for p in dict.fromkeys(people) if at < iso[p]]

    def _meal(self, rng: random.Random, vrng: random.Random, base: int, d: int, visits: list) -> list[tuple]:
        size = rng.choices((2, 3, 4, 5, 6, 8), (35, 25, 18, 10, 7, 5))[0]
        anchor = self._pick_active(rng)[0]
        g = self.grp_of[anchor]
        lunch = rng.random() < 0.45
        s = base + (690 + rng.randint(0, 90) if lunch else 1080 + rng.randint(0, 150))
        if lunch and g >= 0 and not self.weekend[d]:
            members = self.group_members(g)
            people = [anchor, *(members[rng.randrange(len(members))] for _ in range(size - 1))]
        else:
            people = [anchor, *self._pick_active(rng, size - 1)]
        people = self._present(people, s)
        if len(people) < 2:
            return []
        end = min(s + rng.randint(45, 150), self.end_minute - 1)
        v = self.restaurants[rng.choices(range(len(self.restaurants)), cum_weights=self.restaurant_cum)[0]]
        place = self.venues[v]
        source = SOURCES.INTERVIEW if rng.random() < 0.7 else SOURCES.VENUE_SCAN
        made = []
        for i, a in enumerate(people):
            for b in people[i + 1 :]:
                made.append((s, end, a, b, KINDS.MEAL, place, source, CLOSE))
        if self.with_visits:
            for p in people:
                visits.append((s + vrng.randint(0, 10), end - vrng.randint(0, 10), p, place))
        return made

    def _venue(self, rng: random.Random, vrng: random.Random, base: int, d: int, visits: list) -> list[tuple]:
        size = min(150, 1 + int(rng.paretovariate(1.15) * 1.5))
        v = rng.choices(range(len(self.venues)), cum_weights=self.venue_cum)[0]
        place = self.venues[v]
        s0 = base + 540 + rng.randint(0, 780)
        length = rng.randint(20, 180)
        people = self._present(self._pick_active(rng, size), s0)
        if len(people) < 2:
            return []
        made, seen = [], set()
        last = self.end_minute - 1
        for i, a in enumerate(people):
            for _ in range(min(len(people) - 1, rng.randint(1, 3))):
                b = people[rng.randrange(len(people))]
                if b == a or (a, b) in seen or (b, a) in seen:
                    continue
                seen.add((a, b))
                s = s0 + rng.randint(0, length // 2)
                end = min(s + rng.randint(5, length), last)
                close = CLOSE if rng.random() < 0.2 else GENERAL
                source = SOURCES.VENUE_SCAN if rng.random() < 0.7 else SOURCES.BIG_DATA
                made.append((s, end, a, b, KINDS.VENUE, place, source, close))
        if self.with_visits:
            for p in people:
                vs = s0 + vrng.randint(0, length // 2)
                visits.append((vs, min(vs + vrng.randint(10, length), last), p, place))
        return made

    def _vehicle(self, rng: random.Random, vrng: random.Random, base: int, d: int, visits: list) -> list[tuple]:
        s = base + (420 + rng.randint(0, 150) if rng.random() < 0.5 else 1020 + rng.randint(0, 150))
        people = self._present(self._pick_active(rng, rng.randint(2, 4)), s)
        if len(people) < 2:
            return []
        end = min(s + rng.randint(10, 60), self.end_minute - 1)
        line = self.lines[rng.randrange(len(self.lines))]
        made = []
        for i, a in enumerate(people):
            for b in people[i + 1 :]:
                close = CLOSE if rng.random() < 0.5 else GENERAL
                made.append((s, end, a, b, KINDS.VEHICLE, line, SOURCES.BIG_DATA, close))
        return made

    def _healthcare(self, rng: random.Random, vrng: random.Random, base: int, d: int, visits: list) -> list[tuple]:
        if not self.clinics:
            return []
        g = self.clinics[rng.randrange(len(self.clinics))]
        members = self.group_members(g)
        made = []
        s = base + 480 + rng.randint(0, 540)
        for _ in range(rng.randint(1, 4)):
            staff = members[rng.randrange(len(members))]
            patient = rng.randrange(self.n_persons)
            if patient == staff or not self._lenient and (s >= self.iso_at[staff] or s >= self.iso_at[patient]):
                continue
            end = min(s + rng.randint(10, 40), self.end_minute - 1)
            source = SOURCES.INTERVIEW if rng.random() < 0.9 else SOURCES.ASSIST_REQUEST
            made.append((s, end, staff, patient, KINDS.HEALTHCARE, self.group_place[g], source, CLOSE))
            s = end
        return made

    # --- rows ---------------------------------------------------------------------------
    def person_rows(self) -> Iterator[tuple]:
        """``(id, household_id, region, status, onset, sampled, confirmed, reported, isolated, age, sex)``; minutes or None."""
        for p in range(self.n_persons):
            h = self.hh_of[p]
            status = self.status.get(p, PersonStatus.NONE)
            dates = self.case_dates.get(p)
            if dates is None:
                iso = self.iso_at[p]
                dates = (None, None, None, None, iso if iso < NEVER else None)
            yield (self.ids[p], self.hh_ids[h], self.hh_region[h], status, *dates, self.age[p], "M" if self.sex[p] else "F")

    def place_rows(self) -> list[tuple]:
        """``(id, name, kind, region)``."""
        rows = [(self.venues[v], f"{self.venue_kind[v]} {v}", self.venue_kind[v], self.venue_region[v]) for v in range(len(self.venues))]
        rows += [(line, f"bus line {i}", "transit", None) for i, line in enumerate(self.lines)]
        for g, kind in enumerate(self.group_kind):
            region = self.hh_region[self.hh_of[self.gmem[self.goff[g]]]] if self.goff[g + 1] > self.goff[g] else None
            rows.append((self.group_place[g], f"{kind} {g}", kind, region))
        return rows

    def link_rows(self) -> list[tuple]:
        """``(infector, infectee, exposure, exposed_at)``, exposed_at in minutes."""
        return [(self.ids[a], self.ids[b], how, at) for a, b, how, at in self.links]

    # --- sinks ----------------------------------------------------------------------------
    def dt(self, minute: int | None) -> datetime | None:
        return None if minute is None else self._dt[minute]

    def iso_text(self, minute: int | None) -> str:
        if minute is None:
            return ""
        if self._iso is None:
            self._iso = [t.isoformat() for t in self._dt]
        return self._iso[minute]

    def persons(self) -> Iterator[Person]:
        dt = self.dt
        for pid, hid, region, status, onset, sampled, confirmed, reported, isolated, age, sex in self.person_rows():
            yield Person.model_construct(
                id=pid, household_id=hid, region=region, status=status, onset_at=dt(onset), sampled_at=dt(sampled),
                confirmed_at=dt(confirmed), reported_at=dt(reported), isolated_at=dt(isolated),
                attributes={"age": age, "sex": sex},
            )

    def places(self) -> list[Place]:
        return [Place.model_construct(id=i, name=n, kind=k, region=r) for i, n, k, r in self.place_rows()]

    def transmission_links(self) -> list[TransmissionLink]:
        return [
            TransmissionLink.model_construct(infector=a, infectee=b, exposure=how, exposed_at=self._dt[at])
            for a, b, how, at in self.link_rows()
        ]

    def event_models(self) -> Iterator[tuple[list[ContactEvent], list[Visit]]]:
        """Per day: validated-shape events and visits, built with ``model_construct`` (no re-validation)."""
        dt = self._dt
        construct_event, construct_visit = ContactEvent.model_construct, Visit.model_construct
        event_fields, visit_fields = set(ContactEvent.model_fields), set(Visit.model_fields)
        for rows, visit_rows in self.event_days():
            events = [
                construct_event(
                    event_fields, id=i, a=a, b=b, start=dt[s], end=dt[e], kind=k, place_id=pl, source=src, closeness=c
                )
                for i, a, b, s, e, k, pl, src, c in rows
            ]
            visits = [
                construct_visit(visit_fields, id=i, person_id=p, place_id=pl, start=dt[s], end=dt[e])
                for i, p, pl, s, e in visit_rows
            ]
            yield events, visits

    def batches(self, batch_size: int = 10_000) -> Iterator[GraphBatch]:
        """Places, then persons, then links, then events (and visits) in chunks of ``batch_size``."""
        yield GraphBatch(places=self.places())
        chunk: list[Person] = []
        for person in self.persons():
            chunk.append(person)
            if len(chunk) == batch_size:
                yield GraphBatch(persons=chunk)
                chunk = []
        if chunk:
            yield GraphBatch(persons=chunk)
        if self.links:
            yield GraphBatch(links=self.transmission_links())
        events: list[ContactEvent] = []
        visits: list[Visit] = []
        for day_events, day_visits in self.event_models():
            events.extend(day_events)
            visits.extend(day_visits)
            while len(events) >= batch_size:
                yield GraphBatch(events=events[:batch_size], visits=visits)
                events, visits = events[batch_size:], []
        if events or visits:
            yield GraphBatch(events=events, visits=visits)

    def write_csv(self, directory: str | Path) -> dict[str, Path]:
        """Write persons.csv, places.csv, contacts.csv, links.csv (and visits.csv); returns the paths by kind."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        iso = self.iso_text
        paths = {kind: out / f"{name}.csv" for kind, name in (
            ("persons", "persons"), ("places", "places"), ("contacts", "contacts"), ("links", "links"),
        )}
        with open(paths["persons"], "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(PERSON_COLUMNS)
            for pid, hid, region, status, *dates, age, sex in self.person_rows():
                w.writerow((pid, hid, region, status.value, *(iso(m) for m in dates), age, sex))
        with open(paths["places"], "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(PLACE_COLUMNS)
            w.writerows((i, n, k, r or "") for i, n, k, r in self.place_rows())
        with open(paths["links"], "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(LINK_COLUMNS)
            w.writerows((a, b, how, iso(at)) for a, b, how, at in self.link_rows())
        visit_fh = None
        if self.with_visits:
            paths["visits"] = out / "visits.csv"
            visit_fh = open(paths["visits"], "w", newline="", encoding="utf-8")
            vw = csv.writer(visit_fh)
            vw.writerow(VISIT_COLUMNS)
        try:
            with open(paths["contacts"], "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(EVENT_COLUMNS)
                for rows, visit_rows in self.event_days():
                    w.writerows(
                        (i, a, b, iso(s), iso(e), k.value, pl or "", src.value, c.value)
                        for i, a, b, s, e, k, pl, src, c in rows
                    )
                    if visit_fh is not None:
                        vw.writerows((i, p, pl, iso(s), iso(e)) for i, p, pl, s, e in visit_rows)
        finally:
            if visit_fh is not None:
                visit_fh.close()
        return paths


def generate(
    n_persons: int,
    n_events: int,
    *,
    seed: int = 1,
    batch_size: int = 10_000,
    visits: bool = False,
    days: int = 45,
    case_rate: float = 0.01,
) -> Iterator[GraphBatch]:
    """The outbreak as :class:`GraphBatch` chunks ready for ``store.apply`` (see :meth:`Outbreak.batches`)."""
    outbreak = Outbreak(n_persons, n_events, seed=seed, visits=visits, days=days, case_rate=case_rate)
    yield from outbreak.batches(batch_size)


def write_csv(directory: str | Path, n_persons: int, n_events: int, *, seed: int = 1, **options) -> Outbreak:
    """Generate and write the CSV files; returns the outbreak (for its ``case_ids``, ``now`` and ``stats``)."""
    outbreak = Outbreak(n_persons, n_events, seed=seed, **options)
    outbreak.write_csv(directory)
    return outbreak


def import_commands(paths: dict[str, Path], store: str = "sqlite:///var/outbreak.db") -> list[str]:
    """The ``tracegraph import`` commands that load these files (columns are named after model fields)."""
    order = ["places", "persons", "links", "contacts", "visits"]
    return [f"tracegraph import {paths[k]} --kind {k} --store {store}" for k in order if k in paths]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--case-rate", type=float, default=0.01)
    parser.add_argument("--visits", action="store_true", help="also write visits.csv (meal and venue visits)")
    parser.add_argument("--out", type=Path, default=Path("var/outbreak"), help="output directory (default: var/outbreak)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    outbreak = Outbreak(
        args.persons, args.events, seed=args.seed, days=args.days, case_rate=args.case_rate, visits=args.visits
    )
    built = time.perf_counter()
    paths = outbreak.write_csv(args.out)
    done = time.perf_counter()
    s = outbreak.stats
    print(f"structure {built - started:.1f}s, files {done - built:.1f}s -> {args.out}")
    print(
        f"persons {s.persons}  households {s.households}  places {s.places}  events {s.events}  visits {s.visits}\n"
        f"cases {s.cases} (confirmed {s.confirmed}, asymptomatic {s.asymptomatic})  links {s.links}  "
        f"isolated {s.isolated}\nevents per person: mean {s.degree_mean}, p50 {s.degree_p50}, p99 {s.degree_p99}, "
        f"max {s.degree_max}\nby kind: {s.events_by_kind}\nnow = {outbreak.now.isoformat()}"
    )
    print("import with:")
    for command in import_commands(paths):
        print("  " + command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
