"""`weavenn migrate backfill`: copy the application tables from one database to the other.

Reads go in key order, one chunk at a time (keyset pagination, so memory stays flat and a
chunk costs the same at the end of a table as at its start). Each chunk is written, with the
table's checkpoint, in one target transaction: after a crash the next run continues after the
last committed chunk. Into PostgreSQL, a chunk goes with COPY straight into the table while
no row of it exists there yet; once one does (a second run, rows written by the application
meanwhile), chunks go through a staging table and a merge that keeps the newer row
(`updated_at`). A row that cannot be converted or that the database refuses is set aside in
`backfill_rejects` with the reason, and the run goes on (or stops, with `--on-error stop`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

import sqlalchemy as sa
from sqlalchemy import exc

from weavenn_cli.runtime.db.engine import describe_url
from weavenn_cli.runtime.db.models import BackfillCheckpoint, BackfillReject
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.errors import UsageError, WeavennError
from weavenn_cli.runtime.migration.access import (
    ConflictRule,
    compile_sql,
    fetch_all,
    first_line,
    is_postgres,
    open_engine,
    quote,
    quoted_columns,
    raw_connection,
    raw_table,
    upsert_statement,
)
from weavenn_cli.runtime.migration.reading import Chunk, read_ahead, read_chunks
from weavenn_cli.runtime.migration.tables import (
    TableSpec,
    require_at_head,
    require_distinct,
    require_tables,
)
from weavenn_cli.runtime.migration.values import (
    ConversionError,
    Kind,
    copy_converter,
    python_converter,
)

OnError = Literal["stop", "skip"]
Row = tuple[Any, ...]
DEFAULT_BATCH_SIZE = 10_000
REJECT_TABLE = BackfillReject.__tablename__
CHECKPOINTS = cast(sa.Table, BackfillCheckpoint.__table__)
REJECTS = cast(sa.Table, BackfillReject.__table__)


class BackfillProgress(Protocol):
    def table_started(self, table: str, total: int, done: int) -> None: ...

    def rows_done(self, table: str, rows: int) -> None: ...

    def table_finished(self, table: str) -> None: ...


class BackfillStopped(WeavennError):
    """A row was rejected and the run was asked to stop (`--on-error stop`)."""


@dataclass
class TableOutcome:
    table: str
    read: int = 0
    written: int = 0
    skipped: int = 0
    rejected: int = 0
    seconds: float = 0.0
    resumed_after: int = 0


@dataclass
class BackfillReport:
    source: str
    target: str
    tables: list[TableOutcome] = field(default_factory=list)
    reject_table: str = REJECT_TABLE

    @property
    def rejected(self) -> int:
        return sum(table.rejected for table in self.tables)


@dataclass(frozen=True)
class Reject:
    key: Row
    row: Row
    reason: str


@dataclass
class PlanEntry:
    table: str
    source_rows: int
    target_rows: int
    resume_after: int
    conversions: list[str]
    on_conflict: str


def _check(source_url: str, target_url: str) -> None:
    require_distinct(source_url, target_url)
    require_at_head(target_url, "target")


def plan(source_url: str, target_url: str, specs: Sequence[TableSpec]) -> list[PlanEntry]:
    """What a backfill would do, without writing anything."""
    _check(source_url, target_url)
    with open_engine(source_url) as source, open_engine(target_url) as target:
        require_tables(source, specs, "source")
        with target.connect() as connection:
            recorded = _checkpoints(connection)
        entries = []
        for spec in specs:
            checkpoint = recorded.get(spec.name)
            resuming = checkpoint is not None and checkpoint["finished_at"] is None
            entries.append(
                PlanEntry(
                    table=spec.name,
                    source_rows=_count(source, spec),
                    target_rows=_count(target, spec),
                    resume_after=int(checkpoint["rows_read"]) if checkpoint and resuming else 0,
                    conversions=describe_conversions(spec, source, target),
                    on_conflict=_conflict_rule(spec),
                )
            )
        return entries


def describe_conversions(spec: TableSpec, source: sa.Engine, target: sa.Engine) -> list[str]:
    if is_postgres(source) == is_postgres(target):
        return []
    to_pg = is_postgres(target)
    notes = {
        Kind.TIMESTAMPTZ: ("text or epoch → timestamptz (UTC)", "timestamptz → UTC text"),
        Kind.TIMESTAMP: ("text or epoch → timestamp", "timestamp → text"),
        Kind.DATE: ("text → date", "date → text"),
        Kind.BOOLEAN: ("0/1 → boolean", "boolean → 0/1"),
        Kind.JSON: ("JSON text → jsonb", "jsonb → JSON text"),
        Kind.UUID: ("text → uuid", "uuid → text"),
    }
    grouped: dict[str, list[str]] = {}
    for column, kind in zip(spec.columns, spec.kinds, strict=True):
        if kind in notes:
            grouped.setdefault(notes[kind][0 if to_pg else 1], []).append(column.name)
    return [f"{', '.join(columns)}: {note}" for note, columns in grouped.items()]


def _conflict_rule(spec: TableSpec) -> str:
    if spec.has_updated_at:
        return "existing row replaced only by a newer updated_at"
    return "existing row kept"


def backfill(
    source_url: str,
    target_url: str,
    specs: Sequence[TableSpec],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    restart: bool = False,
    on_error: OnError = "skip",
    progress: BackfillProgress | None = None,
) -> BackfillReport:
    """Copy `specs` from source to target; resumable, idempotent, newer rows kept."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {batch_size}")
    _check(source_url, target_url)
    report = BackfillReport(describe_url(source_url), describe_url(target_url))
    with open_engine(source_url) as source, open_engine(target_url) as target:
        require_tables(source, specs, "source")
        for spec in specs:
            job = _TableJob(source, target, spec, report.source, on_error)
            report.tables.append(job.run(batch_size, restart, progress))
    return report


