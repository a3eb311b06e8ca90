"""One sweeper per store: the sweep lease (repository verbs) and the scheduler job that honours it."""

from __future__ import annotations

import threading
from datetime import timedelta

from tracing.deadlines.settings import DeadlineSettings
from tracing.scheduler import SweepJob, build_scheduler

from .story import CASE, t

LEASE = timedelta(minutes=3)


def test_a_live_lease_keeps_other_holders_out_until_it_expires(make_story):
    repo = make_story().repo
    assert repo.claim_sweep("a", now=t(9), until=t(9) + LEASE) == "a"
    assert repo.claim_sweep("b", now=t(9, 1), until=t(9, 1) + LEASE) == "a"
    assert repo.claim_sweep("a", now=t(9, 2), until=t(9, 2) + LEASE) == "a"  # renewed: now until 09:05
    assert repo.claim_sweep("b", now=t(9, 4), until=t(9, 4) + LEASE) == "a"
    assert repo.claim_sweep("b", now=t(9, 5), until=t(9, 5) + LEASE) == "b"  # expired at 09:05: taken over
    assert repo.claim_sweep("a", now=t(9, 6), until=t(9, 6) + LEASE) == "b"


def test_only_the_holder_releases_the_lease(make_story):
    repo = make_story().repo
    assert repo.claim_sweep("a", now=t(9), until=t(9) + LEASE) == "a"
    repo.release_sweep("b")
    assert repo.claim_sweep("b", now=t(9), until=t(9) + LEASE) == "a"
    repo.release_sweep("a")
    assert repo.claim_sweep("b", now=t(9), until=t(9) + LEASE) == "b"


def test_of_simultaneous_claims_on_an_expired_lease_one_wins(backend, tmp_path):
    first = backend.make(str(tmp_path / "lease.db"))
    first.repo.claim_sweep("old", now=t(9), until=t(9, 1))
    stories = [backend.reopen(first) for _ in range(6)]  # a store object (connection, driver) each
    start = threading.Barrier(len(stories))
    answers: dict[str, str] = {}

    def claim(i: int) -> None:
        start.wait()
        answers[f"h{i}"] = stories[i].repo.claim_sweep(f"h{i}", now=t(9, 2), until=t(9, 5))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(stories))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == len(stories)
    winners = {holder for holder in answers.values()}
    assert len(winners) == 1 and winners <= set(answers), answers
    assert first.repo.claim_sweep("late", now=t(9, 3), until=t(9, 6)) == winners.pop()


def _job(story, **settings) -> SweepJob:
    config = DeadlineSettings(policy=story.policy, **{"interval_seconds": 60, **settings})
    return SweepJob(story.store, story.repo, config, story.clock, sinks=[])


def test_of_two_schedulers_on_one_store_one_sweeps(backend, tmp_path):
    story = backend.make(str(tmp_path / "two.db"))
    other = backend.reopen(story)  # a second process: its own store object
    mine, theirs = _job(story), _job(other)
    assert mine.holder != theirs.holder
    story.clock.now = t(9)
    story.write(t(9), persons=[CASE])  # the case is reported: its investigation opens, dirty

    assert mine() is not None and mine.last.evaluated == 1
    story.clock.now = t(9, 1)
    assert theirs() is None and theirs.skipped_for == mine.holder and theirs.last is None
    assert story.repo.dirty_marks(limit=10) == {}

    # The holder dies without releasing: the other takes over once the lease (5 minutes) has run out.
    story.clock.now = t(9, 5) - timedelta(seconds=1)  # claimed at 09:00
    assert theirs() is None
    story.clock.now = t(9, 5)
    assert theirs() is not None and theirs.skipped_for is None
    assert mine() is None and mine.skipped_for == theirs.holder


def test_a_stopped_scheduler_hands_over_at_once(backend, tmp_path):
    story = backend.make(str(tmp_path / "handover.db"))
    other = backend.reopen(story)
    story.clock.now = t(9)
    settings = DeadlineSettings(policy=story.policy, interval_seconds=3600)
    first = build_scheduler(story.store, settings, story.clock, sinks=[])
    first.start()
    _wait_for_run(first.deadline_job)
    second = _job(other, interval_seconds=3600)
    assert second() is None  # the first holds the lease for three hours
    first.shutdown(wait=True)  # releases it
    assert second() is not None and second.skipped_for is None


def test_the_lease_lasts_three_intervals_and_at_least_five_minutes_unless_set():
    # At least five minutes: a sweep must not outlast its lease (a lost worker costs up to 120 s).
    assert DeadlineSettings(interval_seconds=60).lease == timedelta(minutes=5)
    assert DeadlineSettings(interval_seconds=600).lease == timedelta(minutes=30)
    assert DeadlineSettings(interval_seconds=60, lease_seconds=30).lease == timedelta(seconds=30)


def _wait_for_run(job) -> None:
    import time

    deadline = time.monotonic() + 10
    while job.last is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.last is not None
