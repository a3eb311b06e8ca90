"""Where alerts go besides the store: a structured log and an optional webhook.

Alerts are written by the sweep in the same transaction as the state change
they report, so the store is the source of truth. Other sinks read from it:
the webhook keeps a cursor (last delivered ``seq``) in the store, so after a
restart it resumes where it stopped — nothing lost, nothing re-posted except
an alert whose POST succeeded just before a crash (receivers can dedupe on
the ``X-Tracegraph-Alert-Key`` header).
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Protocol

from graph_models.deadlines import Alert

from .repository import DeadlineRepository

__all__ = ["AlertSink", "LogSink", "WebhookSink"]

log = logging.getLogger("tracegraph.deadlines.alerts")


_STOPPED = "stopped"


class AlertSink(Protocol):
    def emit(self, alerts: Sequence[Alert]) -> None:
        """Called after the alerts are committed. Must not block for long or raise."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class LogSink:
    """One structured log record per alert (``extra={"alert": {...}}``, message is the JSON)."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.logger = logger

    def emit(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            payload = alert.model_dump(mode="json")
            level = logging.WARNING if alert.severity.value != "info" else logging.INFO
            self.logger.log(level, json.dumps(payload, ensure_ascii=False), extra={"alert": payload})

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class WebhookSink:
    """POST alerts as JSON from a background thread, in order, retrying with exponential back-off.

    ``emit`` only wakes the thread. Each alert is tried up to
    ``max_attempts`` times (delays ``backoff``, ``2·backoff``, …); a
    permanently failing alert is recorded in the store and skipped so it
    cannot hold up the rest. Alerts whose state is not in ``states`` are
    skipped (they stay in the store and the log).
    """

    def __init__(
        self, repo: DeadlineRepository, url: str, *, name: str = "webhook", timeout: float = 5.0,
        max_attempts: int = 5, backoff: float = 1.0, states: frozenset[str] | None = None, batch: int = 100,
    ) -> None:
        self.repo, self.url, self.name = repo, url, name
        self.timeout, self.max_attempts, self.backoff, self.batch = timeout, max_attempts, backoff, batch
        self.states = states
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failed = 0
        if repo.sink_cursor(name) is None:
            # A newly configured webhook starts from now, not from history.
            repo.set_sink_cursor(name, repo.max_alert_seq())

    def emit(self, alerts: Sequence[Alert]) -> None:
        if alerts:
            self._wake.set()

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"tracegraph-{self.name}", daemon=True)
            self._thread.start()
            self._wake.set()  # deliver what a previous run left behind

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def drain(self) -> None:
        """Deliver everything pending, in the calling thread (tests, one-shot commands)."""
        while self._deliver_pending():
            pass

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=30)
            self._wake.clear()
            try:
                while not self._stop.is_set() and self._deliver_pending():
                    pass
            except Exception:  # noqa: BLE001 - the thread must survive a store hiccup
                log.exception("webhook %s: delivery loop failed", self.name)

    def _deliver_pending(self) -> bool:
        cursor = self.repo.sink_cursor(self.name) or 0
        pending = self.repo.alerts(after_seq=cursor, limit=self.batch)
        for alert in pending:
            if self._stop.is_set():
                return False
            if self.states is None or alert.state.value in self.states:
                error = self._post_with_retries(alert)
                if error is _STOPPED:
                    return False  # keep the cursor: retried after the restart
                if error is not None:
                    self.failed += 1
                    log.error("webhook %s: giving up on alert %s: %s", self.name, alert.key, error)
                    self.repo.set_sink_cursor(self.name, alert.seq, failed=True, error=error)
                    continue
                self.delivered += 1
            self.repo.set_sink_cursor(self.name, alert.seq)
        return len(pending) == self.batch

    def _post_with_retries(self, alert: Alert) -> str | None:
        body = alert.model_dump_json().encode()
        error = None
        for attempt in range(self.max_attempts):
            if attempt:
                if self._stop.wait(self.backoff * 2 ** (attempt - 1)):
                    return _STOPPED
            request = urllib.request.Request(
                self.url, data=body, method="POST",
                headers={"Content-Type": "application/json", "X-Tracegraph-Alert-Key": alert.key},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    if 200 <= response.status < 300:
                        return None
                    error = f"HTTP {response.status}"
            except urllib.error.HTTPError as failure:
                error = f"HTTP {failure.code}"
            except (urllib.error.URLError, OSError) as failure:
                error = f"{type(failure).__name__}: {failure}"
            log.warning("webhook %s: attempt %d for %s failed: %s", self.name, attempt + 1, alert.key, error)
        return error
