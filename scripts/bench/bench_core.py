#!/usr/bin/env python3
"""Core benchmark of tracegraph: import rate and trace latency on a generated outbreak.

Not a test: it prints a markdown table (and, with ``--json``, writes every
figure) for the backends asked for, side by side. What it measures:

* **import, store.apply** — events per second of ``store.apply`` on
  ``GraphBatch`` chunks of ``--batch-size`` contact events (10,000 by
  default), timing only the ``apply`` calls (generation is excluded).
* **import, importer** — events per second of the importer pipeline on the
  generated CSV files (``contacts.csv``), i.e. what ``tracegraph import
  FILE --kind contacts`` does, into a fresh store. Skipped when
  ``tracing.importing`` does not provide ``import_files`` yet.
* **trace** — ``trace_case(store, case_id, now=…, persist=False)`` over
  ``--cases-sample`` random cases, after a warm-up, in milliseconds
  (p50 / p90 / p99 / max); then the same with ``persist=True``.
* **chain** — ``chain(store, case_id, direction=down, via=contacts, hops=3)``.
* **import, neo4j-admin** (``--neo4j-bulk``) — the initial-load path: the
  importer's CSV files written by ``tracing.store.neo4j_bulk.BulkWriter``
  (event rows straight from the generator; only the writer's calls timed,
  as for ``store.apply``), ``neo4j.sh import`` (``neo4j-admin database
  import full``), server start and the adapter's first open (constraints and
  indexes built); events / the sum of the four, the "all-in" rate. With
  ``--bulk-latency`` the trace and chain series then run on that store, twice:
  right after the load (cold page cache) and again (the figures in the table).

Each latency series stops early (and says so) once it has used
``--time-budget`` seconds, so a slow backend cannot hold a run hostage.

Usage::

    .venv/bin/python scripts/bench/bench_core.py                      # 100k persons / 500k events, SQLite
    .venv/bin/python scripts/bench/bench_core.py --backends sqlite,neo4j --neo4j --json var/bench.json
    .venv/bin/python scripts/bench/bench_core.py --profile var/prof   # cProfile dumps per phase

``--neo4j`` starts a private Neo4j (Bolt port 7688, home
``/tmp/tracegraph-bench-neo4j``) with ``scripts/neo4j/neo4j.sh start
--fresh`` and stops it at the end; without it, ``neo4j`` in ``--backends``
uses the server at ``--neo4j-uri``, which is wiped first.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import math
import os
import platform
import pstats
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for path in (REPO, REPO / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from generate_outbreak import Outbreak  # noqa: E402

from graph_models import ChainDirection, ChainVia, TracingPolicy  # noqa: E402
from tracing.service import chain, trace_case  # noqa: E402
from tracing.store.sqlite import SQLiteStore  # noqa: E402

NEO4J_SCRIPT = REPO / "scripts" / "neo4j" / "neo4j.sh"
NEO4J_PORT = 7688
NEO4J_HOME = "/tmp/tracegraph-bench-neo4j"

#: The figures the project aims at (docs/benchmarks.md); None = no target set.
TARGETS = {
    "sqlite": {"apply_eps": 200_000, "importer_eps": 200_000, "trace_p50": 1.0, "trace_p99": 10.0},
    "neo4j": {"apply_eps": 50_000, "importer_eps": 50_000, "trace_p50": None, "trace_p99": 30.0},
    "neo4j-bulk": {"bulk_eps": 50_000, "trace_p99": 30.0},
}


# --- machine ------------------------------------------------------------------------------


def machine_facts() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip() or None
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "tracing", "graph_models"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        if commit and dirty:
            commit += " + uncommitted changes in tracing/ or graph_models/"
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu,
        "mem_gib": mem_gib,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "loadavg_start": os.getloadavg(),
        "git_commit": commit,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# --- measuring ----------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


@dataclass
class Series:
    """Latencies of one operation, in milliseconds."""

    name: str
    samples: list[float] = field(default_factory=list)
    cpu_samples: list[float] = field(default_factory=list)
    errors: int = 0
    stopped_early: bool = False
    sizes: list[int] = field(default_factory=list)

    def summary(self) -> dict:
        values = sorted(self.samples)
        out = {
            "n": len(values),
            "errors": self.errors,
            "stopped_early": self.stopped_early,
            "p50_ms": round(percentile(values, 50), 3) if values else None,
            "p90_ms": round(percentile(values, 90), 3) if values else None,
            "p99_ms": round(percentile(values, 99), 3) if values else None,
            "max_ms": round(values[-1], 3) if values else None,
            "mean_ms": round(sum(values) / len(values), 3) if values else None,
        }
        if self.cpu_samples:  # CPU time of this thread: robust against other load on the machine
            cpu = sorted(self.cpu_samples)
            out |= {f"cpu_p{q}_ms": round(percentile(cpu, q), 3) for q in (50, 90, 99)}
        if self.sizes:
            sizes = sorted(self.sizes)
            out["result_size_mean"] = round(sum(sizes) / len(sizes), 1)
            out["result_size_p99"] = percentile(sizes, 99)
            out["result_size_max"] = sizes[-1]
        return out


@contextlib.contextmanager
def profiled(directory: Path | None, name: str) -> Iterator[None]:
    """cProfile the block into ``directory/name.prof`` (and print the top) when profiling is on."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        target = directory / f"{name}.prof"
        profiler.dump_stats(target)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(18)
        log(f"profile {target}:\n" + "\n".join(text.getvalue().splitlines()[6:32]))


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def time_series(
    name: str, ids: list[str], fn: Callable[[str], int | None], *, budget_s: float, warmup: list[str]
) -> Series:
    """Call ``fn(id)`` for each id (after a warm-up pass over ``warmup``), timing each call."""
    for case_id in warmup:
        with contextlib.suppress(Exception):
            fn(case_id)
    series = Series(name)
    deadline = time.perf_counter() + budget_s
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    gc.collect()
    for case_id in ids:
        c0 = cpu_clock()
        t0 = clock()
        try:
            size = fn(case_id)
        except Exception as error:  # noqa: BLE001 - a failing call is counted, not fatal
            series.errors += 1
            if series.errors <= 3:
                log(f"{name}: {case_id}: {type(error).__name__}: {error}")
            continue
        series.samples.append((clock() - t0) / 1e6)
        series.cpu_samples.append((cpu_clock() - c0) / 1e6)
        if size is not None:
            series.sizes.append(size)
        if time.perf_counter() > deadline:
            series.stopped_early = len(series.samples) < len(ids)
            break
    return series


