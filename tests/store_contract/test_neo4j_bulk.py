"""Initial loads through ``neo4j-admin database import full``: a bulk-loaded store reads like an applied one.

The bulk test exports the MERS outbreak (traced, so with derived relations)
from SQLite with ``tracegraph export-neo4j-import``, imports it with
``scripts/neo4j/neo4j.sh import`` into a second, private Neo4j (a temporary
home, port ``TRACEGRAPH_TEST_NEO4J_BULK_PORT`` or a free one), and compares
it, property by property and trace by trace, with the same graph written by
``apply`` (``migrate``) into the session's Neo4j.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graph_models import CASE_STATUSES, ChainDirection, ChainVia, Place
from tests.builders import at, contact, person
from tests.conftest import NEO4J_REQUIRED, REPO
from tracing import chain, trace_case
from tracing.cli import app
from tracing.importing.loader import import_files
from tracing.importing.mapping import bundled_mapping
from tracing.migrate import migrate
from tracing.store.neo4j_bulk import ARGS_FILE, BulkInputError, BulkWriter
from tracing.store.sqlite import SQLiteStore

END_OF_MERS = datetime(2015, 7, 1, tzinfo=timezone.utc)
SCRIPT = REPO / "scripts" / "neo4j" / "neo4j.sh"
runner = CliRunner()


# --- the files: no server needed ------------------------------------------------------------
def _row(event_id="E1", a="A", b="B", start=0, end=10, kind="meal", place=None, source="interview", close="close"):
    return (event_id, a, b, start, end, kind, place, source, close)


@pytest.mark.parametrize("bad, reason", [
    (_row(a="B"), "two different persons"),
    (_row(start=11), "end is before start"),
    (_row(kind="picnic"), "unknown kind 'picnic'"),
    (_row(event_id=""), "id is missing"),
    (_row(start=at(1)), "integer microseconds"),
])
def test_a_bad_event_row_is_named_and_nothing_is_written(tmp_path, bad, reason):
    target = tmp_path / "bulk"
    writer = BulkWriter(target)
    writer.persons([person("A"), person("B")])
    with pytest.raises(BulkInputError, match=reason) as raised:
        with writer:
            writer.event_rows([_row(event_id="E1"), _row(event_id="E2"), bad])
    assert "contact event #3" in str(raised.value)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary directory left either


def test_files_hold_what_apply_writes(tmp_path):
    with BulkWriter(tmp_path / "bulk") as writer:
        writer.persons([person("A", name='Kim, "Ann"\nline two')])
        writer.events([contact("E1", "A", "Z", at(2), place_id="L1")])
    files = tmp_path / "bulk"
    args = (files / ARGS_FILE).read_text().split()
    assert "--multiline-fields=true" in args  # the name spans two lines
    assert "--id-type=integer" in args
    # Nodes are found by an integer import id (not stored), numbered as first seen; ``id`` is a property.
    assert (files / "persons.header.csv").read_text().startswith(":ID(Person),id,")
    assert (files / "persons.csv").read_text().startswith('0,A,"Kim, ""Ann""\nline two",')
    assert (files / "person_stubs.csv").read_text() == "1,Z\n"  # as apply would MERGE it
    assert (files / "contacts.csv").read_text().startswith("E1,0,1,")
    for arg in args:
        if "=" in arg and arg.startswith(("--nodes", "--relationships")):
            assert all((files / name).is_file() for name in arg.split("=")[-1].split(","))


def test_nodes_written_before_their_relationships_are_imported_by_node_id(tmp_path):
    # No stubs and one fresh block of numbers per file: the numbers are the node ids
    # (--id-type=actual), files listed in the order of their numbers, no id groups.
    with BulkWriter(tmp_path / "bulk") as writer:
        writer.places([Place(id="L1", name="x")])
        writer.persons([person("A"), person("B")])
        writer.persons([person("C")])
        writer.events([contact("E1", "A", "C", at(2), place_id="L1")])
    files = tmp_path / "bulk"
    args = (files / ARGS_FILE).read_text().split()
    assert "--id-type=actual" in args
    nodes = [arg for arg in args if arg.startswith("--nodes=")]
    assert nodes[:2] == ["--nodes=Place=places.header.csv,places.csv", "--nodes=Person=persons.header.csv,persons.csv"]
    assert (files / "places.csv").read_text() == "0,L1,x,,,,,true\n"
    assert [line.split(",")[:2] for line in (files / "persons.csv").read_text().splitlines()] == [
        ["1", "A"], ["2", "B"], ["3", "C"]]
    assert (files / "contacts.csv").read_text().startswith("E1,1,3,")
    assert (files / "persons.header.csv").read_text().startswith(":ID,id,")
    assert (files / "contacts.header.csv").read_text().startswith("id,:START_ID,:END_ID,")


@pytest.mark.parametrize("steps", [
    ["persons A", "places L1", "persons B"],  # persons' numbers in two blocks
    ["events A-B", "persons A,B"],  # numbered as endpoints first
])
def test_nodes_numbered_out_of_order_are_imported_by_integer_id(tmp_path, steps):
    with BulkWriter(tmp_path / "bulk") as writer:
        for step in steps:
            verb, ids = step.split()
            if verb == "persons":
                writer.persons([person(i) for i in ids.split(",")])
            elif verb == "places":
                writer.places([Place(id=i, name=i) for i in ids.split(",")])
            else:
                writer.events([contact("E1", *ids.split("-"), at(2))])
    assert "--id-type=integer" in (tmp_path / "bulk" / ARGS_FILE).read_text().split()
    assert (tmp_path / "bulk" / "persons.header.csv").read_text().startswith(":ID(Person),id,")


def test_export_refuses_an_existing_directory(tmp_path):
    SQLiteStore(tmp_path / "a.db").close()
    (tmp_path / "out").mkdir()
    result = runner.invoke(app, ["export-neo4j-import", "--from", f"sqlite:///{tmp_path}/a.db", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "already exists" in " ".join(result.output.replace("│", " ").split())


# --- a real import ------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _imported_server(files: Path, home: Path, port: int) -> Iterator:
    """A private Neo4j in ``home`` whose database ``neo4j.sh import`` built from ``files``; stopped afterwards."""
    from tracing.store.neo4j import Neo4jStore

    env = {**os.environ, "NEO4J_BOLT_PORT": str(port), "NEO4J_HOME_DIR": str(home), "NEO4J_HEAP": "512m",
           "NEO4J_PAGECACHE": "128m", "NEO4J_IMPORT_MEMORY": "512m"}
    subprocess.run([str(SCRIPT), "import", str(files)], env=env, check=True, capture_output=True)
    try:
        subprocess.run([str(SCRIPT), "start"], env=env, check=True, capture_output=True)
        store = Neo4jStore(f"bolt://127.0.0.1:{port}", auth=None)
        try:
            yield store
        finally:
            store.close()
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, check=False, capture_output=True)


@pytest.fixture(scope="module")
def mers_sqlite(tmp_path_factory, datasets) -> Iterator[SQLiteStore]:
    """MERS in SQLite, every case traced and persisted (so derived relations are exported too)."""
    store = SQLiteStore(tmp_path_factory.mktemp("mers") / "mers.db")
    import_files(store, bundled_mapping("mers_korea_2015"), datasets / "mers_korea_2015", progress=False)
    for case in store.persons_with_status(CASE_STATUSES):
        trace_case(store, case.id, now=END_OF_MERS, persist=True)
    yield store
    store.close()


@pytest.fixture(scope="module")
def bulk_loaded(mers_sqlite, tmp_path_factory, neo4j_session_store):
    """A private Neo4j whose database was built by the offline importer from the MERS export."""
    if neo4j_session_store is None:
        pytest.skip("Neo4j not reachable (run `make test`, or scripts/neo4j/neo4j.sh start)")
    if shutil.which("java") is None and not NEO4J_REQUIRED:
        pytest.skip("java not found")

    work = tmp_path_factory.mktemp("bulk")
    files = work / "import"
    result = runner.invoke(app, ["export-neo4j-import", "--from", f"sqlite:///{mers_sqlite.path}", str(files)])
    assert result.exit_code == 0, result.output
    port = int(os.environ.get("TRACEGRAPH_TEST_NEO4J_BULK_PORT") or _free_port())
    with _imported_server(files, work / "home", port) as store:
        yield store


@pytest.fixture(scope="module")
def applied(mers_sqlite, neo4j_session_store):
    """The same graph written with ``apply`` into the session's Neo4j."""
    if neo4j_session_store is None:
        pytest.skip("Neo4j not reachable")
    neo4j_session_store.wipe()
    report = migrate(mers_sqlite, neo4j_session_store)
    assert report.matches, report.mismatches()
    return neo4j_session_store


