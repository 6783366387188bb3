"""Rows to CSV, JSON lines and Parquet files with their real types (`kforensics.export`).

* Parquet: pyarrow's writer, every column in its own type (lists, structs, timestamps in UTC).
* JSON lines: one object per row; lists are arrays, structs and maps objects, a DuckDB JSON
  column the JSON value itself, timestamps ISO 8601 in UTC (`2026-03-14T09:00:00.5Z`), NULL null.
  Characters that some line splitters end a line at are \\u escapes (`json_line`).
* CSV (RFC 4180, Python's csv module): one header row; a list, struct or map cell holds its JSON
  text, a timestamp its ISO 8601 UTC text, true/false, NULL an empty cell (as empty text is).
  Log text is written as logged except for one guard: a text cell starting with `=`, `+`, `-`,
  `@`, a tab or a carriage return, which a spreadsheet would run as a formula, gets a `'` in
  front, and so does one already starting with `'` (so `unguard` gives every value back).

Rows are read in batches, so a query of millions of events is written in bounded memory.
"""

from __future__ import annotations

import base64
import csv
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import duckdb
import orjson
import pyarrow as pa

from kforensics.errors import KforensicsError
from kforensics.untrusted import BIDI

FORMATS = ("csv", "jsonl", "parquet")
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
BATCH_ROWS = 50_000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")  # OWASP's list, and the guard itself
ARROW_SCHEMA = "arrow_schema"  # DataFrame.attrs key: the column types of the rows (frames.frame)
PARQUET_NEEDS_A_FILE = "parquet is binary: give a file to write it to (--output FILE)"

# JSON allows these raw in strings, but str.splitlines() and JavaScript end a line at U+2028,
# U+2029 and U+0085, and a terminal obeys a bidi override: escaped, the value is the same.
JSON_ESCAPES = {c: f"\\u{c:04x}" for c in [*range(0x80, 0xA0), 0x2028, 0x2029, 0xFEFF, *BIDI]}
_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS
_INT64 = range(-(2**63), 2**63)


class ExportError(KforensicsError):
    """Rows that cannot be written as asked: the message says what to change."""


def _default(value: Any) -> Any:
    """Return what orjson writes for a value it has no type for."""
    if isinstance(value, Decimal):  # HUGEINT sums and DECIMAL columns
        if value == value.to_integral_value() and int(value) in _INT64:
            return int(value)
        return float(value)
    if isinstance(value, datetime):  # a pandas Timestamp (nanoseconds) is a datetime subclass
        return iso_time(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, pa.MonthDayNano):  # an INTERVAL, as ISO 8601 (seconds may be fractional)
        seconds = Decimal(value.nanoseconds) / 1_000_000_000
        return f"P{value.months}M{value.days}DT{seconds.normalize():f}S"
    raise TypeError(f"{type(value).__name__} is not exportable")


def json_line(value: object) -> str:
    """Return value as one JSON line that every line splitter reads as one line (timestamps
    ISO 8601 in UTC)."""
    return orjson.dumps(value, default=_default, option=_OPTIONS).decode().translate(JSON_ESCAPES)


def iso_time(value: datetime | date | time) -> str:
    """Return the ISO 8601 text of a time, in UTC with `Z` (a naive time is taken as UTC)."""
    if isinstance(value, datetime) and type(value) is not datetime:  # pandas: to microseconds
        value = datetime.combine(value.date(), value.timetz())
    return orjson.dumps(value, option=_OPTIONS).decode()[1:-1]


