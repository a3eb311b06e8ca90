"""Sweep worker processes: the same writes and alerts as one process, and no result lost when a worker fails."""

from __future__ import annotations

import os
import signal

import pytest

from tracing.deadlines import sweep_deadlines
from tracing.deadlines.workers import SweepShare, SweepWorkers

from .story import CASE, t

# Investigations besides the story's own, so that each sweep has several dirty ones to share out.
EXTRA = [
    CASE.model_copy(update={"id": f"Q{i}", "reported_at": t(9, 5 * i), "id_number": None if i % 2 else "1"})
    for i in range(9)
]


def _record(story, sweep) -> list:
    """Run the acceptance story with ``sweep``; what it stored: every alert and the final milestones."""
    story.write(t(9), persons=EXTRA)
    story.run(t(22), sweep=sweep)
    alerts = [(a.key, a.summary, a.at) for a in story.repo.alerts()]
    ids = ["inv:P0"] + [f"inv:{p.id}" for p in EXTRA]
    milestones = {
        m.id: (m.state, m.met_at, m.epoch, m.reason, m.at_due)
        for ms in story.repo.milestones_of(ids).values() for m in ms
    }
    return [alerts, milestones]


def _assert_all_evaluated(story, result) -> None:
    """Every extra investigation was evaluated at 11:00 and left the dirty queue; the 2 h clocks of those
    reported by 09:30 are at risk or missed (at-risk time: due − 30 min)."""
    ids = [f"inv:{p.id}" for p in EXTRA]
    assert not result.errors and result.evaluated == len(ids)
    assert story.repo.dirty_marks(limit=100) == {}
    assert all(m.evaluated_at == t(11) for ms in story.repo.milestones_of(ids).values() for m in ms)
    assert sorted({a.investigation_id for a in result.alerts}) == ids[:7]


def test_workers_store_what_one_process_stores(backend, tmp_path):
    alone = backend.make(str(tmp_path / "alone.db"))
    expected = _record(alone, alone.sweep)

    shared = backend.make(str(tmp_path / "shared.db"))
    with SweepWorkers(backend.url(shared), processes=1, min_share=1) as workers:
        calls = []

        def sweep():
            result = sweep_deadlines(shared.store, shared.repo, policy=shared.policy, now=shared.clock.now,
                                     workers=workers)
            assert not result.errors, result.errors
            calls.append(result.worker_cpu_ms)

        got = _record(shared, sweep)
    assert any(calls), "no sweep handed a share to the worker"
    assert got == expected


def test_a_failing_worker_costs_time_not_results(backend, tmp_path, monkeypatch):
    story = backend.make(str(tmp_path / "w.db"))
    story.write(t(9), persons=EXTRA)
    with SweepWorkers(backend.url(story), processes=1, min_share=1) as workers:

        def broken(*args, **kwargs):
            raise RuntimeError("worker lost")

        # The worker's answer is lost: its share is evaluated in this process, the pool replaced.
        monkeypatch.setattr("tracing.deadlines.workers.SweepShare.result", broken)
        result = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(11), workers=workers)
    _assert_all_evaluated(story, result)
    assert result.worker_cpu_ms == 0


def test_alerts_a_worker_wrote_before_its_answer_was_lost_are_reported(backend, tmp_path, monkeypatch):
    story = backend.make(str(tmp_path / "w.db"))
    story.write(t(9), persons=EXTRA)
    with SweepWorkers(backend.url(story), processes=1, min_share=1) as workers:
        real = SweepShare.result

        def written_then_lost(share):
            real(share)  # the worker evaluated and wrote its share…
            raise RuntimeError("…and its answer was lost")

        monkeypatch.setattr("tracing.deadlines.workers.SweepShare.result", written_then_lost)
        result = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(11), workers=workers)
    _assert_all_evaluated(story, result)  # its alerts come from the store: this process wrote none of them
    assert [a.seq for a in result.alerts] == sorted(a.seq for a in result.alerts)
    assert len({a.key for a in result.alerts}) == len(result.alerts) == len(story.repo.alerts())


