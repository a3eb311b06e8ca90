"""Worker processes that evaluate part of a large deadline sweep: the machine's other cores.

Loading and evaluating the facts of a dirty investigation is CPU-bound
Python, ~0.1-0.2 ms each, and independent of every other investigation; one
process holds the GIL for all of it. With :class:`SweepWorkers` the sweep
(:func:`~.service.sweep_deadlines`) splits its dirty investigations: each
worker process loads, evaluates, plans and writes its share
(:func:`~.service.plan_dirty` and
:meth:`~.repository.DeadlineRepository.apply_evaluations`, the same code)
while the sweeping process does its own share and the clock crossings, and
answers with the alerts its writes inserted. So the rules, the atomic
per-investigation writes, the conflict checks (a write planned from a stale
read is refused and retried next sweep) and the alert-key idempotence are
exactly those of a sweep without workers.

A worker opens its own store from the same URL (an SQLite file or a Neo4j
server; an in-memory SQLite store cannot be shared) once, when it starts,
and keeps it open. The processes are *spawned* (a fresh interpreter), never
forked: the sweeping process may run threads (the API, the scheduler) and
holds open database handles.

A worker that fails, dies or takes longer than ``timeout`` seconds costs
time, never results: it is killed (a write cut short is rolled back), its
share is evaluated and written in the sweeping process (what the worker had
already written is not written twice, and the alerts it inserted are read
back from the store for the sweep's result) and the pool is replaced before
the next sweep. So does a worker that does not find investigations the
sweeping process finds (a wrong URL): orphan dirty marks are only ever
dropped by the sweeping process, from its own reads.

A worker must read at least everything the sweeping process has read: true
of one SQLite file (WAL: every committed write is visible to a new read) and
of one Neo4j server (``bolt://``). Not of a routed cluster (``neo4j://``): a
worker's own driver might read from a member that lags the sweeping process's
bookmarks, evaluate stale facts and let the sweep clear the dirty mark, so
those URLs are refused until bookmarks are handed over with a share.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from graph_models.deadlines import Alert, DeadlinePolicy

from ..collector import collector_paused
from .repository import DeadlineRepository, DirtyMark

__all__ = ["ShareDone", "SweepShare", "SweepWorkers"]

log = logging.getLogger("tracegraph.deadlines")


@dataclass
class ShareDone:
    """What a worker did with its share: the alerts its writes inserted, per investigation the error
    (failed to evaluate, or its write refused), the ids it did not find, how many investigations'
    writes changed anything, and its CPU ms."""

    alerts: list[Alert]
    errors: dict[str, str]
    missing: list[str]
    changed: int
    cpu_ms: float


@dataclass
class SweepShare:
    """The investigations handed to one worker, and the pending answer."""

    ids: list[str]
    future: Future
    timeout: float

    def result(self) -> ShareDone:
        """The worker's answer; raises if it failed or timed out."""
        return self.future.result(timeout=self.timeout)