# --- backends -----------------------------------------------------------------------------


class Backend:
    name = "?"

    def facts(self) -> dict:
        return {}

    def fresh(self):  # -> GraphStore
        raise NotImplementedError

    def url(self) -> str:
        raise NotImplementedError

    def size_bytes(self) -> int | None:
        return None

    def cleanup(self) -> None:
        pass


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.generation = 0
        self.path: Path | None = None

    def fresh(self):
        self.generation += 1
        self.path = self.workdir / f"bench-{self.generation}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return SQLiteStore(self.path)

    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def size_bytes(self) -> int | None:
        if self.path is None:
            return None
        return sum(Path(f"{self.path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{self.path}{s}").exists())


class Neo4jBackend(Backend):
    name = "neo4j"

    def __init__(self, uri: str, home: Path | None = None) -> None:
        self.uri = uri
        self.home = home  # the private server's home, when this script started it

    def size_bytes(self) -> int | None:
        data = self.home / "data" / "databases" / "neo4j" if self.home else None
        if data is None or not data.is_dir():
            return None
        return sum(f.stat().st_size for f in data.rglob("*") if f.is_file())

    def fresh(self):
        from tracing.store.neo4j import Neo4jStore

        store = Neo4jStore(self.uri, auth=None, database="neo4j")
        store.wipe()
        return store

    def url(self) -> str:
        return self.uri

    def facts(self) -> dict:
        from neo4j import GraphDatabase

        with GraphDatabase.driver(self.uri, auth=None) as driver:
            records = driver.execute_query(
                "CALL dbms.components() YIELD name, versions, edition RETURN name, versions, edition", database_="system"
            ).records
        return {"server": [f"{r['name']} {', '.join(r['versions'])} {r['edition']}" for r in records]}


