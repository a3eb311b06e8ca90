"""The CLI end to end on a SQLite file: sites/vehicles import, plan, confirm, arrive, census, manifest."""

from __future__ import annotations

import csv
import json

import typer
from typer.testing import CliRunner

from tracing.store.sqlite import SQLiteStore
from tracing.transfers.cli import register

from .conftest import SITES, VEHICLES, build_graph


def test_cli_flow(tmp_path):
    db = tmp_path / "g.db"
    with SQLiteStore(db) as store:
        build_graph(store)
    url = f"sqlite:///{db}"
    sites_csv = tmp_path / "sites.csv"
    with open(sites_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "kind", "lat", "lon", "rooms", "beds_per_room", "status", "region", "accepts"])
        for s in SITES:
            accepts = ",".join(sorted(c.value for c in s.accepts)) if s.accepts else ""
            w.writerow([s.id, s.name, s.kind.value, s.lat, s.lon, s.rooms, s.beds_per_room, s.status.value,
                        s.region or "", accepts])
    vehicles_json = tmp_path / "vehicles.json"
    vehicles_json.write_text(json.dumps([v.model_dump(mode="json") for v in VEHICLES]), encoding="utf-8")
    app = typer.Typer()
    app.command("noop")(lambda: None)
    register(app)
    run = CliRunner().invoke
    now = ["--now", "2022-04-20T12:00:00+00:00"]
    assert run(app, ["sites", "import", str(sites_csv), "--store", url]).exit_code == 0
    assert run(app, ["vehicles", "import", str(vehicles_json), "--store", url]).exit_code == 0
    listed = run(app, ["sites", "list", "--store", url, "--json"])
    assert {s["site_id"] for s in json.loads(listed.output)} == {s.id for s in SITES}
    planned = run(app, ["transfers", "plan", "--store", url, "--json", *now])
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.output)
    assert len(plan["assignments"]) == 6
    confirmed = run(app, ["transfers", "confirm", "--store", url, *now])
    assert "6 transfers written" in confirmed.output
    assert "0 transfers written, 6 already confirmed" in run(app, ["transfers", "confirm", plan["id"], "--store", url,
                                                                   *now]).output
    arrived = run(app, ["transfers", "arrive", "C1", "C2", "S1", "--store", url, "--at", "2022-04-20T15:00:00+00:00"])
    assert "3 arrived" in arrived.output, arrived.output
    census = run(app, ["census", "--store", url, "--population", "110105=10000", *now])
    assert "正在集中隔离3人(其中密接2人,次密接1人,境外返市0人,其他中高风险区0人)" in census.output, census.output
    out = tmp_path / "east.pdf"
    made = run(app, ["transfers", "manifest", str(out), "--site", "H-EAST", "--store", url])
    assert made.exit_code == 0 and out.read_bytes().startswith(b"%PDF")
    assert run(app, ["transfers", "confirm", "nope", "--store", url]).exit_code == 1