class SweepWorkers:
    """A pool of ``processes`` worker processes evaluating shares of large sweeps (see module docstring).

    ``min_share``: the fewest dirty investigations worth sending to a worker
    (below that, a share would cost more in hand-over than it saves); a sweep with
    fewer than ``2 × min_share`` dirty investigations runs in-process. Start the
    pool before the first sweep (:meth:`start`, or use it as a context manager) so
    that sweep does not wait for the interpreters to start; close it when done.
    With ``start_when_needed`` the processes start instead in the background, when
    a sweep is first large enough to share (that sweep runs in-process): a service
    whose sweeps stay small never starts them.
    """

    def __init__(
        self, store_url: str, *, processes: int = 1, min_share: int = 200, timeout: float = 120.0,
        start_when_needed: bool = False, own_weight: float = 0.9,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        if store_url.startswith("sqlite://") and store_url.removeprefix("sqlite://") in ("", ":memory:", "/:memory:"):
            raise ValueError("an in-memory SQLite store cannot be shared with worker processes")
        if store_url.startswith("neo4j"):
            raise ValueError("routed Neo4j URLs (neo4j://) are not supported: a worker could read a lagging member")
        if store_url.startswith("sqlite:///") and not store_url.startswith("sqlite:////"):
            # A relative path: the workers must open this process's file whatever their working directory.
            store_url = "sqlite:///" + str(Path(store_url.removeprefix("sqlite:///")).resolve())
        self.store_url, self.processes, self.min_share, self.timeout = store_url, processes, min_share, timeout
        self.start_when_needed, self.own_weight = start_when_needed, own_weight
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()  # the current pool's processes have opened their stores
        self._starter: threading.Thread | None = None
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the processes and wait until each has opened its store (idempotent)."""
        pool = self._ensure_pool()
        # One task per process: a spawned pool starts all of its processes on the first submit,
        # and each runs the initializer (opening its store) before its first task.
        for future in [pool.submit(_ready) for _ in range(self.processes)]:
            future.result(timeout=self.timeout)
        self._ready.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            starter = self._starter
        if starter is not None:
            starter.join(timeout=self.timeout * (self.processes + 1))
        with self._lock:
            pool, self._pool = self._pool, None
            self._ready.clear()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def restart(self) -> None:
        """Stop the current processes (after a failure or a timeout); new ones start on the next use.

        They are killed, not asked to finish: the caller evaluates and writes their shares itself, and a
        worker still writing would race it (a transaction cut short is rolled back by the database)."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._ready.clear()
        if pool is not None:
            # ProcessPoolExecutor has no public way to kill its processes before Python 3.14
            # (terminate_workers); _processes is the executor's own table of them.
            processes = list((getattr(pool, "_processes", None) or {}).values())
            for process in processes:
                process.terminate()
            for process in processes:
                process.join(timeout=10)
            pool.shutdown(wait=False, cancel_futures=True)

    @property
    def ready(self) -> bool:
        """Whether the processes have started and opened their stores."""
        return self._ready.is_set()

    def _start_in_background(self) -> None:
        with self._lock:
            if self._closed or (self._starter is not None and self._starter.is_alive()):
                return
            self._starter = threading.Thread(target=self._start_quietly, name="sweep-workers-start", daemon=True)
            self._starter.start()

    def _start_quietly(self) -> None:
        started = time.perf_counter()
        try:
            self.start()
        except Exception:  # noqa: BLE001 - sweeps stay in-process; the next large one tries again
            log.exception("sweep workers did not start")
            self.restart()
            return
        if self._closed:  # closed while starting
            with self._lock:
                pool, self._pool = self._pool, None
                self._ready.clear()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            return
        log.info("started %d sweep worker process(es) in %.1f s", self.processes, time.perf_counter() - started)

    def __enter__(self) -> SweepWorkers:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _ensure_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed and self._pool is None and threading.current_thread() is not self._starter:
                raise RuntimeError("sweep workers closed")
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_open_store, initargs=(self.store_url,),
                )
            return self._pool

    # --- work --------------------------------------------------------------------------------
    def submit_shares(
        self, ids: Sequence[str], dirty: dict[str, DirtyMark], *, policy: DeadlinePolicy, now: datetime
    ) -> tuple[list[str], list[SweepShare]]:
        """Split ``ids`` into contiguous parts, hand all but the first to the workers.

        The first part, the caller's, is ``own_weight`` times a worker's: besides
        its own part, the caller reads the sweep's queues and handles its clock crossings.

        Returns the part the caller evaluates itself and the workers' shares. Too few ids,
        or a pool that cannot take work: everything stays with the caller.
        """
        parts = min(self.processes + 1, len(ids) // self.min_share)
        if parts < 2:
            return list(ids), []
        if self.start_when_needed and not self._ready.is_set():
            self._start_in_background()
            return list(ids), []
        own = max(1, round(len(ids) * self.own_weight / (self.own_weight + parts - 1)))
        size = -(-(len(ids) - own) // (parts - 1))
        chunks = [list(ids[:own])] + [list(ids[i:i + size]) for i in range(own, len(ids), size)]
        try:
            pool = self._ensure_pool()
            shares = [
                SweepShare(chunk, pool.submit(_evaluate_share, chunk, {i: dirty[i] for i in chunk if i in dirty},
                                              policy, now), self.timeout)
                for chunk in chunks[1:]
            ]
        except Exception:  # noqa: BLE001 - a broken pool: evaluate everything here, start afresh next time
            log.exception("sweep workers unavailable: evaluating in-process")
            self.restart()
            return list(ids), []
        return chunks[0], shares


# --- inside a worker process ---------------------------------------------------------------------

_worker: tuple[object, DeadlineRepository] | None = None


def _open_store(store_url: str) -> None:
    global _worker
    # Ctrl-C in a terminal reaches the whole process group: the sweeping process stops the
    # workers itself (close()), so a worker must not die of it halfway, with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from ..store import open_store
    from .service import deadline_repository

    store = open_store(store_url)
    repo = deadline_repository(store)
    if repo is None:
        raise RuntimeError(f"no deadline repository for {store_url}")
    _worker = (store, repo)


def _ready() -> bool:
    return _worker is not None


def _evaluate_share(ids: list[str], dirty: dict[str, DirtyMark], policy: DeadlinePolicy, now: datetime) -> ShareDone:
    from .service import SweepResult, _apply, plan_dirty

    started = time.process_time()
    store, repo = _worker
    done = SweepResult(now=now)
    with collector_paused():
        writes, errors, missing = plan_dirty(store, repo, ids, policy=policy, now=now, dirty=dirty)
        try:
            _apply(repo, writes, done)  # as the sweeping process writes its own share
        except Exception as error:  # noqa: BLE001 - e.g. the database stayed locked (SQLite: then nothing was stored)
            done = SweepResult(now=now, errors={i: f"{type(error).__name__}: {error}" for i in writes})
    errors.update(done.errors)
    return ShareDone(done.alerts, errors, missing, done.changed, (time.process_time() - started) * 1000)
