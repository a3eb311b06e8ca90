"""Row readers for CSV, JSON (an array of objects) and JSON Lines, with physical line numbers.

Every reader yields :class:`RawRow` items: the line the row *starts* on
(the CSV header is line 1, so the first data row is normally line 2; a
quoted field spanning lines moves every later row down) and either the row's
values or the reason it could not be read. Values are strings or ``None``:
JSON numbers and booleans are turned into their text so that a mapping
treats every format alike.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RawRow", "ReadError", "count_lines", "read_rows"]


class ReadError(Exception):
    """The file cannot be read past ``line`` (bad encoding, broken JSON, ...)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RawRow:
    line: int
    values: dict[str, str | None] | None  # None when the row is unreadable
    problem: str | None = None


def count_lines(path: Path) -> int:
    """Physical line count, cheaply (for progress bars; quoted line breaks make it an upper bound)."""
    count = 0
    last = b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def read_rows(path: Path, *, fmt: str, encoding: str = "utf-8-sig", delimiter: str = ",") -> Iterator[RawRow]:
    """Rows of ``path`` in file order. Raises :class:`ReadError` for damage that stops reading."""
    if fmt == "csv":
        yield from _read_csv(path, encoding=encoding, delimiter=delimiter)
    elif fmt == "json":
        yield from _read_json(path, encoding=encoding)
    elif fmt == "jsonl":
        yield from _read_jsonl(path, encoding=encoding)
    else:
        raise ValueError(f"unknown format {fmt!r}")


def csv_header(path: Path, *, encoding: str = "utf-8-sig", delimiter: str = ",") -> list[str] | None:
    """The header row of a CSV file, or ``None`` when the file is empty."""
    try:
        with open(path, newline="", encoding=encoding) as handle:
            return next(csv.reader(handle, delimiter=delimiter), None)
    except UnicodeDecodeError as exc:
        raise ReadError(1, f"not {encoding} text: {exc.reason}") from None


def _read_csv(path: Path, *, encoding: str, delimiter: str) -> Iterator[RawRow]:
    with open(path, newline="", encoding=encoding) as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                return
            width = len(header)
            # reader.line_num counts physical lines consumed so far, so a row
            # starts on the line after the previous row ended.
            start = reader.line_num + 1
            for fields in reader:
                line, start = start, reader.line_num + 1
                if not fields:  # blank line
                    continue
                if len(fields) != width:
                    yield RawRow(line, None, f"expected {width} fields (as in the header), found {len(fields)}")
                    continue
                yield RawRow(line, dict(zip(header, fields)))
        except csv.Error as exc:
            raise ReadError(reader.line_num, f"malformed CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ReadError(reader.line_num + 1, f"not {encoding} text: {exc.reason}") from None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, ensure_ascii=False)


def _object_row(line: int, value: Any) -> RawRow:
    if not isinstance(value, dict):
        return RawRow(line, None, f"expected a JSON object, found {type(value).__name__}")
    return RawRow(line, {str(k): _text(v) for k, v in value.items()})


def _read_json(path: Path, *, encoding: str) -> Iterator[RawRow]:
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise ReadError(1, f"not {encoding} text: {exc.reason}") from None
    decoder = json.JSONDecoder()
    # Walk the array element by element with raw_decode so that each object's
    # starting offset, hence its line, is known.
    line, counted_to = 1, 0

    def line_at(offset: int) -> int:
        nonlocal line, counted_to
        line += text.count("\n", counted_to, offset)
        counted_to = offset
        return line

    def skip_space(offset: int) -> int:
        while offset < len(text) and text[offset] in " \t\r\n":
            offset += 1
        return offset

    pos = skip_space(0)
    if pos == len(text):
        return
    if text[pos] != "[":
        raise ReadError(line_at(pos), "a JSON input must be an array of objects (or use JSON Lines)")
    pos = skip_space(pos + 1)
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ReadError(exc.lineno, f"invalid JSON: {exc.msg}") from None
        yield _object_row(line_at(pos), value)
        pos = skip_space(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip_space(pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            if skip_space(pos + 1) != len(text):
                raise ReadError(line_at(skip_space(pos + 1)), "invalid JSON: extra data after the array")
            return
        raise ReadError(line_at(min(pos, len(text))), "invalid JSON: expected ',' or ']' after an array element")


def _read_jsonl(path: Path, *, encoding: str) -> Iterator[RawRow]:
    with open(path, encoding=encoding) as handle:
        number = 0
        try:
            for number, text in enumerate(handle, 1):
                if not text.strip():
                    continue
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield RawRow(number, None, f"invalid JSON: {exc.msg}")
                    continue
                yield _object_row(number, value)
        except UnicodeDecodeError as exc:
            raise ReadError(number + 1, f"not {encoding} text: {exc.reason}") from None