def run_bulk(outbreak: Outbreak, workdir: Path, uri: str, server_env: dict) -> dict:
    """The initial-load path into the private server's home (stopped first), timed phase by phase."""
    from tracing.store.codec import to_epoch_us
    from tracing.store.neo4j import Neo4jStore
    from tracing.store.neo4j_bulk import BulkWriter

    files = workdir / "neo4j-import"
    shutil.rmtree(files, ignore_errors=True)
    clock, cpu = time.perf_counter, time.process_time
    wall = {"csv": 0.0}
    cpu_s = {"csv": 0.0}
    us = [to_epoch_us(t) for t in outbreak._dt]  # minutes of the generator -> µs, once

    def timed(fn, *args):
        t0, c0 = clock(), cpu()
        n = fn(*args)
        wall["csv"] += clock() - t0
        cpu_s["csv"] += cpu() - c0
        return n

    started = clock()
    writer = BulkWriter(files, stubs=False)  # every endpoint the generator makes is a person
    places, persons = outbreak.places(), list(outbreak.persons())
    timed(writer.places, places)
    timed(writer.persons, persons)
    del persons
    timed(writer.links, outbreak.transmission_links())
    events = 0
    for rows, _visits in outbreak.event_days():
        events += timed(writer.event_rows, [
            (i, a, b, us[s], us[e], k, pl, src, c) for i, a, b, s, e, k, pl, src, c in rows
        ])
    timed(writer.close)
    log(f"bulk: CSV files {wall['csv']:.1f}s (CPU {cpu_s['csv']:.1f}s) of {clock() - started:.1f}s with generation")

    neo4j_ctl("stop")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = clock()
    neo4j_ctl("import", str(files), "--overwrite")
    wall["import"] = clock() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s["import"] = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    t0 = clock()
    neo4j_ctl("start", env_extra=server_env)
    wall["start"] = clock() - t0
    t0 = clock()
    store = Neo4jStore(uri, auth=None, database="neo4j")  # creates the constraints and indexes, waits for them
    wall["constraints"] = clock() - t0
    try:
        counts = asdict(store.counts())
    finally:
        store.close()
    total = sum(wall.values())
    return {
        "events": events,
        "events_per_s": round(events / total) if total else None,
        "seconds": {k: round(v, 1) for k, v in wall.items()},
        "cpu_seconds": {k: round(v, 1) for k, v in cpu_s.items()},
        "csv_events_per_s": round(events / wall["csv"]),
        "offline_events_per_s": round(events / (wall["import"] + wall["start"] + wall["constraints"])),
        "csv_bytes": sum(f.stat().st_size for f in files.iterdir()),
        "counts": counts,
    }


def neo4j_env() -> dict:
    return {**os.environ, "NEO4J_BOLT_PORT": str(NEO4J_PORT), "NEO4J_HOME_DIR": NEO4J_HOME}


def neo4j_ctl(*args: str, env_extra: dict | None = None) -> None:
    env = neo4j_env() | (env_extra or {})
    log(f"neo4j.sh {' '.join(args)} (port {NEO4J_PORT}, home {NEO4J_HOME})")
    subprocess.run([str(NEO4J_SCRIPT), *args], check=True, env=env)


# --- phases -------------------------------------------------------------------------------