class _TableJob:
    """The backfill of one table: read chunks, write each with its checkpoint."""

    def __init__(
        self, source: sa.Engine, target: sa.Engine, spec: TableSpec, origin: str, on_error: OnError
    ) -> None:
        self.source = source
        self.target = target
        self.spec = spec
        self.origin = origin
        self.on_error = on_error
        self.outcome = TableOutcome(spec.name)

    def run(
        self, batch_size: int, restart: bool, progress: BackfillProgress | None
    ) -> TableOutcome:
        started = time.perf_counter()
        with self.target.connect() as connection:
            if is_postgres(self.target):
                connection.exec_driver_sql("SET TIME ZONE 'UTC'")
                # A chunk and its checkpoint commit together: should the server lose the
                # last commits in a crash, it loses both, and the next run copies them again.
                connection.exec_driver_sql("SET synchronous_commit TO off")
                connection.commit()
            writer = _writer_for(connection, self.spec)
            checkpoint = self._start(connection, restart)
            total = _count(self.source, self.spec)
            done = int(checkpoint["rows_read"])
            self.outcome.resumed_after = done
            if progress:
                progress.table_started(self.spec.name, total, done)
            chunks = read_chunks(self.source, self.spec, checkpoint["last_key"], batch_size)
            for chunk in read_ahead(chunks):
                self._write(connection, writer, chunk, total)
                if progress:
                    progress.rows_done(self.spec.name, len(chunk.rows))
            with connection.begin():
                _advance_sequences(connection, self.spec)
                _update_checkpoint(connection, self.spec.name, finished_at=utcnow())
        if progress:
            progress.table_finished(self.spec.name)
        self.outcome.seconds = time.perf_counter() - started
        return self.outcome

    def _start(self, connection: sa.Connection, restart: bool) -> dict[str, Any]:
        """The checkpoint to continue from: a fresh pass when asked or when the last ended."""
        with connection.begin():
            checkpoint = _checkpoints(connection, self.spec.name).get(self.spec.name)
            if checkpoint is not None and checkpoint["finished_at"] is None and not restart:
                if checkpoint["source"] != self.origin:
                    raise UsageError(
                        f"the unfinished backfill of {self.spec.name} was reading from "
                        f"{checkpoint['source']}, not {self.origin}: pass --restart to start over"
                    )
                return checkpoint
            connection.execute(sa.delete(REJECTS).where(REJECTS.c.table_name == self.spec.name))
            fresh = {
                "table_name": self.spec.name,
                "source": self.origin,
                "last_key": None,
                "rows_read": 0,
                "rows_written": 0,
                "rows_skipped": 0,
                "rows_rejected": 0,
                "source_rows": None,
                "started_at": utcnow(),
                "updated_at": utcnow(),
                "finished_at": None,
            }
            connection.execute(upsert_statement(self.target, CHECKPOINTS, "replace"), fresh)
            return fresh

    def _write(self, connection: sa.Connection, writer: _Writer, chunk: Chunk, total: int) -> None:
        only = None if writer.converts_every_row else chunk.needs_conversion
        rows, rejects = _convert(self.spec, chunk.rows, writer.converters, only)
        for strategy in writer.strategies():
            try:
                with connection.begin():
                    written, refused = strategy(rows)
                    rejects = rejects + refused
                    self._stop_on_reject(rejects)
                    self._record(connection, chunk, written, rejects, total)
                return
            except _Retry:
                continue

    def _stop_on_reject(self, rejects: list[Reject]) -> None:
        if rejects and self.on_error == "stop":
            first = rejects[0]
            raise BackfillStopped(
                f"row {_key_text(first.key)} of {self.spec.name} rejected: {first.reason}; "
                "fix it in the source, or run with --on-error skip to set such rows aside"
            )

    def _record(
        self,
        connection: sa.Connection,
        chunk: Chunk,
        written: int,
        rejects: list[Reject],
        total: int,
    ) -> None:
        if rejects:
            connection.execute(
                sa.insert(REJECTS),
                [
                    {
                        "table_name": self.spec.name,
                        "key": _json_safe(list(reject.key)),
                        "row": _json_safe(
                            dict(zip(self.spec.column_names, reject.row, strict=True))
                        ),
                        "reason": reject.reason,
                        "created_at": utcnow(),
                    }
                    for reject in rejects
                ],
            )
        read = len(chunk.rows)
        skipped = read - written - len(rejects)
        _update_checkpoint(
            connection,
            self.spec.name,
            last_key=_json_safe(chunk.position),
            rows_read=CHECKPOINTS.c.rows_read + read,
            rows_written=CHECKPOINTS.c.rows_written + written,
            rows_skipped=CHECKPOINTS.c.rows_skipped + skipped,
            rows_rejected=CHECKPOINTS.c.rows_rejected + len(rejects),
            source_rows=total,
        )
        self.outcome.read += read
        self.outcome.written += written
        self.outcome.skipped += skipped
        self.outcome.rejected += len(rejects)


