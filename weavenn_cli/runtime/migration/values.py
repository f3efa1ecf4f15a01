"""Column values across the two engines: conversion for the backfill, canonical text for verify.

SQLite keeps whatever it was given (text or numeric timestamps, 0/1 booleans, JSON as text);
PostgreSQL has real types. The backfill converts SQLite's storage into those types, and verify
renders every value as one canonical text, in Python for SQLite and in SQL for PostgreSQL,
so that equal data hashes equal on both sides:

- timestamps: UTC, `YYYY-MM-DD HH:MM:SS.ffffff`; dates `YYYY-MM-DD`
- booleans: `t` / `f`
- floats: the 16 hex digits of the IEEE 754 double (exact, no formatting differences)
- JSON: PostgreSQL's jsonb text (keys ordered by length then bytes, `, ` and `: `, numbers
  as numeric prints them), which Python reproduces
- NULL stays NULL; an empty string is a value
"""

from __future__ import annotations

import enum
import functools
import json
import struct
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from weavenn_cli.runtime.errors import UsageError


class Kind(enum.Enum):
    TEXT = "text"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    FLOAT = "float"
    TIMESTAMPTZ = "timestamptz"
    TIMESTAMP = "timestamp"
    DATE = "date"
    JSON = "json"
    BYTES = "bytes"
    UUID = "uuid"


class ConversionError(ValueError):
    """A stored value that cannot become a value of its column's type."""


def column_kind(column: sa.Column[Any]) -> Kind:
    """The kind of value a column holds; refuses types the migration does not know."""
    kind = _kind_of(column.type)
    if kind is None:
        raise UsageError(
            f"column {column.table.name}.{column.name} has type {column.type!r}, which the "
            "data migration does not support: add it to weavenn_cli/runtime/migration/values.py"
        )
    return kind


def _kind_of(type_: sa.types.TypeEngine[Any]) -> Kind | None:
    if isinstance(type_, sa.types.TypeDecorator):
        return _kind_of(type_.impl_instance)
    checks: list[tuple[type[Any], Kind]] = [
        (sa.Boolean, Kind.BOOLEAN),
        (sa.Integer, Kind.INTEGER),
        (sa.Float, Kind.FLOAT),
        (sa.Date, Kind.DATE),
        (sa.JSON, Kind.JSON),
        (sa.LargeBinary, Kind.BYTES),
        (sa.Uuid, Kind.UUID),
        (sa.String, Kind.TEXT),
    ]
    if isinstance(type_, sa.DateTime):
        return Kind.TIMESTAMPTZ if type_.timezone else Kind.TIMESTAMP
    return next((kind for cls, kind in checks if isinstance(type_, cls)), None)


# -- conversion to Python values (backfill) -----------------------------------------------


def _looks_canonical_timestamp(value: str) -> bool:
    # SQLAlchemy's SQLite format, always with microseconds: 'YYYY-MM-DD HH:MM:SS.ffffff'.
    return len(value) == 26 and value[4] == "-" and value[10] == " " and value[19] == "."


def to_datetime(value: Any, *, aware: bool = True) -> datetime:
    """A timestamp from SQLite text (naive means UTC), epoch seconds, or a datetime."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConversionError(f"{value!r} is not a timestamp") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ConversionError(f"{value!r} is out of range for a timestamp") from None
    else:
        raise ConversionError(f"{value!r} is not a timestamp")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment if aware else moment.replace(tzinfo=None)


def to_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ConversionError(f"{value!r} is not a date") from None


TRUE_TEXT = frozenset({"1", "t", "true", "y", "yes", "on"})
FALSE_TEXT = frozenset({"0", "f", "false", "n", "no", "off"})


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in TRUE_TEXT:
            return True
        if lowered in FALSE_TEXT:
            return False
    raise ConversionError(f"{value!r} is not a boolean")


def to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConversionError(f"{value!r} is not an integer") from None


def to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConversionError(f"{value!r} is not a number") from None


def to_json_text(value: Any) -> str:
    """JSON as text, checked but otherwise untouched: numbers keep their exact digits."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError as error:
            raise ConversionError(f"invalid JSON ({error})") from None
        return value
    return json.dumps(value, ensure_ascii=False)


def to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ConversionError("bytes that are not UTF-8 text") from None
    return str(value)


def to_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ConversionError(f"{value!r} is not binary data")


def to_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(to_text(value))
    except ValueError:
        raise ConversionError(f"{value!r} is not a UUID") from None


PYTHON_CONVERTERS: dict[Kind, Callable[[Any], Any]] = {
    Kind.TEXT: to_text,
    Kind.INTEGER: to_int,
    Kind.BOOLEAN: to_bool,
    Kind.FLOAT: to_float,
    Kind.TIMESTAMPTZ: to_datetime,
    Kind.TIMESTAMP: functools.partial(to_datetime, aware=False),
    Kind.DATE: to_date,
    Kind.JSON: to_json_text,
    Kind.BYTES: to_bytes,
    Kind.UUID: to_uuid,
}


def python_converter(kind: Kind) -> Callable[[Any], Any]:
    """Stored value → the Python value for `writable_table` (None stays None)."""
    convert = PYTHON_CONVERTERS[kind]
    return lambda value: None if value is None else convert(value)


