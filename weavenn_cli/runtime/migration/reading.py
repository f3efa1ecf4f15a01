"""Reading a source table in chunks: flat memory, a resumable position, read ahead.

PostgreSQL is read in primary-key order (keyset pagination on the key index). SQLite is read
in rowid order, the order of the table's own b-tree: SQLite keeps a text primary key in a
separate index, and following it visits the table's pages at random (twice the read time on
a million random-UUID tasks). A position remembers the rowid and the key of the last row, so
a resume can tell when the file was rewritten (VACUUM renumbers rowids) and refuse.

SQLite itself tells which rows hold a value not already in the form PostgreSQL reads exactly
as meant (a query of its own per chunk, usually answering nothing), so Python only converts
the rows that need it and hands the others to COPY as the driver made them.
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
    reads = _RowidReads(engine, spec)
    with raw_connection(engine) as connection:
        last = -(2**63)
        if after is not None:
            _check_position(connection, engine, spec, after)
            last = int(after["rowid"])
        while True:
            # One snapshot per chunk: rows the application appends meanwhile are not counted
            # as read before they are (the bound and the rows come from the same state).
            connection.execute("BEGIN")
            try:
                chunk = reads.chunk(connection, last, batch_size)
            finally:
                connection.execute("COMMIT")
            if chunk is None:
                return
            last = chunk.position["rowid"]
            yield chunk


class _RowidReads:
    """The queries of a chunk read in rowid order.

    The rows come back exactly as the driver makes them (tuples handed on to COPY as they
    are): the chunk's last rowid is found by a query of its own, and the rows that need
    converting by another one that SQLite answers alone (without holding Python's lock,
    while the writer formats the previous chunk), returning nothing in the usual case.
    """

    def __init__(self, engine: sa.Engine, spec: TableSpec) -> None:
        self.spec = spec
        table = quote(engine, spec.name)
        checks = [
            sqlite_clean_sql(kind, quote(engine, name))
            for name, kind in zip(spec.column_names, spec.kinds, strict=True)
        ]
        clean = " AND ".join(check for check in checks if check)
        self.bound_sql = (
            f"SELECT rowid FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT 1 OFFSET ?"
        )
        self.last_sql = f"SELECT max(rowid) FROM {table} WHERE rowid > ?"
        self.rows_sql = (
            f"SELECT {quoted_columns(engine, spec.column_names)} FROM {table} "
            "WHERE rowid > ? AND rowid <= ? ORDER BY rowid"
        )
        self.dirty_sql = (
            f"SELECT {quoted_columns(engine, spec.key_names)} FROM {table} "
            f"WHERE rowid > ? AND rowid <= ? AND NOT ({clean})"
            if clean
            else None
        )

    def chunk(self, connection: Any, last: int, batch_size: int) -> Chunk | None:
        bound = fetch_all(connection, self.bound_sql, (last, batch_size - 1))
        upper = bound[0][0] if bound else fetch_all(connection, self.last_sql, (last,))[0][0]
        if upper is None:
            return None
        rows = fetch_all(connection, self.rows_sql, (last, upper))
        dirty = self._dirty_positions(connection, rows, last, upper)
        return Chunk(rows, {"rowid": upper, "key": list(self.spec.key_of(rows[-1]))}, dirty)

    def _dirty_positions(
        self, connection: Any, rows: list[Row], last: int, upper: int
    ) -> list[int]:
        if self.dirty_sql is None:
            return []
        keys = set(fetch_all(connection, self.dirty_sql, (last, upper)))
        if not keys:
            return []
        return [i for i, row in enumerate(rows) if self.spec.key_of(row) in keys]


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
