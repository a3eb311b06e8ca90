"""Reports: open/missed lists, compliance per region and team, look-back (倒查), and the CLI."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from graph_models.deadlines import MilestoneKind, MilestoneState
from tracing.deadlines import assign_team
from tracing.deadlines.cli import register
from tracing.deadlines.reports import compliance, look_back, milestones_report

from .story import CASE, INV, t

END = t(10, 30, day=21)


def _two_investigations(make_story, path=":memory:"):
    story = make_story(path)
    story.write(t(9), persons=[CASE.model_copy(update={"id": "P2", "region": "120101"})])
    assign_team(story.repo, "inv:P2", "team-b", now=t(9))
    story.run(END)
    return story


def _table(lines):
    return {(x.group, x.clock): (x.met, x.met_late, x.missed, x.open) for x in lines}


def test_compliance_per_region_and_team(make_story):
    story = _two_investigations(make_story)
    by_region = _table(compliance(story.repo, group_by="region"))
    assert by_region == {
        ("110105", "2h"): (1, 0, 0, 0), ("110105", "4h"): (0, 1, 0, 0), ("110105", "24h"): (0, 1, 0, 0),
        ("110105", "8h"): (0, 1, 0, 0), ("110105", "8h-personal"): (5, 0, 0, 0),
        ("120101", "2h"): (0, 0, 1, 0), ("120101", "4h"): (0, 0, 1, 0), ("120101", "24h"): (0, 0, 1, 0),
        ("120101", "8h"): (0, 0, 1, 0),
    }
    by_team = _table(compliance(story.repo, group_by="team"))
    assert by_team[(None, "2h")] == (1, 0, 0, 0) and by_team[("team-b", "8h")] == (0, 0, 1, 0)
    rates = {x.clock: x.on_time_rate for x in compliance(story.repo, group_by="region") if x.group == "110105"}
    assert rates == {"2h": 1.0, "4h": 0.0, "24h": 0.0, "8h": 0.0, "8h-personal": 1.0}
    # A window on due time: only the clocks due on the 20th up to 13:00.
    early = _table(compliance(story.repo, group_by="region", until=t(13)))
    assert set(early) == {("110105", "2h"), ("110105", "4h"), ("120101", "2h"), ("120101", "4h")}


def test_open_and_missed_lists(make_story):
    story = _two_investigations(make_story)
    open_ = {(m.investigation_id, m.kind) for m, _ in milestones_report(story.repo, open_only=True)}
    assert open_ == {("inv:P2", k) for k in (MilestoneKind.ON_SCENE, MilestoneKind.CORE_INFO,
                                              MilestoneKind.FULL_INFO, MilestoneKind.TRANSFER)}
    missed = {(m.id, m.state) for m, _ in milestones_report(story.repo, missed_only=True, since=t(12))}
    assert (f"{INV}:core_info", MilestoneState.MET_LATE) in missed
    assert ("inv:P2:on_scene", MilestoneState.MISSED) not in missed  # due 11:00, before --since


def test_look_back(make_story):
    story = make_story()
    story.run(END)
    report = {(x.milestone.kind, x.milestone.person_id): x for x in look_back(story.repo, INV, now=END).milestones}
    core = report[(MilestoneKind.CORE_INFO, None)]
    assert core.state_at_due is MilestoneState.MET and core.milestone.state is MilestoneState.MET_LATE
    assert [p.person_id for p in core.known_at_due] == ["C1", "C2", "S1"]
    assert sorted(p.person_id for p in core.discovered_after_due) == ["C3", "G1", "S2"]
    assert [a.state for a in core.history] == ["at_risk", "met", "missed", "met_late"]

    transfer = report[(MilestoneKind.TRANSFER, None)]
    assert transfer.state_at_due is MilestoneState.MISSED
    assert transfer.isolated_by_due == ["C1", "C2", "C3"]
    assert {g.person_id for g in transfer.snapshot.reason.gaps} == {"S1", "S2"}
    assert transfer.snapshot.evaluated_at == t(17)

    on_scene = report[(MilestoneKind.ON_SCENE, None)]
    assert (on_scene.state_at_due, on_scene.investigator_on_scene_at) == (MilestoneState.MET, t(10, 30))
    full = report[(MilestoneKind.FULL_INFO, None)]
    assert full.state_at_due is MilestoneState.MISSED
    assert {g.person_id: g.missing for g in full.snapshot.reason.gaps} == {"G1": ["id_number|phone"]}
    assert report[(MilestoneKind.TRANSFER, "S2")].isolated_by_due == ["S2"]


def test_cli(make_story, backend, tmp_path):
    path = tmp_path / "g.db"
    story = _two_investigations(make_story, str(path))
    story.store.close()
    app = typer.Typer()
    register(app)

    @app.command()
    def noop() -> None:  # a second command so typer keeps sub-command routing
        pass

    runner = CliRunner()
    url = backend.url(story)
    result = runner.invoke(app, ["deadlines", "--open", "--json", "--store", url])
    assert result.exit_code == 0, result.output
    assert {row["milestone"]["id"] for row in json.loads(result.output)} == {
        f"inv:P2:{k}" for k in ("on_scene", "core_info", "full_info", "transfer")
    }
    result = runner.invoke(app, ["deadlines", "compliance", "--by", "team", "--json", "--store", url])
    assert result.exit_code == 0, result.output
    assert {(x["group"], x["clock"]) for x in json.loads(result.output)} >= {("team-b", "8h"), (None, "8h-personal")}
    result = runner.invoke(app, ["deadlines", "lookback", INV, "--store", url, "--now", "2022-04-21T10:30:00"])
    assert result.exit_code == 0 and "missed" in result.output, result.output
    result = runner.invoke(app, ["deadlines", "lookback", "inv:nobody", "--store", url])
    assert result.exit_code == 1
    result = runner.invoke(app, ["deadlines", "sweep", "--store", url, "--now", "2022-04-21T10:30:00"])
    assert result.exit_code == 0 and "0 evaluated" in result.output, result.output
