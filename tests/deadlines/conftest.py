"""Deadline fixtures: every test runs against each backend of the shared ``store`` fixture (SQLite, Neo4j).

``make_story()`` gives a story over a fresh, empty database of the test's
backend (SQLite: in memory, or the file ``path``; Neo4j: the test server,
wiped) through its own store object, so a test may close it.
``backend.reopen(story)`` opens a *new* store object over the same database
(a restart), and ``backend.url(story)`` is its store URL (for the CLI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from tests.conftest import NEO4J_URL
from tracing.store.sqlite import SQLiteStore

from .story import Story, policy


@dataclass
class Backend:
    name: str
    stores: list = field(default_factory=list)
    _paths: dict[int, str] = field(default_factory=dict)

    def _open(self, path: str):
        if self.name == "sqlite":
            store = SQLiteStore(path)
        else:
            from tracing.store.neo4j import Neo4jStore

            store = Neo4jStore(NEO4J_URL, auth=None, database="neo4j")
        self.stores.append(store)
        return store

    def make(self, path: str = ":memory:", **policy_changes) -> Story:
        """A story over a fresh, empty database."""
        store = self._open(path)
        if self.name == "neo4j":
            store.wipe()
        story = Story(store, policy(**policy_changes))
        self._paths[id(story)] = path
        return story

    def reopen(self, story: Story) -> Story:
        """The same database through a new store object (and so a new deadline repository): a restart."""
        path = self._paths[id(story)]
        assert self.name == "neo4j" or path != ":memory:", "an in-memory database cannot be reopened"
        again = Story(self._open(path), story.policy, clock=story.clock)
        self._paths[id(again)] = path
        return again

    def url(self, story: Story) -> str:
        return f"sqlite:///{self._paths[id(story)]}" if self.name == "sqlite" else NEO4J_URL

    def close(self) -> None:
        for store in self.stores:
            try:
                store.close()
            except Exception:  # noqa: BLE001 - already closed by the test
                pass


@pytest.fixture
def backend(store) -> Iterator[Backend]:
    """Parametrized through the shared ``store`` fixture (skipped when Neo4j is not reachable, wiped before)."""
    made = Backend("sqlite" if isinstance(store, SQLiteStore) else "neo4j")
    yield made
    made.close()


@pytest.fixture
def make_story(backend: Backend) -> Callable[..., Story]:
    return backend.make
