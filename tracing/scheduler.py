"""Scheduled jobs of the service (APScheduler 3): today the deadline sweep.

``build_scheduler`` is used by the API lifespan (started after the store
opens, shut down before it closes) and by ``tracegraph scheduler``. Jobs are
thin: ``now`` from the injected clock, one call into the service. All state
lives in the store, so a restart neither loses nor repeats an alert; the job
has an explicit id and ``replace_existing=True`` as APScheduler requires
for persistent job stores.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN, EVENT_SCHEDULER_STARTED
from apscheduler.schedulers.background import BackgroundScheduler

from .deadlines.repository import DeadlineRepository
from .deadlines.service import SweepResult, deadline_repository, sweep_deadlines
from .deadlines.settings import DeadlineSettings
from .deadlines.sinks import AlertSink, LogSink, WebhookSink
from .deadlines.workers import SweepWorkers
from .store.port import GraphStore

__all__ = ["SWEEP_JOB_ID", "SweepJob", "build_scheduler", "default_sinks", "deadline_settings", "sweep_workers"]

SWEEP_JOB_ID = "deadlines.sweep"
log = logging.getLogger("tracegraph.scheduler")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def deadline_settings(settings: object | None) -> DeadlineSettings:
    """Accept ``DeadlineSettings``, the service ``Settings`` (its ``deadlines`` field if any), or None."""
    if isinstance(settings, DeadlineSettings):
        return settings
    nested = getattr(settings, "deadlines", None)
    return nested if isinstance(nested, DeadlineSettings) else DeadlineSettings()


def default_sinks(repo: DeadlineRepository, settings: DeadlineSettings) -> list[AlertSink]:
    sinks: list[AlertSink] = [LogSink()]
    if settings.webhook_url:
        sinks.append(
            WebhookSink(
                repo, settings.webhook_url, timeout=settings.webhook_timeout_seconds,
                max_attempts=settings.webhook_max_attempts, backoff=settings.webhook_backoff_seconds,
                states=settings.webhook_states,
            )
        )
    return sinks


class SweepJob:
    """The ``deadlines.sweep`` job: one sweep at the clock's ``now``, then hand new alerts to the sinks.

    Several processes may run this job on one store (``python -m api --workers 2``:
    a scheduler in each; a ``tracegraph scheduler`` beside the API). Two sweeps at
    once would be safe (each write is conflict-checked and alert keys are unique)
    but would do the same work twice, so the store holds a lease: each run first
    claims or renews it (:meth:`~.deadlines.repository.DeadlineRepository.claim_sweep`,
    for ``settings.lease``) and only its holder sweeps. Runs of the others return
    at once (``skipped_for`` names the holder) and take over when the holder stops
    (it releases the lease on shutdown) or when its lease expires (it died).
    """

    def __init__(
        self, store: GraphStore, repo: DeadlineRepository, settings: DeadlineSettings,
        clock: Callable[[], datetime], sinks: Sequence[AlertSink], workers: SweepWorkers | None = None,
    ) -> None:
        self.store, self.repo, self.settings, self.clock, self.sinks = store, repo, settings, clock, list(sinks)
        self.workers = workers
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.skipped_for: str | None = None  # the lease holder, while another process sweeps
        self.last: SweepResult | None = None

    def __call__(self) -> SweepResult | None:
        now = self.clock()
        holder = self.repo.claim_sweep(self.holder, now=now, until=now + self.settings.lease)
        if holder != self.holder:
            if self.skipped_for != holder:
                log.info("deadline sweep: %s holds this store's sweep lease; %s waits", holder, self.holder)
            self.skipped_for = holder
            return None
        if self.skipped_for is not None:
            log.info("deadline sweep: %s took over the sweep lease from %s", self.holder, self.skipped_for)
            self.skipped_for = None
        result = sweep_deadlines(
            self.store, self.repo, policy=self.settings.policy, now=now, limit=self.settings.batch_limit,
            workers=self.workers,
        )
        self.last = result
        for sink in self.sinks:
            try:
                sink.emit(result.alerts)
            except Exception:  # noqa: BLE001 - a sink must not break the sweep
                log.exception("alert sink %r failed", sink)
        if result.errors:
            log.warning("deadline sweep: %d investigation(s) failed: %s", len(result.errors), sorted(result.errors)[:10])
        log.debug(
            "deadline sweep at %s: %d evaluated, %d changed, %d alerts, %.1f ms",
            result.now.isoformat(), result.evaluated, result.changed, len(result.alerts), result.elapsed_ms,
        )
        return result

    def start_sinks(self, _event=None) -> None:
        for sink in self.sinks:
            sink.start()

    def stop_sinks(self, _event=None) -> None:
        for sink in self.sinks:
            sink.stop()

    def start_workers(self, _event=None) -> None:
        if self.workers is not None and not self.workers.start_when_needed:
            try:
                self.workers.start()
            except Exception:  # noqa: BLE001 - sweeps then run in-process until a pool starts
                log.exception("sweep workers did not start")
                self.workers.restart()

    def stop_workers(self, _event=None) -> None:
        if self.workers is not None:
            self.workers.close()

    def release(self, _event=None) -> None:
        """Give up the sweep lease (on shutdown), so another process's scheduler sweeps from its next run."""
        try:
            self.repo.release_sweep(self.holder)
        except Exception:  # noqa: BLE001 - the lease then expires on its own
            log.exception("could not release the sweep lease")


