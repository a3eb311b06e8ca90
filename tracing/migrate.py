"""Copy a whole graph from one store to another (e.g. the embedded SQLite file to Neo4j).

Only the port is used, so any pair of backends works. Records are upserted
by key, so a migration that stopped half-way can simply be run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from graph_models import TracedContact

from .store import GraphBatch, GraphStore, StoreCounts, open_store

__all__ = ["STAGES", "MigrationReport", "migrate", "register"]

#: What is copied, in order: persons and places first, so edges attach to the real nodes.
STAGES = ("persons", "places", "events", "visits", "links", "derived")

#: ``progress(stage, done, total)``: called after each written batch (``total`` from the source's counts).
ProgressCallback = Callable[[str, int, int], None]

T = TypeVar("T")


@dataclass(frozen=True)
class MigrationReport:
    """What a migration copied, and the counts of both stores afterwards."""

    source: StoreCounts
    target: StoreCounts
    copied: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    seconds: float = 0.0

    @property
    def matches(self) -> bool:
        """Whether the target holds exactly as many records of each kind as the source."""
        return self.source == self.target

    def mismatches(self) -> dict[str, tuple[int, int]]:
        """``{kind: (source count, target count)}`` for every kind that differs."""
        source, target = asdict(self.source), asdict(self.target)
        return {k: (source[k], target[k]) for k in source if source[k] != target[k]}


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _derived_by_case(source: GraphStore) -> Iterator[tuple[str, list[TracedContact], datetime]]:
    """The source's derived relations as ``(case, contacts, derived_at)``, one group per run of a case.

    Both adapters yield a case's relations together, so a case makes one
    group; :func:`migrate` copes should a case come back later.
    """
    current: str | None = None
    contacts: list[TracedContact] = []
    stamp: datetime | None = None
    for contact, derived_at in source.iter_derived():
        if contact.case_id != current:
            if current is not None:
                yield current, contacts, stamp
            current, contacts, stamp = contact.case_id, [], derived_at
        contacts.append(contact)
        stamp = max(stamp, derived_at)
    if current is not None:
        yield current, contacts, stamp


def migrate(
    source: GraphStore,
    target: GraphStore,
    *,
    batch_size: int = 10_000,
    progress: ProgressCallback | None = None,
) -> MigrationReport:
    """Copy every person, place, event, visit, link and derived relation of ``source`` into ``target``.

    Records are read with the ``iter_*`` verbs and written with
    ``target.apply`` in batches of ``batch_size`` (each batch one
    transaction); derived relations are written per case with
    ``target.replace_derived``, keeping their ``derived_at``. Existing
    records of ``target`` with the same keys are replaced; others stay, and
    then show up in :meth:`MigrationReport.mismatches`.

    Parameters
    ----------
    source, target : GraphStore
    batch_size : int
        Records per write transaction.
    progress : callable, optional
        ``progress(stage, done, total)`` after each batch; stages are :data:`STAGES`.

    Returns
    -------
    MigrationReport
        Counts of both stores after copying; ``report.matches`` is the check.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    started = time.monotonic()
    totals = asdict(source.counts())
    copied = dict.fromkeys(STAGES, 0)
    batches = 0

    def tick(stage: str, n: int) -> None:
        copied[stage] += n
        if progress is not None:
            progress(stage, copied[stage], totals[stage])

    readers = {
        "persons": source.iter_persons, "places": source.iter_places, "events": source.iter_events,
        "visits": source.iter_visits, "links": source.iter_links,
    }
    for stage, read in readers.items():
        if progress is not None:
            progress(stage, 0, totals[stage])
        for batch in _batches(read(), batch_size):
            target.apply(GraphBatch(**{stage: batch}))
            batches += 1
            tick(stage, len(batch))

    if progress is not None:
        progress("derived", 0, totals["derived"])
    # replace_derived replaces a case's relations, so a case whose relations came in two
    # runs (neither adapter does that) must not keep only its last run: copy it whole at the end.
    written: dict[str, int] = {}
    stamps: dict[str, datetime] = {}
    split: set[str] = set()
    for case_id, contacts, derived_at in _derived_by_case(source):
        stamps[case_id] = max(derived_at, stamps.get(case_id, derived_at))
        if case_id in written:
            split.add(case_id)
            continue
        target.replace_derived(case_id, contacts, derived_at=derived_at)
        written[case_id] = len(contacts)
        batches += 1
        tick("derived", len(contacts))
    for case_id in sorted(split):
        contacts = source.derived_for_case(case_id)
        target.replace_derived(case_id, contacts, derived_at=stamps[case_id])
        batches += 1
        tick("derived", len(contacts) - written[case_id])

    return MigrationReport(
        source=source.counts(), target=target.counts(), copied=copied, batches=batches,
        seconds=time.monotonic() - started,
    )


# --- command line ------------------------------------------------------------------------


