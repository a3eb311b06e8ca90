"""``tracegraph import``: the command-line face of :func:`tracing.importing.import_files`.

The main CLI adds the command with :func:`register`; ``python -m
tracing.importing import ...`` runs it on its own. Exit codes: 0 imported,
1 rejected (nothing written) or post-import derivation failed, 2 usage error.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from tracing.errors import ImportRejected

from .loader import ImportReport, import_files, print_problems, resolve_paths
from .mapping import (
    KIND_TO_RECORD,
    Mapping,
    MappingError,
    adhoc_mapping,
    bundled_mapping,
    bundled_mapping_names,
    load_mapping,
)

__all__ = ["DEFAULT_STORE_URL", "register"]

DEFAULT_STORE_URL = "sqlite:///tracegraph.db"
#: Rejections print at most this many problems (all of them with --json).
MAX_PRINTED_PROBLEMS = 50


class UsageProblem(Exception):
    """A usage error: reported on stderr with exit code 2."""


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """``["a=b", ...]`` -> ``{"a": "b"}``; a usage error for anything else."""
    pairs: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageProblem(f"{option} expects NAME=VALUE, got {item!r}")
        pairs[name.strip()] = value
    return pairs


def _choose_mapping(
    file: Path | None,
    dataset: str | None,
    mapping_path: Path | None,
    kind: str | None,
    columns: dict[str, str],
    constants: dict[str, str],
    file_format: str | None,
    tz: str,
    date_formats: list[str] | None,
    delimiter: str,
) -> Mapping:
    chosen = [name for name, given in (("FILE", file), ("--dataset", dataset), ("--mapping", mapping_path)) if given]
    if len(chosen) > 1 and not (chosen == ["FILE", "--mapping"] and kind is None):
        raise UsageProblem(f"give only one of FILE (with --kind), --dataset or --mapping (got {' and '.join(chosen)})")
    if not chosen:
        raise UsageProblem("nothing to import: give FILE with --kind, --dataset NAME or --mapping PATH")
    try:
        if dataset:
            return bundled_mapping(dataset)
        if mapping_path is not None:
            return load_mapping(mapping_path)
        if kind is None:
            raise UsageProblem(f"FILE needs --kind ({'|'.join(KIND_TO_RECORD)})")
        return adhoc_mapping(
            file, kind, columns=columns, constants=constants, file_format=file_format, timezone=tz,  # type: ignore[arg-type]
            date_formats=tuple(date_formats or ()), delimiter=delimiter,
        )
    except MappingError as exc:
        raise UsageProblem(str(exc)) from None


def _source(
    mapping: Mapping, file: Path | None, directory: Path | None, overrides: dict[str, str], dataset: str | None
) -> Path | dict[str, str | Path]:
    """Where the mapping's files are: FILE, a directory, or per-file paths (--file NAME=PATH)."""
    if file is not None:
        if len(mapping.files) != 1:
            raise UsageProblem(
                f"FILE fits a one-file mapping only; {mapping.name!r} has {len(mapping.files)} files: use --dir or --file"
            )
        return file
    known = {spec.name for spec in mapping.files}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UsageProblem(
            f"--file: mapping {mapping.name!r} has no file {', '.join(unknown)} (files: {', '.join(sorted(known))})"
        )
    base = directory
    if base is None and dataset:
        root = os.environ.get("TRACEGRAPH_DATASETS")
        if root:
            base = Path(root) / (mapping.folder or mapping.name)
    needed = [spec for spec in mapping.files if spec.name not in overrides]
    if base is None and needed:
        raise UsageProblem(
            "where are the files? give --dir DIR (or set TRACEGRAPH_DATASETS), or --file NAME=PATH for "
            + ", ".join(spec.name for spec in needed)
        )
    if not overrides:
        assert base is not None
        return base  # problems then name files as the mapping does (relative to the directory)
    paths: dict[str, str | Path] = dict(overrides)
    for spec in needed:
        paths[spec.name] = base / spec.path  # type: ignore[operator]
    return paths


