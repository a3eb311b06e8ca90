"""Column mappings: how the rows of a dataset's files become graph records.

A mapping is data (a JSON file), never code: the bundled ones live in
``tracing/importing/mappings/<name>.json`` and a user can write their own.
The language is described in ``tracing/importing/README.md``; in short::

    {
      "name": "mers_korea_2015",
      "timezone": "Asia/Seoul",                 # date-only values are local days
      "na_values": ["", "NA", "-", " "],        # the default
      "date_formats": ["%Y-%m-%d"],             # ISO 8601 is always accepted too
      "missing_persons": "create",              # or "error"
      "files": [
        {"name": "linelist", "path": "linelist.csv", "key": "id",
         "records": [
           {"type": "person",
            "fields": {"id": "id", "status": {"const": "confirmed"}, "onset_at": "dt_onset"},
            "attributes": {"age": {"column": "age", "type": "int"}, "sex": "sex"}}],
         "checks": [{"check": "order", "earlier": "dt_start_exp", "later": "dt_end_exp"}]},
        {"name": "contacts", "path": "contacts.csv",
         "records": [
           {"type": "link", "fields": {"infector": "from", "infectee": "to", "exposure": "exposure"}},
           {"type": "event", "on_missing": "warn",
            "fields": {"a": "from", "b": "to",
                       "start": {"lookup": "linelist", "key": "to", "column": "dt_start_exp"},
                       "end": {"lookup": "linelist", "key": "to", "column": "dt_end_exp"},
                       "kind": {"column": "exposure", "map": {"Family member ": "household"}}}}]}
      ]
    }

Everything here only *describes* an import; :mod:`tracing.importing.loader`
evaluates it.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from graph_models import ContactEvent, Person, Place, TransmissionLink, Visit

__all__ = [
    "BUNDLED_MAPPINGS_PACKAGE",
    "Expr",
    "FileSpec",
    "KIND_TO_RECORD",
    "Mapping",
    "MappingError",
    "OrderCheck",
    "RangeCheck",
    "RecordSpec",
    "Resolve",
    "adhoc_mapping",
    "bundled_mapping",
    "bundled_mapping_names",
    "load_mapping",
]

RecordType = Literal["person", "place", "event", "visit", "link"]
ValueType = Literal["str", "int", "float", "bool", "date", "datetime"]
Scalar = str | int | float | bool | None

#: The domain model each record type builds.
RECORD_MODELS: dict[str, type[BaseModel]] = {
    "person": Person,
    "place": Place,
    "event": ContactEvent,
    "visit": Visit,
    "link": TransmissionLink,
}

#: Fields a record cannot do without. Events and visits may omit ``id``: the
#: loader then derives a stable one from their content.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "person": ("id",),
    "place": ("id",),
    "event": ("a", "b", "start", "end"),
    "visit": ("person_id", "place_id", "start", "end"),
    "link": ("infector", "infectee"),
}

#: How the value of each model field is converted when the expression sets no ``type``.
FIELD_TYPES: dict[str, dict[str, ValueType]] = {
    "person": {
        "lat": "float", "lon": "float", "onset_at": "datetime", "sampled_at": "datetime",
        "confirmed_at": "datetime", "reported_at": "datetime", "isolated_at": "datetime",
    },
    "place": {"lat": "float", "lon": "float"},
    "event": {"start": "datetime", "end": "datetime"},
    "visit": {"start": "datetime", "end": "datetime"},
    "link": {"exposed_at": "datetime"},
}

#: Interval ends: a date-only value there means the *end* of that local day.
END_FIELDS: dict[str, frozenset[str]] = {"event": frozenset({"end"}), "visit": frozenset({"end"})}

#: CLI ``--kind`` names and the record type each imports.
KIND_TO_RECORD: dict[str, RecordType] = {
    "persons": "person",
    "cases": "person",
    "contacts": "event",
    "visits": "visit",
    "places": "place",
    "links": "link",
}

BUNDLED_MAPPINGS_PACKAGE = "tracing.importing"
_FORMATS = ("csv", "json", "jsonl")


class MappingError(ValueError):
    """A mapping file is unreadable or does not describe a valid import."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resolve(_Spec):
    """Rewrite values that name a row by another column.

    DS4C writes some infectors as ``#11243``, meaning the patient whose
    ``global_num`` is 11243: ``{"prefix": "#", "lookup": "patients",
    "match": "global_num", "column": "patient_id"}`` turns that into the
    patient's ``patient_id``. Values without the prefix pass unchanged.
    """

    prefix: str = Field(min_length=1)
    lookup: str = Field(description="Name of the file searched")
    match: str = Field(description="Column of that file compared with the value (prefix stripped)")
    column: str = Field(description="Column of the matching row that becomes the value")