def sweep_workers(config: DeadlineSettings, store_url: str | None) -> SweepWorkers | None:
    """The worker pool the settings ask for: ``sweep_processes`` processes, or unset, one on a machine with
    at least two cores for a shareable store (an SQLite file, a single Neo4j server), started when first needed."""
    if not store_url:
        return None
    if config.sweep_processes is not None:
        return SweepWorkers(store_url, processes=config.sweep_processes) if config.sweep_processes else None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    if cores < 2:
        return None
    try:
        return SweepWorkers(store_url, processes=1, start_when_needed=True)
    except ValueError:  # an in-memory store or a routed cluster: nothing to share
        return None


def build_scheduler(
    store: GraphStore, settings: object | None = None, clock: Callable[[], datetime] = _utc_now, *,
    repo: DeadlineRepository | None = None, sinks: Sequence[AlertSink] | None = None, store_url: str | None = None,
) -> BackgroundScheduler:
    """A (not yet started) background scheduler running the deadline sweep every ``interval_seconds``.

    The job runs once right after ``start()``; overlapping runs are
    prevented (``max_instances=1``), missed runs collapse into one
    (``coalesce``) and are still run within ``misfire_grace_seconds``.
    The sweep job object is ``scheduler.deadline_job`` (for tests and health checks).
    Given the store's URL (``store_url``), large sweeps are shared with worker
    processes (:func:`sweep_workers`, :mod:`tracing.deadlines.workers`), stopped
    with the scheduler. Of several schedulers on one store, one sweeps at a time
    (the lease, see :class:`SweepJob`).

    Raises
    ------
    ValueError
        If the store has no deadline repository (Neo4j: not implemented yet).
    """
    config = deadline_settings(settings)
    repo = repo or deadline_repository(store)
    if repo is None:
        raise ValueError(f"no deadline repository for {type(store).__name__}")
    workers = sweep_workers(config, store_url)
    job = SweepJob(store, repo, config, clock, default_sinks(repo, config) if sinks is None else sinks, workers)
    scheduler = BackgroundScheduler(
        timezone=timezone.utc,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": config.misfire_grace_seconds},
    )
    scheduler.add_job(
        job, "interval", seconds=config.interval_seconds, id=SWEEP_JOB_ID, name="2+4+24+8 deadline sweep",
        coalesce=True, max_instances=1, misfire_grace_time=config.misfire_grace_seconds, replace_existing=True,
        next_run_time=datetime.now(timezone.utc),
    )
    scheduler.add_listener(job.start_sinks, EVENT_SCHEDULER_STARTED)
    scheduler.add_listener(job.stop_sinks, EVENT_SCHEDULER_SHUTDOWN)
    scheduler.add_listener(job.start_workers, EVENT_SCHEDULER_STARTED)
    scheduler.add_listener(job.stop_workers, EVENT_SCHEDULER_SHUTDOWN)
    scheduler.add_listener(job.release, EVENT_SCHEDULER_SHUTDOWN)
    scheduler.deadline_job = job
    return scheduler