def _missing_sqlite_file(url: str) -> Path | None:
    """The file of an ``sqlite://`` URL if it does not exist (parsed as :func:`open_store` does)."""
    if not url.startswith("sqlite://"):
        return None
    path = url.removeprefix("sqlite://")
    if path in ("", ":memory:", "/:memory:"):
        return None
    file = Path(path.removeprefix("/"))
    return None if file.exists() else file


def _open_source(from_url: str, console: Console) -> GraphStore:
    """The ``--from`` store of a CLI command, or a usage error / exit 1 saying why it cannot be opened."""
    missing = _missing_sqlite_file(from_url)
    if missing is not None:
        # Opening it would create an empty database and copy nothing, successfully.
        raise typer.BadParameter(f"no such SQLite file: {missing}", param_hint="--from")
    try:
        return open_store(from_url)
    except Exception as error:  # noqa: BLE001 - any failure to open is reported, not traced back
        console.print(f"[red]error:[/red] cannot open source: {escape(str(error))}", highlight=False)
        raise typer.Exit(1) from None


def migrate_command(
    from_url: Annotated[
        str, typer.Option("--from", help="Source store URL (sqlite:///path.db, bolt://…, neo4j://…)")
    ],
    to_url: Annotated[str, typer.Option("--to", help="Target store URL")],
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Records per write transaction")] = 10_000,
) -> None:
    """Copy a whole graph from one store to another (e.g. SQLite → Neo4j), derived relations included.

    Exits 1 if the target's counts differ from the source's afterwards.
    """
    console = Console(stderr=True)
    out = Console()
    if from_url == to_url:
        raise typer.BadParameter("--from and --to are the same store", param_hint="--to")
    source = _open_source(from_url, console)
    try:
        try:
            target = open_store(to_url)
        except Exception as error:  # noqa: BLE001
            console.print(f"[red]error:[/red] cannot open target: {escape(str(error))}", highlight=False)
            raise typer.Exit(1) from None
        try:
            with Progress(
                TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=console,
            ) as bars:
                tasks: dict[str, TaskID] = {}

                def progress(stage: str, done: int, total: int) -> None:
                    if stage not in tasks:
                        tasks[stage] = bars.add_task(stage, total=total)
                    bars.update(tasks[stage], completed=done)

                report = migrate(source, target, batch_size=batch_size, progress=progress)
        finally:
            target.close()
    finally:
        source.close()

    table = Table(title=f"Migrated in {report.seconds:.1f} s ({report.batches} transactions)")
    for column in ("Kind", "Source", "Copied", "Target", ""):
        table.add_column(column, justify="left" if column == "Kind" else "right")
    source_counts, target_counts = asdict(report.source), asdict(report.target)
    for kind in STAGES:
        ok = source_counts[kind] == target_counts[kind]
        table.add_row(
            kind, str(source_counts[kind]), str(report.copied[kind]), str(target_counts[kind]),
            "[green]ok[/green]" if ok else "[red]differs[/red]",
        )
    out.print(table)
    if not report.matches:
        console.print(
            "[red]error:[/red] the target's counts differ from the source's "
            "(was the target not empty, or did the source change during the copy?)"
        )
        raise typer.Exit(1)


def export_neo4j_import_command(
    directory: Annotated[Path, typer.Argument(help="New directory for the importer's CSV files (must not exist)")],
    from_url: Annotated[str, typer.Option("--from", help="Source store URL (sqlite:///path.db, bolt://…)")],
) -> None:
    """Write a whole graph as the CSV files of `neo4j-admin database import full`, for an initial Neo4j load.

    Several times faster than `migrate --to bolt://…` for a large graph, but only into an
    empty (or replaced) database, with the server stopped. Then:

        scripts/neo4j/neo4j.sh import DIR        (the project's local Neo4j)

        cd DIR && neo4j-admin database import full neo4j --overwrite-destination @import.args
                                                 (a Neo4j 5 installation; then start it)

    The first `tracegraph` command on the started server creates the constraints and indexes.
    """
    from .store.neo4j_bulk import BulkInputError, write_store

    console = Console(stderr=True)
    if directory.exists():
        raise typer.BadParameter(f"{directory} already exists: give a new directory", param_hint="DIRECTORY")
    source = _open_source(from_url, console)
    started = time.monotonic()
    try:
        counts = write_store(source, directory)
    except BulkInputError as error:
        console.print(f"[red]error:[/red] {escape(str(error))} (nothing written)", highlight=False)
        raise typer.Exit(1) from None
    finally:
        source.close()
    table = Table(title=f"Importer files in {directory} ({time.monotonic() - started:.1f} s)")
    table.add_column("File")
    table.add_column("Rows", justify="right")
    for stem, n in counts.items():
        table.add_row(f"{stem}.csv", str(n))
    Console().print(table)
    console.print(f"next: scripts/neo4j/neo4j.sh import {escape(str(directory))}  (server stopped), then start it",
                  highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``migrate`` and ``export-neo4j-import`` commands to ``app`` (the main ``tracegraph`` CLI)."""
    app.command("migrate")(migrate_command)
    app.command("export-neo4j-import")(export_neo4j_import_command)
