"""The tracing endpoints over HTTP, against the embedded store."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.builders import at, case, contact, person
from tracing.store import GraphBatch


@pytest.fixture
def client(sqlite_store, now):
    sqlite_store.apply(
        GraphBatch(
            persons=[case("C", at(10)), person("X"), person("Y"), person("P")],
            events=[contact("e1", "C", "X", at(8)), contact("e2", "X", "Y", at(9))],
        )
    )
    with TestClient(create_app(store=sqlite_store, clock=lambda: now)) as client:
        yield client


def test_unknown_case_is_a_problem_json_404(client):
    response = client.post("/cases/nobody/trace")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "case 'nobody' is not in the graph"
    assert client.post("/cases/P/trace").status_code == 404


def test_trace_then_read_derived_contacts(client):
    traced = client.post("/cases/C/trace").json()
    assert [(c["person_id"], c["contact_class"]) for c in traced["contacts"]] == [("X", "close"), ("Y", "secondary")]
    stored = client.get("/cases/C/contacts").json()
    assert [c["person_id"] for c in stored] == ["X", "Y"]


def test_chain_and_clusters(client):
    chain = client.get("/persons/C/chain", params={"hops": 2}).json()
    assert [(m["person_id"], m["hops"]) for m in chain["members"]] == [("C", 0), ("X", 1), ("Y", 2)]
    assert client.get("/persons/C/chain", params={"hops": 0}).status_code == 422
    clusters = client.get("/clusters", params={"via": "contacts"}).json()
    assert clusters[0]["members"] == ["C", "X", "Y"]
    assert client.get("/health").json() == {"status": "ok"}
