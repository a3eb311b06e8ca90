#!/usr/bin/env python3
"""The CPU floor of a contact chain: the same ``service.chain`` code with the store's answers already in memory.

Each root's chain is computed twice, in-process, one root at a time:

1. **store** — on the SQLite store, as the API computes it (reads included);
2. **floor** — on a replay of the answers the first run read (persons, contact spans,
   isolation times), held in memory as the ready-made tuples the store returns: no SQL,
   no row decoding. What remains is what any store behind the port would still cost:
   building the contact graph, the time-respecting traversal, the members and their JSON.

The floor is what an in-memory graph (a cache of the contact graph in every worker) could
at best bring a chain down to; with the per-request cost of everything around the chain
(auth, audit, routing: measure it with ``bench_api.py --via links``) it bounds the req/s two
CPUs can serve. Uses the graph ``bench_api.py`` built (``--db``); bounded by ``--roots``.

    .venv/bin/python scripts/bench/chain_floor.py --db /tmp/api-bench-1m.db --hops 1,2,3
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from graph_models import TracingPolicy  # noqa: E402
from tracing import service  # noqa: E402
from tracing.store.sqlite import SQLiteStore  # noqa: E402


class RecordingReader:
    """Passes the chain's reads to ``store`` and keeps every answer, keyed by the call."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store, self.answers = store, {}

    def read_transaction(self, fn):
        return fn(self)

    def _keep(self, key, answer):
        self.answers[key] = answer
        return answer

    def get_persons(self, ids):
        ids = tuple(ids)
        return self._keep(("persons", ids), self.store.get_persons(ids))

    def contact_spans(self, ids, **window):
        ids = tuple(sorted(ids))
        return self._keep(("spans", ids, tuple(sorted(window.items()))), self.store.contact_spans(ids, **window))

    def isolation_times(self, ids):
        ids = tuple(sorted(ids))
        return self._keep(("isolation", ids), self.store.isolation_times(ids))


class ReplayReader:
    """Answers the very calls a :class:`RecordingReader` saw, from memory."""

    def __init__(self, answers: dict) -> None:
        self.answers = answers

    def read_transaction(self, fn):
        return fn(self)

    def get_persons(self, ids):
        return self.answers["persons", tuple(ids)]

    def contact_spans(self, ids, **window):
        return self.answers["spans", tuple(sorted(ids)), tuple(sorted(window.items()))]

    def isolation_times(self, ids):
        return self.answers["isolation", tuple(sorted(ids))]


def _cpu_ms(fn) -> tuple[float, object]:
    started = time.process_time()
    result = fn()
    return (time.process_time() - started) * 1000, result


def _summary(samples: list[float]) -> dict:
    q = statistics.quantiles(samples, n=100)
    return {"mean_ms": round(statistics.mean(samples), 3), "p50_ms": round(statistics.median(samples), 3),
            "p90_ms": round(q[89], 3), "p99_ms": round(q[98], 3), "max_ms": round(max(samples), 3)}


def measure(store: SQLiteStore, roots: list[str], hops: int, *, now: datetime) -> dict:
    """CPU per chain on ``store`` and on a replay of its answers, for each of ``roots``."""
    policy = TracingPolicy()
    on_store, floor, members = [], [], []
    for root in roots:
        recorder = RecordingReader(store)
        service.chain(recorder, root, hops=hops, policy=policy, now=now)  # warms the page cache, records
        ms, stored = _cpu_ms(lambda: service.chain(store, root, hops=hops, policy=policy, now=now).model_dump_json())
        on_store.append(ms)
        replay = ReplayReader(recorder.answers)
        ms, chain = _cpu_ms(lambda: service.chain(replay, root, hops=hops, policy=policy, now=now))
        ms_json, replayed = _cpu_ms(chain.model_dump_json)
        floor.append(ms + ms_json)
        if replayed != stored:  # the floor must be the very same computation
            raise SystemExit(f"chain of {root} differs between the store and its replay")
        members.append(len(chain.members))
    return {"hops": hops, "roots": len(roots), "members_mean": round(statistics.mean(members), 1),
            "members_max": max(members), "store": _summary(on_store), "floor": _summary(floor)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="a graph built by bench_api.py")
    parser.add_argument("--hops", default="1,2,3", help="comma list")
    parser.add_argument("--roots", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    store = SQLiteStore(args.db)
    cases = json.loads(args.db.with_suffix(".cases.json").read_text())  # the chain roots bench_api.py rotates
    roots = random.Random(args.seed).sample(cases, min(args.roots, len(cases)))
    now = datetime.now(timezone.utc)
    results = [measure(store, roots, int(h), now=now) for h in args.hops.split(",")]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
