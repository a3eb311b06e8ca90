"""One repository per store and domain, for the domains that keep their state beside the graph.

Deadlines, transfers and users each have a repository Protocol with an
SQLite and a Neo4j implementation living in the same database as the graph
(through :meth:`SQLiteStore.transaction` / :meth:`Neo4jStore.execute_write`).
This picks the implementation for the store's backend, once per store: a
repository may create its schema on construction, which must not repeat
on every request.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from .port import GraphStore

R = TypeVar("R")

_BY_STORE: "weakref.WeakKeyDictionary[object, dict[str, Any]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def sibling_repository(
    store: GraphStore,
    domain: str,
    *,
    sqlite: Callable[[Any], R],
    neo4j: Callable[[Any], R],
) -> R:
    """The ``domain`` repository of ``store``, built by ``sqlite(store)`` or ``neo4j(store)`` on first use.

    The factories are callables (usually small functions importing the
    adapter class), so a backend's driver is only imported when it is used.

    Raises
    ------
    TypeError
        If ``store`` is neither an SQLite nor a Neo4j store.
    """
    with _LOCK:
        per_store = _BY_STORE.setdefault(store, {})
        repo = per_store.get(domain)
        if repo is None:
            from .sqlite import SQLiteStore

            if isinstance(store, SQLiteStore):
                repo = sqlite(store)
            else:
                from .neo4j import Neo4jStore

                if not isinstance(store, Neo4jStore):
                    raise TypeError(f"no {domain} repository for {type(store).__name__}")
                repo = neo4j(store)
            per_store[domain] = repo
        return repo


def forget_sibling_repositories(store: GraphStore) -> None:
    """Drop the repositories built for ``store`` (tests reuse one store across wiped databases)."""
    with _LOCK:
        _BY_STORE.pop(store, None)