class Expr(_Spec):
    """Where one value comes from, and how it is cleaned up.

    Exactly one source: ``column``, ``const``, ``template``, ``coalesce`` or
    ``lookup`` (with ``key`` and ``column``). A bare string is short for
    ``{"column": ...}``. Then, in this order: NA tokens become missing,
    ``resolve``, ``map`` (``"*"`` catches unmapped values; otherwise they
    pass unchanged), ``round``, ``prefix``, and conversion to ``type``
    (by default the model field's type).
    """

    column: str | None = None
    const: Scalar = None
    template: str | None = Field(
        default=None,
        description="Python format string over columns, e.g. '{type}@{latitude:.5f}'; missing if any column is",
    )
    coalesce: list[Expr] | None = Field(default=None, description="First of these that is not missing")
    lookup: str | None = Field(default=None, description="Name of the file whose row is looked up")
    key: str | None = Field(default=None, description="Column of this row holding the looked-up key")
    match: str | None = Field(default=None, description="Column of the looked-up file matched (default: its key)")
    resolve: Resolve | None = None
    map: dict[str, Scalar] | None = None
    round: int | None = Field(default=None, ge=0, le=12)
    prefix: str | None = None
    type: ValueType | None = None
    end_of_day: bool | None = Field(
        default=None, description="Date-only values become the end of the day (default: only for interval ends)"
    )

    @model_validator(mode="before")
    @classmethod
    def _column_shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"column": data}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> Expr:
        sources = [
            name
            for name, present in (
                ("column", self.column is not None and self.lookup is None),
                ("const", "const" in self.model_fields_set),
                ("template", self.template is not None),
                ("coalesce", self.coalesce is not None),
                ("lookup", self.lookup is not None),
            )
            if present
        ]
        if len(sources) != 1:
            found = ", ".join(sources) or "none"
            raise ValueError(f"give exactly one of column, const, template, coalesce, lookup (found: {found})")
        if self.lookup is not None and (self.key is None or self.column is None):
            raise ValueError("a lookup needs 'key' (column of this row) and 'column' (column of the looked-up row)")
        if self.lookup is None and (self.key is not None or self.match is not None):
            raise ValueError("'key' and 'match' only go with 'lookup'")
        if self.template is not None:
            template_columns(self.template)  # raises on a malformed template
        return self

    def columns(self) -> set[str]:
        """Columns of *this* file the expression reads."""
        if self.lookup is not None:
            return {self.key} if self.key else set()
        if self.column is not None:
            return {self.column}
        if self.template is not None:
            return {name for name, _ in template_columns(self.template)}
        if self.coalesce is not None:
            return set().union(*(e.columns() for e in self.coalesce))
        return set()

    def lookups(self) -> Iterator[tuple[str, str | None, str]]:
        """``(file, match column or None for the file's key, column read)`` for every lookup inside."""
        if self.lookup is not None:
            yield self.lookup, self.match, self.column or ""
        if self.resolve is not None:
            yield self.resolve.lookup, self.resolve.match, self.resolve.column
        for sub in self.coalesce or ():
            yield from sub.lookups()


