#!/usr/bin/env python3
"""Load benchmark of the HTTP API: chain queries on a synthetic city (default 1M persons), loopback only.

1. Builds (once, then reused) a SQLite graph with ``scripts/generate_outbreak.py``.
2. Creates a bench user and token in it (run time only).
3. Starts ``python -m api`` (uvicorn, ``--workers``) on 127.0.0.1 with the scheduler and access log off.
4. Drives ``GET /persons/{case}/chain`` with a bounded load: ``wrk`` if installed (a Lua script rotates
   the case ids), else a bounded asyncio/httpx client. Stops by itself after ``--duration`` seconds
   (wrk) or ``--requests`` requests (httpx), then stops the server.
5. Prints req/s, p50/p90/p99 latency, and the CPU seconds the server (master + workers) and the
   client spent, as JSON per concurrency (and writes ``--json`` if given).

    .venv/bin/python scripts/bench/bench_api.py                       # 1M persons, 5M events
    .venv/bin/python scripts/bench/bench_api.py --persons 100000 --events 500000 --duration 15
    .venv/bin/python scripts/bench/bench_api.py --db /tmp/api-bench-1m.db --via links --concurrency 8,16,32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

from generate_outbreak import Outbreak  # noqa: E402

from tracing.auth import auth_repository, create_user, issue_token  # noqa: E402
from tracing.store.sqlite import SQLiteStore  # noqa: E402


def build(db: Path, persons: int, events: int, seed: int) -> list[str]:
    """The graph in ``db`` (built once, reused); returns the case ids (chain roots)."""
    ids_file = db.with_suffix(".cases.json")
    if db.exists() and ids_file.exists():
        return json.loads(ids_file.read_text())
    partial = db.with_suffix(".partial")
    for suffix in ("", "-wal", "-shm"):
        Path(str(partial) + suffix).unlink(missing_ok=True)
    started = time.perf_counter()
    outbreak = Outbreak(persons, events, seed=seed)
    store = SQLiteStore(partial)
    try:
        for i, batch in enumerate(outbreak.batches(20_000)):
            store.apply(batch)
            if i % 50 == 0:
                print(f"  build: batch {i} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    finally:
        store.close()
    partial.rename(db)
    for suffix in ("-wal", "-shm"):
        Path(str(partial) + suffix).unlink(missing_ok=True)
    ids_file.write_text(json.dumps(outbreak.case_ids))
    print(f"  build: {persons} persons, {events} events in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return outbreak.case_ids


def bench_token(db: Path) -> str:
    store = SQLiteStore(db)
    try:
        repo = auth_repository(store)
        now = datetime.now(timezone.utc)
        if repo.get_user("bench-commander") is None:
            return create_user(repo, "bench-commander", role="commander", now=now)[1]
        return issue_token(repo, "bench-commander", now=now)
    finally:
        store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: Path, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "TRACEGRAPH_STORE": f"sqlite:///{db}", "TRACEGRAPH_DEADLINES__ENABLED": "false",
           "TRACEGRAPH_API__ACCESS_LOG": "false"}
    cmd = [sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
           "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    import httpx

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError("server did not become ready in 120 s")


def server_cpu_seconds(proc: subprocess.Popen) -> float:
    """User + system CPU seconds of the live processes of the server's process group (master and workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == proc.pid:  # field 5 of stat (pgrp); the server runs in its own session
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


_WRK_LUA = """
local ids = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/persons/" .. ids[(i %% #ids) + 1] .. "/chain?hops=%d&via=%s")
end
"""


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def run_wrk(port: int, token: str, roots: list[str], args: argparse.Namespace) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_WRK_LUA % (",".join(json.dumps(r) for r in roots), args.hops, args.via))
        script = f.name
    try:
        cmd = ["wrk", "-t", str(args.threads), "-c", str(args.concurrency), "-d", f"{args.duration}s", "--latency",
               "-H", f"Authorization: Bearer {token}", "-s", script, f"http://127.0.0.1:{port}"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60).stdout
    finally:
        os.unlink(script)
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.M))
    if "99" not in pct:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"client": "wrk", "requests": total, "non_2xx": int(errors.group(1)) if errors else 0, "req_per_s": rps,
            "p50_ms": _ms(pct["50"]), "p90_ms": _ms(pct["90"]), "p99_ms": _ms(pct["99"]), "raw": out}


