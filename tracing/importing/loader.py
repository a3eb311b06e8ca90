"""Import files into a graph store through a mapping: validate everything, then write in atomic batches.

Phase 1 reads every file, evaluates the mapping row by row and collects every
problem as a :class:`~tracing.errors.RowProblem`; then it checks the records
against each other (duplicates, two-way links, references to persons and
places defined nowhere). Phase 2 runs only when phase 1 found no error, or
``skip_invalid`` is set (rows with errors are then left out): it writes
persons and places first, then events, visits and links, in batches of
``batch_size`` records of one type, each batch one ``store.apply`` call and
so all-or-nothing. A killed import therefore leaves whole batches only, and
running it again completes it: every record has a stable key (the file's id
column, or for events and visits without one a hash of their content), so
re-importing the same input changes nothing.
"""

from __future__ import annotations

import gc
import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping as MappingABC, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from graph_models import Person, PersonStatus, Place
from tracing.errors import ImportRejected, RowProblem
from tracing.store.port import GraphBatch, GraphStore

from .expressions import DateParser, EvalContext, LookupIndex, ValueFn, ValueProblem, compile_check, compile_expr
from .mapping import (
    END_FIELDS,
    FIELD_TYPES,
    RECORD_MODELS,
    REQUIRED_FIELDS,
    Expr,
    FileSpec,
    Mapping,
    RecordSpec,
    bundled_mapping,
    load_mapping,
)
from .readers import ReadError, count_lines, csv_header, read_rows

__all__ = ["FileReport", "ImportReport", "import_files", "resolve_paths"]

#: Record types in write order, with the GraphBatch attribute each fills.
WRITE_ORDER: tuple[tuple[str, str], ...] = (
    ("person", "persons"),
    ("place", "places"),
    ("event", "events"),
    ("visit", "visits"),
    ("link", "links"),
)
_PLACEHOLDER = "placeholder"

Origin = tuple[int, int]  # (file index in the mapping, line)


# --- report -----------------------------------------------------------------------------


@dataclass
class FileReport:
    """What one input file contributed."""

    name: str
    path: str
    rows_read: int = 0
    rows_rejected: int = 0
    written: dict[str, int] = field(default_factory=lambda: {plural: 0 for _, plural in WRITE_ORDER})


@dataclass
class ImportReport:
    """Outcome of an import.

    ``written`` counts distinct records sent to the store, by type, including
    ``placeholders`` (persons and places referenced but defined nowhere).
    ``touched_person_ids`` are the persons upserted plus every endpoint of the
    events, visits and links written: the cases whose derived contacts may
    have changed are among them. ``touched_place_ids``: the places written
    (their kinds may have made them workplaces for the deadline clocks).
    """

    mapping: str
    files: list[FileReport]
    problems: list[RowProblem]
    written: dict[str, int]
    placeholders: dict[str, int]
    batches: int
    duration_s: float
    touched_person_ids: set[str]
    skip_invalid: bool = False
    touched_place_ids: set[str] = field(default_factory=set)

    def of_severity(self, severity: str) -> list[RowProblem]:
        return [p for p in self.problems if p.severity == severity]

    @property
    def errors(self) -> list[RowProblem]:
        """Rows left out (only possible with ``skip_invalid``)."""
        return self.of_severity("error")

    @property
    def warnings(self) -> list[RowProblem]:
        return self.of_severity("warning")

    @property
    def notes(self) -> list[RowProblem]:
        """Informational: e.g. references resolved through another column."""
        return self.of_severity("info")

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_per_s(self) -> float:
        return self.rows_read / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "mapping": self.mapping,
            "files": [
                {"name": f.name, "path": f.path, "rows_read": f.rows_read, "rows_rejected": f.rows_rejected,
                 "written": dict(f.written)}
                for f in self.files
            ],
            "written": dict(self.written),
            "placeholders": dict(self.placeholders),
            "batches": self.batches,
            "duration_s": round(self.duration_s, 3),
            "rows_per_s": round(self.rows_per_s, 1),
            "skip_invalid": self.skip_invalid,
            "problem_counts": dict(Counter(p.severity for p in self.problems)),
            "problems": [
                {"file": p.file, "line": p.line, "severity": p.severity, "reason": p.reason} for p in self.problems
            ],
            "touched_person_ids": sorted(self.touched_person_ids),
        }

    def render(self, console: Console | None = None, *, max_problems: int = 50) -> None:
        """Print a summary table and the first ``max_problems`` problems."""
        console = console or Console()
        table = Table(title=f"import {self.mapping}", title_justify="left")
        table.add_column("file")
        table.add_column("rows", justify="right")
        table.add_column("rejected", justify="right")
        for _, plural in WRITE_ORDER:
            table.add_column(plural, justify="right")
        for f in self.files:
            table.add_row(f.path, str(f.rows_read), str(f.rows_rejected), *(str(f.written[p]) for _, p in WRITE_ORDER))
        if any(self.placeholders.values()):
            table.add_row("(placeholders)", "", "", *(str(self.placeholders.get(p, 0)) for _, p in WRITE_ORDER))
        table.add_row(
            "total", str(self.rows_read), str(sum(f.rows_rejected for f in self.files)),
            *(str(self.written[p]) for _, p in WRITE_ORDER), style="bold",
        )
        console.print(table)
        counts = Counter(p.severity for p in self.problems)
        console.print(
            f"{self.batches} batch(es) in {self.duration_s:.2f} s ({self.rows_per_s:,.0f} rows/s); "
            f"{counts['error']} row(s) skipped, {counts['warning']} warning(s), {counts['info']} note(s)"
        )
        print_problems(self.problems, console, limit=max_problems)


