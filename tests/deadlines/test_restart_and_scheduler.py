"""Restart: a new scheduler on the same database neither loses nor repeats an alert."""

from __future__ import annotations

import time

from tracing.deadlines import deadline_repository
from tracing.deadlines.settings import DeadlineSettings
from tracing.scheduler import SWEEP_JOB_ID, build_scheduler

from .story import Story, t

END = t(10, 30, day=21)


def _keys(repo):
    return [(a.key, a.at, a.detected_at) for a in repo.alerts()]


def _scheduler(story: Story):
    settings = DeadlineSettings(policy=story.policy, interval_seconds=3600)
    scheduler = build_scheduler(story.store, settings, story.clock, sinks=[])
    scheduler.start()
    job = scheduler.deadline_job
    deadline = time.monotonic() + 5
    while job.last is None and time.monotonic() < deadline:  # the immediate first run
        time.sleep(0.01)
    assert job.last is not None
    return scheduler, job


def test_job_configuration(make_story):
    story = make_story()
    settings = DeadlineSettings(policy=story.policy, interval_seconds=30, misfire_grace_seconds=90)
    scheduler = build_scheduler(story.store, settings, story.clock, sinks=[])
    job = scheduler.get_job(SWEEP_JOB_ID)
    assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 90)
    assert job.trigger.interval.total_seconds() == 30


def test_restart_neither_loses_nor_repeats_alerts(make_story, backend, tmp_path):
    reference = make_story()
    reference.run(END)
    expected = _keys(reference.repo)  # before the next story (Neo4j: same server, wiped)

    path = str(tmp_path / "graph.db")
    first = make_story(path)
    scheduler, job = _scheduler(first)
    first.run(t(16, 30), sweep=job)
    scheduler.shutdown(wait=True)
    first.store.close()

    # Restart: new store object, new repository, new scheduler, same file. Its immediate first run
    # is the 16:45 tick and must raise exactly what the uninterrupted run raised at 16:45.
    second = backend.reopen(first)
    assert deadline_repository(second.store) is not first.repo
    first.clock.now = t(16, 45)
    scheduler, job = _scheduler(second)
    assert sorted(a.key for a in job.last.alerts) == sorted(
        k for k, _, detected in expected if detected == t(16, 45)
    ) != []
    # A second start at the same instant (e.g. a crash loop) adds nothing.
    scheduler.shutdown(wait=True)
    scheduler, job = _scheduler(second)
    assert job.last.alerts == [] and job.last.evaluated == 0
    second.run(END, start=t(17), sweep=job)
    scheduler.shutdown(wait=True)

    assert _keys(second.repo) == expected
    assert len({k for k, _, _ in _keys(second.repo)}) == len(_keys(second.repo))
    second.store.close()


def test_downtime_over_a_due_time_still_alerts_once(make_story, backend, tmp_path):
    path = str(tmp_path / "graph.db")
    first = make_story(path)
    first.run(t(16, 30))
    first.store.close()
    second = backend.reopen(first)
    first.clock.now = t(17, 10)  # down from 16:30 to 17:10: the 17:00 due time passed unseen
    scheduler, job = _scheduler(second)
    scheduler.shutdown(wait=True)
    transfer = [a for a in second.repo.alerts() if a.milestone_id == "inv:P0:transfer"]
    assert [(a.state.value, a.at, a.detected_at) for a in transfer] == [
        ("at_risk", t(16, 30), t(16, 30)), ("missed", t(17), t(17, 10))
    ]
    second.store.close()
