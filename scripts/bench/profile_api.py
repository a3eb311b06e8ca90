#!/usr/bin/env python3
"""Where one worker's time goes on the chain query: the app in-process, no network, no second worker.

1. The store work alone (``visible_person`` + ``service.chain`` on the bench graph), timed per call:
   on SQLite the chain route runs it on the event loop, so its p99 is how long one request can hold
   up every other request of that worker.
2. The whole request through the ASGI app (auth, permissions, audit group commit, serialisation,
   middleware) driven by ``--concurrency`` tasks over httpx's ASGI transport, under cProfile; prints
   the top functions by own time and by cumulative time.

Uses the graph ``bench_api.py`` built (``--db``). Bounded: ``--requests`` requests per phase.

    .venv/bin/python scripts/bench/profile_api.py --db /tmp/api-bench-1m.db --via links --hops 2
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import pstats
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "scripts" / "bench")]

from bench_api import bench_token  # noqa: E402

from api.main import create_app  # noqa: E402
from api.scoping import visible_person  # noqa: E402
from api.settings import ApiSettings  # noqa: E402
from graph_models import ChainVia  # noqa: E402
from tracing import service  # noqa: E402
from tracing.auth import auth_repository  # noqa: E402
from tracing.config import Settings  # noqa: E402
from tracing.store.sqlite import SQLiteStore  # noqa: E402


def quantiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)

    def q(p: float) -> float:
        return round(values[min(len(values) - 1, int(p * len(values)))], 3)

    return {"p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "max_ms": round(values[-1], 3)}


def store_work(store: SQLiteStore, roots: list[str], args: argparse.Namespace) -> dict:
    user = auth_repository(store).get_user("bench-commander")
    policy, now = Settings().tracing, datetime.now(timezone.utc)
    took, members = [], []
    for i in range(args.requests):
        root = roots[i % len(roots)]
        t0 = time.perf_counter()
        visible_person(store, user, root)
        chain = service.chain(store, root, via=ChainVia(args.via), hops=args.hops, policy=policy, now=now)
        took.append((time.perf_counter() - t0) * 1000)
        members.append(len(chain.members))
    return {"requests": args.requests, **quantiles(took), "members_mean": round(sum(members) / len(members), 1)}


async def through_app(store: SQLiteStore, token: str, roots: list[str], args: argparse.Namespace,
                      profile: cProfile.Profile) -> dict:
    import httpx

    app = create_app(store=store, api=ApiSettings(access_log=False))
    took: list[float] = []
    failures = 0
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            sent = 0

            async def worker() -> None:
                nonlocal sent, failures
                while sent < args.requests:
                    root = roots[sent % len(roots)]
                    sent += 1
                    t0 = time.perf_counter()
                    r = await client.get(f"/persons/{root}/chain", params={"hops": args.hops, "via": args.via})
                    took.append((time.perf_counter() - t0) * 1000)
                    failures += r.status_code != 200

            await client.get(f"/persons/{roots[0]}/chain")  # token cache, lazy imports
            gc.collect()
            cpu0, t0 = time.process_time(), time.perf_counter()
            profile.enable()
            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
            profile.disable()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    return {"requests": len(took), "non_200": failures, "req_per_s": round(len(took) / wall, 1),
            "cpu_ms_per_request": round(1000 * cpu / len(took), 3), **quantiles(took),
            "note": "client and server share this process and its profile"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="a graph built by bench_api.py")
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--hops", type=int, default=2)
    parser.add_argument("--via", default="links", choices=["contacts", "links"])
    parser.add_argument("--roots", type=int, default=2_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    cases = json.loads(args.db.with_suffix(".cases.json").read_text())
    roots = random.Random(args.seed).sample(cases, min(args.roots, len(cases)))
    token = bench_token(args.db)
    store = SQLiteStore(args.db)
    try:
        store_work(store, roots, argparse.Namespace(**{**vars(args), "requests": min(500, args.requests)}))  # warm
        report = {"store_work_per_request": store_work(store, roots, args)}
        profile = cProfile.Profile()
        report["through_app"] = asyncio.run(through_app(store, token, roots, args, profile))
    finally:
        store.close()
    print(json.dumps(report, indent=2))
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(order).print_stats(args.top)
        print(out.getvalue(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