def _rederive(store, report: ImportReport) -> list[str]:
    # Imported lazily: the tracing service is another package's concern, and
    # importing without derivation (--no-derive) must not depend on it.
    from graph_models import TracingPolicy
    from tracing.service import mark_place_visitors, rederive_affected

    now = datetime.now(timezone.utc)
    rederived = rederive_affected(store, sorted(report.touched_person_ids), policy=TracingPolicy(), now=now)
    mark_place_visitors(store, sorted(report.touched_place_ids), now=now)
    return rederived


_FileArg = Annotated[
    Optional[Path], typer.Argument(help="One file to import with --kind and --map.", show_default=False)
]
_DatasetOpt = Annotated[
    Optional[str],
    typer.Option("--dataset", "-d", help="Bundled mapping: " + ", ".join(bundled_mapping_names()), show_default=False),
]
_MappingOpt = Annotated[Optional[Path], typer.Option("--mapping", "-m", help="A mapping JSON file.", show_default=False)]
_DirOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--dir", show_default=False,
        help="Directory of the mapping's files (for --dataset, default $TRACEGRAPH_DATASETS/<folder>).",
    ),
]
_FileOverrideOpt = Annotated[
    Optional[list[str]],
    typer.Option("--file", help="NAME=PATH: read the mapping's file NAME from PATH.", show_default=False),
]
_KindOpt = Annotated[
    Optional[str], typer.Option("--kind", "-k", help="What FILE holds: " + "|".join(KIND_TO_RECORD), show_default=False)
]
_MapOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--map", show_default=False,
        help="FIELD=COLUMN for FILE (attributes.NAME=COLUMN for a person attribute); "
        "fields not mapped read the column of the same name.",
    ),
]
_ConstOpt = Annotated[
    Optional[list[str]],
    typer.Option("--const", help="FIELD=VALUE: the same value for every row of FILE.", show_default=False),
]
_FormatOpt = Annotated[
    Optional[str], typer.Option("--format", help="csv|json|jsonl (default: from the extension).", show_default=False)
]
_TzOpt = Annotated[str, typer.Option("--tz", help="Time zone of FILE's dates that carry no offset.")]
_DateFormatOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--date-format", show_default=False,
        help="strptime pattern of FILE's dates, e.g. %d/%m/%Y (ISO 8601 always works).",
    ),
]
_DelimiterOpt = Annotated[str, typer.Option("--delimiter", help="CSV delimiter of FILE.")]
_StoreOpt = Annotated[
    str,
    typer.Option("--store", envvar="TRACEGRAPH_STORE", help="Store URL (sqlite:///path.db, neo4j://host:7687)."),
]
_BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Records per atomic write.")]
_SkipOpt = Annotated[
    bool, typer.Option("--skip-invalid", help="Write the valid rows and list the others instead of rejecting all.")
]
_NoDeriveOpt = Annotated[
    bool, typer.Option("--no-derive", help="Do not re-derive the contacts of the affected cases afterwards.")
]
_JsonOpt = Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")]
_QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars and no summary.")]


def import_command(
    file: _FileArg = None,
    dataset: _DatasetOpt = None,
    mapping_path: _MappingOpt = None,
    directory: _DirOpt = None,
    file_overrides: _FileOverrideOpt = None,
    kind: _KindOpt = None,
    maps: _MapOpt = None,
    consts: _ConstOpt = None,
    file_format: _FormatOpt = None,
    tz: _TzOpt = "UTC",
    date_formats: _DateFormatOpt = None,
    delimiter: _DelimiterOpt = ",",
    store_url: _StoreOpt = DEFAULT_STORE_URL,
    batch_size: _BatchOpt = 10_000,
    skip_invalid: _SkipOpt = False,
    no_derive: _NoDeriveOpt = False,
    as_json: _JsonOpt = False,
    quiet: _QuietOpt = False,
) -> None:
    """Import persons, cases, contacts, visits, places and transmission links.

    Either a dataset through a mapping (--dataset NAME or --mapping PATH,
    with --dir), or one FILE with --kind and --map FIELD=COLUMN. Everything
    is validated before anything is written; an import with bad rows is
    rejected unless --skip-invalid.
    """
    try:
        _run(
            file=file, dataset=dataset, mapping_path=mapping_path, directory=directory,
            file_overrides=file_overrides, kind=kind, maps=maps, consts=consts, file_format=file_format, tz=tz,
            date_formats=date_formats, delimiter=delimiter, store_url=store_url, batch_size=batch_size,
            skip_invalid=skip_invalid, no_derive=no_derive, as_json=as_json, quiet=quiet,
        )
    except UsageProblem as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"Error: {exc}\nTry 'import --help' for help.", style="red", markup=False, highlight=False
        )
        raise typer.Exit(code=2) from None