def run_apply(store, outbreak: Outbreak, batch_size: int, profile: Path | None, tag: str) -> dict:
    """Write the whole outbreak with ``store.apply``; only the apply calls are timed."""
    timings = {"persons": 0.0, "places": 0.0, "links": 0.0, "events": 0.0}
    counts = {"persons": 0, "places": 0, "links": 0, "events": 0, "visits": 0, "batches": 0}
    started = time.perf_counter()
    clock = time.perf_counter
    with profiled(profile, f"{tag}-apply"):
        for batch in outbreak.batches(batch_size):
            kind = "events" if batch.events or batch.visits else "persons" if batch.persons else (
                "places" if batch.places else "links")
            t0 = clock()
            store.apply(batch)
            timings[kind] += clock() - t0
            counts["batches"] += 1
            counts["persons"] += len(batch.persons)
            counts["places"] += len(batch.places)
            counts["links"] += len(batch.links)
            counts["events"] += len(batch.events)
            counts["visits"] += len(batch.visits)
    wall = time.perf_counter() - started
    apply_total = sum(timings.values())
    return {
        "events": counts["events"],
        "visits": counts["visits"],
        "events_per_s": round(counts["events"] / timings["events"]) if timings["events"] else None,
        "persons_per_s": round(counts["persons"] / timings["persons"]) if timings["persons"] else None,
        "records_per_s": round(sum(v for k, v in counts.items() if k != "batches") / apply_total) if apply_total else None,
        "apply_seconds": round(apply_total, 2),
        "event_apply_seconds": round(timings["events"], 2),
        "wall_seconds_incl_generation": round(wall, 2),
        "batches": counts["batches"],
        "batch_size": batch_size,
    }


def importer_api() -> Callable | None:
    """``run(store, files_by_kind) -> {kind: seconds}`` using the importer, or None if it is not there yet."""
    try:
        from tracing.importing import import_files  # type: ignore[attr-defined]
        from tracing.importing.mapping import adhoc_mapping
    except ImportError:
        return None

    def run(store, files: dict[str, Path], batch_size: int) -> dict[str, float]:
        seconds = {}
        for kind in ("places", "persons", "links", "contacts", "visits"):
            if kind not in files:
                continue
            mapping = adhoc_mapping(files[kind], kind)
            t0 = time.perf_counter()
            # As `tracegraph import FILE --kind KIND --no-derive --quiet` does it.
            import_files(store, mapping, files[kind], batch_size=batch_size, skip_invalid=False, progress=False)
            seconds[kind] = time.perf_counter() - t0
        return seconds

    return run


def run_importer(backend: Backend, files: dict[str, Path], n_events: int, batch_size: int, profile: Path | None) -> dict:
    run = importer_api()
    if run is None:
        return {"skipped": "tracing.importing.import_files is not available"}
    store = backend.fresh()
    try:
        with profiled(profile, f"{backend.name}-importer"):
            seconds = run(store, files, batch_size)
        counts = store.counts()
    finally:
        store.close()
    return {
        "events_per_s": round(n_events / seconds["contacts"]) if seconds.get("contacts") else None,
        "seconds_by_file": {k: round(v, 2) for k, v in seconds.items()},
        "total_seconds": round(sum(seconds.values()), 2),
        "stored_events": counts.events,
        "stored_persons": counts.persons,
    }


def run_latency(store, outbreak: Outbreak, args: argparse.Namespace, profile: Path | None, tag: str) -> dict:
    rng = random.Random(f"{args.seed}:bench-sample")
    cases = list(outbreak.case_ids)
    sample = rng.sample(cases, min(args.cases_sample, len(cases)))
    while len(sample) < args.cases_sample:  # fewer cases than asked: go round again
        sample += rng.sample(cases, min(args.cases_sample - len(sample), len(cases)))
    warmup = rng.sample(cases, min(args.warmup, len(cases)))
    now, policy = outbreak.now, TracingPolicy()
    out = {}

    def trace(persist: bool) -> Callable[[str], int]:
        return lambda case_id: len(trace_case(store, case_id, policy=policy, now=now, persist=persist).contacts)

    def down(case_id: str) -> int:
        return len(chain(store, case_id, direction=ChainDirection.DOWN, via=ChainVia.CONTACTS, hops=3, policy=policy, now=now).members)

    for name, fn, ids in (
        ("trace", trace(False), sample),
        ("trace_persist", trace(True), sample),
        ("chain_down_3", down, sample[: args.chain_sample]),
    ):
        log(f"{tag}: {name} over {len(ids)} cases")
        with profiled(profile, f"{tag}-{name}"):
            series = time_series(name, ids, fn, budget_s=args.time_budget, warmup=warmup)
        out[name] = series.summary()
        log(f"{tag}: {name}: {out[name]}")
    return out