async def _httpx_load(port: int, token: str, roots: list[str], args: argparse.Namespace) -> dict:
    import httpx

    latencies: list[float] = []
    failures = 0
    sent = 0
    deadline = time.monotonic() + args.duration
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=10,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        async def worker() -> None:
            nonlocal sent, failures
            while sent < args.requests and time.monotonic() < deadline:
                root = roots[sent % len(roots)]
                sent += 1
                t0 = time.perf_counter()
                r = await client.get(f"/persons/{root}/chain", params={"hops": args.hops, "via": args.via})
                latencies.append((time.perf_counter() - t0) * 1000)
                failures += r.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def q(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)

    return {"client": "httpx", "requests": len(latencies), "non_2xx": failures,
            "req_per_s": round(len(latencies) / elapsed, 1), "p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", type=Path, default=None, help="default: var/bench-api-<persons>.db")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=lambda v: [int(c) for c in v.split(",")], default=[32],
                        help="open connections; a comma list (8,16,32) runs each in turn on the same server")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--duration", type=int, default=30, help="seconds of load (upper bound)")
    parser.add_argument("--requests", type=int, default=50_000, help="upper bound for the httpx client")
    parser.add_argument("--hops", type=int, default=2)
    parser.add_argument("--via", default="contacts", choices=["contacts", "links"])
    parser.add_argument("--roots", type=int, default=2_000, help="distinct chain roots (cases) rotated")
    parser.add_argument("--client", choices=["auto", "wrk", "httpx"], default="auto")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    db = args.db or REPO / "var" / f"bench-api-{args.persons}.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    cases = build(db, args.persons, args.events, args.seed)
    roots = random.Random(args.seed).sample(cases, min(args.roots, len(cases)))
    token = bench_token(db)
    port = free_port()
    proc = start_server(db, port, args.workers)
    summaries = []
    try:
        client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
        # Warm-up: page cache and per-worker token caches.
        warm = argparse.Namespace(**{**vars(args), "concurrency": max(args.concurrency), "duration": 10,
                                     "requests": min(2_000, args.requests)})
        asyncio.run(_httpx_load(port, token, roots, warm))
        for concurrency in args.concurrency:
            run = argparse.Namespace(**{**vars(args), "concurrency": concurrency})
            load_before = os.getloadavg()[0]
            server_before = server_cpu_seconds(proc)
            client_before = os.times()
            started = time.perf_counter()
            result = run_wrk(port, token, roots, run) if client == "wrk" else asyncio.run(
                _httpx_load(port, token, roots, run))
            wall = time.perf_counter() - started
            client_after = os.times()
            server_cpu = server_cpu_seconds(proc) - server_before
            # wrk is a child process; the httpx client runs in this one.
            client_cpu = ((client_after.children_user + client_after.children_system
                           - client_before.children_user - client_before.children_system) if client == "wrk"
                          else (client_after.user + client_after.system - client_before.user - client_before.system))
            raw = result.pop("raw", None)
            summary = {"persons": args.persons, "events": args.events, "workers": args.workers, "hops": args.hops,
                       "via": args.via, "concurrency": concurrency, "cpus": os.cpu_count(), **result,
                       "server_cpu_s": round(server_cpu, 2),
                       "server_cpu_ms_per_request": round(1000 * server_cpu / max(result["requests"], 1), 3),
                       "server_cpu_share": round(server_cpu / wall / (os.cpu_count() or 1), 2),
                       "client_cpu_s": round(client_cpu, 2), "loadavg_1m_before": round(load_before, 2)}
            print(json.dumps(summary, indent=2), flush=True)
            if raw:
                print(raw, file=sys.stderr)
            summaries.append(summary)
    finally:
        stop_server(proc)
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
