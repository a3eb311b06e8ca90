"""Tracing, transfers and the users CLI through the API surface."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from tracing.auth import auth_repository, authenticate
from tracing.auth.cli import register
from tracing.store.sqlite import SQLiteStore


def test_trace_then_read_derived_contacts_chain_and_clusters(api):
    traced = api.post("investigator", "/cases/C1/trace").json()
    assert [(c["person_id"], c["contact_class"]) for c in traced["contacts"]][:2] == [("X1", "close"), ("Z1", "close")]
    assert [c["person_id"] for c in api.get("investigator", "/cases/C1/contacts").json()][:1] == ["X1"]
    chain = api.get("investigator", "/persons/C1/chain", params={"hops": 2}).json()
    assert [m["person_id"] for m in chain["members"] if m["hops"] == 1] == ["X1", "Z1"]
    assert api.get("investigator", "/persons/C1/chain", params={"hops": 0}).status_code == 422
    clusters = api.get("analyst", "/clusters", params={"via": "contacts"}).json()
    assert clusters[0]["members"] == ["C1", "N1", "X1", "Y1", "Z1"]
    # A region-limited commander sees the cluster's size, but only member ids of their region.
    limited = api.get("commander", "/clusters", params={"via": "contacts"}).json()[0]
    assert limited["size"] == 5 and limited["members"] == ["C1", "X1", "Y1"]


def test_site_operator_sees_only_their_site(api):
    site = {"id": "S1", "name": "Hotel A", "lat": 39.9, "lon": 116.4, "rooms": 50, "region": "110105"}
    assert api.post("commander", "/sites", json=[site, {**site, "id": "S2", "name": "Hotel B"}]).json() == 2
    assert [s["id"] for s in api.get("site_operator", "/sites").json()] == ["S1"]
    assert api.get("site_operator", "/sites/S2/manifest").status_code == 403
    arrivals = {"person_ids": ["X1"], "arrived_at": "2022-04-20T10:00:00Z"}
    assert api.post("site_operator", "/sites/S2/arrivals", json=arrivals).status_code == 403
    assert api.post("site_operator", "/sites/S1/arrivals", json=arrivals).json()["unknown"] == ["X1"]
    plan = api.post("commander", "/transfers/plans", json={}).json()
    placed = {a["person_id"]: a["site_id"] for a in plan["assignments"]}
    confirmed = api.post("commander", f"/transfers/plans/{plan['id']}/confirm").json()
    assert sorted(confirmed["inserted"]) and not confirmed["refused"]
    here = [p for p, s in placed.items() if s == "S1"]
    manifest = api.get("site_operator", "/sites/S1/manifest").json()
    assert sorted(r["transfer"]["person_id"] for r in manifest) == sorted(here)
    if here:
        done = api.post("site_operator", "/sites/S1/arrivals", json={**arrivals, "person_ids": here}).json()
        assert sorted(done["arrived"]) == sorted(here)
    census = api.get("analyst", "/census").json()
    assert census["isolating"]["total"] == len(here)


def test_users_cli_add_list_revoke(tmp_path):
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # a group, as in the real CLI
        pass

    url = f"sqlite:///{tmp_path / 'auth.db'}"
    runner = CliRunner()
    added = runner.invoke(app, ["users", "add", "ann", "--role", "investigator", "--region", "1101", "--store", url])
    assert added.exit_code == 0, added.output
    token = added.output.strip().splitlines()[-1]
    assert token.startswith("tg_")
    assert runner.invoke(app, ["users", "add", "ann", "--role", "admin", "--store", url]).exit_code == 1
    assert runner.invoke(app, ["users", "add", "op", "--role", "site_operator", "--store", url]).exit_code == 1
    listed = runner.invoke(app, ["users", "list", "--json", "--store", url])
    assert '"region": "1101"' in listed.output and token not in listed.output
    store = SQLiteStore(tmp_path / "auth.db")
    try:
        assert authenticate(auth_repository(store), token).name == "ann"
    finally:
        store.close()
    assert runner.invoke(app, ["users", "revoke", "ann", "--store", url]).exit_code == 0
    store = SQLiteStore(tmp_path / "auth.db")
    try:
        assert authenticate(auth_repository(store), token) is None
    finally:
        store.close()