# --- report -------------------------------------------------------------------------------


def fmt_rate(value) -> str:
    return f"{value:,.0f}" if isinstance(value, (int, float)) else "—"


def fmt_ms(summary: dict | None, keys=("p50_ms", "p90_ms", "p99_ms", "max_ms")) -> str:
    if not summary or not summary.get("n"):
        return "—"
    text = " / ".join(f"{summary[k]:.2f}" for k in keys)
    note = f" (n={summary['n']}{', stopped early' if summary['stopped_early'] else ''}"
    note += f", {summary['errors']} errors)" if summary.get("errors") else ")"
    return text + note


def markdown(report: dict) -> str:
    backends = list(report["backends"])
    m = report["machine"]
    g = report["graph"]
    lines = [
        f"## tracegraph core benchmark — {g['persons']:,} persons / {g['events']:,} events",
        "",
        f"Machine: {m['cpu_model']}, {m['nproc']} CPUs, {m['mem_gib']} GiB; Python {m['python']}; "
        f"SQLite {m['sqlite']}; load average at start {', '.join(f'{x:.2f}' for x in m['loadavg_start'])}; "
        f"commit {m['git_commit']}.",
        f"Graph: seed {g['seed']}, {g['cases']} cases, {g['links']} links, {g['visits']} visits; events/person "
        f"mean {g['degree_mean']}, p99 {g['degree_p99']}, max {g['degree_max']}; now = {g['now']}.",
        "",
        "| metric | " + " | ".join(backends) + " |",
        "|---|" + "---|" * len(backends),
    ]

    def row(label: str, cell: Callable[[dict], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(report["backends"][b]) for b in backends) + " |")

    def target(b: str, key: str, unit: str, ge: bool) -> str:
        goal = TARGETS.get(b, {}).get(key)
        return "" if goal is None else f" (target {'≥' if ge else '≤'} {goal:,}{unit})"

    row("import, store.apply (events/s)", lambda r: fmt_rate(r.get("apply", {}).get("events_per_s")))
    row("import, neo4j-admin all-in (events/s)", lambda r: fmt_rate(r.get("bulk", {}).get("events_per_s")))
    row("— CSV / import / start / constraints (s)", lambda r: " / ".join(
        str(r["bulk"]["seconds"][k]) for k in ("csv", "import", "start", "constraints")) if "bulk" in r else "—")
    row("import, importer CSV→store (events/s)", lambda r: fmt_rate(r.get("importer", {}).get("events_per_s"))
        if "skipped" not in r.get("importer", {}) else "not run")
    row("trace persist=False p50 / p90 / p99 / max (ms)", lambda r: fmt_ms(r.get("latency", {}).get("trace")))
    if any("latency_first" in r for r in report["backends"].values()):
        row("— first series after a neo4j-admin load (cold cache)",
            lambda r: fmt_ms(r.get("latency_first", {}).get("trace")) if "latency_first" in r else "—")
    row("trace persist=True p50 / p90 / p99 / max (ms)", lambda r: fmt_ms(r.get("latency", {}).get("trace_persist")))
    row("chain down 3 hops p50 / p99 (ms)", lambda r: fmt_ms(r.get("latency", {}).get("chain_down_3"), ("p50_ms", "p99_ms")))
    row("trace persist=False, CPU time p50 / p90 / p99 (ms)",
        lambda r: fmt_ms(r.get("latency", {}).get("trace"), ("cpu_p50_ms", "cpu_p90_ms", "cpu_p99_ms")))
    row("contacts per trace, mean / p99 / max", lambda r: "{result_size_mean} / {result_size_p99} / {result_size_max}".format(
        **r["latency"]["trace"]) if r.get("latency", {}).get("trace", {}).get("n") else "—")
    row("members per chain, mean / p99 / max", lambda r: "{result_size_mean} / {result_size_p99} / {result_size_max}".format(
        **r["latency"]["chain_down_3"]) if r.get("latency", {}).get("chain_down_3", {}).get("n") else "—")
    row("store size after import (MiB)", lambda r: f"{r['size_bytes'] / 2**20:,.0f}" if r.get("size_bytes") else "—")
    row("bench peak RSS after apply / after importer (MiB)", lambda r: "{} / {}".format(
        r.get("apply", {}).get("peak_rss_mib_after", "—"), r.get("importer", {}).get("peak_rss_mib_after", "—")))
    lines.append("")
    lines.append("Targets: " + "; ".join(
        f"{b}: " + ", ".join(
            f"{k} {'≥' if k.endswith('eps') else '≤'} {v:,}{' ev/s' if k.endswith('eps') else ' ms'}"
            for k, v in TARGETS[b].items() if v is not None
        )
        for b in backends if b in TARGETS
    ) + " (latency targets are stated for 1M persons / 5M events).")
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    global NEO4J_PORT, NEO4J_HOME
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cases-sample", type=int, default=1000, help="traces per latency series (default 1000)")
    parser.add_argument("--chain-sample", type=int, default=1000, help="chains measured (default: same as cases)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed calls before each series")
    parser.add_argument("--backends", default="sqlite", help="comma-separated: sqlite, neo4j")
    parser.add_argument("--neo4j", action="store_true",
                        help=f"start a private Neo4j (port {NEO4J_PORT}, {NEO4J_HOME}) and add neo4j to --backends")
    parser.add_argument("--neo4j-uri", help=f"default bolt://127.0.0.1:{NEO4J_PORT} (or --neo4j-port)")
    parser.add_argument("--neo4j-port", type=int, default=NEO4J_PORT, help="Bolt port of the private Neo4j")
    parser.add_argument("--neo4j-home", default=NEO4J_HOME, help="home of the private Neo4j")
    parser.add_argument("--neo4j-bulk", action="store_true",
                        help="measure the initial load through neo4j-admin import on the private Neo4j (all-in rate)")
    parser.add_argument("--bulk-latency", action="store_true",
                        help="after the neo4j-admin load, run the trace and chain series on that store too")
    parser.add_argument("--neo4j-heap", default="4g", help="heap for the private Neo4j (default 4g)")
    parser.add_argument("--neo4j-pagecache", default="4g", help="page cache for the private Neo4j (default 4g)")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--visits", action="store_true", help="also generate and import visits (co-visit tracing)")
    parser.add_argument("--skip-importer", action="store_true", help="do not measure the CSV importer")
    parser.add_argument("--time-budget", type=float, default=180.0, help="seconds per latency series before stopping")
    parser.add_argument("--workdir", type=Path, help="where the SQLite files and CSVs go (default: a temp dir, removed)")
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument("--profile", type=Path, help="cProfile every phase into this directory (slows it down)")
    args = parser.parse_args(argv)
    args.chain_sample = min(args.chain_sample, args.cases_sample)
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.neo4j and "neo4j" not in names:
        names.append("neo4j")
    unknown = set(names) - {"sqlite", "neo4j", "neo4j-bulk"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    if args.neo4j_bulk and "neo4j-bulk" not in names:
        names.append("neo4j-bulk")
    args.backend_names = names
    NEO4J_PORT, NEO4J_HOME = args.neo4j_port, args.neo4j_home
    args.neo4j_uri = args.neo4j_uri or f"bolt://127.0.0.1:{NEO4J_PORT}"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report: dict = {"machine": machine_facts(), "args": {k: str(v) for k, v in vars(args).items()}, "backends": {}}
    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="tracegraph-bench-")) if own_workdir else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    started_neo4j = False
    try:
        t0 = time.perf_counter()
        outbreak = Outbreak(args.persons, args.events, seed=args.seed, visits=args.visits)
        log(f"outbreak structure built in {time.perf_counter() - t0:.1f}s: {outbreak.stats.cases} cases")

        files: dict[str, Path] = {}
        if not args.skip_importer and importer_api() is not None:
            t0 = time.perf_counter()
            files = outbreak.write_csv(workdir / "csv")
            log(f"CSV files written in {time.perf_counter() - t0:.1f}s")

        for name in args.backend_names:
            if name == "neo4j-bulk":
                log("neo4j-bulk: CSV files, neo4j-admin import, start, constraints")
                started_neo4j = True  # run_bulk starts it; stopped at the end
                report["backends"][name] = {"bulk": run_bulk(
                    outbreak, workdir, args.neo4j_uri,
                    {"NEO4J_HEAP": args.neo4j_heap, "NEO4J_PAGECACHE": args.neo4j_pagecache},
                )}
                log(f"neo4j-bulk: {report['backends'][name]['bulk']}")
                if args.bulk_latency:  # the trace and chain series on the store the bulk path just loaded
                    from tracing.store.neo4j import Neo4jStore

                    store = Neo4jStore(args.neo4j_uri, auth=None, database="neo4j")
                    try:
                        # The server has just started on the imported files: its page cache is cold, unlike
                        # after store.apply. The first pass says what a freshly loaded store gives; the
                        # second, the same series on the cache the first one filled.
                        result = report["backends"][name]
                        result["latency_first"] = run_latency(store, outbreak, args, args.profile, f"{name}-first")
                        result["latency"] = run_latency(store, outbreak, args, args.profile, name)
                    finally:
                        store.close()
                continue
            if name == "neo4j" and args.neo4j and not started_neo4j:
                # Started only now, so that the JVM does not compete with the SQLite runs.
                neo4j_ctl("start", "--fresh", env_extra={"NEO4J_HEAP": args.neo4j_heap, "NEO4J_PAGECACHE": args.neo4j_pagecache})
                started_neo4j = True
            backend = (
                SQLiteBackend(workdir) if name == "sqlite"
                else Neo4jBackend(args.neo4j_uri, Path(NEO4J_HOME) if args.neo4j else None)
            )
            result: dict = {}
            report["backends"][name] = result
            try:
                store = backend.fresh()
            except Exception as error:  # noqa: BLE001 - report and go on with the other backends
                result["error"] = f"{type(error).__name__}: {error}"
                log(f"{name}: cannot open: {result['error']}")
                continue
            with contextlib.suppress(Exception):
                result["server"] = backend.facts()
            try:
                log(f"{name}: store.apply import")
                result["apply"] = run_apply(store, outbreak, args.batch_size, args.profile, name)
                result["apply"]["peak_rss_mib_after"] = peak_rss_mib()
                log(f"{name}: apply: {result['apply']}")
                result["counts"] = asdict(store.counts())
                result["size_bytes"] = backend.size_bytes()
                result["latency"] = run_latency(store, outbreak, args, args.profile, name)
            finally:
                store.close()
            if files:
                log(f"{name}: importer pipeline")
                result["importer"] = run_importer(backend, files, outbreak.stats.events, args.batch_size, args.profile)
                result["importer"]["peak_rss_mib_after"] = peak_rss_mib()
                log(f"{name}: importer: {result['importer']}")
            else:
                result["importer"] = {"skipped": "importer not available" if not args.skip_importer else "--skip-importer"}
    finally:
        if started_neo4j:
            with contextlib.suppress(subprocess.CalledProcessError):
                neo4j_ctl("stop")
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    if not outbreak.stats.events:  # nothing streamed the events (every backend failed): count them now
        for _ in outbreak.event_days():
            pass
    report["graph"] = graph_facts(outbreak)
    report["machine"]["loadavg_end"] = os.getloadavg()
    report["machine"]["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = markdown(report)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        log(f"report written to {args.json}")
    return 0


def graph_facts(outbreak: Outbreak) -> dict:
    s = outbreak.stats
    return {
        "persons": outbreak.n_persons, "events": outbreak.n_events, "seed": outbreak.seed,
        "households": s.households, "places": s.places, "cases": s.cases, "links": s.links,
        "isolated": s.isolated, "visits": s.visits if outbreak.with_visits else 0,
        "degree_mean": s.degree_mean, "degree_p50": s.degree_p50, "degree_p99": s.degree_p99,
        "degree_max": s.degree_max, "events_by_kind": s.events_by_kind, "now": outbreak.now.isoformat(),
    }


if __name__ == "__main__":
    sys.exit(main())