def print_problems(problems: Sequence[RowProblem], console: Console, *, limit: int = 50) -> None:
    """Problems, errors first, at most ``limit`` lines plus a count of the rest."""
    rank = {"error": 0, "warning": 1, "info": 2}
    ordered = sorted(problems, key=lambda p: rank.get(p.severity, 3))
    style = {"error": "red", "warning": "yellow", "info": "dim"}
    for problem in ordered[:limit]:
        console.print(str(problem), style=style.get(problem.severity), markup=False, highlight=False, soft_wrap=True)
    if len(ordered) > limit:
        console.print(f"... and {len(ordered) - limit} more (use --json for the full list)", markup=False)


# --- compiled mapping ----------------------------------------------------------------------


@dataclass
class _CompiledRecord:
    spec: RecordSpec
    model: type[BaseModel]
    fields: list[tuple[str, ValueFn]]
    attributes: list[tuple[str, ValueFn]]
    labels: dict[str, str]  # field -> where its value comes from, for messages
    simple_columns: dict[str, str]  # field -> column, when the value is read straight from one
    used_columns: frozenset[str]
    required: tuple[str, ...]
    type: str = ""
    ends: tuple[str, str] | None = None  # the two persons of a link or event: a self-loop check
    interval: bool = False  # events and visits: start/end order, derived id

    def __post_init__(self) -> None:
        self.type = self.spec.type
        self.ends = {"link": ("infector", "infectee"), "event": ("a", "b")}.get(self.type)
        self.interval = self.type in ("event", "visit")


@dataclass
class _CompiledFile:
    index: int
    spec: FileSpec
    path: Path
    display: str
    records: list[_CompiledRecord]
    checks: list[tuple[Callable[[Any], str | None], str]]  # (check, severity)


def _label(expr: Expr) -> str:
    if expr.lookup is not None:
        return f"{expr.lookup}.{expr.column}"
    if expr.column is not None:
        return expr.column
    if expr.template is not None:
        return f"template {expr.template!r}"
    if expr.coalesce is not None:
        return " / ".join(_label(sub) for sub in expr.coalesce)
    return "constant"


def _compile_record(spec: RecordSpec, ctx: EvalContext, header: list[str] | None) -> _CompiledRecord:
    """Compile a record spec; ``header`` (CSV) limits ``match_columns`` to columns that exist."""
    model = RECORD_MODELS[spec.type]
    exprs = dict(spec.fields)
    if spec.match_columns:
        for name in model.model_fields:
            if name not in exprs and name != "attributes" and (header is None or name in header):
                exprs[name] = Expr(column=name)
    types = FIELD_TYPES[spec.type]
    ends = END_FIELDS.get(spec.type, frozenset())
    fields = [
        (name, compile_expr(expr, ctx=ctx, target_type=types.get(name), end_of_day=name in ends))
        for name, expr in exprs.items()
    ]
    attributes = [(name, compile_expr(expr, ctx=ctx)) for name, expr in spec.attributes.items()]
    used: set[str] = set()
    for expr in [*exprs.values(), *spec.attributes.values()]:
        used |= expr.columns()
    return _CompiledRecord(
        spec=spec,
        model=model,
        fields=fields,
        attributes=attributes,
        labels={name: _label(expr) for name, expr in exprs.items()},
        simple_columns={
            name: expr.column for name, expr in exprs.items() if expr.column is not None and expr.lookup is None
        },
        used_columns=frozenset(used),
        required=REQUIRED_FIELDS[spec.type],
    )


# --- phase 1 state -------------------------------------------------------------------------------