def _raw_graph(store) -> tuple[list, list]:
    """Every node (labels, properties) and relationship (type, endpoint ids, properties), sorted."""
    def freeze(props):
        return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in props.items()))

    nodes = store.execute_read(lambda tx: [
        (tuple(sorted(r["labels"])), freeze(r["props"]))
        for r in tx.run("MATCH (n) RETURN labels(n) AS labels, properties(n) AS props")
    ])
    rels = store.execute_read(lambda tx: [
        (r["type"], r["a"], r["b"], freeze(r["props"]))
        for r in tx.run("MATCH (a)-[r]->(b) RETURN type(r) AS type, a.id AS a, b.id AS b, properties(r) AS props")
    ])
    return sorted(nodes), sorted(rels)



@pytest.mark.neo4j
def test_bulk_loaded_graph_is_the_applied_graph_property_by_property(bulk_loaded, applied, mers_sqlite):
    bulk_nodes, bulk_rels = _raw_graph(bulk_loaded)
    applied_nodes, applied_rels = _raw_graph(applied)
    assert len(bulk_rels) > 1000 and any(t == "CLOSE_CONTACT" for t, *_ in bulk_rels)
    assert bulk_nodes == applied_nodes
    assert bulk_rels == applied_rels
    assert bulk_loaded.counts() == mers_sqlite.counts()


