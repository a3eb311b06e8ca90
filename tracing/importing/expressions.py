"""Evaluation of mapping expressions and checks against raw rows.

Expressions are compiled once per import into small closures, so the per-row
work is a few dict lookups and conversions. A value that cannot be produced
raises :class:`ValueProblem` with a reason that names the column and value,
ready to be reported as a row problem.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping as MappingABC, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

from .mapping import Expr, OrderCheck, RangeCheck, template_columns

__all__ = ["DateParser", "EvalContext", "LookupIndex", "ValueFn", "ValueProblem", "compile_check", "compile_expr"]

Values = MappingABC[str, str | None]
#: A compiled expression: row values and a list collecting informational notes -> value (None = missing).
ValueFn = Callable[[Values, list[str]], object]
#: ``match value -> [(line, row)]`` of one file; rows hold only the columns lookups read.
LookupIndex = dict[str, list[tuple[int, dict[str, str | None]]]]

_TIME_DIRECTIVES = ("%H", "%I", "%M", "%S", "%X", "%c", "%T", "%R", "%p", "%f")
_CACHE_LIMIT = 100_000
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


class ValueProblem(Exception):
    """A value of a row is unusable; ``reason`` says which and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DateParser:
    """Parse dates and timestamps into aware UTC datetimes.

    ISO 8601 dates and timestamps are tried first (the C parsers are fast),
    then ``formats`` (strptime patterns such as ``%d/%m/%Y``). A value
    without a time of day is a calendar day in ``zone``: its local midnight,
    or with ``end_of_day`` its last microsecond. Naive timestamps are local
    too. Date-only results are cached: line lists repeat the same days.
    """

    def __init__(self, formats: Sequence[str], zone: str) -> None:
        self.zone = ZoneInfo(zone)
        self.formats = [(fmt, not any(d in fmt for d in _TIME_DIRECTIVES)) for fmt in formats]
        expected = [fmt for fmt in formats if fmt != "%Y-%m-%d"]
        self.expected = " or ".join(["YYYY-MM-DD", *expected, "an ISO 8601 timestamp"])
        self._days: dict[str, datetime] = {}
        self._day_starts: dict[str, datetime] = {}
        self._day_ends: dict[str, datetime] = {}

    def local(self, text: str) -> tuple[datetime, bool]:
        """``(datetime, date_only)``; naive datetimes are local. Raises ValueError."""
        day = self._days.get(text)
        if day is not None:
            return day, True
        stripped = text.strip()
        if len(stripped) == 10:
            try:
                day = datetime.combine(date.fromisoformat(stripped), time.min)
            except ValueError:
                pass
        if day is None and len(stripped) > 10:
            try:
                return datetime.fromisoformat(stripped), False
            except ValueError:
                pass
        if day is None:
            for fmt, date_only in self.formats:
                try:
                    parsed = datetime.strptime(stripped, fmt)
                except ValueError:
                    continue
                if not date_only:
                    return parsed, False
                day = parsed
                break
        if day is None:
            raise ValueError(f"{text!r} is not a date")
        if len(self._days) >= _CACHE_LIMIT:
            self._days.clear()
        self._days[text] = day
        return day, True

    def utc(self, text: str, *, end_of_day: bool = False) -> datetime:
        """The UTC instant of ``text``. Raises ValueError."""
        cache = self._day_ends if end_of_day else self._day_starts
        found = cache.get(text)
        if found is not None:
            return found
        parsed, date_only = self.local(text)
        if not date_only:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=self.zone)
            return parsed.astimezone(timezone.utc)
        result = datetime.combine(parsed.date(), time.max if end_of_day else time.min, tzinfo=self.zone)
        result = result.astimezone(timezone.utc)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[text] = result
        return result


@dataclass
class EvalContext:
    """What compiled expressions need from the import around them."""

    na_values: frozenset[str]
    dates: DateParser
    #: ``(file name, match column) -> index``, built by the loader for every lookup the mapping makes.
    indexes: dict[tuple[str, str], LookupIndex] = field(default_factory=dict)
    #: Key column of each file, the default ``match`` of lookups into it.
    file_keys: dict[str, str | None] = field(default_factory=dict)
    #: Lines found to have errors so far, by file name. Lookups skip them, so
    #: with ``skip_invalid`` a rejected row lends no values to other files'
    #: records (files are read in mapping order: this covers earlier files).
    rejected: dict[str, set[int]] = field(default_factory=dict)


def _to_int(value: str, label: str) -> int:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if number.is_integer():
        return int(number)
    raise ValueProblem(f"{label}: {value!r} is not a whole number")