class _Retry(Exception):
    """This way of writing the chunk failed and was rolled back: try the next one."""


Strategy = Callable[[list[Row]], tuple[int, list[Reject]]]


class _Writer(Protocol):
    converters: list[Callable[[Any], Any] | None]
    converts_every_row: bool

    def strategies(self) -> Iterator[Strategy]: ...


def _writer_for(connection: sa.Connection, spec: TableSpec) -> _Writer:
    if is_postgres(connection.engine):
        return _CopyWriter(connection, spec)
    return _GenericWriter(connection, spec)


class _GenericWriter:
    """Any target: a multi-row upsert, or row by row when the database refuses one."""

    converts_every_row = True

    def __init__(self, connection: sa.Connection, spec: TableSpec) -> None:
        self.connection = connection
        self.spec = spec
        self.converters: list[Callable[[Any], Any] | None] = [
            python_converter(kind) for kind in spec.kinds
        ]
        rule: ConflictRule = "newer" if spec.has_updated_at else "keep"
        self.statement = upsert_statement(connection.engine, spec.writable_table, rule)

    def strategies(self) -> Iterator[Strategy]:
        yield self.all_at_once

    def _params(self, rows: list[Row]) -> list[dict[str, Any]]:
        names = self.spec.column_names
        return [dict(zip(names, row, strict=True)) for row in rows]

    def all_at_once(self, rows: list[Row]) -> tuple[int, list[Reject]]:
        if not rows:
            return 0, []
        before = self._changes()
        try:
            with self.connection.begin_nested():
                result = self.connection.execute(self.statement, self._params(rows))
        except exc.DBAPIError:
            return self.row_by_row(rows)
        after = self._changes()
        written = after - before if after is not None and before is not None else result.rowcount
        return written, []

    def row_by_row(self, rows: list[Row]) -> tuple[int, list[Reject]]:
        written, rejects = 0, []
        for row, params in zip(rows, self._params(rows), strict=True):
            try:
                with self.connection.begin_nested():
                    written += self.connection.execute(self.statement, params).rowcount
            except exc.DBAPIError as error:
                rejects.append(Reject(self.spec.key_of(row), row, first_line(error)))
        return written, rejects

    def _changes(self) -> int | None:
        # SQLite's executemany rowcount is not reliable through the upsert; its change
        # counter is.
        if is_postgres(self.connection.engine):
            return None
        return int(self.connection.exec_driver_sql("SELECT total_changes()").scalar_one())


