"""``tracegraph sites …``, ``tracegraph vehicles …``, ``tracegraph transfers …`` and ``tracegraph census``.

Registered on the main CLI by :func:`register`.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from graph_models.transfers import CapacityStandard, IsolationSite, Vehicle

from ..errors import TracingError
from ..store import GraphStore, open_store
from . import service
from .manifests import write_manifest
from .settings import TransferSettings

__all__ = ["register", "sites_app", "transfers_app", "vehicles_app"]

console = Console()
sites_app = typer.Typer(help="Isolation sites (集中隔离场所): import, list.", no_args_is_help=True)
vehicles_app = typer.Typer(help="Closed-loop transfer vehicles (闭环转运车辆): import, list.", no_args_is_help=True)
transfers_app = typer.Typer(help="Transfers to centralized isolation (转运): plan, confirm, arrive, …", no_args_is_help=True)

StoreOption = Annotated[
    str | None, typer.Option("--store", help="Store URL (default: $TRACEGRAPH_STORE or sqlite:///tracegraph.db)")
]
NowOption = Annotated[datetime | None, typer.Option("--now", help="As of this time (ISO 8601, UTC if no offset)")]
AtOption = Annotated[datetime | None, typer.Option("--at", help="When it happened (ISO 8601; default: now)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def _utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _open(url: str | None) -> GraphStore:
    if url is None:
        from ..config import get_settings

        url = get_settings().store
    return open_store(url)


def _fail(error: Exception) -> None:
    console.print(f"[red]error:[/red] {error}")
    raise typer.Exit(1)


def _read_records(path: Path) -> list[dict]:
    """Rows of a ``.json`` (list of objects) or ``.csv`` file; empty CSV cells are left out."""
    if path.suffix.lower() == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = [{k: v for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(f)]
    for row in rows:
        if "accepts" in row:
            row["accepts"] = [c.strip() for c in row["accepts"].replace(";", ",").split(",") if c.strip()]
    return rows


# --- sites -----------------------------------------------------------------------------------------
@sites_app.command("import")
def sites_import(path: Annotated[Path, typer.Argument(help="CSV or JSON: id,name,kind,lat,lon,rooms,beds_per_room,"
                                                      "status,region,address,phone,accepts")],
                 store: StoreOption = None) -> None:
    """Import (upsert) isolation sites."""
    try:
        sites = [IsolationSite.model_validate(r) for r in _read_records(path)]
    except (ValueError, OSError) as error:
        _fail(error)
    graph = _open(store)
    try:
        n = service.import_sites(service.transfer_repository(graph), sites)
    finally:
        graph.close()
    console.print(f"imported {n} sites")


@sites_app.command("list")
def sites_list(store: StoreOption = None, now: NowOption = None, as_json: JsonOption = False) -> None:
    """Sites with rooms, occupied and free rooms."""
    graph = _open(store)
    try:
        report = service.census(service.transfer_repository(graph), policy=TransferSettings().policy, now=_utc(now))
    finally:
        graph.close()
    if as_json:
        typer.echo(json.dumps([s.model_dump(mode="json") for s in report.sites], ensure_ascii=False, indent=2))
        return
    table = Table(title="隔离点 Isolation sites")
    for column in ("Id", "Name 名称", "Status 状态", "Region", "Rooms 房间", "Occupied 已用", "Free 空闲", "Persons 人数"):
        table.add_column(column)
    for s in report.sites:
        table.add_row(s.site_id, s.name, s.status.value, s.region or "", str(s.rooms), str(s.occupied_rooms),
                      str(s.free_rooms), str(s.persons))
    console.print(table)


# --- vehicles --------------------------------------------------------------------------------------
@vehicles_app.command("import")
def vehicles_import(path: Annotated[Path, typer.Argument(help="CSV or JSON: id,seats,base_lat,base_lon,base,plate")],
                    store: StoreOption = None) -> None:
    """Import (upsert) transfer vehicles."""
    try:
        vehicles = [Vehicle.model_validate(r) for r in _read_records(path)]
    except (ValueError, OSError) as error:
        _fail(error)
    graph = _open(store)
    try:
        n = service.import_vehicles(service.transfer_repository(graph), vehicles)
    finally:
        graph.close()
    console.print(f"imported {n} vehicles")


@vehicles_app.command("list")
def vehicles_list(store: StoreOption = None) -> None:
    graph = _open(store)
    try:
        vehicles = service.transfer_repository(graph).vehicles()
    finally:
        graph.close()
    table = Table(title="转运车辆 Vehicles")
    for column in ("Id", "Seats 座位", "Base 车队", "Plate 车牌", "Available"):
        table.add_column(column)
    for v in vehicles:
        table.add_row(v.id, str(v.seats), v.base or f"{v.base_lat:.4f},{v.base_lon:.4f}", v.plate or "",
                      "yes" if v.available else "no")
    console.print(table)


# --- transfers -------------------------------------------------------------------------------------
@transfers_app.command("plan")
def transfers_plan(
    store: StoreOption = None, now: NowOption = None, as_json: JsonOption = False,
    replan: Annotated[bool, typer.Option("--replan", help="Also re-plan confirmed transfers not picked up")] = False,
) -> None:
    """Propose rooms, vehicles, batches and pickup times for everyone due (stored, not confirmed)."""
    graph = _open(store)
    try:
        plan = service.plan_transfers(graph, policy=TransferSettings().policy, now=_utc(now), replan=replan)
    finally:
        graph.close()
    if as_json:
        typer.echo(plan.model_dump_json(indent=2))
        return
    table = Table(title=f"Plan {plan.id}: {len(plan.assignments)} placed, {plan.unplaced} short")
    for column in ("Person", "Class 类别", "Household 户", "Site 隔离点", "Room", "Vehicle", "Batch", "#",
                   "Pickup 接人"):
        table.add_column(column)
    for a in plan.assignments[:200]:
        table.add_row(a.person_id, a.category.label_zh, a.household, a.site_id, str(a.room), a.vehicle_id or "—",
                      str(a.batch or ""), str(a.pickup_order or ""),
                      a.planned_pickup_at.strftime("%m-%d %H:%M") if a.planned_pickup_at else "—")
    console.print(table)
    for s in plan.shortages:
        console.print(f"[red]shortage 缺口[/red] region {s.region}: {s.persons} persons, {s.households} households, "
                      f"≥{s.rooms_needed} rooms")
    for h in plan.split_households:
        console.print(f"[yellow]household {h.household} ({h.size}) split over {h.rooms} rooms / {h.trips} trips[/yellow]")
    if plan.without_vehicle:
        console.print(f"[yellow]{len(plan.without_vehicle)} persons have no vehicle[/yellow]")
    console.print(f"confirm with: tracegraph transfers confirm {plan.id}")


@transfers_app.command("confirm")
def transfers_confirm(
    plan_id: Annotated[str | None, typer.Argument(help="Plan id (default: the latest plan)")] = None,
    store: StoreOption = None, now: NowOption = None,
) -> None:
    """Confirm a plan: write its transfers (idempotent)."""
    graph = _open(store)
    try:
        result = service.confirm_plan(service.transfer_repository(graph), plan_id, now=_utc(now))
    except TracingError as error:
        _fail(error)
    finally:
        graph.close()
    console.print(f"plan {result.plan_id}: {len(result.inserted)} transfers written, "
                  f"{len(result.existing)} already confirmed, {len(result.refused)} refused")
    for tid, reason in sorted(result.refused.items()):
        console.print(f"  [red]refused[/red] {tid}: {reason}")


@transfers_app.command("pickup")
def transfers_pickup(person_ids: list[str], store: StoreOption = None, at: AtOption = None) -> None:
    """Persons boarded their vehicle (a re-plan no longer moves them)."""
    graph = _open(store)
    try:
        changed = service.record_pickup(service.transfer_repository(graph), person_ids, picked_up_at=_utc(at),
                                        now=_utc(at))
    finally:
        graph.close()
    console.print(f"{len(changed)} picked up")


@transfers_app.command("arrive")
def transfers_arrive(person_ids: list[str], store: StoreOption = None, at: AtOption = None) -> None:
    """Persons arrived at their site: closes their 8 h transfer clock."""
    graph = _open(store)
    try:
        result = service.confirm_arrival(graph, service.transfer_repository(graph), person_ids,
                                         arrived_at=_utc(at), now=_utc(at))
    finally:
        graph.close()
    console.print(f"{len(result.arrived)} arrived, {len(result.already)} already there, "
                  f"{len(result.unknown)} without a transfer: {', '.join(result.unknown)}")
    if not result.deadlines_tracked:
        console.print("[yellow]this store has no deadline repository: 8 h clocks not updated[/yellow]")


@transfers_app.command("discharge")
def transfers_discharge(store: StoreOption = None, now: NowOption = None) -> None:
    """Discharge everyone whose isolation has ended (per policy); home health monitoring follows."""
    graph = _open(store)
    try:
        done = service.discharge_due(service.transfer_repository(graph), policy=TransferSettings().policy,
                                     now=_utc(now))
    finally:
        graph.close()
    console.print(f"{len(done)} discharged")


@transfers_app.command("manifest")
def transfers_manifest(
    out: Annotated[Path, typer.Argument(help="Output file: .csv, .xlsx or .pdf")],
    site: Annotated[str | None, typer.Option("--site")] = None,
    vehicle: Annotated[str | None, typer.Option("--vehicle")] = None,
    store: StoreOption = None,
) -> None:
    """Write the manifest of one site or one vehicle."""
    graph = _open(store)
    try:
        title, rows = service.manifest(graph, service.transfer_repository(graph), site_id=site, vehicle_id=vehicle,
                                       offset=TransferSettings().display_offset)
        write_manifest(rows, out, title=title)
    except ValueError as error:
        _fail(error)
    finally:
        graph.close()
    console.print(f"{out}: {len(rows)} rows")


def census_command(
    store: StoreOption = None, now: NowOption = None, as_json: JsonOption = False,
    population: Annotated[list[str] | None, typer.Option("--population", help="REGION=RESIDENTS (repeatable)")] = None,
    omicron: Annotated[bool, typer.Option("--omicron", help="Capacity standard ×3 (Omicron)")] = False,
) -> None:
    """Isolation census: 正在集中隔离N人(其中…), free rooms per site, rooms per 10,000 residents."""
    settings = TransferSettings()
    pop = dict(settings.population)
    for item in population or []:
        region, _, n = item.partition("=")
        pop[region] = int(n)
    standard = CapacityStandard.omicron() if omicron else settings.capacity
    graph = _open(store)
    try:
        report = service.census(service.transfer_repository(graph), policy=settings.policy, now=_utc(now),
                                standard=standard, population=pop)
    finally:
        graph.close()
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    console.print(report.text)
    console.print(f"转运中 in transit {report.in_transit.total}, 待转运 planned {report.planned.total}, "
                  f"居家健康监测 home monitoring {report.home_monitoring}")
    console.print(f"free rooms 空闲房间: {sum(s.free_rooms for s in report.sites)} "
                  f"(active {sum(s.free_rooms for s in report.sites if s.status.value == 'active')})")
    if report.regions:
        table = Table(title=f"Rooms per 10,000 residents (standard {standard.effective_per_10k:g})")
        for column in ("Region", "Population", "Active", "Reserve", "Free", "Per 10k", "Required", "Shortfall"):
            table.add_column(column)
        for r in report.regions:
            table.add_row(r.region, str(r.population), str(r.rooms_active), str(r.rooms_reserve), str(r.free_rooms),
                          f"{r.rooms_per_10k:g}", str(r.required_rooms), str(r.shortfall))
        console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``sites``, ``vehicles``, ``transfers`` (groups) and ``census`` to the main CLI."""
    app.add_typer(sites_app, name="sites")
    app.add_typer(vehicles_app, name="vehicles")
    app.add_typer(transfers_app, name="transfers")
    app.command("census")(census_command)
