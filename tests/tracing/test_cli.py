"""The tracegraph CLI as investigators use it: import a dataset, then trace, chain, sources, clusters."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tracing.cli import app

runner = CliRunner()


@pytest.fixture
def mers_url(tmp_path, datasets):
    url = f"sqlite:///{tmp_path}/cli.db"
    result = runner.invoke(
        app, ["import", "--store", url, "--dataset", "mers_korea_2015", "--dir", str(datasets / "mers_korea_2015"), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    return url


def test_trace_table_and_json(mers_url):
    table = runner.invoke(app, ["trace", "SK_14", "--store", mers_url, "--now", "2015-07-01"])
    assert table.exit_code == 0, table.output
    assert "密接" in table.output and "SK_113" in table.output
    data = json.loads(runner.invoke(app, ["trace", "SK_14", "--store", mers_url, "--now", "2015-07-01", "--json"]).output)
    assert data["case_id"] == "SK_14"
    close = [c for c in data["contacts"] if c["contact_class"] == "close"]
    assert len(close) >= 38 and all(c["evidence"] for c in close)


def test_chain_up_and_down(mers_url):
    down = json.loads(
        runner.invoke(app, ["chain", "SK_1", "--down", "--via", "links", "--hops", "3", "--store", mers_url, "--json"]).output
    )
    assert {"SK_14", "SK_123", "SK_147"} <= {m["person_id"] for m in down["members"]}
    up = runner.invoke(app, ["chain", "SK_147", "--up", "--via", "links", "--store", mers_url])
    assert up.exit_code == 0 and "SK_1" in up.output
    both = runner.invoke(app, ["chain", "SK_1", "--up", "--down", "--store", mers_url])
    assert both.exit_code != 0


def test_sources_and_clusters(mers_url):
    sources = json.loads(runner.invoke(app, ["sources", "SK_39", "--store", mers_url, "--now", "2015-07-01", "--json"]).output)
    assert {"SK_14", "SK_11", "SK_12"} <= {c["person_id"] for c in sources}
    clusters = json.loads(runner.invoke(app, ["clusters", "--store", mers_url, "--json"]).output)
    assert clusters[0]["size"] == max(c["size"] for c in clusters)
    table = runner.invoke(app, ["clusters", "--store", mers_url])
    assert table.exit_code == 0 and "clusters" in table.output


def test_unknown_case_is_a_clear_error(mers_url):
    result = runner.invoke(app, ["trace", "SK_999", "--store", mers_url])
    assert result.exit_code == 1
    assert "not in the graph" in result.output


def test_times_are_read_and_shown_in_the_display_time_zone(mers_url, monkeypatch):
    from tracing import cli

    monkeypatch.setenv("TRACEGRAPH_DISPLAY_TIMEZONE", "Asia/Shanghai")
    cli._display_zone.cache_clear()
    data = json.loads(runner.invoke(app, ["trace", "SK_14", "--store", mers_url, "--now", "2015-07-01T08:00", "--json"]).output)
    assert data["window_end"] == "2015-07-01T00:00:00Z"  # 08:00 in Beijing is midnight UTC; JSON stays UTC
    table = runner.invoke(app, ["trace", "SK_14", "--store", mers_url, "--now", "2015-07-01T08:00"]).output
    assert "2015-07-01 08:00 (Asia/Shanghai)" in table
    cli._display_zone.cache_clear()