def template_columns(template: str) -> list[tuple[str, str]]:
    """``(column, format spec)`` for each placeholder of a template; raises ValueError if malformed."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template {template!r}: {exc}") from None
    fields = [(name, spec or "") for _, name, spec, _ in parts if name is not None]
    for name, _ in fields:
        if not name or name.isdigit():
            raise ValueError(f"bad template {template!r}: placeholders must name columns, e.g. {{city}}")
    return fields


class RecordSpec(_Spec):
    """One record a row yields: its type, and an expression per model field."""

    type: RecordType
    fields: dict[str, Expr] = Field(default_factory=dict)
    attributes: dict[str, Expr] = Field(
        default_factory=dict, description="Person.attributes entries; a list of column names keeps them as strings"
    )
    keep_other_columns: bool = Field(
        default=False, description="Persons: every column no expression reads becomes a string attribute"
    )
    match_columns: bool = Field(
        default=False, description="Model fields without an expression read the column of the same name, if any"
    )
    on_missing: Literal["error", "warn", "skip"] = Field(
        default="error",
        description="When a required field is missing: reject the row, drop the record with a warning, or drop it silently",
    )

    @field_validator("attributes", mode="before")
    @classmethod
    def _attribute_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {column: column for column in value}
        return value

    @model_validator(mode="after")
    def _known_fields(self) -> RecordSpec:
        model = RECORD_MODELS[self.type]
        unknown = sorted(set(self.fields) - set(model.model_fields) - {"attributes"})
        if unknown:
            raise ValueError(
                f"{self.type} has no field(s) {', '.join(unknown)}; known: {', '.join(model.model_fields)}"
            )
        if "attributes" in self.fields:
            raise ValueError("set person attributes under 'attributes', not 'fields'")
        if self.type != "person" and (self.attributes or self.keep_other_columns):
            raise ValueError("only person records have attributes")
        return self

    def expressions(self) -> Iterator[Expr]:
        yield from self.fields.values()
        yield from self.attributes.values()


class OrderCheck(_Spec):
    """``later`` must not precede ``earlier`` (with ``strict``: must come after it). Dates in those columns."""

    check: Literal["order"]
    earlier: str
    later: str
    strict: bool = False
    severity: Literal["error", "warning"] = "error"


class RangeCheck(_Spec):
    """A numeric column must lie in ``[min, max]``."""

    check: Literal["range"]
    column: str
    min: float | None = None
    max: float | None = None
    severity: Literal["error", "warning"] = "error"
    note: str | None = Field(default=None, description="Appended to the message, e.g. a likely cause")


Check = Annotated[OrderCheck | RangeCheck, Field(discriminator="check")]


class FileSpec(_Spec):
    """One input file and the records each of its rows yields."""

    name: str = Field(default="", description="Handle for lookups and --file overrides (default: file stem)")
    path: str = Field(min_length=1, description="Relative to the dataset directory")
    format: Literal["csv", "json", "jsonl"] | None = Field(default=None, description="Default: from the extension")
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"
    key: str | None = Field(default=None, description="Column other files' lookups match by default")
    records: list[RecordSpec] = Field(min_length=1)
    checks: list[Check] = Field(default_factory=list)

    @model_validator(mode="after")
    def _defaults(self) -> FileSpec:
        if not self.name:
            object.__setattr__(self, "name", Path(self.path).stem)
        if self.format is None:
            object.__setattr__(self, "format", format_from_path(self.path))
        return self

    def columns(self) -> set[str]:
        """Columns of this file the mapping reads directly (lookups into it not included)."""
        found: set[str] = set()
        for record in self.records:
            for expr in record.expressions():
                found |= expr.columns()
        for check in self.checks:
            found |= {check.earlier, check.later} if isinstance(check, OrderCheck) else {check.column}
        return found


def format_from_path(path: str | Path) -> Literal["csv", "json", "jsonl"]:
    """File format from the extension: ``.json``, ``.jsonl``/``.ndjson``, anything else CSV."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    return "csv"


class Mapping(_Spec):
    """A whole import: settings shared by every file, and the files."""

    name: str = Field(min_length=1)
    description: str = ""
    source: str = Field(default="", description="Where the data comes from (free text)")
    folder: str | None = Field(
        default=None, description="Usual directory name of the data, under $TRACEGRAPH_DATASETS"
    )
    timezone: str = Field(default="UTC", description="Zone of date-only and naive timestamps")
    na_values: tuple[str, ...] = ("", "NA", "-", " ")
    date_formats: tuple[str, ...] = ("%Y-%m-%d",)
    missing_persons: Literal["create", "error"] = Field(
        default="create", description="References to persons defined nowhere: placeholder + warning, or error"
    )
    missing_places: Literal["create", "error"] = "create"
    self_links: Literal["drop", "error"] = Field(
        default="drop", description="A link or event from a person to themself: dropped with a warning, or error"
    )
    files: list[FileSpec] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Asia/Seoul')") from None
        return value

    @model_validator(mode="after")
    def _references(self) -> Mapping:
        by_name: dict[str, FileSpec] = {}
        for spec in self.files:
            if spec.name in by_name:
                raise ValueError(f"two files are named {spec.name!r}; give them distinct 'name's")
            by_name[spec.name] = spec
        for spec in self.files:
            for record in spec.records:
                for expr in record.expressions():
                    for target, match, _column in expr.lookups():
                        if target not in by_name:
                            raise ValueError(f"file {spec.name!r} looks up unknown file {target!r}")
                        if match is None and by_name[target].key is None:
                            raise ValueError(
                                f"file {spec.name!r} looks up {target!r} without 'match', and {target!r} has no 'key'"
                            )
        return self

    def file(self, name: str) -> FileSpec:
        for spec in self.files:
            if spec.name == name:
                return spec
        raise KeyError(name)


