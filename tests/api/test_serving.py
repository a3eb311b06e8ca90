"""How the service process is set up: logging, and the app of each worker under ``--workers N``."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI

from api.__main__ import configure_logging, worker_app
from api.middleware import JsonFormatter


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    executors = logging.getLogger("apscheduler.executors")
    executors_level = executors.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    executors.setLevel(executors_level)


def test_a_worker_process_sets_up_logging_itself(restore_logging, monkeypatch, tmp_path):
    # uvicorn spawns worker processes that never run main(): without this their INFO records
    # (a sweep lease handed over, alerts met) were dropped and the rest printed without JSON.
    monkeypatch.setenv("TRACEGRAPH_STORE", f"sqlite:///{tmp_path / 'w.db'}")
    monkeypatch.setenv("TRACEGRAPH_LOG_LEVEL", "DEBUG")
    logging.getLogger().handlers[:] = []
    app = worker_app()
    assert isinstance(app, FastAPI)
    root = logging.getLogger()
    assert root.level == logging.DEBUG
    assert [type(h.formatter) for h in root.handlers] == [JsonFormatter]


def test_the_scheduler_s_per_run_lines_are_not_logged(restore_logging):
    configure_logging("INFO")
    assert logging.getLogger("tracegraph.scheduler").isEnabledFor(logging.INFO)
    assert not logging.getLogger("apscheduler.executors.default").isEnabledFor(logging.INFO)
    assert logging.getLogger("apscheduler.executors.default").isEnabledFor(logging.ERROR)
