"""``python -m api``: run the service with uvicorn on the configured store."""

from __future__ import annotations

import argparse

import uvicorn

from tracing.config import Settings

from .main import create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m api", description="Run the tracegraph HTTP service.")
    parser.add_argument("--host", default="127.0.0.1", help="Bind address (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    settings = Settings()
    print(f"tracegraph: store {settings.store}")
    print(f"tracegraph: API docs at http://{args.host}:{args.port}/docs")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