def test_a_sweep_that_fails_waits_for_the_shares_it_sent(backend, tmp_path, monkeypatch):
    # Workers write their shares: a sweep failing here must not return (and let the next sweep read the
    # same marks) while a worker is still writing.
    story = backend.make(str(tmp_path / "w.db"))
    story.write(t(9), persons=EXTRA)
    with SweepWorkers(backend.url(story), processes=1, min_share=1) as workers:
        sent = []
        submit = workers.submit_shares

        def recording(*args, **kwargs):
            own, shares = submit(*args, **kwargs)
            sent.extend(i for share in shares for i in share.ids)
            return own, shares

        monkeypatch.setattr(workers, "submit_shares", recording)

        def broken(*args, **kwargs):
            raise RuntimeError("this process's part failed")

        monkeypatch.setattr("tracing.deadlines.service._sweep_own", broken)
        with pytest.raises(RuntimeError, match="part failed"):
            sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(11), workers=workers)
        # Returned only after the worker had written its share: those marks are gone, the others remain.
        assert sent and set(story.repo.dirty_marks(limit=100)) == {f"inv:{p.id}" for p in EXTRA} - set(sent)


def test_a_worker_on_another_database_is_not_trusted(backend, tmp_path):
    if backend.name != "sqlite":
        pytest.skip("needs a second database: one file per SQLite store")
    story = backend.make(str(tmp_path / "real.db"))
    story.write(t(9), persons=EXTRA)
    # A worker opened on an empty database finds none of its share: that must not drop the dirty marks.
    with SweepWorkers(f"sqlite:///{tmp_path / 'empty.db'}", processes=1, min_share=1) as workers:
        result = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(11), workers=workers)
    _assert_all_evaluated(story, result)


def test_workers_refuse_stores_they_cannot_share():
    with pytest.raises(ValueError, match="in-memory"):
        SweepWorkers("sqlite://:memory:")
    with pytest.raises(ValueError, match="routed"):
        SweepWorkers("neo4j://db.example:7687")


def test_ctrl_c_stops_the_sweeping_process_not_its_workers(backend, tmp_path):
    # Ctrl-C in a terminal signals the whole process group; `tracegraph scheduler` then closes its
    # workers itself. A worker that died of the signal would print a traceback and lose its share.
    if backend.name != "sqlite":
        pytest.skip("one backend is enough: the signal handling does not depend on the store")
    story = backend.make(str(tmp_path / "sig.db"))
    story.write(t(9), persons=EXTRA)
    with SweepWorkers(backend.url(story), processes=1, min_share=1) as workers:
        (pid,) = list(workers._ensure_pool()._processes)
        os.kill(pid, signal.SIGINT)
        result = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(11), workers=workers)
        assert result.worker_cpu_ms > 0  # the same worker answered
    _assert_all_evaluated(story, result)


def test_workers_started_when_needed_start_on_the_first_large_sweep(backend, tmp_path):
    if backend.name != "sqlite":
        pytest.skip("one backend is enough: when the pool starts does not depend on the store")
    story = backend.make(str(tmp_path / "lazy.db"))
    story.write(t(9), persons=EXTRA)
    workers = SweepWorkers(backend.url(story), processes=1, min_share=1, start_when_needed=True)
    try:
        # Too small to share: nothing starts.
        small = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(9), workers=workers, limit=1)
        assert small.evaluated >= 1 and not workers.ready and workers._starter is None
        # The first sweep large enough to share runs here and starts the pool in the background…
        first = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(10), workers=workers)
        assert first.evaluated > 1 and first.worker_cpu_ms == 0
        workers._starter.join(timeout=120)
        assert workers.ready
        # …which the next one shares its work with.
        story.repo.mark_dirty([f"inv:{p.id}" for p in EXTRA], t(10, 30))
        result = sweep_deadlines(story.store, story.repo, policy=story.policy, now=t(11), workers=workers)
        assert result.worker_cpu_ms > 0
    finally:
        workers.close()
    assert not result.errors and result.evaluated == len(EXTRA) and story.repo.dirty_marks(limit=100) == {}
    assert not workers.ready


def test_the_default_is_one_started_when_needed_on_two_cores(monkeypatch, tmp_path):
    from tracing.deadlines.settings import DeadlineSettings
    from tracing.scheduler import sweep_workers

    url = f"sqlite:///{tmp_path / 'd.db'}"
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1})
    chosen = sweep_workers(DeadlineSettings(), url)
    assert (chosen.processes, chosen.start_when_needed) == (1, True)
    assert sweep_workers(DeadlineSettings(), None) is None  # a store the service did not open
    assert sweep_workers(DeadlineSettings(), "sqlite://:memory:") is None
    assert sweep_workers(DeadlineSettings(sweep_processes=0), url) is None
    chosen = sweep_workers(DeadlineSettings(sweep_processes=2), url)
    assert (chosen.processes, chosen.start_when_needed) == (2, False)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0})
    assert sweep_workers(DeadlineSettings(), url) is None
