"""``python -m api``: run the service with uvicorn on the configured store.

With ``--demo-tokens`` (what ``make run`` passes for the demo database) it
creates one demo user per role if missing and prints a fresh token for each:
tokens are made at run time and exist only in that database.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import datetime, timezone

import uvicorn

from tracing.auth import Role, auth_repository, create_user, issue_token
from tracing.config import Settings
from tracing.store import open_store

from .main import create_app
from .middleware import JsonFormatter

#: Demo users: role → (region, site). The investigator is limited to Seoul (DS4C regions are "Province/City").
DEMO_USERS = {
    Role.ADMIN: (None, None),
    Role.INVESTIGATOR: ("Seoul", None),
    Role.COMMANDER: (None, None),
    Role.SITE_OPERATOR: (None, "demo-site-1"),
    Role.ANALYST: (None, None),
}


def demo_tokens(store_url: str) -> dict[str, str]:
    store = open_store(store_url)
    try:
        repo = auth_repository(store)
        now = datetime.now(timezone.utc)
        tokens = {}
        for role, (region, site) in DEMO_USERS.items():
            name = f"demo-{role.value.replace('_', '-')}"
            if repo.get_user(name) is None:
                _, tokens[name] = create_user(repo, name, role=role, region=region, site_id=site, now=now)
            else:
                tokens[name] = issue_token(repo, name, now=now)
        return tokens
    finally:
        store.close()


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler logs "Running job …" and "… executed successfully" at INFO for every run (every minute,
    # in each process); a failing job is still logged, at ERROR.
    logging.getLogger("apscheduler.executors").setLevel(max(logging.WARNING, root.level))


def worker_app():
    """The app of one uvicorn worker process (``--workers`` > 1). Those are spawned interpreters that do
    not run :func:`main`, so each sets up the service's logging here (the level comes from the parent)."""
    configure_logging(os.environ.get("TRACEGRAPH_LOG_LEVEL", "INFO"))
    return create_app(Settings())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m api", description="Run the tracegraph HTTP service.")
    parser.add_argument("--host", default="127.0.0.1", help="Bind address (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--demo-tokens", action="store_true", help="Create demo users (one per role) and print tokens")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    settings = Settings()
    configure_logging(args.log_level)
    print(f"tracegraph: store {settings.store}")
    if args.demo_tokens:
        print("tracegraph: demo tokens (valid for this database; send as 'Authorization: Bearer <token>'):")
        for name, token in demo_tokens(settings.store).items():
            print(f"  {name:<22} {token}")
    print(f"tracegraph: API docs at http://{args.host}:{args.port}/docs", flush=True)
    if args.workers > 1:
        os.environ["TRACEGRAPH_LOG_LEVEL"] = args.log_level
        uvicorn.run("api.__main__:worker_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                    log_level=args.log_level.lower(), access_log=False, log_config=None)
    else:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level.lower(),
                    access_log=False, log_config=None)


if __name__ == "__main__":
    main()