def guard(text: str) -> str:
    """Return text as a CSV cell no spreadsheet runs as a formula (a `'` before `=`, `+`, ...)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def unguard(cell: str) -> str:
    """Return the text a guarded CSV cell stands for (what `guard` was given)."""
    return cell[1:] if cell.startswith("'") else cell


def _csv_cell(value: Any, is_json: bool, formula_guard: bool) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        # JSON text starts with {, [, ", a digit, -, t, f or n: no formula; a guard would break it
        return guard(value) if formula_guard and not is_json else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return iso_time(value)
    if isinstance(value, pa.MonthDayNano):
        return _default(value)
    if isinstance(value, list | tuple | dict):
        return json_line(value)
    return _default(value)


def _json_value(value: Any, is_json: bool) -> Any:
    if is_json and isinstance(value, str):
        # DuckDB checked the JSON; a raw line break can only be whitespace between its tokens
        return orjson.Fragment(value.replace("\n", " ").replace("\r", " "))
    return value


def _reader(rows: Any) -> tuple[pa.RecordBatchReader, set[str]]:
    """Return the rows as batches, and the names of the columns that hold DuckDB JSON."""
    if isinstance(rows, duckdb.DuckDBPyRelation):
        json_columns = {
            c for c, t in zip(rows.columns, rows.types, strict=True) if str(t) == "JSON"
        }
        try:
            return rows.to_arrow_reader(BATCH_ROWS), json_columns
        except duckdb.Error as exc:
            raise ExportError(str(exc).splitlines()[0]) from exc
    if isinstance(rows, pa.RecordBatchReader):
        return rows, set()
    if isinstance(rows, pa.Table):
        return rows.to_reader(BATCH_ROWS), set()
    try:
        import pandas as pd

        if isinstance(rows, pd.DataFrame):
            table = _from_pandas(pd.DataFrame(rows), rows.attrs.get(ARROW_SCHEMA))
        elif isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
            table = pa.Table.from_pylist(rows)
        else:
            raise ExportError(
                f"cannot export a {type(rows).__name__}: give a pyarrow Table, a DuckDB "
                "relation, a pandas DataFrame or a list of dicts"
            )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ExportError(f"the rows have no single type per column: {exc}") from exc
    return table.to_reader(BATCH_ROWS), set()


def _from_pandas(df: Any, schema: Any) -> pa.Table:
    """Return the DataFrame as a table, in the column types of the query it came from if known
    (pandas cannot tell an all-NULL text column or a list of empty lists apart from null)."""
    if isinstance(schema, pa.Schema):
        at = [schema.get_field_index(c) if isinstance(c, str) else -1 for c in df.columns]
        if -1 not in at:
            try:
                typed = pa.schema([schema.field(i) for i in at])
                return pa.Table.from_pandas(df, schema=typed, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                pass  # values changed since: their own types then
    return pa.Table.from_pandas(df, preserve_index=False)


def _rows(reader: pa.RecordBatchReader) -> Iterator[dict[str, Any]]:
    for batch in reader:
        yield from batch.to_pylist(maps_as_pydicts="lossy")


def format_of(path: str | Path, format: str | None = None) -> str:
    """Return the export format: the one given, else the one the file's suffix names."""
    if format is not None:
        if format not in FORMATS:
            raise ExportError(f"unknown format {format!r}: use {', '.join(FORMATS)}")
        return format
    found = SUFFIXES.get(Path(path).suffix.lower())
    if found is None:
        raise ExportError(
            f"{path}: say the format ({', '.join(FORMATS)}); the suffix does not name one"
        )
    return found


def export(
    rows: Any,
    path: str | Path | IO[str],
    format: str | None = None,
    *,
    formula_guard: bool = True,
) -> int:
    """Return the number of rows written to path (a file, or a text stream for csv and jsonl).

    rows: a pyarrow Table or RecordBatchReader, a DuckDB relation, a pandas DataFrame (a
    `Frame`) or a list of dicts. format: csv, jsonl or parquet (default: from the suffix).
    `formula_guard=False` writes CSV text cells without the spreadsheet guard (see the module).
    """
    stream = None if isinstance(path, str | Path) else path
    if stream is not None and format is None:
        raise ExportError("say the format (csv or jsonl) to write to a stream")
    fmt = format_of(path if stream is None else "", format)
    if fmt == "parquet" and (stream is not None or str(path) == "-"):
        raise ExportError(PARQUET_NEEDS_A_FILE)
    reader, json_columns = _reader(rows)
    columns = reader.schema.names
    if len(set(columns)) != len(columns):
        twice = sorted({c for c in columns if columns.count(c) > 1})
        raise ExportError(f"two columns are named {', '.join(twice)}: name them apart (AS ...)")
    if stream is not None:
        return _text(reader, json_columns, stream, fmt, formula_guard)
    path = Path(path)
    try:
        if fmt == "parquet":
            return _parquet(reader, path)
        with open(path, "w", encoding="utf-8", newline="") as out:
            return _text(reader, json_columns, out, fmt, formula_guard)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    except BaseException:
        path.unlink(missing_ok=True)  # no half-written file that looks like a whole export
        raise


def _parquet(reader: pa.RecordBatchReader, path: Path) -> int:
    import pyarrow.parquet as pq

    for field in reader.schema:
        if pa.types.is_interval(field.type):
            raise ExportError(
                f"{path}: parquet has no type for the interval column {field.name!r}: "
                "cast it (::VARCHAR, or epoch seconds)"
            )
    written = 0
    try:
        with pq.ParquetWriter(path, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                written += batch.num_rows
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ExportError(f"{path}: parquet cannot hold these columns: {exc}") from exc
    return written


def _text(
    reader: pa.RecordBatchReader, json_columns: set[str], out: IO[str], fmt: str, guarded: bool
) -> int:
    columns = reader.schema.names
    written = 0
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in _rows(reader):
            writer.writerow(_csv_cell(row[c], c in json_columns, guarded) for c in columns)
            written += 1
        return written
    for row in _rows(reader):
        out.write(json_line({c: _json_value(row[c], c in json_columns) for c in columns}) + "\n")
        written += 1
    return written