#: Field names of each record type, in model order: records wait for phase 2 as tuples of these.
FIELD_NAMES: dict[str, tuple[str, ...]] = {t: tuple(m.model_fields) for t, m in RECORD_MODELS.items()}
_POSITION: dict[str, dict[str, int]] = {t: {n: i for i, n in enumerate(names)} for t, names in FIELD_NAMES.items()}
#: ``(kind, field)`` of the persons and places each record type refers to.
_REFERENCE_FIELDS: dict[str, tuple[tuple[str, int], ...]] = {
    record_type: tuple((kind, _POSITION[record_type][name]) for kind, name in fields)
    for record_type, fields in {
        "event": (("person", "a"), ("person", "b"), ("place", "place_id")),
        "visit": (("person", "person_id"), ("place", "place_id")),
        "link": (("person", "infector"), ("person", "infectee")),
    }.items()
}
_A, _B = _POSITION["event"]["a"], _POSITION["event"]["b"]


def _pack(record_type: str, model: BaseModel) -> tuple:
    """A validated model as the tuple of its field values: a third of the memory of the model itself."""
    return tuple([getattr(model, name) for name in FIELD_NAMES[record_type]])


def _unpack(record_type: str, values: tuple) -> BaseModel:
    # The values were validated by model_validate in phase 1; model_construct only reassembles them.
    names = FIELD_NAMES[record_type]
    return RECORD_MODELS[record_type].model_construct(_fields_set=set(names), **dict(zip(names, values)))


@dataclass(slots=True)
class _Entry:
    """A record collected in phase 1, with the rows that define it (identical duplicates merge)."""

    values: tuple
    origin: Origin
    more: list[Origin] | None = None  # further rows with the same record, rare

    @property
    def sources(self) -> list[Origin]:
        return [self.origin, *(self.more or ())]


_INFECTOR, _INFECTEE = _POSITION["link"]["infector"], _POSITION["link"]["infectee"]
_ID = {t: positions["id"] for t, positions in _POSITION.items() if "id" in positions}


def _key(record_type: str, values: tuple) -> Any:
    """Upsert key: ``id``, or ``(infector, infectee)`` for links."""
    if record_type == "link":
        return (values[_INFECTOR], values[_INFECTEE])
    return values[_ID[record_type]]


def _same(record_type: str, old: tuple, new: tuple) -> bool:
    if old == new:
        return True
    if record_type == "event":
        # Events are undirected: the same meeting listed from both sides is one record.
        swapped = list(new)
        swapped[_A], swapped[_B] = new[_B], new[_A]
        return old == tuple(swapped)
    return False


def content_id(prefix: str, parts: Sequence[object]) -> str:
    """A stable id from a record's identifying content (never from line numbers)."""
    canonical = "\x1f".join([_canonical(p) for p in parts])
    return f"{prefix}-{hashlib.sha1(canonical.encode('utf-8')).hexdigest()[:32]}"