@pytest.mark.neo4j
def test_integer_import_ids_give_the_same_graph(mers_sqlite, applied, tmp_path):
    # write_store writes nodes first (node ids as import ids); here the events name every person
    # before it is written, so the files fall back to integer import ids, which the importer maps.

    files = tmp_path / "import"
    with BulkWriter(files) as writer:
        writer.events(list(mers_sqlite.iter_events()))
        writer.persons(list(mers_sqlite.iter_persons()))
        writer.places(list(mers_sqlite.iter_places()))
        writer.visits(list(mers_sqlite.iter_visits()))
        writer.links(list(mers_sqlite.iter_links()))
        writer.derived(list(mers_sqlite.iter_derived()))
    assert "--id-type=integer" in (files / ARGS_FILE).read_text().split()
    with _imported_server(files, tmp_path / "home", _free_port()) as store:
        assert _raw_graph(store) == _raw_graph(applied)


@pytest.mark.neo4j
def test_bulk_loaded_store_reads_and_traces_like_the_applied_one(bulk_loaded, applied):
    assert list(bulk_loaded.iter_persons()) == list(applied.iter_persons())
    assert list(bulk_loaded.iter_places()) == list(applied.iter_places())
    assert list(bulk_loaded.iter_events()) == list(applied.iter_events())
    assert list(bulk_loaded.iter_visits()) == list(applied.iter_visits())
    assert list(bulk_loaded.iter_links()) == list(applied.iter_links())
    assert list(bulk_loaded.iter_derived()) == list(applied.iter_derived())
    cases = [p.id for p in applied.persons_with_status(CASE_STATUSES)]
    assert len(cases) > 100
    for case_id in cases:
        got = trace_case(bulk_loaded, case_id, now=END_OF_MERS, persist=False)
        want = trace_case(applied, case_id, now=END_OF_MERS, persist=False)
        assert got.contacts == want.contacts, case_id
    for case_id in cases[:40]:
        for via in (ChainVia.CONTACTS, ChainVia.LINKS):
            got = chain(bulk_loaded, case_id, direction=ChainDirection.DOWN, via=via, hops=3, now=END_OF_MERS)
            want = chain(applied, case_id, direction=ChainDirection.DOWN, via=via, hops=3, now=END_OF_MERS)
            assert got.members == want.members, (case_id, via)


