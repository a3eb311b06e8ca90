"""What only the embedded SQLite store does: its write-ahead log is checkpointed off the writers' path."""

from __future__ import annotations

import time

from graph_models import Person
from tracing.store.port import GraphBatch
from tracing.store.sqlite import SQLiteStore


def _wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_commits_leave_checkpoints_to_a_background_thread(tmp_path):
    store = SQLiteStore(tmp_path / "graph.db")
    try:
        # No commit checkpoints inline any more (SQLite's default does at 1,000 log pages) ...
        assert store.query("PRAGMA wal_autocheckpoint") == [(0,)]
        store.apply(GraphBatch(persons=[Person(id=f"P{i}", name=f"person {i}") for i in range(3_000)]))
        # ... the store's checkpoint thread copies the log into the database file instead.
        assert _wait_for(lambda: store._checkpointer.pages_copied > 0)
    finally:
        store.close()
    assert not store._checkpointer._thread.is_alive()  # close() stops it
    reopened = SQLiteStore(tmp_path / "graph.db")
    try:
        assert reopened.counts().persons == 3_000
    finally:
        reopened.close()


def test_an_in_memory_store_has_no_checkpoint_thread():
    store = SQLiteStore(":memory:")
    try:
        assert store._checkpointer is None
    finally:
        store.close()
