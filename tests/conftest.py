"""Shared fixtures: a store for every backend, a fixed clock, and the real datasets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tracing.store import GraphStore
from tracing.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parents[1]

#: Set by `make test` (and CI): Neo4j must be reachable, and a failure to reach it fails the run.
NEO4J_REQUIRED = os.environ.get("TRACEGRAPH_TEST_NEO4J", "") == "required"
NEO4J_URL = os.environ.get("TRACEGRAPH_TEST_NEO4J_URL", "bolt://127.0.0.1:7687")


def _neo4j_store() -> GraphStore | None:
    try:
        from tracing.store.neo4j import Neo4jStore
    except ImportError:
        if NEO4J_REQUIRED:
            raise
        return None
    try:
        return Neo4jStore(NEO4J_URL, auth=None, database="neo4j")
    except Exception as error:  # noqa: BLE001 - any connection failure means "not available"
        if NEO4J_REQUIRED:
            pytest.fail(f"Neo4j is required (TRACEGRAPH_TEST_NEO4J=required) but {NEO4J_URL} failed: {error}")
        return None


@pytest.fixture(scope="session")
def neo4j_session_store() -> Iterator[GraphStore | None]:
    store = _neo4j_store()
    yield store
    if store is not None:
        store.close()


@pytest.fixture(params=["sqlite", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def store(request: pytest.FixtureRequest) -> Iterator[GraphStore]:
    """An empty store of each backend; the same tests run against every one."""
    if request.param == "sqlite":
        sqlite = SQLiteStore(":memory:")
        yield sqlite
        sqlite.close()
        return
    neo4j = request.getfixturevalue("neo4j_session_store")
    if neo4j is None:
        pytest.skip("Neo4j not reachable (run `make test`, or scripts/neo4j/neo4j.sh start)")
    neo4j.wipe()
    yield neo4j


@pytest.fixture
def sqlite_store() -> Iterator[SQLiteStore]:
    store = SQLiteStore(":memory:")
    yield store
    store.close()


@pytest.fixture
def now() -> datetime:
    return datetime(2022, 4, 20, 12, 0, tzinfo=timezone.utc)


def _datasets_dir() -> Path:
    configured = os.environ.get("TRACEGRAPH_DATASETS")
    return Path(configured) if configured else REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def datasets() -> Path:
    """The real outbreak datasets (read in place from ../shared/datasets, never copied)."""
    path = _datasets_dir()
    if not (path / "mers_korea_2015").is_dir():
        pytest.fail(f"real datasets not found at {path}; set TRACEGRAPH_DATASETS")
    return path
