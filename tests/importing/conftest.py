"""Fixtures of the import tests (the real datasets come from ``datasets`` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tracing.store.sqlite import SQLiteStore


@pytest.fixture
def fresh_store() -> Iterator[Callable[[], SQLiteStore]]:
    """Factory of empty in-memory stores, all closed at the end of the test."""
    stores: list[SQLiteStore] = []

    def make() -> SQLiteStore:
        stores.append(SQLiteStore(":memory:"))
        return stores[-1]

    yield make
    for store in stores:
        store.close()
