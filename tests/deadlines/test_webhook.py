"""Webhook sink against a local HTTP server (127.0.0.1 only): order, retries with back-off, resume."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tracing.deadlines.sinks import WebhookSink

from .story import t


class _Receiver:
    def __init__(self, fail_first: int = 0, always_fail_key: str | None = None) -> None:
        self.received: list[dict] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.attempts += 1
                failing = receiver.attempts <= fail_first or body["key"] == always_fail_key
                if not failing:
                    assert self.headers["X-Tracegraph-Alert-Key"] == body["key"]
                    receiver.received.append(body)
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(**kw):
        made.append(_Receiver(**kw))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert predicate()


def test_webhook_posts_in_order_with_retries_and_resumes_after_restart(make_story, receiver):
    r = receiver(fail_first=2)
    story = make_story()
    sink = WebhookSink(story.repo, r.url, backoff=0.01, max_attempts=4)
    sink.start()

    def sweep():
        result = story.sweep()
        sink.emit(result.alerts)

    story.run(t(13), sweep=sweep)
    expected = [a.key for a in story.repo.alerts()]
    assert len(expected) == 4
    _wait(lambda: len(r.received) == len(expected))
    assert [b["key"] for b in r.received] == expected
    assert r.attempts == len(expected) + 2  # the two failures were retried
    sink.stop()

    # Alerts raised while the sink is down are delivered by a new sink (restart) — and nothing twice.
    story.run(t(17), start=t(13, 15))
    restarted = WebhookSink(story.repo, r.url, backoff=0.01)
    restarted.start()
    everything = [a.key for a in story.repo.alerts()]
    _wait(lambda: len(r.received) == len(everything))
    restarted.stop()
    assert [b["key"] for b in r.received] == everything


def test_webhook_gives_up_on_one_alert_without_blocking_the_rest(make_story, receiver):
    story = make_story()
    story.run(t(10, 45))
    first, second = story.repo.alerts()
    r = receiver(always_fail_key=first.key)
    story.repo.set_sink_cursor("hook", first.seq - 1)
    sink = WebhookSink(story.repo, r.url, name="hook", backoff=0.001, max_attempts=3)
    started = time.monotonic()
    sink.emit([first])  # no thread started: emit must return at once
    assert time.monotonic() - started < 0.05
    sink.drain()
    assert [b["key"] for b in r.received] == [second.key]
    assert r.attempts == 3 + 1
    assert [seq for seq, _ in story.repo.delivery_failures("hook")] == [first.seq]
    assert story.repo.sink_cursor("hook") == second.seq


def test_new_webhook_starts_from_now(make_story, receiver):
    story = make_story()
    story.run(t(10, 45))
    r = receiver()
    sink = WebhookSink(story.repo, r.url, name="late")
    sink.drain()
    assert r.received == []