def _to_float(value: str, label: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueProblem(f"{label}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueProblem(f"{label}: {value!r} is not a finite number")
    return number


def _to_bool(value: str, label: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueProblem(f"{label}: {value!r} is not true/false")


def _converter(
    kind: str | None, label: str, dates: DateParser, end_of_day: bool, *, text_only: bool = True
) -> Callable[[object], object] | None:
    """Conversion of a present value to ``kind``; None when values pass unchanged.

    With ``text_only`` (the default) values that are not text, such as
    constants or mapped values that already have a type, pass unchanged;
    without it the converter assumes text.
    """
    if kind is None:
        return None
    if kind == "str":
        return lambda v: v if isinstance(v, str) else str(v)

    convert: Callable[[str], object]
    if kind == "int":
        convert = lambda v: _to_int(v, label)  # noqa: E731
    elif kind == "float":
        convert = lambda v: _to_float(v, label)  # noqa: E731
    elif kind == "bool":
        convert = lambda v: _to_bool(v, label)  # noqa: E731
    elif kind == "date":

        def convert(v: str) -> object:
            try:
                parsed, date_only = dates.local(v)
            except ValueError:
                raise ValueProblem(f"{label}: {v!r} is not a date (expected {dates.expected})") from None
            return parsed.date().isoformat() if date_only else parsed.isoformat()

    elif kind == "datetime":
        utc = dates.utc

        def convert(v: str) -> object:
            try:
                return utc(v, end_of_day=end_of_day)
            except ValueError:
                raise ValueProblem(f"{label}: {v!r} is not a date (expected {dates.expected})") from None

    else:
        raise ValueError(f"unknown value type {kind!r}")
    if not text_only:
        return convert
    return lambda v: convert(v) if isinstance(v, str) else v


def _index(ctx: EvalContext, file: str, match: str | None) -> LookupIndex:
    return ctx.indexes[(file, match or ctx.file_keys[file] or "")]


def _one(rows: list[tuple[int, dict[str, str | None]]], what: str, rejected: set[int]) -> dict[str, str | None] | None:
    """The single usable row among ``rows`` (None if all were rejected); ambiguity is a problem."""
    usable = [(line, row) for line, row in rows if line not in rejected] if rejected else rows
    if not usable:
        return None
    if len(usable) > 1:
        lines = ", ".join(str(line) for line, _ in usable[:5])
        raise ValueProblem(f"{what} is ambiguous: {len(usable)} rows match (lines {lines})")
    return usable[0][1]


def _source(expr: Expr, ctx: EvalContext) -> tuple[ValueFn, str]:
    """The unmodified value of ``expr`` and a label naming where it comes from."""
    na = ctx.na_values

    if expr.lookup is not None:
        index = _index(ctx, expr.lookup, expr.match)
        key, column, target = expr.key or "", expr.column or "", expr.lookup
        label = f"{target}.{column}"
        rejected = ctx.rejected.setdefault(target, set())

        def lookup(values: Values, notes: list[str]) -> object:
            wanted = values.get(key)
            if wanted is None or wanted in na:
                return None
            rows = index.get(wanted)
            if not rows:
                return None
            found = _one(rows, f"lookup of {key} {wanted!r} in {target}", rejected)
            if found is None:
                return None
            value = found.get(column)
            return None if value is None or value in na else value

        return lookup, label

    if expr.column is not None:
        column = expr.column

        def read(values: Values, notes: list[str]) -> object:
            value = values.get(column)
            return None if value is None or value in na else value

        return read, column

    if "const" in expr.model_fields_set:
        constant = expr.const
        return (lambda values, notes: constant), "constant"

    if expr.template is not None:
        template = expr.template
        parts = template_columns(template)
        numeric = {name: spec[-1:] for name, spec in parts if spec[-1:] in ("f", "e", "g", "%", "d")}

        def fill(values: Values, notes: list[str]) -> object:
            args: dict[str, object] = {}
            for name, _ in parts:
                value = values.get(name)
                if value is None or value in na:
                    return None
                kind = numeric.get(name)
                if kind == "d":
                    args[name] = _to_int(value, name)
                elif kind:
                    args[name] = _to_float(value, name)
                else:
                    args[name] = value
            return template.format(**args)

        return fill, f"template {template!r}"

    if expr.coalesce is not None:
        options = [compile_expr(sub, ctx=ctx) for sub in expr.coalesce]

        def first(values: Values, notes: list[str]) -> object:
            for option in options:
                value = option(values, notes)
                if value is not None:
                    return value
            return None

        return first, " / ".join(sorted(expr.columns())) or "coalesce"

    raise ValueError("expression without a source")  # the mapping model rules this out


def compile_expr(
    expr: Expr, *, ctx: EvalContext, target_type: str | None = None, end_of_day: bool = False
) -> ValueFn:
    """Compile ``expr``: source, then resolve, map, round, prefix and type conversion.

    ``target_type`` is the conversion used when ``expr`` sets no ``type``
    (the model field's type); ``end_of_day`` the default for date-only values.
    """
    source, label = _source(expr, ctx)
    steps: list[Callable[[object, list[str]], object]] = []
    na = ctx.na_values

    if expr.resolve is not None:
        rule = expr.resolve
        index = _index(ctx, rule.lookup, rule.match)
        rule_rejected = ctx.rejected.setdefault(rule.lookup, set())

        def resolve(value: object, notes: list[str]) -> object:
            if not isinstance(value, str) or not value.startswith(rule.prefix):
                return value
            wanted = value[len(rule.prefix) :]
            rows = index.get(wanted)
            if not rows:
                raise ValueProblem(f"{label} {value!r}: no row of {rule.lookup} has {rule.match} {wanted!r}")
            row = _one(rows, f"{label} {value!r} ({rule.match} {wanted!r} in {rule.lookup})", rule_rejected)
            found = None if row is None else row.get(rule.column)
            if found is None or found in na:
                raise ValueProblem(f"{label} {value!r}: the matching row of {rule.lookup} has no {rule.column}")
            notes.append(f"{label} {value!r} resolved to {rule.column} {found!r} (via {rule.match})")
            return found

        steps.append(resolve)

    if expr.map is not None:
        table = dict(expr.map)
        has_default = "*" in table
        fallback = table.get("*")

        def translate(value: object, notes: list[str]) -> object:
            text = value if isinstance(value, str) else str(value)
            if text in table:
                return table[text]
            return fallback if has_default else value

        steps.append(translate)

    if expr.round is not None:
        digits = expr.round
        steps.append(lambda value, notes: round(value if isinstance(value, float) else _to_float(str(value), label), digits))

    if expr.prefix is not None:
        prefix = expr.prefix
        steps.append(lambda value, notes: prefix + (value if isinstance(value, str) else str(value)))

    kind = expr.type or target_type
    eod = expr.end_of_day if expr.end_of_day is not None else end_of_day
    convert = _converter(kind, label, ctx.dates, eod)
    if not steps and expr.column is not None and expr.lookup is None and convert is not None:
        # The common case, fused into one call: a column read and converted.
        # Raw column values are always text, so the text converter applies directly.
        column, text_convert = expr.column, _converter(kind, label, ctx.dates, eod, text_only=False)
        assert text_convert is not None

        def read_and_convert(values: Values, notes: list[str]) -> object:
            value = values.get(column)
            if value is None or value in na:
                return None
            return text_convert(value)

        return read_and_convert
    if convert is not None:
        steps.append(lambda value, notes: convert(value))

    if not steps:
        return source

    def evaluate(values: Values, notes: list[str]) -> object:
        value = source(values, notes)
        for step in steps:
            if value is None:
                return None
            value = step(value, notes)
        return value

    return evaluate


def compile_check(check: OrderCheck | RangeCheck, *, ctx: EvalContext) -> Callable[[Values], str | None]:
    """A row check returning the problem's reason, or None when the row passes (or the values are missing)."""
    na = ctx.na_values

    def present(values: Values, column: str) -> str | None:
        value = values.get(column)
        return None if value is None or value in na else value

    if isinstance(check, OrderCheck):
        earlier, later, strict = check.earlier, check.later, check.strict

        def order(values: Values) -> str | None:
            first, second = present(values, earlier), present(values, later)
            if first is None or second is None:
                return None
            try:
                first_at, second_at = ctx.dates.utc(first), ctx.dates.utc(second)
            except ValueError:
                return None  # the unparsable date is reported by the field that reads it
            if second_at < first_at:
                return f"{later} {second} is before {earlier} {first}"
            if strict and second_at == first_at:
                return f"{later} {second} is not after {earlier} {first}"
            return None

        return order

    column, low, high = check.column, check.min, check.max
    note = f" ({check.note})" if check.note else ""

    def in_range(values: Values) -> str | None:
        text = present(values, column)
        if text is None:
            return None
        try:
            number = float(text)
        except ValueError:
            return f"{column}: {text!r} is not a number"
        if low is not None and number < low:
            return f"{column} {text} is below {low:g}{note}"
        if high is not None and number > high:
            return f"{column} {text} is above {high:g}{note}"
        return None

    return in_range
