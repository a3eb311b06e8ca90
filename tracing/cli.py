"""The ``tracegraph`` command line: import, trace, chains, sources and clusters."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import lru_cache
from typing import Annotated, Optional
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from graph_models import ChainDirection, ChainVia, TracingPolicy

from . import service
from .config import get_settings
from .errors import TracingError
from .store import GraphStore, open_store

app = typer.Typer(
    name="tracegraph",
    help="Contact-tracing graph service: trace 密接/次密接/一般接触者 along time-respecting paths.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()

StoreOption = Annotated[
    Optional[str], typer.Option("--store", help="Store URL (default: $TRACEGRAPH_STORE or sqlite:///tracegraph.db)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
NowOption = Annotated[
    Optional[datetime],
    typer.Option(
        "--now", help="Evaluate as of this time (ISO 8601; without an offset, in the display time zone); default: now"
    ),
]


def _store(url: str | None) -> GraphStore:
    return open_store(url or get_settings().store)


def _policy() -> TracingPolicy:
    return get_settings().tracing


def _now(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(timezone.utc)
    # People type local times: a time without an offset is in the display time zone.
    return value if value.tzinfo else value.replace(tzinfo=_display_zone())


def _fmt(value: datetime | None) -> str:
    """A time as people read it: in the configured display time zone, to the minute."""
    return value.astimezone(_display_zone()).strftime("%Y-%m-%d %H:%M") if value else "—"


@lru_cache(maxsize=1)
def _display_zone() -> ZoneInfo:
    return ZoneInfo(get_settings().display_timezone)


def _fail(error: Exception) -> None:
    console.print(f"[red]error:[/red] {error}")
    raise typer.Exit(1)


@app.command()
def trace(
    case_id: Annotated[str, typer.Argument(help="Id of a confirmed or asymptomatic case")],
    store: StoreOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
    no_save: Annotated[bool, typer.Option("--no-save", help="Do not store the derived relations")] = False,
) -> None:
    """Derive a case's close (密接), secondary (次密接) and general (一般接触者) contacts with evidence."""
    with_store = _store(store)
    try:
        result = service.trace_case(with_store, case_id, policy=_policy(), now=_now(now), persist=not no_save)
    except TracingError as error:
        _fail(error)
    finally:
        with_store.close()
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    table = Table(
        title=f"Case {case_id}: window {_fmt(result.window_start)} → {_fmt(result.window_end)}"
        f" ({get_settings().display_timezone})"
    )
    for column in ("类别 Class", "Person 人员", "Via 来源", "Exposed 暴露时间", "Events", "Evidence 证据"):
        table.add_column(column)
    for c in result.contacts:
        table.add_row(
            f"{c.contact_class.label_zh} {c.contact_class.value}", c.person_id, c.source_id, _fmt(c.exposed_at),
            str(c.exposure_count), " → ".join(c.evidence),
        )
    console.print(table)
    console.print(
        f"密接 close: {len(result.close)}  次密接 secondary: {len(result.secondary)}  "
        f"一般接触者 general: {len(result.general)}"
    )


@app.command("chain")
def chain_command(
    person_id: Annotated[str, typer.Argument(help="Where the chain starts")],
    up: Annotated[bool, typer.Option("--up", help="Towards sources (溯源)")] = False,
    down: Annotated[bool, typer.Option("--down", help="Towards onward spread (default)")] = False,
    hops: Annotated[Optional[int], typer.Option("--hops", min=1, max=20, help="Hop limit")] = None,
    via: Annotated[ChainVia, typer.Option("--via", help="contacts: time-respecting contact events; links: who-infected-whom")] = ChainVia.CONTACTS,
    store: StoreOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Follow a person's transmission chain up (sources) or down (descendants)."""
    if up and down:
        raise typer.BadParameter("choose one of --up and --down")
    direction = ChainDirection.UP if up else ChainDirection.DOWN
    with_store = _store(store)
    try:
        result = service.chain(
            with_store, person_id, direction=direction, via=via, hops=hops, policy=_policy(), now=_now(now)
        )
    except TracingError as error:
        _fail(error)
    finally:
        with_store.close()
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    table = Table(title=f"{direction.value}stream chain of {person_id} via {via.value} (≤ {result.max_hops} hops)")
    for column in ("Hops 代", "Person 人员", "Parent 上游/下游", "When 时间", "Evidence 证据"):
        table.add_column(column)
    for m in result.members:
        table.add_row(str(m.hops), m.person_id, m.parent_id or "—", _fmt(m.reached_at), m.evidence or "—")
    console.print(table)
    console.print(f"{len(result.members) - 1} person(s) within {result.max_hops} hop(s)")


@app.command()
def sources(
    case_id: Annotated[str, typer.Argument(help="Case to find the source of")],
    store: StoreOption = None,
    now: NowOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Rank who may have infected a case (溯源) during its incubation look-back."""
    with_store = _store(store)
    try:
        ranked = service.source_candidates(with_store, case_id, policy=_policy(), now=_now(now))[:limit]
    except TracingError as error:
        _fail(error)
    finally:
        with_store.close()
    if as_json:
        typer.echo(json.dumps([c.model_dump(mode="json") for c in ranked], indent=2, ensure_ascii=False))
        return
    table = Table(title=f"Source candidates of {case_id} (溯源)")
    for column in ("Person 人员", "Case? 病例", "Linked cases 关联病例", "First contact 首次接触", "Evidence 证据"):
        table.add_column(column)
    for c in ranked:
        table.add_row(
            c.person_id, "yes" if c.is_case else "no", f"{len(c.linked_cases)}: {', '.join(c.linked_cases[:5])}",
            _fmt(c.first_contact_at), ", ".join(c.evidence[:3]),
        )
    console.print(table)


@app.command("clusters")
def clusters_command(
    via: Annotated[Optional[ChainVia], typer.Option("--via", help="links (default), contacts; omit with --all")] = ChainVia.LINKS,
    both: Annotated[bool, typer.Option("--all", help="Join by links and contacts")] = False,
    min_size: Annotated[int, typer.Option("--min-size", min=1)] = 2,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows to show")] = 20,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """List transmission clusters (connected components) by size."""
    with_store = _store(store)
    try:
        found = service.clusters(with_store, via=None if both else via, min_size=min_size)
    finally:
        with_store.close()
    if as_json:
        typer.echo(json.dumps([c.model_dump() for c in found], indent=2))
        return
    table = Table(title=f"{len(found)} clusters 聚集性疫情 (size ≥ {min_size})")
    for column in ("#", "Size 人数", "Cases 病例", "Members 成员"):
        table.add_column(column)
    for c in found[:top]:
        more = f" … +{c.size - 8}" if c.size > 8 else ""
        table.add_row(str(c.id), str(c.size), str(c.case_count), ", ".join(c.members[:8]) + more)
    console.print(table)
    sizes = [c.size for c in found]
    if sizes:
        console.print(f"persons in clusters: {sum(sizes)}; largest: {sizes[0]}")


# Commands that live with their domain modules register themselves on the app.
from .auth.cli import register as _register_users  # noqa: E402
from .deadlines.cli import register as _register_deadlines  # noqa: E402
from .importing.cli import register as _register_import  # noqa: E402
from .migrate import register as _register_migrate  # noqa: E402
from .transfers.cli import register as _register_transfers  # noqa: E402

_register_import(app)
_register_migrate(app)
_register_deadlines(app)
_register_transfers(app)
_register_users(app)

if __name__ == "__main__":  # pragma: no cover
    app()
