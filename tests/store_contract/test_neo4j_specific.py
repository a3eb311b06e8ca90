"""What only the Neo4j adapter has: its schema, connection handling and graph shape."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from graph_models import ContactClass, Person, Place, TracedContact, TransmissionLink, Visit
from tests.builders import at, case, contact, person
from tests.conftest import NEO4J_URL
from tracing.store import GraphBatch

pytestmark = pytest.mark.neo4j

neo4j = pytest.importorskip("neo4j")
from tracing.store.neo4j import Neo4jStore, Neo4jUnavailable  # noqa: E402

INJECTION = "x'}) DETACH DELETE n //"
INJECTION_2 = 'y"}]->() MATCH (m) DETACH DELETE m RETURN 1 //'

EXPECTED_CONSTRAINTS = {
    ("Person", "id"), ("Place", "id"), ("CONTACT", "id"), ("VISITED", "id"), ("INFECTED", "key"),
    ("CLOSE_CONTACT", "key"), ("SECONDARY_CONTACT", "key"), ("GENERAL_CONTACT", "key"),
}


@pytest.fixture
def neo(neo4j_session_store) -> Iterator[Neo4jStore]:
    """The shared Neo4j store, emptied (skipped when Neo4j is not reachable and not required)."""
    if neo4j_session_store is None:
        pytest.skip("Neo4j not reachable (run `make test`, or scripts/neo4j/neo4j.sh start)")
    neo4j_session_store.wipe()
    yield neo4j_session_store


@pytest.fixture
def driver(neo) -> Iterator["neo4j.Driver"]:
    with neo4j.GraphDatabase.driver(NEO4J_URL, auth=None) as d:
        yield d


def _schema(driver) -> tuple[dict[str, tuple], dict[str, tuple]]:
    constraints = {
        r["name"]: (r["type"], tuple(r["labelsOrTypes"]), tuple(r["properties"]))
        for r in driver.execute_query("SHOW CONSTRAINTS", database_="neo4j").records
    }
    indexes = {
        r["name"]: (r["type"], r["state"], tuple(r["labelsOrTypes"] or ()), tuple(r["properties"] or ()))
        for r in driver.execute_query("SHOW INDEXES", database_="neo4j").records
    }
    return constraints, indexes


def test_uniqueness_constraints_and_indexes_exist(neo, driver):
    constraints, indexes = _schema(driver)
    unique = {(labels[0], props[0]) for kind, labels, props in constraints.values() if kind.endswith("UNIQUENESS")}
    assert EXPECTED_CONSTRAINTS <= unique
    assert constraints["contact_id"][0] == "RELATIONSHIP_UNIQUENESS"
    online = {(labels[0], props[0]) for _, state, labels, props in indexes.values() if state == "ONLINE" and labels}
    assert {("Person", "status"), ("Person", "record"), ("Place", "record"), ("CLOSE_CONTACT", "case_id"),
            ("SECONDARY_CONTACT", "case_id"), ("GENERAL_CONTACT", "case_id")} <= online


def test_constraints_reject_a_duplicate_event_id(neo, driver):
    neo.apply(GraphBatch(events=[contact("E1", "A", "B", at(2))]))
    with pytest.raises(neo4j.exceptions.ConstraintError):
        driver.execute_query(
            "MATCH (a:Person {id: 'A'}), (b:Person {id: 'B'}) CREATE (a)-[:CONTACT {id: 'E1'}]->(b)",
            database_="neo4j",
        )


def test_construction_is_idempotent(neo, driver):
    neo.apply(GraphBatch(persons=[case("C1", onset=at(3))], events=[contact("E1", "C1", "P1", at(2))]))
    before = _schema(driver)
    for _ in range(2):
        Neo4jStore(NEO4J_URL, auth=None, database="neo4j").close()
    assert _schema(driver) == before
    assert neo.get_persons(["C1"])["C1"].onset_at == at(3)
    assert neo.counts().events == 1


def test_construction_recreates_missing_schema(neo, driver):
    before = _schema(driver)
    driver.execute_query("DROP CONSTRAINT contact_id", database_="neo4j")
    driver.execute_query("DROP INDEX person_status", database_="neo4j")
    assert "contact_id" not in _schema(driver)[0]
    Neo4jStore(NEO4J_URL, auth=None, database="neo4j").close()
    assert _schema(driver) == before


def test_cypher_injection_is_stored_verbatim_and_harmless(neo):
    neo.apply(
        GraphBatch(persons=[person("keep"), case("C1", onset=at(3))], events=[contact("E0", "keep", "C1", at(2))])
    )
    neo.apply(
        GraphBatch(
            persons=[Person(id=INJECTION, name=INJECTION_2, attributes={INJECTION: INJECTION_2})],
            places=[Place(id=INJECTION_2, name=INJECTION)],
            events=[contact(INJECTION, INJECTION, INJECTION_2, at(4), place_id=INJECTION)],
            visits=[Visit(id=INJECTION_2, person_id=INJECTION, place_id=INJECTION_2, start=at(4), end=at(4, 1))],
            links=[TransmissionLink(infector=INJECTION, infectee=INJECTION_2, exposure=INJECTION)],
        )
    )
    neo.replace_derived(
        INJECTION,
        [TracedContact(case_id=INJECTION, person_id=INJECTION_2, contact_class=ContactClass.CLOSE,
                       source_id=INJECTION, exposed_at=at(4), evidence=[INJECTION])],
        derived_at=at(20),
    )
    got = neo.get_persons([INJECTION, "keep", "C1"])
    assert set(got) == {INJECTION, "keep", "C1"}
    assert got[INJECTION].name == INJECTION_2 and got[INJECTION].attributes == {INJECTION: INJECTION_2}
    assert neo.get_places([INJECTION_2])[INJECTION_2].name == INJECTION
    event = neo.get_events([INJECTION])[INJECTION]
    assert (event.a, event.b, event.place_id) == (INJECTION, INJECTION_2, INJECTION)
    assert [v.id for v in neo.visits_at([INJECTION_2])] == [INJECTION_2]
    assert neo.links_to([INJECTION_2])[0].exposure == INJECTION
    assert neo.derived_for_case(INJECTION)[0].evidence == [INJECTION]
    assert neo.cases_deriving([INJECTION_2]) == {INJECTION}
    c = neo.counts()
    assert (c.persons, c.places, c.events, c.visits, c.links, c.derived) == (3, 1, 2, 1, 1, 1)
    assert neo.delete_events([INJECTION]) == 1
    assert [e.id for e in neo.iter_events()] == ["E0"]


def test_routing_uri_works_against_a_single_instance(neo):
    url = NEO4J_URL.replace("bolt://", "neo4j://", 1)
    with Neo4jStore(url, auth=None, database="neo4j") as routed:
        routed.apply(GraphBatch(persons=[case("C1", onset=at(3))], events=[contact("E1", "C1", "P1", at(2))]))
        assert [e.id for e in routed.events_touching(["P1"])] == ["E1"]
    assert neo.counts().events == 1


def test_from_env_reads_database_and_auth(neo, monkeypatch):
    monkeypatch.delenv("TRACEGRAPH_NEO4J_USER", raising=False)
    monkeypatch.delenv("TRACEGRAPH_NEO4J_PASSWORD", raising=False)
    monkeypatch.setenv("TRACEGRAPH_NEO4J_DATABASE", "neo4j")
    with Neo4jStore.from_env(NEO4J_URL) as store:
        assert store.database == "neo4j"
        assert store.counts().events == 0
    monkeypatch.setenv("TRACEGRAPH_NEO4J_USER", "neo4j")
    with pytest.raises(ValueError, match="TRACEGRAPH_NEO4J_PASSWORD"):
        Neo4jStore.from_env(NEO4J_URL)


def test_unreachable_server_fails_fast_with_a_clear_error():
    started = time.monotonic()
    with pytest.raises(Neo4jUnavailable, match=r"cannot connect to Neo4j at bolt://127\.0\.0\.1:1\b"):
        Neo4jStore("bolt://127.0.0.1:1", auth=None, database="neo4j", connection_timeout=3)
    with pytest.raises(Neo4jUnavailable, match="neo4j://127.0.0.1:1"):
        Neo4jStore("neo4j://127.0.0.1:1", auth=None, database="neo4j", connection_timeout=3)
    assert time.monotonic() - started < 10


def test_stubs_stay_invisible_until_upserted(neo):
    neo.apply(
        GraphBatch(
            events=[contact("E1", "ghost", "C1", at(2))],
            visits=[Visit(id="V1", person_id="ghost", place_id="L-ghost", start=at(2), end=at(2, 1))],
            links=[TransmissionLink(infector="C1", infectee="ghost")],
        )
    )
    neo.replace_derived(
        "C1",
        [TracedContact(case_id="C1", person_id="ghost", contact_class=ContactClass.CLOSE, source_id="C1",
                       exposed_at=at(2), evidence=["E1"])],
        derived_at=at(20),
    )
    assert neo.get_persons(["ghost", "C1"]) == {} and neo.get_places(["L-ghost"]) == {}
    assert list(neo.iter_persons()) == [] and list(neo.iter_places()) == []
    assert neo.persons_with_status(["none", "confirmed"]) == []
    assert (neo.counts().persons, neo.counts().places) == (0, 0)
    neo.apply(GraphBatch(persons=[person("ghost")], places=[Place(id="L-ghost")]))
    assert list(neo.get_persons(["ghost", "C1"])) == ["ghost"]
    assert [p.id for p in neo.iter_places()] == ["L-ghost"]
    # The real record took over the stub node: its relationships are still attached.
    assert [e.id for e in neo.events_touching(["ghost"])] == ["E1"]
    assert neo.cases_deriving(["ghost"]) == {"C1"}


def test_upsert_moves_an_event_or_visit_to_other_endpoints(neo):
    neo.apply(
        GraphBatch(
            events=[contact("E1", "A", "B", at(2))],
            visits=[Visit(id="V1", person_id="A", place_id="L1", start=at(2), end=at(2, 1))],
        )
    )
    neo.apply(
        GraphBatch(
            events=[contact("E1", "A", "C", at(3))],
            visits=[Visit(id="V1", person_id="B", place_id="L1", start=at(2), end=at(2, 1))],
        )
    )
    assert neo.events_touching(["B"]) == []
    assert [(e.a, e.b, e.start) for e in neo.events_touching(["C"])] == [("A", "C", at(3))]
    assert neo.visits_of(["A"]) == [] and [v.id for v in neo.visits_of(["B"])] == ["V1"]
    assert (neo.counts().events, neo.counts().visits) == (1, 1)


def test_duplicate_keys_in_one_batch_last_wins(neo):
    neo.apply(GraphBatch(events=[contact("E1", "A", "B", at(2)), contact("E1", "A", "C", at(5))]))
    assert [(e.b, e.start) for e in neo.iter_events()] == [("C", at(5))]


def test_iteration_pages_through_everything(neo, monkeypatch):
    monkeypatch.setattr(neo, "page_size", 7)
    ids = [f"P{i:03d}" for i in range(30)]
    neo.apply(
        GraphBatch(
            persons=[Person(id=i) for i in ids],
            places=[Place(id=f"L{i}") for i in range(15)],
            events=[contact(f"E{i}", i, "hub", at(2)) for i in ids],
            visits=[Visit(id=f"V{i}", person_id=i, place_id="L1", start=at(2), end=at(3)) for i in ids],
            links=[TransmissionLink(infector="hub", infectee=i) for i in ids],
        )
    )
    for case_id in ("C1", "C2", "C3"):
        neo.replace_derived(
            case_id,
            [TracedContact(case_id=case_id, person_id=i, source_id=case_id if n % 2 else "hub",
                           contact_class=ContactClass.CLOSE if n % 2 else ContactClass.SECONDARY,
                           exposed_at=at(2), evidence=["E1"]) for n, i in enumerate(ids[:10])],
            derived_at=at(20),
        )
    assert sorted(p.id for p in neo.iter_persons()) == ids
    assert len(list(neo.iter_places())) == 15
    assert len({e.id for e in neo.iter_events()}) == 30
    assert len({v.id for v in neo.iter_visits()}) == 30
    assert len({(k.infector, k.infectee) for k in neo.iter_links()}) == 30
    derived = [c.case_id for c, _ in neo.iter_derived()]
    assert derived == sorted(derived) and len(derived) == 30  # grouped by case, every one once


def test_replace_derived_is_all_or_nothing(neo):
    first = TracedContact(case_id="C1", person_id="P1", contact_class=ContactClass.CLOSE, source_id="C1",
                          exposed_at=at(2), evidence=["E1"])
    neo.replace_derived("C1", [first], derived_at=at(20))
    with pytest.raises(ValueError):
        neo.replace_derived("C1", [first, first], derived_at=at(21))
    assert neo.derived_for_case("C1") == [first]


def test_times_are_integer_microseconds(neo, driver):
    neo.apply(GraphBatch(events=[contact("E1", "A", "B", at(2, 3, 4, 5))]))
    record = driver.execute_query("MATCH ()-[r:CONTACT]->() RETURN r.start AS start", database_="neo4j").records[0]
    assert record["start"] == int(at(2, 3, 4, 5).timestamp()) * 1_000_000
