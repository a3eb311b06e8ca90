"""``tracegraph import`` through typer's CliRunner, on an app of our own that :func:`register` fills."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

import pytest
import typer
from typer.testing import CliRunner

from graph_models.deadlines import DeadlinePolicy

from tracing.importing.cli import register

from .helpers import rows


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test CLI."""

    register(app)
    return app


runner = CliRunner()


def _table_counts(db) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("persons", "places", "contact_events", "visits", "transmission_links")
        }


def test_dataset_import_as_json(app, tmp_path, datasets):
    db = tmp_path / "cli.db"
    folder = datasets / "mers_korea_2015"
    result = runner.invoke(app, [
        "import", "--dataset", "mers_korea_2015", "--dir", str(folder), "--store", f"sqlite:///{db}",
        "--no-derive", "--json", "--batch-size", "50",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    linelist = rows(folder / "mers_korea_2015_linelist.csv")
    assert report["status"] == "imported" and report["rederived_cases"] is None
    assert report["written"]["persons"] == len(linelist)
    assert report["batches"] == 4 + 2 + 2  # 162 persons, 96 events, 98 links in batches of 50
    assert _table_counts(db)["persons"] == len(linelist)
    assert [p["line"] for p in report["problems"]] == [32, 34]


def test_dataset_import_rederives_affected_cases(app, tmp_path, datasets):
    db = tmp_path / "cli.db"
    result = runner.invoke(app, [
        "import", "--dataset", "measles_hagelloch_1861", "--dir", str(datasets / "measles_hagelloch_1861"),
        "--store", f"sqlite:///{db}", "--json",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # Every person of Hagelloch is a confirmed case with an onset: all of them are re-derived.
    assert sorted(report["rederived_cases"]) == sorted(report["touched_person_ids"])
    assert len(report["rederived_cases"]) == 188


def test_dataset_directory_from_environment_and_summary_table(app, tmp_path, datasets, monkeypatch):
    monkeypatch.setenv("TRACEGRAPH_DATASETS", str(datasets))
    monkeypatch.setenv("TRACEGRAPH_STORE", f"sqlite:///{tmp_path / 'env.db'}")
    result = runner.invoke(app, ["import", "--dataset", "ds4c_korea_covid19", "--no-derive"])
    assert result.exit_code == 0, result.output
    assert "PatientInfo.csv" in result.stdout and "two-way link" in result.stdout
    assert _table_counts(tmp_path / "env.db")["visits"] > 0


def test_rejected_import_exits_1_lists_rows_and_writes_nothing(app, tmp_path, datasets):
    db = tmp_path / "cli.db"
    args = ["import", "--dataset", "ebola_sim_2014_raw", "--dir", str(datasets / "ebola_sim_2014"),
            "--store", f"sqlite:///{db}", "--no-derive", "--batch-size", "500"]

    result = runner.invoke(app, args)
    assert result.exit_code == 1
    printed = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(printed) == 50 and printed[0].startswith("ebola_sim_linelist.csv:")
    assert "... and 9 more" in result.stderr
    assert not any(_table_counts(db).values())

    as_json = runner.invoke(app, [*args, "--json"])
    assert as_json.exit_code == 1
    payload = json.loads(as_json.stdout)
    assert payload["status"] == "rejected" and payload["problem_counts"]["error"] == 59
    assert len([p for p in payload["problems"] if p["severity"] == "error"]) == 59

    skipped = runner.invoke(app, [*args, "--skip-invalid", "--quiet"])
    assert skipped.exit_code == 0, skipped.output
    assert _table_counts(db)["persons"] > 0 and skipped.stdout == ""


def test_adhoc_file_with_column_map(app, tmp_path):
    db = tmp_path / "cli.db"
    people = tmp_path / "people.csv"
    people.write_text("pid,state,onset,age\nA,confirmed,2022-04-01,40\nB,none,,12\n", encoding="utf-8")
    met = tmp_path / "met.csv"
    met.write_text("who,whom,from,to,setting\nA,B,2022-04-02 18:00,2022-04-02 20:00,meal\n", encoding="utf-8")
    store = f"sqlite:///{db}"

    first = runner.invoke(app, ["import", str(people), "--kind", "persons", "--map", "id=pid", "--map", "status=state",
                                "--map", "onset_at=onset", "--store", store, "--no-derive"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, [
        "import", str(met), "--kind", "contacts", "--map", "a=who", "--map", "b=whom", "--map", "start=from",
        "--map", "end=to", "--map", "kind=setting", "--const", "source=big_data", "--tz", "Asia/Shanghai",
        "--store", store, "--no-derive", "--json",
    ])
    assert second.exit_code == 0, second.output
    assert not json.loads(second.stdout)["problems"]  # A and B were imported before: no placeholders
    with sqlite3.connect(db) as conn:
        (kind, source, start), = conn.execute("SELECT kind, source, start FROM contact_events").fetchall()
        (doc,) = conn.execute("SELECT doc FROM persons WHERE id = 'A'").fetchone()
    assert (kind, source) == ("meal", "big_data")
    assert start == 1648893600 * 1_000_000  # 2022-04-02 18:00 in Shanghai = 10:00 UTC
    assert json.loads(doc)["attributes"] == {"age": "40"}


def test_adhoc_json_lines(app, tmp_path):
    links = tmp_path / "links.jsonl"
    links.write_text('{"from": "X", "to": "Y", "how": "household"}\n{"from": "Y", "to": "Z"}\n', encoding="utf-8")
    result = runner.invoke(app, ["import", str(links), "--kind", "links", "--map", "infector=from", "--map",
                                 "infectee=to", "--map", "exposure=how", "--store", f"sqlite:///{tmp_path / 'j.db'}",
                                 "--no-derive", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["written"]["links"] == 2 and report["placeholders"]["persons"] == 3


@pytest.mark.parametrize(
    "args",
    [
        ["import"],
        ["import", "--dataset", "no_such_dataset", "--dir", "."],
        ["import", "--kind", "persons"],
        ["import", "people.csv"],
        ["import", "people.csv", "--kind", "aliens"],
        ["import", "people.csv", "--kind", "persons", "--map", "idpid"],
        ["import", "people.csv", "--kind", "persons", "--map", "identity=pid"],
        ["import", "--dataset", "mers_korea_2015"],
        ["import", "--dataset", "mers_korea_2015", "--dir", "/no/such/dir"],
        ["import", "--dataset", "mers_korea_2015", "--mapping", "m.json"],
        ["import", "people.csv", "--kind", "persons", "--store", "postgres://db"],
    ],
)
def test_usage_errors_exit_2(app, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRACEGRAPH_DATASETS", raising=False)
    (tmp_path / "people.csv").write_text("pid\nA\n", encoding="utf-8")
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Error" in result.output
    assert not (tmp_path / "tracegraph.db").exists()


def test_file_override_reads_one_file_from_elsewhere(app, tmp_path, datasets):
    folder = datasets / "ebola_sim_2014"
    result = runner.invoke(app, [
        "import", "--dataset", "ebola_sim_2014", "--dir", str(folder),
        "--file", f"linelist={folder / 'ebola_sim_linelist.csv'}",  # the raw file under the clean mapping
        "--store", f"sqlite:///{tmp_path / 'o.db'}", "--no-derive", "--json",
    ])
    assert result.exit_code == 1  # the same onset/infection rule rejects it
    payload = json.loads(result.stdout)
    assert {p["file"] for p in payload["problems"] if p["severity"] == "error"} == {
        str(folder / "ebola_sim_linelist.csv")
    }
    unknown = runner.invoke(app, ["import", "--dataset", "ebola_sim_2014", "--dir", str(folder),
                                  "--file", "nosuch=x.csv", "--store", f"sqlite:///{tmp_path / 'o.db'}"])
    assert unknown.exit_code == 2 and "has no file nosuch" in unknown.output


def test_importing_places_marks_the_investigations_of_cases_that_visited_them(app, tmp_path):
    # A place's kind may make it the case's workplace (the 24 h all-information clock checks it):
    # importing places alone, after the visits, must queue those investigations for the sweep.
    from tracing.deadlines import deadline_repository, sweep_deadlines
    from tracing.store import open_store

    store_url = f"sqlite:///{tmp_path / 'places.db'}"
    people = tmp_path / "people.csv"
    people.write_text("pid,state,onset,reported\nA,confirmed,2022-04-01,2022-04-03 09:00\nB,none,,\n", encoding="utf-8")
    visits = tmp_path / "visits.csv"
    visits.write_text("vid,who,where,from,to\nv1,A,mall,2022-04-01 09:00,2022-04-01 18:00\n"
                      "v2,B,park,2022-04-01 09:00,2022-04-01 10:00\n", encoding="utf-8")
    places = tmp_path / "places.csv"
    places.write_text("id,kind\nmall,office\npark,park\n", encoding="utf-8")

    def run(*args: str) -> None:
        result = runner.invoke(app, ["import", *args, "--store", store_url, "--tz", "UTC"])
        assert result.exit_code == 0, result.output

    run(str(people), "--kind", "persons", "--map", "id=pid", "--map", "status=state", "--map", "onset_at=onset",
        "--map", "reported_at=reported")
    run(str(visits), "--kind", "visits", "--map", "id=vid", "--map", "person_id=who", "--map", "place_id=where",
        "--map", "start=from", "--map", "end=to")
    store = open_store(store_url)
    try:
        repo = deadline_repository(store)
        assert repo.get_investigations(["inv:A"])  # opened by the persons' import
        policy = DeadlinePolicy()
        sweep_deadlines(store, repo, policy=policy, now=datetime(2022, 4, 3, 10, tzinfo=timezone.utc))
        assert repo.dirty_marks(limit=10) == {}
    finally:
        store.close()

    run(str(places), "--kind", "places")
    store = open_store(store_url)
    try:
        marks = deadline_repository(store).dirty_marks(limit=10)
    finally:
        store.close()
    assert set(marks) == {"inv:A"} and marks["inv:A"].persons == frozenset({"A"})  # B is no case: nothing to mark