def _run(
    *, file: Path | None, dataset: str | None, mapping_path: Path | None, directory: Path | None,
    file_overrides: list[str] | None, kind: str | None, maps: list[str] | None, consts: list[str] | None,
    file_format: str | None, tz: str, date_formats: list[str] | None, delimiter: str, store_url: str,
    batch_size: int, skip_invalid: bool, no_derive: bool, as_json: bool, quiet: bool,
) -> None:
    if file_format is not None and file_format not in ("csv", "json", "jsonl"):
        raise UsageProblem(f"--format must be csv, json or jsonl, not {file_format!r}")
    if file is None and (kind or maps or consts):
        raise UsageProblem("--kind, --map and --const describe FILE: give FILE too")
    mapping = _choose_mapping(
        file, dataset, mapping_path, kind, _pairs(maps, "--map"), _pairs(consts, "--const"),
        file_format, tz, date_formats, delimiter,
    )
    source = _source(mapping, file, directory, _pairs(file_overrides, "--file"), dataset)
    try:
        resolve_paths(mapping, source)  # before opening the store: a typo must not create a database
    except (FileNotFoundError, ValueError) as exc:
        raise UsageProblem(str(exc)) from None

    out = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    from tracing.store import open_store  # deferred: opening Neo4j pulls in its driver

    try:
        store = open_store(store_url)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    try:
        try:
            report = import_files(
                store, mapping, source, batch_size=batch_size, skip_invalid=skip_invalid,
                progress=not quiet, console=err, pause_gc=True,
            )
        except ImportRejected as exc:
            _print_rejection(exc, mapping, out=out, err=err, as_json=as_json)
            raise typer.Exit(code=1) from None

        rederived: list[str] | None = None
        derive_error: str | None = None
        if not no_derive:
            try:
                rederived = _rederive(store, report)
            except ImportError as exc:
                derive_error = f"cannot re-derive contacts: {exc} (the data was written; use --no-derive to skip this step)"
        if as_json:
            payload = {"status": "imported", **report.to_dict(), "rederived_cases": rederived}
            if derive_error:
                payload["derive_error"] = derive_error
            typer.echo(json.dumps(payload, indent=2))
        elif not quiet:
            report.render(out, max_problems=MAX_PRINTED_PROBLEMS)
            if rederived is not None:
                out.print(f"re-derived the contacts of {len(rederived)} case(s)")
        if derive_error:
            err.print(derive_error, style="red", markup=False)
            raise typer.Exit(code=1)
    finally:
        store.close()


def _print_rejection(exc: ImportRejected, mapping: Mapping, *, out: Console, err: Console, as_json: bool) -> None:
    errors = [p for p in exc.problems if p.severity == "error"]
    if as_json:
        payload = {
            "status": "rejected",
            "mapping": mapping.name,
            "written": False,
            "problem_counts": {s: sum(1 for p in exc.problems if p.severity == s) for s in ("error", "warning", "info")},
            "problems": [
                {"file": p.file, "line": p.line, "severity": p.severity, "reason": p.reason} for p in exc.problems
            ],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    err.print(
        f"import rejected, nothing written: {len(errors)} row(s) with errors "
        "(fix them, or use --skip-invalid to import the other rows)",
        style="bold red", markup=False, highlight=False,
    )
    print_problems(errors, err, limit=MAX_PRINTED_PROBLEMS)


def register(app: typer.Typer) -> None:
    """Add the ``import`` command to ``app`` (the main ``tracegraph`` CLI)."""
    app.command("import")(import_command)
