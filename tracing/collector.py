"""Pausing CPython's cyclic garbage collector around allocation-heavy, cycle-free work.

Some jobs (an import, a transfer plan, the deadline sweep) allocate many
small containers and keep most of them until they return. Every collection
pass then re-walks what they hold (and a full pass the whole heap) to find
nothing: their records form no reference cycles and die by reference
counting. Pausing the collector for the duration saves that work; whatever
cyclic garbage does appear is collected after it resumes.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]

_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector while the block runs; re-enable it when the last paused block ends.

    Safe across threads (the collector is process-wide): overlapping blocks
    share one pause, and a collector that was already disabled when the
    first of them began stays disabled.
    """
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
