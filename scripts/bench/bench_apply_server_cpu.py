#!/usr/bin/env python3
"""Server CPU per 10,000-event ``apply`` batch on a local Neo4j, read from the server's /proc entry.

Wall rates of ``store.apply`` swing by 2x on a shared machine; the server's
own CPU time per batch does not. Writes a 100k-person outbreak's persons,
places and links, then ``N`` event batches, and prints server CPU, client CPU
and wall per event batch. ``REPO`` is the tree whose ``tracing`` is measured
(e.g. a worktree of an older commit, for a before/after comparison)::

    python scripts/bench/bench_apply_server_cpu.py . 20 --uri bolt://127.0.0.1:7692 --pid-file /tmp/neo4j-x/neo4j.pid

The server must run on this machine (its pid file from ``scripts/neo4j/neo4j.sh``); it is wiped.
"""

import argparse
import os
import sys
import time

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("repo")
parser.add_argument("batches", type=int)
parser.add_argument("--uri", default="bolt://127.0.0.1:7687")
parser.add_argument("--pid-file", default="scripts/neo4j/.data/neo4j.pid")
args = parser.parse_args()
repo = os.path.abspath(args.repo)
sys.path[:0] = [repo, os.path.join(repo, "scripts")]

import tracing.store.neo4j as adapter  # noqa: E402
from generate_outbreak import Outbreak  # noqa: E402

assert adapter.__file__.startswith(repo), adapter.__file__
pid = int(open(args.pid_file).read())
tick = os.sysconf("SC_CLK_TCK")


def server_cpu() -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


store = adapter.Neo4jStore(args.uri, auth=None)
store.wipe()
done, server, client, wall = 0, 0.0, 0.0, 0.0
for batch in Outbreak(100_000, 500_000, seed=1).batches(10_000):
    if not batch.events:
        store.apply(batch)
        continue
    c0, t0, p0 = server_cpu(), time.perf_counter(), time.process_time()
    store.apply(batch)
    server += server_cpu() - c0
    wall += time.perf_counter() - t0
    client += time.process_time() - p0
    done += 1
    if done == args.batches:
        break
store.close()
print(f"{repo}: {done} event batches: server CPU {server / done * 1000:.0f} ms/batch, client CPU "
      f"{client / done * 1000:.0f} ms/batch, wall {wall / done * 1000:.0f} ms/batch -> {done * 10_000 / wall:.0f} events/s")