class _CopyWriter:
    """PostgreSQL: COPY into the table, or into a staging table and a merge."""

    converts_every_row = False  # only rows the reader flagged: PostgreSQL parses the rest

    def __init__(self, connection: sa.Connection, spec: TableSpec) -> None:
        self.connection = connection
        self.spec = spec
        self.converters = [copy_converter(kind) for kind in spec.kinds]
        self.generic = _GenericWriter(connection, spec)
        self.direct = True
        engine = connection.engine
        self.table = quote(engine, spec.name)
        self.columns = quoted_columns(engine, spec.column_names)
        self.stage = quote(engine, f"weavenn_stage_{spec.name}")
        self.merge_sql = self._merge_sql(engine)

    def _merge_sql(self, engine: sa.Engine) -> str:
        keys = quoted_columns(engine, self.spec.key_names)
        others = [name for name in self.spec.column_names if name not in self.spec.key_names]
        conflict = f"ON CONFLICT ({keys}) DO NOTHING"
        if others and self.spec.has_updated_at:
            assignments = ", ".join(
                f"{quote(engine, name)} = EXCLUDED.{quote(engine, name)}" for name in others
            )
            updated_at = quote(engine, "updated_at")
            conflict = (
                f"ON CONFLICT ({keys}) DO UPDATE SET {assignments} "
                f"WHERE {self.table}.{updated_at} < EXCLUDED.{updated_at}"
            )
        return (
            f"INSERT INTO {self.table} ({self.columns}) "
            f"SELECT {self.columns} FROM {self.stage} {conflict}"
        )

    def strategies(self) -> Iterator[Strategy]:
        if self.direct:
            yield self.copy_into_table
        yield self.copy_and_merge
        yield self.row_by_row

    def _copy(self, table: str, rows: list[Row]) -> None:
        driver = self.connection.connection.driver_connection
        sql = f"COPY {table} ({self.columns}) FROM STDIN"
        with driver.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(row)

    def copy_into_table(self, rows: list[Row]) -> tuple[int, list[Reject]]:
        import psycopg

        try:
            self._copy(self.table, rows)
        except psycopg.errors.UniqueViolation:
            # Some of these rows are already there: from now on, merge.
            self.direct = False
            raise _Retry() from None
        except psycopg.Error:
            raise _Retry() from None
        return len(rows), []

    def copy_and_merge(self, rows: list[Row]) -> tuple[int, list[Reject]]:
        import psycopg

        try:
            self.connection.exec_driver_sql(
                f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} "
                f"(LIKE {self.table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            self._copy(self.stage, rows)
            return self.connection.exec_driver_sql(self.merge_sql).rowcount, []
        except (psycopg.Error, exc.DBAPIError):
            raise _Retry() from None

    def row_by_row(self, rows: list[Row]) -> tuple[int, list[Reject]]:
        typed, rejects = _convert(self.spec, rows, self.generic.converters)
        written, refused = self.generic.row_by_row(typed)
        return written, rejects + refused