def _canonical(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else str(value).strip()


def _derive_id(record_type: str, values: dict[str, Any]) -> str | None:
    """Id of an event or visit given without one: who, where and when (the kind is not identity)."""
    if record_type == "event":
        a, b = str(values["a"]).strip(), str(values["b"]).strip()
        if b < a:
            a, b = b, a  # undirected: A met B is B met A
        return content_id("ev", (a, b, values["start"], values["end"], values.get("place_id")))
    if record_type == "visit":
        return content_id("vi", (values["person_id"], values["place_id"], values["start"], values["end"]))
    return None


class _Phase1:
    """Everything phase 1 collects: records by type and key, problems, rows with errors."""

    def __init__(self, files: list[_CompiledFile], rejected: dict[str, set[int]]) -> None:
        self.files = files
        self.rejected = rejected  # shared with the lookups: see EvalContext.rejected
        self.records: dict[str, dict[Any, _Entry]] = {t: {} for t, _ in WRITE_ORDER}
        self.problems: list[tuple[Origin, RowProblem]] = []
        self._seen: set[tuple[Origin, str, str]] = set()
        self.bad_rows: set[Origin] = set()
        self.rows_read: Counter[int] = Counter()
        #: Person and place ids of rows rejected as a whole: references to them are not "undefined".
        self.rejected_ids: dict[str, dict[str, Origin]] = {"person": {}, "place": {}}

    def problem(self, origin: Origin, reason: str, severity: str = "error") -> None:
        if (origin, severity, reason) in self._seen:
            return
        self._seen.add((origin, severity, reason))
        self.problems.append((origin, RowProblem(self.files[origin[0]].display, origin[1], reason, severity)))
        if severity == "error":
            self.bad_rows.add(origin)
            self.rejected.setdefault(self.files[origin[0]].spec.name, set()).add(origin[1])

    def where(self, origin: Origin) -> str:
        return f"{self.files[origin[0]].display}:{origin[1]}"

    def sorted_problems(self) -> list[RowProblem]:
        return [p for _, p in sorted(self.problems, key=lambda item: item[0])]

    def has_errors(self) -> bool:
        return bool(self.bad_rows)


def _pydantic_reason(exc: ValidationError, record: _CompiledRecord) -> str:
    """One readable reason for all of a record's validation errors: field (and its source) and message."""
    reasons = []
    for item in exc.errors(include_url=False):
        loc = [str(part) for part in item["loc"]]
        message = item["msg"].removeprefix("Value error, ")
        if not loc:
            reasons.append(f"{record.spec.type}: {message}")
            continue
        name = loc[0]
        source = record.labels.get(name, name)
        where = name if source == name else f"{name} (from {source})"
        if len(loc) > 1:
            where += "." + ".".join(loc[1:])
        shown = item.get("input")
        suffix = f", got {shown!r}" if isinstance(shown, (str, int, float)) and len(str(shown)) <= 60 else ""
        reasons.append(f"{where}: {message}{suffix}")
    return "; ".join(reasons)


def _interval_reason(
    record: _CompiledRecord, values: dict[str, Any], row: MappingABC[str, str | None], zone: tzinfo
) -> str | None:
    """``end is before start``, in the row's own words where the values come straight from columns."""
    start, end = values.get("start"), values.get("end")
    if not isinstance(start, datetime) or not isinstance(end, datetime) or end >= start:
        return None

    def shown(name: str, value: datetime) -> str:
        column = record.simple_columns.get(name)
        if column is not None and row.get(column):
            return f"{column} {row[column]}"
        return f"{name} ({record.labels.get(name, name)}) {value.astimezone(zone).isoformat(sep=' ')}"

    return f"{shown('end', end)} is before {shown('start', start)}"


def _evaluate(
    fields: Sequence[tuple[str, Any]], row: MappingABC[str, str | None], out: dict[str, Any], errors: list[str],
    notes: list[str],
) -> bool:
    """Put each field's non-missing value into ``out``; True if one failed (its reason is in ``errors``)."""
    failed = False
    for name, fn in fields:
        try:
            value = fn(row, notes)
        except ValueProblem as exc:
            errors.append(exc.reason)
            failed = True
            continue
        if value is not None:
            out[name] = value
    return failed


def _add_attributes(
    record: _CompiledRecord, row: MappingABC[str, str | None], values: dict[str, Any], errors: list[str],
    notes: list[str], na: tuple[str, ...],
) -> bool:
    """Fill ``values["attributes"]``; True if an attribute failed (its reason is in ``errors``)."""
    attributes: dict[str, Any] = {}
    failed = _evaluate(record.attributes, row, attributes, errors, notes)
    if record.spec.keep_other_columns:
        for column, value in row.items():
            if column not in record.used_columns and value is not None and value not in na:
                attributes.setdefault(column, value)
    if attributes:
        values["attributes"] = attributes
    return failed


def _report_missing(record: _CompiledRecord, values: dict[str, Any], errors: list[str], warnings: list[str]) -> None:
    """A required field is missing: an error, a warning or nothing, as the record's ``on_missing`` says."""
    missing = [name for name in record.required if name not in values]
    what = ", ".join(
        name if record.labels.get(name, name) == name else f"{name} ({record.labels[name]})" for name in missing
    )
    if record.spec.on_missing == "error":
        errors.append(f"{record.type}: missing {what}")
    elif record.spec.on_missing == "warn":
        warnings.append(f"{record.type} left out: missing {what}")


def _build_row(
    cfile: _CompiledFile, line: int, row: MappingABC[str, str | None], state: _Phase1, mapping: Mapping, zone: tzinfo
) -> None:
    """Evaluate one row: checks, then every record it yields; collect records or problems."""
    origin = (cfile.index, line)
    errors: list[str] = []
    warnings: list[str] = []
    notes: list[str] = []
    for check, severity in cfile.checks:
        reason = check(row)
        if reason is not None:
            (errors if severity == "error" else warnings).append(reason)

    built: list[tuple[str, tuple]] = []  # (record type, packed values)
    declared: list[tuple[str, str]] = []  # (person|place, id) this row defines, even if it fails
    for record in cfile.records:
        values: dict[str, Any] = {}
        failed = _evaluate(record.fields, row, values, errors, notes)
        record_type = record.type
        if record_type == "person" or record_type == "place":
            if "id" in values:
                declared.append((record_type, str(values["id"]).strip()))
            if record_type == "person" and (record.attributes or record.spec.keep_other_columns):
                failed = _add_attributes(record, row, values, errors, notes, mapping.na_values) or failed
        if failed:
            continue

        for name in record.required:
            if name not in values:
                _report_missing(record, values, errors, warnings)
                break
        else:
            if record.ends is not None:
                first, second = str(values[record.ends[0]]).strip(), str(values[record.ends[1]]).strip()
                if first == second:
                    message = f"self-loop: {record.ends[0]} and {record.ends[1]} are both {first}"
                    if mapping.self_links == "error":
                        errors.append(message)
                    else:
                        warnings.append(f"{message}; {'link' if record_type == 'link' else 'contact event'} dropped")
                    continue
            if record.interval:
                reason = _interval_reason(record, values, row, zone)
                if reason is not None:
                    errors.append(reason)
                    continue
                if "id" not in values:
                    values["id"] = _derive_id(record_type, values)
            try:
                built.append((record_type, _pack(record_type, record.model.model_validate(values))))
            except ValidationError as exc:
                errors.append(_pydantic_reason(exc, record))

    # Conflicts with records of earlier rows make this row bad as a whole.
    keyed = [(record_type, _key(record_type, packed), packed) for record_type, packed in built]
    if not errors:
        for record_type, key, packed in keyed:
            existing = state.records[record_type].get(key)
            if existing is None or _same(record_type, existing.values, packed):
                continue
            differing = ", ".join(
                name for name, old, new in zip(FIELD_NAMES[record_type], existing.values, packed) if old != new
            )
            shown = " -> ".join(key) if isinstance(key, tuple) else key
            message = f"{record_type} {shown} is also defined at {state.where(existing.origin)} with different {differing}"
            if record_type == "link":
                warnings.append(f"{message}; keeping the first")
            else:
                errors.append(message)

    for reason in notes:
        state.problem(origin, reason, "info")
    for reason in warnings:
        state.problem(origin, reason, "warning")
    if errors:
        state.problem(origin, "; ".join(dict.fromkeys(errors)))
        for record_type, key in declared:
            state.rejected_ids[record_type].setdefault(key, origin)
        return
    for record_type, key, packed in keyed:
        bucket = state.records[record_type]
        existing = bucket.get(key)
        if existing is None:
            bucket[key] = _Entry(packed, origin)
        elif _same(record_type, existing.values, packed):
            if existing.more is None:
                existing.more = []
            existing.more.append(origin)
        # else: a differing duplicate link, reported above; the first one stays


# --- cross-record checks -------------------------------------------------------------------------


def _references(record_type: str, values: tuple) -> Iterator[tuple[str, str]]:
    """``(kind, id)`` of the persons and places a record points at."""
    for kind, position in _REFERENCE_FIELDS.get(record_type, ()):
        ref = values[position]
        if ref:
            yield kind, ref


def _placeholder(kind: str, ref: str) -> Person | Place:
    if kind == "person":
        return Person(id=ref, status=PersonStatus.NONE, attributes={_PLACEHOLDER: True})
    return Place(id=ref, kind=_PLACEHOLDER)


def _is_placeholder(record: Person | Place) -> bool:
    if isinstance(record, Person):
        return bool(record.attributes.get(_PLACEHOLDER))
    return record.kind == _PLACEHOLDER


def _check_references(
    state: _Phase1, store: GraphStore, mapping: Mapping, *, skipping: bool
) -> tuple[list[Person], list[Place]]:
    """Report references to persons/places defined nowhere; return the placeholders to write.

    An id defined by this import, or by a real (non-placeholder) record
    already in the store, is fine: contacts may be imported after their
    persons. Anything else is reported on every row that refers to it, as
    a warning with a placeholder (``missing_*: "create"``) or as an error.
    A placeholder already in the store is reported and written again, so
    that a re-import gives the same report, unless it was edited since
    (then it is left alone). Ids whose own row was rejected are only
    reported when ``skipping`` (then they do get a placeholder).
    """
    dangling: dict[str, dict[str, list[Origin]]] = {"person": defaultdict(list), "place": defaultdict(list)}
    defined = {"person": state.records["person"], "place": state.records["place"]}
    for record_type in ("event", "visit", "link"):
        for entry in state.records[record_type].values():
            for kind, ref in _references(record_type, entry.values):
                if ref not in defined[kind]:
                    dangling[kind][ref].append(entry.origin)

    stored: dict[str, dict[str, Any]] = {
        "person": store.get_persons(dangling["person"]) if dangling["person"] else {},
        "place": store.get_places(dangling["place"]) if dangling["place"] else {},
    }
    policy = {"person": mapping.missing_persons, "place": mapping.missing_places}
    create: dict[str, list[Any]] = {"person": [], "place": []}
    for kind in ("person", "place"):
        for ref, origins in dangling[kind].items():
            existing = stored[kind].get(ref)
            if existing is not None and not _is_placeholder(existing):
                continue
            rejected_at = state.rejected_ids[kind].get(ref)
            if rejected_at is not None and not skipping:
                continue  # fixing that row fixes this reference: no second message
            where = f" (its own row, {state.where(rejected_at)}, was left out)" if rejected_at else ""
            if policy[kind] == "error":
                if existing is None:
                    for origin in origins:
                        state.problem(origin, f"{kind} {ref} is not defined in this import or the store{where}")
                continue  # else: a placeholder of an earlier import, already an id of the graph
            for origin in origins:
                state.problem(
                    origin,
                    f"{kind} {ref} is not defined in this import{where}; a placeholder {kind} stands in"
                    + (" (status none)" if kind == "person" else ""),
                    "warning",
                )
            placeholder = _placeholder(kind, ref)
            if existing is None or existing == placeholder:
                create[kind].append(placeholder)
    return create["person"], create["place"]


def _check_two_way_links(state: _Phase1) -> None:
    """Warn about A->B together with B->A (kept both: the data does say so)."""
    links = state.records["link"]
    for (infector, infectee), entry in links.items():
        other = links.get((infectee, infector))
        if other is None or other.origin > entry.origin:
            continue  # reported once, on the later of the two rows
        state.problem(
            entry.origin,
            f"two-way link: {infectee} infected by {infector} here, and {infector} infected by {infectee} "
            f"at {state.where(other.origin)}",
            "warning",
        )


def _drop_bad_rows(state: _Phase1) -> None:
    for bucket in state.records.values():
        for key in list(bucket):
            entry = bucket[key]
            sources = entry.sources
            if any(source in state.bad_rows for source in sources):
                kept = [source for source in sources if source not in state.bad_rows]
                if not kept:
                    del bucket[key]
                    continue
                entry.origin, entry.more = kept[0], kept[1:] or None


# --- inputs --------------------------------------------------------------------------------------


PathSource = str | Path | MappingABC[str, str | Path] | Sequence[str | Path]


def resolve_paths(mapping: Mapping, source: PathSource) -> dict[str, tuple[Path, str]]:
    """``file name -> (path, name shown in messages)`` for every file of ``mapping``.

    ``source`` is a dataset directory (file paths of the mapping are relative
    to it), a single file (for a one-file mapping), a ``{file name: path}``
    dict, or a list of paths matched to the mapping's files by file name.
    Raises FileNotFoundError naming every missing file.
    """
    found: dict[str, tuple[Path, str]] = {}
    if isinstance(source, MappingABC):
        unknown = sorted(set(source) - {spec.name for spec in mapping.files})
        if unknown:
            raise ValueError(f"mapping {mapping.name!r} has no file(s) named {', '.join(unknown)}")
        for spec in mapping.files:
            if spec.name not in source:
                raise ValueError(f"no path given for file {spec.name!r} of mapping {mapping.name!r}")
            path = Path(source[spec.name])
            found[spec.name] = (path, str(source[spec.name]))
    elif isinstance(source, (str, Path)) and not Path(source).is_dir() and len(mapping.files) == 1:
        found[mapping.files[0].name] = (Path(source), str(source))
    elif isinstance(source, (str, Path)):
        base = Path(source)
        for spec in mapping.files:
            spec_path = Path(spec.path)
            found[spec.name] = (spec_path if spec_path.is_absolute() else base / spec_path, spec.path)
    else:
        given = [Path(p) for p in source]
        by_name = {p.name: p for p in given}
        for spec in mapping.files:
            path = by_name.get(Path(spec.path).name)
            if path is None:
                raise ValueError(f"none of the given files is {Path(spec.path).name!r} (file {spec.name!r})")
            found[spec.name] = (path, str(path))
    missing = [str(path) for path, _ in found.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"input file(s) not found: {', '.join(missing)}")
    return found


def _as_mapping(mapping: Mapping | str | Path) -> Mapping:
    if isinstance(mapping, Mapping):
        return mapping
    text = str(mapping)
    if text.endswith(".json") or Path(text).is_file():
        return load_mapping(text)
    return bundled_mapping(text)


def _build_indexes(
    mapping: Mapping, paths: dict[str, tuple[Path, str]], na: frozenset[str]
) -> dict[tuple[str, str], LookupIndex]:
    """Index the files other expressions look up, by the columns they match on.

    Indexes are built before any row is evaluated, so that a file may look
    itself up (DS4C ``#global_num`` references). Rows of earlier files that
    phase 1 rejected are skipped by the lookups (``EvalContext.rejected``);
    rows of the same or later files are not known to be bad yet and are used.
    """
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for spec in mapping.files:
        for record in spec.records:
            for expr in record.expressions():
                for target, match, column in expr.lookups():
                    key = match or mapping.file(target).key or ""
                    wanted[(target, key)].add(column)
    indexes: dict[tuple[str, str], LookupIndex] = {}
    for (target, match), columns in wanted.items():
        spec = mapping.file(target)
        index: LookupIndex = defaultdict(list)
        try:
            rows = read_rows(paths[target][0], fmt=spec.format or "csv", encoding=spec.encoding, delimiter=spec.delimiter)
            for raw in rows:
                if raw.values is None:
                    continue
                value = raw.values.get(match)
                if value is None or value in na:
                    continue
                index[value].append((raw.line, {column: raw.values.get(column) for column in columns}))
        except ReadError:
            pass  # reported when the file itself is read
        indexes[(target, match)] = dict(index)
    return indexes


def _missing_columns(
    cfile: _CompiledFile, header: list[str], mapping: Mapping, headers: dict[str, list[str] | None]
) -> list[str]:
    """Problems with columns the mapping reads but the CSV header lacks."""
    problems = []
    spec = cfile.spec
    present = set(header)
    explicit = spec.columns()  # match_columns fields are bound only to columns that exist
    absent = sorted(explicit - present)
    if absent:
        problems.append(
            f"column(s) {', '.join(repr(c) for c in absent)} not in the header (columns: {', '.join(header)})"
        )
    for record in spec.records:
        for expr in record.expressions():
            for target, match, column in expr.lookups():
                target_header = headers.get(target)
                if target_header is None:
                    continue
                needed = {column, match or mapping.file(target).key or ""} - set(target_header)
                if needed:
                    problems.append(f"lookup into {target}: column(s) {', '.join(sorted(needed))} not in its header")
    return problems


# --- main entry ----------------------------------------------------------------------------------


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector during an import.

    An import allocates millions of small objects and keeps most of them
    until the end, so every full collection walks everything kept so far:
    about a third of the time on a 200k-row file. Records form no reference
    cycles; whatever cyclic garbage appears is collected once re-enabled.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def import_files(
    store: GraphStore,
    mapping: Mapping | str | Path,
    base_dir_or_files: PathSource,
    *,
    batch_size: int = 10_000,
    skip_invalid: bool = False,
    progress: bool = True,
    console: Console | None = None,
    pause_gc: bool = False,
) -> ImportReport:
    """Validate the input of ``mapping`` completely, then write it to ``store`` in atomic batches.

    Parameters
    ----------
    store : GraphStore
        Receives ``apply`` calls only after validation succeeded.
    mapping : Mapping or str or Path
        A mapping, the name of a bundled one, or the path of a mapping JSON file.
    base_dir_or_files
        Where the files are: see :func:`resolve_paths`.
    batch_size : int
        Records per ``store.apply`` call; a batch never mixes record types.
    skip_invalid : bool
        Leave rows with errors out (listed in the report) instead of rejecting the import.
    progress : bool
        Show rich progress bars on stderr (or on ``console``).
    pause_gc : bool
        Pause Python's cyclic garbage collector while importing (about a
        third faster on large files). It is process-wide, so only a process
        that does nothing else meanwhile (the CLI) should ask for it.

    Returns
    -------
    ImportReport

    Raises
    ------
    ImportRejected
        When any row has an error and ``skip_invalid`` is false; nothing was written.
    FileNotFoundError, ValueError, MappingError
        For missing inputs or an invalid mapping, before anything is read.
    Exception
        Whatever ``store.apply`` raises; the batches written before it stay,
        and running the same import again completes it.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    mapping = _as_mapping(mapping)
    paths = resolve_paths(mapping, base_dir_or_files)
    na = frozenset(mapping.na_values)
    ctx = EvalContext(
        na_values=na,
        dates=DateParser(mapping.date_formats, mapping.timezone),
        file_keys={spec.name: spec.key for spec in mapping.files},
    )
    zone = ctx.dates.zone
    headers: dict[str, list[str] | None] = {}
    for spec in mapping.files:
        if spec.format == "csv":
            try:
                headers[spec.name] = csv_header(paths[spec.name][0], encoding=spec.encoding, delimiter=spec.delimiter)
            except ReadError:
                headers[spec.name] = None
    ctx.indexes = _build_indexes(mapping, paths, na)

    compiled = [
        _CompiledFile(
            index=i,
            spec=spec,
            path=paths[spec.name][0],
            display=paths[spec.name][1],
            records=[_compile_record(record, ctx, headers.get(spec.name)) for record in spec.records],
            checks=[(compile_check(check, ctx=ctx), check.severity) for check in spec.checks],
        )
        for i, spec in enumerate(mapping.files)
    ]
    state = _Phase1(compiled, ctx.rejected)
    console = console or Console(stderr=True)

    with (_collector_paused() if pause_gc else nullcontext()), Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=not progress, transient=False,
    ) as bars:
        # Phase 1: read and validate everything.
        for cfile in compiled:
            _read_file(cfile, state, mapping, headers, zone, bars)
        placeholders = _check_references(state, store, mapping, skipping=skip_invalid)
        if state.has_errors() and not skip_invalid:
            _check_two_way_links(state)
            raise ImportRejected(state.sorted_problems())
        # Leaving rows out can orphan references (and, with missing_*: "error", fail more rows).
        while state.has_errors():
            before = len(state.bad_rows)
            _drop_bad_rows(state)
            placeholders = _check_references(state, store, mapping, skipping=True)
            if len(state.bad_rows) == before:
                break
        _check_two_way_links(state)

        # Phase 2: write, persons and places first, each batch atomic.
        to_write: dict[str, list[tuple]] = {
            record_type: [entry.values for entry in state.records[record_type].values()]
            for record_type, _ in WRITE_ORDER
        }
        to_write["person"] += [_pack("person", p) for p in placeholders[0]]
        to_write["place"] += [_pack("place", p) for p in placeholders[1]]
        task = bars.add_task("writing", total=sum(len(records) for records in to_write.values()))
        batches = 0
        for record_type, plural in WRITE_ORDER:
            records = to_write[record_type]
            for start in range(0, len(records), batch_size):
                chunk = [_unpack(record_type, values) for values in records[start : start + batch_size]]
                store.apply(GraphBatch(**{plural: chunk}))
                batches += 1
                bars.advance(task, len(chunk))

    file_reports = []
    for cfile in compiled:
        report = FileReport(name=cfile.spec.name, path=cfile.display, rows_read=state.rows_read[cfile.index])
        report.rows_rejected = sum(1 for origin in state.bad_rows if origin[0] == cfile.index)
        file_reports.append(report)
    for record_type, plural in WRITE_ORDER:
        for entry in state.records[record_type].values():
            file_reports[entry.origin[0]].written[plural] += 1

    return ImportReport(
        mapping=mapping.name,
        files=file_reports,
        problems=state.sorted_problems(),
        written={plural: len(to_write[record_type]) for record_type, plural in WRITE_ORDER},
        placeholders={"persons": len(placeholders[0]), "places": len(placeholders[1])},
        batches=batches,
        duration_s=time.perf_counter() - started,
        touched_person_ids=_touched(to_write),
        skip_invalid=skip_invalid,
        # Placeholder places (referenced, defined nowhere) carry no kind: they change no workplace.
        touched_place_ids={values[_ID["place"]] for values in to_write["place"]} - {p.id for p in placeholders[1]},
    )


def _touched(written: dict[str, list[tuple]]) -> set[str]:
    touched = {values[_ID["person"]] for values in written["person"]}
    for record_type in ("event", "visit", "link"):
        for values in written[record_type]:
            touched.update(ref for kind, ref in _references(record_type, values) if kind == "person")
    return touched


def _read_file(
    cfile: _CompiledFile, state: _Phase1, mapping: Mapping, headers: dict[str, list[str] | None], zone: tzinfo,
    bars: Progress,
) -> None:
    spec = cfile.spec
    if spec.format == "csv":
        header = headers.get(spec.name)
        if header is None:
            state.problem((cfile.index, 1), "the file is empty or unreadable (no header row)")
            return
        column_problems = _missing_columns(cfile, header, mapping, headers)
        if column_problems:
            # Every row would fail the same way: report it once, at the header.
            state.problem((cfile.index, 1), "; ".join(column_problems))
            return
    # A JSON array's line count says nothing about its rows: no estimate there.
    estimate = None if spec.format == "json" else max(count_lines(cfile.path) - (spec.format == "csv"), 0)
    task = bars.add_task(f"reading {cfile.display}", total=estimate or None)
    rows = 0
    try:
        for raw in read_rows(cfile.path, fmt=spec.format or "csv", encoding=spec.encoding, delimiter=spec.delimiter):
            rows += 1
            if raw.values is None:
                state.problem((cfile.index, raw.line), raw.problem or "unreadable row")
            else:
                _build_row(cfile, raw.line, raw.values, state, mapping, zone)
            if rows % 2000 == 0:
                bars.update(task, completed=rows)
    except ReadError as exc:
        state.problem((cfile.index, exc.line), exc.reason)
    state.rows_read[cfile.index] = rows
    bars.update(task, completed=rows, total=rows)