def copy_converter(kind: Kind) -> Callable[[Any], Any] | None:
    """Stored value → what to hand COPY (text format); None when values pass unchanged.

    PostgreSQL parses text itself, so what it reads exactly as meant goes through untouched:
    SQLAlchemy-format timestamps (the session runs in UTC), 0/1 booleans, JSON text. Anything
    it would read differently (epoch numbers, words like 'now') is converted here first.
    """
    if kind in (Kind.TIMESTAMPTZ, Kind.TIMESTAMP):
        convert = PYTHON_CONVERTERS[kind]

        def timestamp(value: Any) -> Any:
            if value is None or (type(value) is str and _looks_canonical_timestamp(value)):
                return value
            return convert(value)

        return timestamp
    if kind is Kind.JSON:
        return lambda value: value if value is None or isinstance(value, str) else json.dumps(value)
    if kind is Kind.BOOLEAN:
        return lambda value: value if value is None or value in (0, 1) else to_bool(value)
    if kind is Kind.TEXT:
        return lambda value: value if value is None or type(value) is str else to_text(value)
    if kind is Kind.INTEGER:
        return lambda value: value if value is None or type(value) is int else to_int(value)
    return python_converter(kind)


def sqlite_clean_sql(kind: Kind, column: str) -> str | None:
    """SQLite condition: the value can go to COPY as it is (see `copy_converter`); None when
    every value can (SQLite's column affinity already made it text, integer or real, and
    PostgreSQL rejects what it cannot parse, so the row is set aside, not altered)."""
    conditions = {
        # One GLOB is much cheaper than typeof/length/substr on every row.
        Kind.TIMESTAMPTZ: f"{column} GLOB '[0-9][0-9][0-9][0-9]-??-?? ??:??:??.??????'",
        Kind.TIMESTAMP: f"{column} GLOB '[0-9][0-9][0-9][0-9]-??-?? ??:??:??.??????'",
        Kind.BOOLEAN: f"{column} IN (0, 1)",
        Kind.DATE: "0",
        Kind.BYTES: "0",
        Kind.UUID: "0",
    }
    condition = conditions.get(kind)
    return None if condition is None else f"({column} IS NULL OR {condition})"


# -- canonical text (verify) ---------------------------------------------------------------


def _canonical_timestamp(value: Any) -> str:
    if type(value) is str and _looks_canonical_timestamp(value):
        return value
    return to_datetime(value, aware=False).isoformat(sep=" ", timespec="microseconds")


def _canonical_naive_timestamp(value: Any) -> str:
    if type(value) is str and _looks_canonical_timestamp(value):
        return value
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.isoformat(sep=" ", timespec="microseconds")
    return _canonical_timestamp(value)


def _canonical_float(value: Any) -> str:
    return struct.pack(">d", to_float(value)).hex()


def _canonical_integer(value: Any) -> str:
    return str(value) if type(value) is int else str(to_int(value))


def _canonical_bool(value: Any) -> str:
    return "t" if to_bool(value) else "f"


def _canonical_uuid(value: Any) -> str:
    return str(to_uuid(value))


@functools.lru_cache(maxsize=65536)
def _canonical_json_text(text: str) -> str:
    parsed = json.loads(text, parse_float=Decimal, object_pairs_hook=dict)
    return canonical_json(parsed)


def _canonical_json(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        return _canonical_json_text(value)
    return canonical_json(value)


def canonical_json(value: Any) -> str:
    """JSON as PostgreSQL prints jsonb: keys by length then bytes, numbers as numeric."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda item: (len(item[0].encode()), item[0].encode()))
        inner = ", ".join(f"{_json_string(key)}: {canonical_json(val)}" for key, val in items)
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ", ".join(canonical_json(item) for item in value) + "]"
    if isinstance(value, str):
        return _json_string(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    number = value if isinstance(value, Decimal) else Decimal(repr(value))
    if number == 0:
        number = abs(number)  # numeric has no negative zero
    return format(number, "f")


def _json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


CANONICAL: dict[Kind, Callable[[Any], str]] = {
    Kind.TEXT: to_text,
    Kind.INTEGER: _canonical_integer,
    Kind.BOOLEAN: _canonical_bool,
    Kind.FLOAT: _canonical_float,
    Kind.TIMESTAMPTZ: _canonical_timestamp,
    Kind.TIMESTAMP: _canonical_naive_timestamp,
    Kind.DATE: lambda value: to_date(value).isoformat(),
    Kind.JSON: _canonical_json,
    Kind.BYTES: lambda value: to_bytes(value).hex(),
    Kind.UUID: _canonical_uuid,
}


def canonical(kind: Kind) -> Callable[[Any], str | None]:
    """Stored value → canonical text; a value that is not of the kind gets a text of its own,
    so it compares different from every valid value instead of stopping the comparison."""
    render = CANONICAL[kind]

    def canonical_value(value: Any) -> str | None:
        if value is None:
            return None
        try:
            return render(value)
        except (ConversionError, ValueError, TypeError):
            return f"\x00invalid:{value!r}"

    return canonical_value


def pg_canonical_sql(kind: Kind, column: str) -> str:
    """The SQL that renders `column` (already quoted) as its canonical text on PostgreSQL."""
    return {
        Kind.TEXT: f"{column}::text",
        Kind.INTEGER: f"{column}::text",
        Kind.BOOLEAN: f"CASE {column} WHEN true THEN 't' WHEN false THEN 'f' END",
        Kind.FLOAT: f"encode(float8send({column}::float8), 'hex')",
        Kind.TIMESTAMPTZ: f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')",
        Kind.TIMESTAMP: f"to_char({column}, 'YYYY-MM-DD HH24:MI:SS.US')",
        Kind.DATE: f"to_char({column}, 'YYYY-MM-DD')",
        Kind.JSON: f"{column}::jsonb::text",
        Kind.BYTES: f"encode({column}, 'hex')",
        Kind.UUID: f"{column}::text",
    }[kind]