def _convert(
    spec: TableSpec,
    chunk: list[Row],
    converters: list[Callable[[Any], Any] | None],
    only: list[int] | None = None,
) -> tuple[list[Row], list[Reject]]:
    """Rows the target can take, and those that cannot be converted (with the reason).

    `only`: the positions of the rows that need converting; the others pass as they are.
    """
    active = [(i, convert) for i, convert in enumerate(converters) if convert is not None]
    if not active or only == []:
        return chunk, []
    selected = set(range(len(chunk)) if only is None else only)
    rows: list[Row] = []
    rejects: list[Reject] = []
    for position, row in enumerate(chunk):
        if position not in selected:
            rows.append(row)
            continue
        values = list(row)
        try:
            for i, convert in active:
                values[i] = convert(values[i])
        except ConversionError as error:
            column = spec.column_names[i]
            rejects.append(Reject(spec.key_of(row), row, f"{column}: {error}"))
            continue
        rows.append(tuple(values))
    return rows, rejects


def _count(engine: sa.Engine, spec: TableSpec) -> int:
    with raw_connection(engine) as connection:
        query = sa.select(sa.func.count()).select_from(raw_table(spec))
        return int(fetch_all(connection, *compile_sql(engine, query))[0][0])


def _checkpoints(
    connection: sa.Connection, table_name: str | None = None
) -> dict[str, dict[str, Any]]:
    query = sa.select(CHECKPOINTS)
    if table_name is not None:
        query = query.where(CHECKPOINTS.c.table_name == table_name)
    return {row["table_name"]: dict(row) for row in connection.execute(query).mappings()}


def checkpoints(url: str) -> dict[str, dict[str, Any]]:
    """Backfill checkpoints recorded in the database at `url`, by table."""
    with open_engine(url) as engine, engine.connect() as connection:
        return _checkpoints(connection)


def _advance_sequences(connection: sa.Connection, spec: TableSpec) -> None:
    """Rows came with their ids: move PostgreSQL's id sequences past them, or the next insert
    of the application would be given an id that is taken (SQLite needs nothing)."""
    if not is_postgres(connection.engine):
        return
    for column in spec.table.primary_key.columns:
        if not isinstance(column.type, sa.Integer):
            continue  # pg_get_serial_sequence() is NULL for a column without a sequence
        table, name = quote(connection.engine, spec.name), quote(connection.engine, column.name)
        connection.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence(:table, :column), max({name})) "
                f"FROM {table} HAVING max({name}) IS NOT NULL"
            ),
            {"table": table, "column": column.name},
        )


def _update_checkpoint(connection: sa.Connection, table_name: str, **values: Any) -> None:
    connection.execute(
        sa.update(CHECKPOINTS)
        .where(CHECKPOINTS.c.table_name == table_name)
        .values(updated_at=utcnow(), **values)
    )


def _json_safe(value: Any) -> Any:
    # jsonb cannot hold NUL characters: keep them visible as the text "\u0000".
    text = json.dumps(value, default=_json_default).replace("\\u0000", "\\\\u0000")
    return json.loads(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    return str(value)


def _key_text(key: Row) -> str:
    return str(key[0]) if len(key) == 1 else str(list(key))
