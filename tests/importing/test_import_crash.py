"""A killed import leaves whole batches only, and running it again completes it.

The import runs in a subprocess (``python -m tracing.importing``) against a
file SQLite store; a separate connection polls the database and the process
gets SIGKILL as soon as some contact events are committed. If the import
finishes before it can be killed, the input is doubled and the test tries
again; it fails, never passes, if no attempt could be interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import REPO, write_synthetic

BATCH = 1_000
PERSONS = 20_000
ATTEMPTS = (200_000, 400_000, 800_000)  # contact events per attempt
TIMEOUT_S = 600


def _command(folder: Path, db: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "tracing.importing", "import",
        "--mapping", str(folder / "mapping.json"), "--dir", str(folder),
        "--store", f"sqlite:///{db}", "--batch-size", str(BATCH), "--no-derive", *extra,
    ]


def _counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {
            "persons": conn.execute("SELECT count(*) FROM persons").fetchone()[0],
            "events": conn.execute("SELECT count(*) FROM contact_events").fetchone()[0],
        }
    finally:
        conn.close()


def _run_and_kill_during_write(folder: Path, db: Path) -> int | None:
    """Run the import; SIGKILL it once events are being written. Its return code, or None if it finished first."""
    process = subprocess.Popen(_command(folder, db, "--quiet"), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    poll: sqlite3.Connection | None = None
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                _, stderr = process.communicate()
                assert process.returncode == 0, stderr.decode()
                return None
            if poll is None and db.exists():
                poll = sqlite3.connect(db, isolation_level=None, timeout=10)
            if poll is not None:
                try:
                    events = poll.execute("SELECT count(*) FROM contact_events").fetchone()[0]
                except sqlite3.OperationalError:  # schema not created yet
                    events = 0
                if events > 0:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()
                    return process.returncode
            time.sleep(0.002)
        pytest.fail(f"the import did not start writing within {TIMEOUT_S} s")
    finally:
        if poll is not None:
            poll.close()
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@pytest.mark.slow
def test_killed_import_leaves_whole_batches_and_a_rerun_completes_it(tmp_path):
    for attempt, n_events in enumerate(ATTEMPTS):
        folder = tmp_path / f"attempt-{attempt}"
        write_synthetic(folder, PERSONS, n_events)
        db = folder / "store.db"
        returncode = _run_and_kill_during_write(folder, db)
        if returncode is None:
            continue  # finished before the kill: try a bigger input
        counts = _counts(db)
        if returncode == -signal.SIGKILL and 0 < counts["events"] < n_events:
            break
    else:
        pytest.fail(f"no import could be interrupted mid-write (inputs of {ATTEMPTS} events)")

    # Only whole batches: persons (written first, 20 full batches) are complete, events a multiple of the batch.
    assert counts["persons"] == PERSONS
    assert counts["events"] % BATCH == 0, counts

    rerun = subprocess.run(_command(folder, db, "--json"), cwd=REPO, capture_output=True, timeout=TIMEOUT_S)
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert _counts(db) == {"persons": PERSONS, "events": n_events}
    report = json.loads(rerun.stdout)
    assert report["written"] == {"persons": PERSONS, "places": 0, "events": n_events, "visits": 0, "links": 0}
    print(f"\nre-import of {PERSONS + n_events:,} rows: {report['rows_per_s']:,.0f} rows/s ({report['duration_s']} s)")
