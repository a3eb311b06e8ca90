from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tracing.store.sqlite import SQLiteStore

from .story import Story, policy


@pytest.fixture
def make_story() -> Iterator[Callable[..., Story]]:
    stores: list[SQLiteStore] = []

    def make(path: str = ":memory:", **policy_changes) -> Story:
        store = SQLiteStore(path)
        stores.append(store)
        return Story(store, policy(**policy_changes))

    yield make
    for store in stores:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - already closed by the test
            pass
