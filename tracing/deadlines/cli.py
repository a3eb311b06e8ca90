"""``tracegraph deadlines …`` and ``tracegraph scheduler``: registered by ``register(app)``."""

from __future__ import annotations

import json
import signal
import threading
from datetime import datetime, timezone
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from graph_models.deadlines import AssistRequest

from ..store import GraphStore, open_store
from . import reports, service
from .settings import DeadlineSettings

__all__ = ["deadlines_app", "register"]

console = Console()
deadlines_app = typer.Typer(help="2+4+24+8 deadlines (流调红线): open, missed, compliance, look-back.", no_args_is_help=False)

StoreOption = Annotated[
    Optional[str], typer.Option("--store", help="Store URL (default: $TRACEGRAPH_STORE or sqlite:///tracegraph.db)")
]
NowOption = Annotated[Optional[datetime], typer.Option("--now", help="As of this time (ISO 8601, UTC if no offset)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def _utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(timezone.utc)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _open(url: str | None):
    if url is None:
        from ..config import get_settings

        url = get_settings().store
    store: GraphStore = open_store(url)
    repo = service.deadline_repository(store)
    if repo is None:
        store.close()
        console.print("[red]error:[/red] deadlines need the SQLite or the Neo4j store")
        raise typer.Exit(1)
    return store, repo


def _fmt(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"


_STYLE = {"pending": "", "at_risk": "yellow", "missed": "red", "met": "green", "met_late": "magenta", "cancelled": "dim"}


@deadlines_app.callback(invoke_without_command=True)
def deadlines_list(
    ctx: typer.Context,
    open_: Annotated[bool, typer.Option("--open", help="Only clocks not met yet (pending, at risk, missed)")] = False,
    missed: Annotated[bool, typer.Option("--missed", help="Only clocks missed (still open or met late)")] = False,
    since: Annotated[Optional[datetime], typer.Option("--since", help="Only clocks due at or after this time")] = None,
    investigation: Annotated[Optional[str], typer.Option("--investigation", help="One investigation")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 200,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """List clocks (with --open / --missed / --since), or run a subcommand."""
    if ctx.invoked_subcommand is not None:
        return
    graph, repo = _open(store)
    try:
        rows = reports.milestones_report(
            repo, open_only=open_, missed_only=missed, since=_utc(since) if since else None,
            investigation_id=investigation, limit=limit,
        )
    finally:
        graph.close()
    if as_json:
        typer.echo(json.dumps([{"investigation": i.model_dump(mode="json"), "milestone": m.model_dump(mode="json")}
                               for m, i in rows], indent=2, ensure_ascii=False))
        return
    table = Table(title=f"{len(rows)} clock(s)")
    for column in ("Investigation 流调", "Region", "Team", "Clock", "Person", "Due 截止", "State 状态", "Met 完成", "Reason 原因"):
        table.add_column(column)
    for m, inv in rows:
        style = _STYLE.get(m.state.value, "")
        table.add_row(
            inv.id, inv.region or "—", inv.team or "—", reports.clock_label(m.kind, m.person_id is not None),
            m.person_id or "", _fmt(m.due_at), f"[{style}]{m.state.value}[/{style}]" if style else m.state.value,
            _fmt(m.met_at), m.reason.summary,
        )
    console.print(table)


@deadlines_app.command("compliance")
def compliance_command(
    by: Annotated[str, typer.Option("--by", help="region or team")] = "region",
    since: Annotated[Optional[datetime], typer.Option("--since")] = None,
    until: Annotated[Optional[datetime], typer.Option("--until")] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compliance rates: met on time / late / missed for each of 2, 4, 24, 8 per region or team."""
    graph, repo = _open(store)
    try:
        lines = reports.compliance(repo, group_by=by, since=_utc(since) if since else None,
                                   until=_utc(until) if until else None)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    finally:
        graph.close()
    if as_json:
        typer.echo(json.dumps([{**x.model_dump(mode="json"), "on_time_rate": x.on_time_rate} for x in lines], indent=2))
        return
    table = Table(title=f"Compliance by {by} 红线达标率")
    for column in (by, "Clock", "Met 按时", "Late 超时完成", "Missed 未完成", "Open", "On time %"):
        table.add_column(column)
    for x in lines:
        rate = f"{100 * x.on_time_rate:.1f}" if x.on_time_rate is not None else "—"
        table.add_row(x.group or "—", x.clock, str(x.met), str(x.met_late), str(x.missed), str(x.open), rate)
    console.print(table)


@deadlines_app.command("lookback")
def lookback_command(
    investigation_id: Annotated[str, typer.Argument(help="Investigation id, e.g. inv:<case id>")],
    store: StoreOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Look-back (倒查): each clock's state at its due time and what was known then."""
    graph, repo = _open(store)
    try:
        result = reports.look_back(repo, investigation_id, now=_utc(now))
    except service.InvestigationNotFound as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from error
    finally:
        graph.close()
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    table = Table(title=f"倒查 {investigation_id} (clock from {result.investigation.clock_source} "
                        f"{_fmt(result.investigation.clock_start_at)})")
    for column in ("Clock", "Person", "Due 截止", "At due 截止时", "Now 现在", "Known by due", "Found later",
                   "Missing at due 截止时缺失"):
        table.add_column(column)
    for x in result.milestones:
        m = x.milestone
        missing = "; ".join(f"{g.person_id or '-'}: {', '.join(g.missing)}" for g in x.snapshot.reason.gaps) if x.snapshot else ""
        table.add_row(
            reports.clock_label(m.kind, m.person_id is not None), m.person_id or "", _fmt(m.due_at),
            x.state_at_due.value, m.state.value, str(len(x.known_at_due)),
            ", ".join(t.person_id for t in x.discovered_after_due), missing,
        )
    console.print(table)


@deadlines_app.command("open")
def open_command(
    case_id: Annotated[str, typer.Argument()],
    team: Annotated[Optional[str], typer.Option("--team")] = None,
    store: StoreOption = None,
    now: NowOption = None,
) -> None:
    """Open a case's investigation (the four clocks) if it is not open yet."""
    graph, repo = _open(store)
    try:
        inv = service.open_investigation(graph, repo, case_id, policy=DeadlineSettings().policy, now=_utc(now), team=team)
    except service.TracingError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from error
    finally:
        graph.close()
    console.print(f"{inv.id}: clocks from {inv.clock_source} {_fmt(inv.clock_start_at)}")


@deadlines_app.command("arrive")
def arrive_command(
    investigation_id: Annotated[str, typer.Argument()],
    investigator: Annotated[str, typer.Option("--investigator")],
    at: Annotated[Optional[datetime], typer.Option("--at")] = None,
    store: StoreOption = None,
) -> None:
    """Record an investigator on scene (2 h clock)."""
    graph, repo = _open(store)
    try:
        service.record_arrival(repo, investigation_id, investigator=investigator, arrived_at=_utc(at), now=_utc(None))
    except service.InvestigationNotFound as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from error
    finally:
        graph.close()


@deadlines_app.command("isolated")
def isolated_command(
    person_id: Annotated[str, typer.Argument()],
    site: Annotated[str, typer.Option("--site")],
    at: Annotated[Optional[datetime], typer.Option("--at")] = None,
    store: StoreOption = None,
) -> None:
    """Record a person's arrival at a central isolation site (8 h clock)."""
    graph, repo = _open(store)
    try:
        marked = service.record_isolation_arrival(repo, person_id, site, _utc(at), now=_utc(None))
    finally:
        graph.close()
    console.print(f"{person_id} at {site}; {len(marked)} investigation(s) to re-evaluate")


@deadlines_app.command("assist")
def assist_command(
    request_id: Annotated[str, typer.Argument()],
    person: Annotated[list[str], typer.Option("--person", help="Pushed person id (repeat)")],
    from_region: Annotated[Optional[str], typer.Option("--from-region")] = None,
    region: Annotated[Optional[str], typer.Option("--region")] = None,
    team: Annotated[Optional[str], typer.Option("--team")] = None,
    received_at: Annotated[Optional[datetime], typer.Option("--received-at")] = None,
    store: StoreOption = None,
) -> None:
    """Record an assist request (协查) and start its 24 h clock."""
    graph, repo = _open(store)
    try:
        request = AssistRequest(id=request_id, from_region=from_region, region=region, team=team,
                                received_at=_utc(received_at), person_ids=person)
        service.open_assist_request(repo, request, policy=DeadlineSettings().policy, now=_utc(None))
    finally:
        graph.close()


@deadlines_app.command("sweep")
def sweep_command(store: StoreOption = None, now: NowOption = None) -> None:
    """Run one sweep now (what the scheduler does every interval)."""
    from ..scheduler import default_sinks

    settings = DeadlineSettings()
    graph, repo = _open(store)
    try:
        result = service.sweep_deadlines(graph, repo, policy=settings.policy, now=_utc(now), limit=settings.batch_limit)
        for sink in default_sinks(repo, settings):
            sink.emit(result.alerts)
            if hasattr(sink, "drain"):
                sink.drain()
    finally:
        graph.close()
    console.print(f"{result.evaluated} evaluated, {result.changed} changed, {len(result.alerts)} alert(s), "
                  f"{len(result.errors)} error(s), {result.elapsed_ms:.1f} ms")


def scheduler_command(
    store: StoreOption = None,
    interval: Annotated[Optional[float], typer.Option("--interval", help="Seconds between sweeps")] = None,
) -> None:
    """Run the scheduled jobs (the deadline sweep) in the foreground until interrupted."""
    from ..scheduler import build_scheduler

    settings = DeadlineSettings()
    if interval is not None:
        settings = settings.model_copy(update={"interval_seconds": interval})
    if store is None:
        from ..config import get_settings

        store = get_settings().store
    graph, _ = _open(store)
    scheduler = build_scheduler(graph, settings, store_url=store)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    scheduler.start()
    console.print(f"tracegraph scheduler: deadline sweep every {settings.interval_seconds:g} s (Ctrl-C to stop)")
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        graph.close()


def register(app: typer.Typer) -> None:
    """Add ``deadlines`` (group) and ``scheduler`` to the main CLI."""
    app.add_typer(deadlines_app, name="deadlines")
    app.command("scheduler")(scheduler_command)
