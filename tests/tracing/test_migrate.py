"""Migrating a whole graph between stores: SQLite → SQLite file, and SQLite → Neo4j."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from graph_models import ContactKind, Person, Place, TransmissionLink, Visit
from tests.builders import at, case, contact, person
from tests.conftest import NEO4J_URL
from tracing import trace_case
from tracing.migrate import STAGES, migrate, register
from tracing.store import GraphBatch, GraphStore
from tracing.store.sqlite import SQLiteStore

CASES = ("C1", "C2", "A1")


def _graph() -> GraphBatch:
    return GraphBatch(
        persons=[
            case("C1", onset=at(10, 8), name="张三", household_id="H1", lat=39.9, lon=116.4, region="110105",
                 isolated_at=at(12), attributes={"age": 34, "sex": "m", "vip": True, "note": None}),
            case("C2", onset=at(14), isolated_at=at(15, 12)),
            Person(id="A1", status="asymptomatic", sampled_at=at(11)),
            person("P1", household_id="H1"), person("P2", status="suspected"), person("P3"), person("P4"),
            person("P5"), person("P6", phone="13800138000"),
        ],
        places=[Place(id="L1", name="Market 市场", kind="market", lat=39.91, lon=116.41), Place(id="L2")],
        events=[
            contact("E1", "C1", "P1", at(9, 18), kind=ContactKind.HOUSEHOLD),
            contact("E2", "P1", "P2", at(10, 20)),  # P1 → P2 after E1: P2 secondary of C1
            contact("E3", "C1", "P3", at(8, 12), hours=0.5, closeness="general", place_id="L1"),
            contact("E4", "C2", "P4", at(13)),
            contact("E5", "P4", "P5", at(14, 6)),
            contact("E6", "A1", "P6", at(9)),
            contact("E7", "P6", "ghost", at(9, 12)),  # a person nobody imported
            *[contact(f"M{i}", "C2", "P5", at(12, i)) for i in range(5)],  # multi-edges
        ],
        visits=[
            Visit(id="V1", person_id="C1", place_id="L1", start=at(9, 10), end=at(9, 11)),
            Visit(id="V2", person_id="P6", place_id="L1", start=at(9, 10, 30), end=at(9, 12)),
            Visit(id="V3", person_id="C2", place_id="L2", start=at(13), end=at(13, 2)),
            Visit(id="V4", person_id="stranger", place_id="L2", start=at(13, 1), end=at(13, 3)),
        ],
        links=[
            TransmissionLink(infector="C1", infectee="P1", exposure="family", exposed_at=at(9, 18)),
            TransmissionLink(infector="C2", infectee="P4"),
        ],
    )


def _traced_sqlite(path: Path | str = ":memory:") -> SQLiteStore:
    source = SQLiteStore(path)
    source.apply(_graph())
    for case_id in CASES:
        trace_case(source, case_id, now=at(20))
    return source


def _assert_same_graph(source: GraphStore, target: GraphStore) -> None:
    assert target.counts() == source.counts()
    for case_id in CASES:
        assert target.derived_for_case(case_id) == source.derived_for_case(case_id)
    assert sorted(target.iter_derived(), key=lambda d: (d[0].case_id, d[0].person_id)) == sorted(
        source.iter_derived(), key=lambda d: (d[0].case_id, d[0].person_id)
    )
    assert sorted(target.iter_persons(), key=lambda p: p.id) == sorted(source.iter_persons(), key=lambda p: p.id)
    assert sorted(target.iter_places(), key=lambda p: p.id) == sorted(source.iter_places(), key=lambda p: p.id)
    assert sorted(target.iter_events(), key=lambda e: e.id) == sorted(source.iter_events(), key=lambda e: e.id)
    assert sorted(target.iter_visits(), key=lambda v: v.id) == sorted(source.iter_visits(), key=lambda v: v.id)
    assert sorted(target.iter_links(), key=lambda k: (k.infector, k.infectee)) == sorted(
        source.iter_links(), key=lambda k: (k.infector, k.infectee)
    )
    for case_id in CASES:
        # Re-tracing on the copy gives the same result without writing anything.
        assert trace_case(target, case_id, now=at(20), persist=False) == trace_case(
            source, case_id, now=at(20), persist=False
        )


@pytest.fixture(params=["sqlite", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    """An empty target store: an SQLite file, or the test Neo4j database."""
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "target.db")
        yield store
        store.close()
        return
    neo4j = request.getfixturevalue("neo4j_session_store")
    if neo4j is None:
        pytest.skip("Neo4j not reachable (run `make test`, or scripts/neo4j/neo4j.sh start)")
    neo4j.wipe()
    yield neo4j


def test_the_graph_has_something_of_everything():
    source = _traced_sqlite()
    counts = source.counts()
    assert min(asdict(counts).values()) > 0
    assert {c.contact_class.value for case_id in CASES for c in source.derived_for_case(case_id)} == {
        "close", "secondary", "general",
    }


def test_migrate_copies_everything(target):
    source = _traced_sqlite()
    calls: list[tuple[str, int, int]] = []
    report = migrate(source, target, batch_size=4, progress=lambda *call: calls.append(call))
    assert report.matches and report.mismatches() == {}
    assert report.copied == {k: v for k, v in asdict(source.counts()).items()}
    assert [stage for stage, done, _ in calls if done == 0] == list(STAGES)
    assert calls[-1] == ("derived", source.counts().derived, source.counts().derived)
    _assert_same_graph(source, target)


def test_migrate_back_and_again_is_idempotent(target, tmp_path):
    source = _traced_sqlite()
    migrate(source, target)
    again = migrate(source, target, batch_size=3)
    assert again.matches
    back = SQLiteStore(tmp_path / "back.db")
    assert migrate(target, back).matches
    _assert_same_graph(source, back)


def test_a_non_empty_target_is_reported(target):
    source = _traced_sqlite()
    target.apply(GraphBatch(persons=[person("extra")]))
    report = migrate(source, target)
    assert not report.matches
    assert report.mismatches() == {"persons": (source.counts().persons, source.counts().persons + 1)}


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """tracegraph (test harness)."""

    register(app)
    return app


@pytest.fixture
def source_file(tmp_path: Path) -> Path:
    path = tmp_path / "source.db"
    _traced_sqlite(path).close()
    return path


def test_cli_migrates_sqlite_to_sqlite(source_file, tmp_path):
    target_file = tmp_path / "nested" / "target.db"
    result = CliRunner().invoke(
        _cli(),
        ["migrate", "--from", f"sqlite:///{source_file}", "--to", f"sqlite:///{target_file}", "--batch-size", "5"],
    )
    assert result.exit_code == 0, result.output
    assert "persons" in result.output and "differs" not in result.output
    with SQLiteStore(source_file) as source, SQLiteStore(target_file) as copy:
        _assert_same_graph(source, copy)


def test_cli_fails_when_counts_differ(source_file, tmp_path):
    target_file = tmp_path / "target.db"
    with SQLiteStore(target_file) as target:
        target.apply(GraphBatch(events=[contact("extra", "X", "Y", at(1))]))
    result = CliRunner().invoke(
        _cli(), ["migrate", "--from", f"sqlite:///{source_file}", "--to", f"sqlite:///{target_file}"]
    )
    assert result.exit_code == 1
    assert "differs" in result.output


def test_cli_rejects_bad_urls(source_file):
    runner = CliRunner()
    same = runner.invoke(_cli(), ["migrate", "--from", f"sqlite:///{source_file}", "--to", f"sqlite:///{source_file}"])
    assert same.exit_code == 2
    unknown = runner.invoke(_cli(), ["migrate", "--from", "mysql://x", "--to", f"sqlite:///{source_file}"])
    assert unknown.exit_code == 1 and "unknown store URL" in unknown.output
    typo = source_file.with_name("typo.db")
    missing = runner.invoke(_cli(), ["migrate", "--from", f"sqlite:///{typo}", "--to", f"sqlite:///{source_file}"])
    assert missing.exit_code == 2 and not typo.exists()


@pytest.mark.neo4j
def test_cli_migrates_sqlite_to_neo4j(source_file, neo4j_session_store, monkeypatch):
    if neo4j_session_store is None:
        pytest.skip("Neo4j not reachable (run `make test`, or scripts/neo4j/neo4j.sh start)")
    neo4j_session_store.wipe()
    for name in ("TRACEGRAPH_NEO4J_USER", "TRACEGRAPH_NEO4J_PASSWORD", "TRACEGRAPH_NEO4J_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(_cli(), ["migrate", "--from", f"sqlite:///{source_file}", "--to", NEO4J_URL])
    assert result.exit_code == 0, result.output
    with SQLiteStore(source_file) as source:
        _assert_same_graph(source, neo4j_session_store)
