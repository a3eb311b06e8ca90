"""Benchmark the deadline sweep: N open investigations, a fraction changing per tick.

    python scripts/bench/bench_deadlines.py                       # 100k investigations, 1 % per tick
    python scripts/bench/bench_deadlines.py --investigations 10000 --ticks 10
    python scripts/bench/bench_deadlines.py --template /tmp/dl-100k.db    # build once, reuse afterwards
    python scripts/bench/bench_deadlines.py --profile /tmp/sweep.prof     # cProfile of the timed sweeps
    python scripts/bench/bench_deadlines.py --phases                      # CPU ms per sweep in each store verb / step
    python scripts/bench/bench_deadlines.py --workers 0                   # no worker process (default: as the service)
    python scripts/bench/bench_deadlines.py --whole                       # marks that say anything may have changed
    python scripts/bench/bench_deadlines.py --warmup 10                   # time 30 ticks after 10 untimed ones
    python scripts/bench/bench_deadlines.py --store bolt://127.0.0.1:7692 --investigations 10000  # Neo4j (wiped!)

Each case has two close contacts, one secondary and one general contact
(derived relations written directly). Cases were reported over the last
three days, so clocks cross their at-risk and due times during the run as
they would in production. Each tick (one simulated minute): a write touches
one contact of ``fraction × N`` random investigations (its phone changes; half
of them had no address and now have one) and marks them dirty the way
``after_graph_change`` does for a change to a contact's fields that leaves the
case's contacts as they were (the marks name the contact: the sweep re-checks
it alone); then one sweep runs. With ``--whole`` the marks say that anything
may have changed (as after a new contact), so every fact of each investigation
is read and evaluated again. Only the sweep is timed (p50 / p99 / max); the
marking cost is reported apart.
As in the service, the sweep hands shares of its dirty investigations to one
worker process on a machine with two or more cores (``--workers N``: N; 0:
none; ``SweepWorkers``, started before the timed ticks); their CPU time is
reported next to the sweeping process's.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import shutil
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from graph_models import ContactClass, Person, TracedContact  # noqa: E402
from graph_models.deadlines import DeadlinePolicy, Investigation  # noqa: E402
from tracing.deadlines import deadline_repository, mark_dirty_for_persons, sweep_deadlines  # noqa: E402
from tracing.deadlines.engine import base_milestones  # noqa: E402
from tracing.deadlines.settings import DeadlineSettings  # noqa: E402
from tracing.scheduler import sweep_workers  # noqa: E402
from tracing.store.port import GraphBatch  # noqa: E402
from tracing.store.sqlite import SQLiteStore  # noqa: E402

NOW = datetime(2022, 4, 20, 12, 0, tzinfo=timezone.utc)
CLASSES = [("a", ContactClass.CLOSE), ("b", ContactClass.CLOSE), ("c", ContactClass.SECONDARY), ("d", ContactClass.GENERAL)]


_NEO4J_DERIVED = {
    cls: (
        "UNWIND $rows AS row MATCH (s:Person {id: row.source_id}) MATCH (p:Person {id: row.person_id}) "
        f"CREATE (s)-[r:{cls.relation}]->(p) SET r.key = row.key, r.case_id = row.case_id, r.exposed_at = 0, "
        "r.evidence = ['e'], r.exposure_count = 1, r.derived_at = 0"
    )
    for cls in ContactClass
}


def _neo4j_derived(tx, query, rows) -> None:
    tx.run(query, rows=rows).consume()


def build(store, n: int, rng: random.Random) -> None:
    repo = deadline_repository(store)
    policy = DeadlinePolicy()
    for lo in range(0, n, 5_000):
        persons, derived, investigations = [], [], []
        for i in range(lo, min(n, lo + 5_000)):
            reported = NOW - timedelta(minutes=rng.randrange(3 * 24 * 60))
            case = Person(id=f"P{i}", status="confirmed", name=f"case {i}", phone="1", address="x", region=f"11{i % 20:04d}",
                          onset_at=reported - timedelta(days=2), reported_at=reported)
            persons.append(case)
            for suffix, cls in CLASSES:
                complete = rng.random() < 0.5
                persons.append(Person(id=f"P{i}{suffix}", name="n", address="a" if complete else None, phone="p"))
                derived.append(TracedContact(case_id=case.id, person_id=f"P{i}{suffix}", contact_class=cls,
                                             source_id=case.id if cls is not ContactClass.SECONDARY else f"P{i}a",
                                             exposed_at=reported - timedelta(days=1), evidence=["e"]))
            inv = Investigation(id=f"inv:P{i}", case_id=case.id, region=case.region, team=f"team-{i % 50}",
                                opened_at=reported, clock_start_at=reported, clock_source="reported_at")
            investigations.append((inv, base_milestones(inv, policy=policy)))
        store.apply(GraphBatch(persons=persons))
        if isinstance(store, SQLiteStore):
            with store.transaction() as conn:  # bulk-load derived relations (what trace_case would store)
                conn.executemany(
                    "INSERT INTO derived_contacts (case_id, person_id, contact_class, source_id, exposed_at, evidence, "
                    "exposure_count, derived_at) VALUES (?, ?, ?, ?, 0, '[\"e\"]', 1, 0)",
                    [(d.case_id, d.person_id, d.contact_class.value, d.source_id) for d in derived],
                )
        else:  # Neo4j: the relationships replace_derived writes, in bulk
            for cls in ContactClass:
                rows = [{"key": f'["{d.case_id}", "{d.person_id}"]', "case_id": d.case_id, "person_id": d.person_id,
                         "source_id": d.source_id} for d in derived if d.contact_class is cls]
                store.execute_write(_neo4j_derived, _NEO4J_DERIVED[cls], rows)
        repo.add_investigations(investigations)


class PhaseTimer:
    """CPU time per sweep spent in each store / repository verb and engine step the sweep calls.

    Wraps the functions in place (no cProfile overhead on everything else); nested
    timed calls are counted in both (``load_facts`` includes the reads it makes).
    """

    STEPS = (
        "load_facts", "evaluate_facts", "plan_field_changes", "evaluate_field_changes", "plan_write", "plan_crossings",
    )

    def __init__(self, store, repo) -> None:
        import tracing.deadlines.service as service

        self.totals: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._active = False
        for name in self.STEPS:
            setattr(service, name, self._wrap(f"engine.{name}", getattr(service, name)))
        for prefix, target in (("store", store), ("repo", repo)):
            for name in dir(type(target)):
                if not name.startswith("_") and callable(getattr(target, name)):
                    setattr(target, name, self._wrap(f"{prefix}.{name}", getattr(target, name)))

    def _wrap(self, label: str, fn):
        clock = time.process_time

        def timed(*args, **kwargs):
            if not self._active:
                return fn(*args, **kwargs)
            started = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.totals[label] = self.totals.get(label, 0.0) + clock() - started
                self.calls[label] = self.calls.get(label, 0) + 1

        return timed

    def report(self, sweeps: int, total_cpu_ms: float) -> None:
        print(f"CPU ms per sweep by phase (mean of {sweeps} sweeps; sweep total {total_cpu_ms / sweeps:.1f}):")
        for label, seconds in sorted(self.totals.items(), key=lambda item: -item[1]):
            print(f"  {label:<36} {seconds * 1000 / sweeps:7.1f}   ({self.calls[label] / sweeps:.1f} calls)")


def steal_ms() -> float | None:
    """CPU time the hypervisor has given to other guests since boot (all vCPUs, ms), or None off Linux.

    On a shared virtual machine a sweep can wait for its own vCPU: when a slow sweep coincides with
    steal, the time went to the host, not to the code.
    """
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    return int(fields[8]) * 1000 / os.sysconf("SC_CLK_TCK") if fields[0] == "cpu" and len(fields) > 8 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--investigations", type=int, default=100_000)
    parser.add_argument("--fraction", type=float, default=0.01, help="Share of investigations changing per tick")
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=0,
                        help="Untimed ticks first (a long-running scheduler's caches are warm; a fresh copy's are not)")
    parser.add_argument("--db", help="SQLite file (default: a temporary file)")
    parser.add_argument("--store", help="A Neo4j URL (bolt://…) instead of SQLite: its database is WIPED first")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--template", help="Database after build + initial sweep: reused if it exists, else written")
    parser.add_argument("--profile", help="Write cProfile stats of the timed sweeps here")
    parser.add_argument("--phases", action="store_true", help="Print CPU ms per sweep in each store verb and step")
    parser.add_argument("--target-ms", type=float, default=200, help="Count the sweeps over this (default: 200)")
    parser.add_argument(
        "--workers", type=int, default=None,
        help="Worker processes sharing each sweep (default: what the service picks, tracing.scheduler.sweep_workers: "
        "one on a machine with two or more cores; 0: none)",
    )
    parser.add_argument("--whole", action="store_true",
                        help="Marks that say anything may have changed (no shortcut): every fact is read again")
    args = parser.parse_args()
    scratch = None if args.db else tempfile.mkdtemp(prefix="tg-bench-")
    path = args.db or os.path.join(scratch, "bench.db")
    try:
        run(args, path)
    finally:
        if scratch is not None:  # the copy of a 100k template is ~0.8 GB: never leave it behind
            shutil.rmtree(scratch, ignore_errors=True)


def run(args: argparse.Namespace, path: str) -> None:
    """Build or reuse the database at ``path``, then time the ticks (see the module docstring)."""
    rng = random.Random(args.seed)
    policy = DeadlinePolicy()
    if args.store:
        from tracing.store import open_store

        store = open_store(args.store)
        store.wipe()
        repo = deadline_repository(store)
        started = time.perf_counter()
        build(store, args.investigations, rng)
        print(f"built {args.investigations} open investigations in {time.perf_counter() - started:.1f} s ({args.store})")
        first = sweep_deadlines(store, repo, policy=policy, now=NOW, limit=args.investigations)
        print(f"initial sweep (all {first.evaluated} new investigations): {first.elapsed_ms / 1000:.1f} s, "
              f"{len(first.alerts)} alerts, {len(first.errors)} errors")
    elif args.template and os.path.exists(args.template):
        shutil.copyfile(args.template, path)
        store = SQLiteStore(path)
        repo = deadline_repository(store)
        print(f"reused {args.template} ({args.investigations} investigations assumed) as {path}")
        # A template from before contact digests were stored would send every first change of an
        # investigation to the whole evaluation: store them with one untimed whole sweep (at the same
        # NOW as the build's, so nothing else moves), and into the template for next time.
        missing = [i for (i,) in store.query(
            "SELECT id FROM dl_investigations WHERE status = 'open' AND kind = 'case' AND contacts_digest IS NULL")]
        if missing:
            repo.mark_dirty(missing, NOW)
            upgrade = sweep_deadlines(store, repo, policy=policy, now=NOW, limit=len(missing))
            print(f"stored the contact digests of {len(missing)} investigations (an older template): "
                  f"{upgrade.elapsed_ms / 1000:.1f} s, {len(upgrade.alerts)} alerts, {len(upgrade.errors)} errors")
            store.query("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copyfile(path, args.template)
    else:
        store = SQLiteStore(path)
        repo = deadline_repository(store)
        started = time.perf_counter()
        build(store, args.investigations, rng)
        print(f"built {args.investigations} open investigations in {time.perf_counter() - started:.1f} s ({path})")
        first = sweep_deadlines(store, repo, policy=policy, now=NOW, limit=args.investigations)
        print(f"initial sweep (all {first.evaluated} new investigations): {first.elapsed_ms / 1000:.1f} s, "
              f"{len(first.alerts)} alerts, {len(first.errors)} errors")
        if args.template:
            store.query("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copyfile(path, args.template)
    rng = random.Random(args.seed + 1)  # the ticks draw the same changes whether built or reused
    if args.store:
        print("note: with Neo4j the sweep CPU figure is the client's share only (the server is another process)")
    profiler = cProfile.Profile() if args.profile else None
    workers = sweep_workers(DeadlineSettings(sweep_processes=args.workers), args.store or f"sqlite:///{path}")
    if workers is not None:
        started = time.perf_counter()
        workers.start()  # before the timed ticks (the service starts them with its first large sweep)
        print(f"started {workers.processes} sweep worker process(es) in {time.perf_counter() - started:.1f} s")
    else:
        print("no sweep worker processes: every sweep runs in this process")
    phases = PhaseTimer(store, repo) if args.phases else None

    per_tick = int(args.investigations * args.fraction)
    sweep_ms, cpu_ms, system_ms, minor_faults, mark_ms, evaluated, alerts = [], [], [], [], [], [], []
    steal: list[float | None] = []  # CPU time the hypervisor gave to others while each sweep ran (ms, all vCPUs)
    all_cpu_ms = []  # this process + its workers
    now = NOW
    for tick in range(args.warmup + args.ticks):
        timed = tick >= args.warmup
        now += timedelta(minutes=1)
        chosen = rng.sample(range(args.investigations), per_tick)
        changed = [Person(id=f"P{i}{rng.choice('abcd')}", name="n", address="a", phone=str(rng.random())) for i in chosen]
        store.apply(GraphBatch(persons=changed))
        t0 = time.perf_counter()
        if args.whole:  # as if who the contacts are had changed: every fact of each investigation is read again
            repo.mark_dirty(repo.investigations_watching([p.id for p in changed]), now)
        else:
            mark_dirty_for_persons(repo, [p.id for p in changed], now=now)
        if not timed:  # warm-up: the same work, not measured
            result = sweep_deadlines(store, repo, policy=policy, now=now, workers=workers)
            assert not result.errors, result.errors
            continue
        mark_ms.append((time.perf_counter() - t0) * 1000)
        if profiler:
            profiler.enable()
        if phases:
            phases._active = True
        cpu, before, stolen = time.process_time(), resource.getrusage(resource.RUSAGE_SELF), steal_ms()
        result = sweep_deadlines(store, repo, policy=policy, now=now, workers=workers)
        cpu_ms.append((time.process_time() - cpu) * 1000)
        steal.append(None if stolen is None else steal_ms() - stolen)
        all_cpu_ms.append(cpu_ms[-1] + result.worker_cpu_ms)
        after = resource.getrusage(resource.RUSAGE_SELF)
        system_ms.append((after.ru_stime - before.ru_stime) * 1000)
        minor_faults.append(after.ru_minflt - before.ru_minflt)
        if phases:
            phases._active = False
        if profiler:
            profiler.disable()
        assert not result.errors, result.errors
        sweep_ms.append(result.elapsed_ms)
        evaluated.append(result.evaluated)
        alerts.append(len(result.alerts))

    q = statistics.quantiles(sweep_ms, n=100, method="inclusive")
    print(f"ticks: {args.ticks} (after {args.warmup} untimed); per tick: {per_tick} changed investigations, "
          f"{statistics.mean(evaluated):.0f} evaluated on average (changed + clock crossings), "
          f"{statistics.mean(alerts):.0f} alerts")
    print(f"sweep ms: p50 {statistics.median(sweep_ms):.1f}  p95 {q[94]:.1f}  p99 {q[98]:.1f}  "
          f"max {max(sweep_ms):.1f}")
    over = [i for i, ms in enumerate(sweep_ms) if ms > args.target_ms]
    if steal and steal[0] is not None:
        robbed = [i for i in over if steal[i] >= args.target_ms / 10]
        print(f"sweeps over {args.target_ms:g} ms: {len(over)} of {len(sweep_ms)}; of those, {len(robbed)} lost "
              f"≥ {args.target_ms / 10:g} ms of CPU to the hypervisor meanwhile (steal, /proc/stat); "
              f"steal per sweep: p50 {statistics.median(steal):.0f} ms, max {max(steal):.0f} ms")
    else:
        print(f"sweeps over {args.target_ms:g} ms: {len(over)} of {len(sweep_ms)}")
    q = statistics.quantiles(cpu_ms, n=100, method="inclusive")
    print(f"sweep CPU ms (this process; excludes waiting for a busy machine): p50 {statistics.median(cpu_ms):.1f}  "
          f"p99 {q[98]:.1f}; of it in the kernel: p50 {statistics.median(system_ms):.1f} "
          f"({statistics.median(minor_faults):.0f} page faults per sweep)")
    if workers:
        q = statistics.quantiles(all_cpu_ms, n=100, method="inclusive")
        print(f"sweep CPU ms with the {workers.processes} worker(s)' share: p50 {statistics.median(all_cpu_ms):.1f}  "
              f"p99 {q[98]:.1f}")
        workers.close()
    print(f"dirty marking ms (per tick, not in the sweep): p50 {statistics.median(mark_ms):.1f}")
    if profiler:
        profiler.dump_stats(args.profile)
    if phases:
        phases.report(args.ticks, sum(cpu_ms))
    store.close()


if __name__ == "__main__":
    main()