# --- loading ------------------------------------------------------------------------


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "mapping"
        lines.append(f"  {where}: {item['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def parse_mapping(data: Any, *, origin: str = "mapping") -> Mapping:
    """Validate mapping data (already parsed JSON); :class:`MappingError` with every problem if invalid."""
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        raise MappingError(f"{origin} is not a valid mapping:\n{_describe(exc)}") from None


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping JSON file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"cannot read mapping {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise MappingError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    return parse_mapping(data, origin=str(path))


def _bundled_dir():
    return resources.files(BUNDLED_MAPPINGS_PACKAGE).joinpath("mappings")


def bundled_mapping_names() -> list[str]:
    """Names of the mappings shipped with the package (``--dataset`` values)."""
    return sorted(
        entry.name.removesuffix(".json") for entry in _bundled_dir().iterdir() if entry.name.endswith(".json")
    )


def bundled_mapping(name: str) -> Mapping:
    """A mapping shipped in ``tracing/importing/mappings/<name>.json``."""
    entry = _bundled_dir().joinpath(f"{name}.json")
    if not entry.is_file():
        known = ", ".join(bundled_mapping_names())
        raise MappingError(f"no bundled mapping {name!r}; known: {known}")
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MappingError(f"bundled mapping {name}.json:{exc.lineno}: not valid JSON: {exc.msg}") from None
    return parse_mapping(data, origin=f"bundled mapping {name!r}")


def adhoc_mapping(
    path: str | Path,
    kind: str,
    *,
    columns: dict[str, str] | None = None,
    constants: dict[str, str] | None = None,
    file_format: str | None = None,
    timezone: str = "UTC",
    date_formats: tuple[str, ...] = (),
    delimiter: str = ",",
) -> Mapping:
    """Mapping for one user file of one kind (``tracegraph import FILE --kind ...``).

    ``columns`` maps model fields to columns (``attributes.<name>`` for a
    person attribute); fields not given read the column of the same name if
    the file has one. Persons keep every other column as a string attribute;
    ``cases`` are persons whose status defaults to ``confirmed``.
    """
    if kind not in KIND_TO_RECORD:
        raise MappingError(f"unknown kind {kind!r}; expected one of {', '.join(KIND_TO_RECORD)}")
    record_type = KIND_TO_RECORD[kind]
    fields: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for field, column in (columns or {}).items():
        if field.startswith("attributes."):
            attributes[field.removeprefix("attributes.")] = column
        else:
            fields[field] = column
    for field, value in (constants or {}).items():
        if field in fields:
            raise MappingError(f"{field} is given both as a column (--map) and as a constant (--const)")
        fields[field] = {"const": value}
    if kind == "cases":
        fields.setdefault("status", {"const": "confirmed"})
    record: dict[str, Any] = {"type": record_type, "fields": fields, "match_columns": True}
    if record_type == "person":
        record["attributes"] = attributes
        record["keep_other_columns"] = True
    elif attributes:
        raise MappingError("only persons have attributes")
    spec: dict[str, Any] = {
        "name": Path(path).stem or "input",
        "path": str(path),
        "delimiter": delimiter,
        "records": [record],
    }
    if file_format is not None:
        if file_format not in _FORMATS:
            raise MappingError(f"unknown format {file_format!r}; expected one of {', '.join(_FORMATS)}")
        spec["format"] = file_format
    data: dict[str, Any] = {"name": f"adhoc-{kind}", "timezone": timezone, "files": [spec]}
    if date_formats:
        data["date_formats"] = list(date_formats)
    return parse_mapping(data, origin=f"--kind {kind} mapping")
