"""Reading a source table in chunks: flat memory, a resumable position, read ahead.

PostgreSQL is read in primary-key order (keyset pagination on the key index). SQLite is read
in rowid order, the order of the table's own b-tree: SQLite keeps a text primary key in a
separate index, and following it visits the table's pages at random (twice the read time on
a million random-UUID tasks). A position remembers the rowid and the key of the last row, so
a resume can tell when the file was rewritten (VACUUM renumbers rowids) and refuse.

SQLite rows also come with a flag computed by SQLite itself: whether a value is not already
in the form PostgreSQL reads exactly as meant, so Python only converts the rows that need it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from weavenn_cli.runtime.errors import UsageError
from weavenn_cli.runtime.migration.access import (
    compile_sql,
    fetch_all,
    is_postgres,
    quote,
    quoted_columns,
    raw_connection,
    raw_table,
)
from weavenn_cli.runtime.migration.tables import TableSpec
from weavenn_cli.runtime.migration.values import sqlite_clean_sql

Row = tuple[Any, ...]


@dataclass
class Chunk:
    rows: list[Row]
    position: Any  # JSON: where the next chunk starts
    needs_conversion: list[int] | None = None  # rows to convert; None: all of them


def read_chunks(engine: sa.Engine, spec: TableSpec, after: Any, batch_size: int) -> Iterator[Chunk]:
    """The table `batch_size` rows at a time, from just after `after` (None: the start)."""
    if is_postgres(engine):
        return _by_key(engine, spec, after, batch_size)
    return _by_rowid(engine, spec, after, batch_size)


def _by_key(engine: sa.Engine, spec: TableSpec, after: Any, batch_size: int) -> Iterator[Chunk]:
    table = raw_table(spec)
    keys = [table.c[name] for name in spec.key_names]
    with raw_connection(engine) as connection:
        while True:
            query = sa.select(*table.c).order_by(*keys).limit(batch_size)
            if after is not None:
                query = query.where(_after(keys, tuple(after)))
            rows = fetch_all(connection, *compile_sql(engine, query))
            if not rows:
                return
            after = list(spec.key_of(rows[-1]))
            yield Chunk(rows, after)


def _after(keys: list[sa.ColumnClause[Any]], values: Row) -> sa.ColumnElement[bool]:
    if len(keys) == 1:
        single: sa.ColumnElement[bool] = keys[0] > values[0]
        return single
    comparison: sa.ColumnElement[bool] = sa.tuple_(*keys) > sa.tuple_(*values)
    return comparison


def _by_rowid(engine: sa.Engine, spec: TableSpec, after: Any, batch_size: int) -> Iterator[Chunk]:
    table = quote(engine, spec.name)
    checks = [
        sqlite_clean_sql(kind, quote(engine, name))
        for name, kind in zip(spec.column_names, spec.kinds, strict=True)
    ]
    clean = " AND ".join(check for check in checks if check) or "1"
    sql = (
        f"SELECT rowid, {quoted_columns(engine, spec.column_names)}, NOT ({clean}) "
        f"FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?"
    )
    with raw_connection(engine) as connection:
        last = -(2**63)
        if after is not None:
            _check_position(connection, engine, spec, after)
            last = int(after["rowid"])
        while True:
            raw = fetch_all(connection, sql, (last, batch_size))
            if not raw:
                return
            rows = [row[1:-1] for row in raw]
            dirty = [i for i, row in enumerate(raw) if row[-1]]
            last = raw[-1][0]
            yield Chunk(rows, {"rowid": last, "key": list(spec.key_of(rows[-1]))}, dirty)


def _check_position(connection: Any, engine: sa.Engine, spec: TableSpec, after: Any) -> None:
    if not isinstance(after, dict) or "rowid" not in after:
        raise UsageError(f"the checkpoint of {spec.name} is not a SQLite position: use --restart")
    keys = quoted_columns(engine, spec.key_names)
    found = fetch_all(
        connection,
        f"SELECT {keys} FROM {quote(engine, spec.name)} WHERE rowid = ?",
        (after["rowid"],),
    )
    if not found or list(found[0]) != list(after["key"]):
        raise UsageError(
            f"the source's {spec.name} table was rewritten since the checkpoint (VACUUM or a "
            "restore renumbers rows): pass --restart to copy it again"
        )


_END = object()


def read_ahead(chunks: Iterator[Chunk], depth: int = 2) -> Iterator[Chunk]:
    """Read the next chunks on a thread while the caller writes the current one.

    At most `depth` chunks wait, so memory stays flat; the source connection lives and dies
    on the reading thread.
    """
    waiting: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        waiting.put(chunk, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        except BaseException as error:
            waiting.put(error)
        finally:
            chunks.close()  # type: ignore[attr-defined]
            waiting.put(_END)

    reader = threading.Thread(target=produce, name="backfill-reader", daemon=True)
    reader.start()
    try:
        while (item := waiting.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():
            try:
                waiting.get(timeout=0.2)
            except queue.Empty:
                continue
        reader.join()