@pytest.mark.neo4j
def test_bulk_loaded_store_takes_writes_under_its_constraints(bulk_loaded):
    # The constraints were created when the store first opened the imported database.
    names = bulk_loaded.execute_read(lambda tx: {r["name"] for r in tx.run("SHOW CONSTRAINTS YIELD name")})
    assert {"person_id", "contact_id", "infected_key", "close_contact_key"} <= names
    event = next(iter(bulk_loaded.iter_events()))
    from tracing.store import GraphBatch

    bulk_loaded.apply(GraphBatch(events=[event.model_copy(update={"closeness": "general"})]))
    assert bulk_loaded.get_events([event.id])[event.id].closeness == "general"
    bulk_loaded.apply(GraphBatch(events=[event]))  # put it back for the other tests


def test_a_duplicate_person_is_named_and_nothing_is_written(tmp_path):
    # The importer only sees integer import ids: the writer checks what it checked on the strings.
    with pytest.raises(BulkInputError, match="person #3: duplicate id 'A'"):
        with BulkWriter(tmp_path / "files") as writer:
            writer.persons([person("A"), person("B")])
            writer.persons([person("A", name="again")])
    with pytest.raises(BulkInputError, match="person #2: duplicate id 'B'"):
        with BulkWriter(tmp_path / "files") as writer:
            writer.persons([person("B"), person("B")])
    assert list(tmp_path.iterdir()) == []


def test_an_endpoint_never_written_is_refused_without_stubs(tmp_path):
    with pytest.raises(BulkInputError, match="never written.*'Z'"):
        with BulkWriter(tmp_path / "files", stubs=False) as writer:
            writer.persons([person("A")])
            writer.events([contact("E1", "A", "Z", at(2))])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.neo4j
def test_the_importer_rejects_a_duplicate_node_and_leaves_no_store(tmp_path, neo4j_session_store):
    if neo4j_session_store is None:
        pytest.skip("Neo4j not reachable (run `make test`, or scripts/neo4j/neo4j.sh start)")
    with BulkWriter(tmp_path / "files") as writer:
        writer.persons([person("A"), person("B")])
        writer.events([contact("E1", "A", "Z", at(2))])  # a stub: integer import ids, which the importer maps
    assert "--id-type=integer" in (tmp_path / "files" / ARGS_FILE).read_text()
    with open(tmp_path / "files" / "persons.csv", "a", encoding="utf-8") as f:
        f.write("1,A2,,,,,,,,,none,,,,,,,true\n")  # a second node with import id 1, behind the writer's back
    env = {**os.environ, "NEO4J_BOLT_PORT": str(_free_port()), "NEO4J_HOME_DIR": str(tmp_path / "home"),
           "NEO4J_IMPORT_MEMORY": "256m", "NEO4J_IMPORT_VERBOSE": "1"}
    result = subprocess.run([str(SCRIPT), "import", str(tmp_path / "files")], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "uplicate" in result.stdout + result.stderr
    assert not (tmp_path / "home" / "data" / "databases" / "neo4j").exists()
