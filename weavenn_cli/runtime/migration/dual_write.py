"""Dual-write: mirror every task write to the secondary database during the migration.

The primary (`DATABASE_URL`) is the source of truth. After the primary transaction commits,
the write is applied to the secondary (`SECONDARY_DATABASE_URL`). A failure there never fails
the caller: it is logged and recorded in `dual_write_failures` on the primary (table, key,
operation, error), where `weavenn migrate dual-write replay` or `weavenn migrate verify
--repair` picks it up. The switch is the `dual_write_enabled` runtime flag; while the table
has no value, `DUAL_WRITE_ENABLED` decides.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Literal, cast

import sqlalchemy as sa

from weavenn_cli.runtime.db.engine import describe_url, make_engine
from weavenn_cli.runtime.db.models import DualWriteFailure
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.errors import DatabaseError, UsageError
from weavenn_cli.runtime.flags import MISSING, CachedFlag, read_flag, write_flag
from weavenn_cli.runtime.migration.access import (
    first_line,
    missing_sqlite_file,
    open_engine,
    upsert_statement,
)
from weavenn_cli.runtime.migration.tables import application_tables

log = logging.getLogger(__name__)

FLAG = "dual_write_enabled"
FLAG_TTL_SECONDS = 1.0
SECONDARY_CONNECT_TIMEOUT = 3
FAILURES = cast(sa.Table, DualWriteFailure.__table__)
Operation = Literal["insert", "update", "delete"]


@dataclass(frozen=True)
class DualWriteStatus:
    enabled: bool
    pending_failures: int
    from_database: bool  # False: the flag was never set, DUAL_WRITE_ENABLED decides

    def as_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "pending_failures": self.pending_failures}


def set_dual_write(primary_url: str, enabled: bool, secondary_url: str | None = None) -> list[str]:
    """Set the flag in the primary and, when given and present, in the secondary.

    During the migration both databases have writers: the task service on PostgreSQL
    mirrors to SQLite, and the monolith still serving the legacy side on SQLite mirrors to
    PostgreSQL. Each reads the flag from its own database, so one switch sets both. A
    secondary SQLite file that does not exist has no process on it and is left alone.
    Returns the URLs set, primary first.
    """
    urls = [primary_url]
    if secondary_url is not None and not missing_sqlite_file(secondary_url):
        urls.append(secondary_url)
    # Every write happens before any commit: a database that refuses leaves both unchanged.
    with ExitStack() as stack:
        for url in urls:
            engine = stack.enter_context(open_engine(url))
            _write_flag(stack.enter_context(engine.begin()), enabled)
    return urls


def _write_flag(connection: sa.Connection, enabled: bool) -> None:
    try:
        write_flag(connection, FLAG, enabled)
    except sa.exc.DBAPIError as error:
        where = describe_url(connection.engine.url)
        raise DatabaseError(
            f"could not set the dual-write flag in {where}: {first_line(error)} "
            f"(is its schema at head? weavenn migrate db --database-url {where})"
        ) from None


def dual_write_status(primary_url: str, default: bool) -> DualWriteStatus:
    with open_engine(primary_url) as engine, engine.connect() as connection:
        stored = read_flag(connection, FLAG)
        pending = _count_pending(connection)
    enabled = default if stored is MISSING else bool(stored)
    return DualWriteStatus(enabled, pending, stored is not MISSING)


def pending_failures(url: str) -> int:
    """Mirror writes that failed from the processes whose primary is `url`, not repaired yet."""
    with open_engine(url) as engine:
        if not sa.inspect(engine).has_table(FAILURES.name):
            return 0  # a database before the migration's tables: nothing recorded there
        with engine.connect() as connection:
            return _count_pending(connection)


def _count_pending(connection: sa.Connection) -> int:
    count = connection.execute(
        sa.select(sa.func.count()).select_from(FAILURES).where(FAILURES.c.resolved_at.is_(None))
    ).scalar_one()
    return int(count)


class DualWriter:
    """Mirrors writes of the primary to the secondary while the flag is on."""

    def __init__(
        self,
        primary: sa.Engine,
        secondary_url: str | None,
        *,
        default_enabled: bool,
        ttl: float = FLAG_TTL_SECONDS,
    ) -> None:
        self.primary = primary
        self.secondary_url = secondary_url
        self.flag = CachedFlag(primary, FLAG, default_enabled, ttl)
        self._secondary: sa.Engine | None = None
        self._lock = threading.Lock()  # the API calls it from many threads

    @property
    def enabled(self) -> bool:
        return bool(self.flag.get()) and self.secondary_url is not None

    @property
    def secondary(self) -> sa.Engine:
        with self._lock:
            return self._secondary_engine()

    def _secondary_engine(self) -> sa.Engine:
        if self._secondary is None:
            if self.secondary_url is None:
                raise UsageError("SECONDARY_DATABASE_URL is not set: dual-write needs it")
            connect_args = (
                {"connect_timeout": SECONDARY_CONNECT_TIMEOUT}
                if self.secondary_url.startswith("postgres")
                else {}
            )
            self._secondary = make_engine(
                self.secondary_url, pool_pre_ping=True, connect_args=connect_args
            )
        return self._secondary

    def mirror(self, table: sa.Table, operation: Operation, row: Mapping[str, Any]) -> bool:
        """Apply a committed primary write to the secondary. Never raises.

        `row` holds the row as written (for a delete, its key columns are enough). Returns
        False when the secondary write failed (it was recorded for repair).
        """
        if not self.enabled:
            return True
        key = [row.get(column.name) for column in table.primary_key.columns]
        try:
            self._apply(table, operation, row)
        except Exception as error:  # whatever happens there, the caller's write stands
            reason = first_line(error)
            log.error("dual-write of %s %s %s failed: %s", table.name, operation, key, reason)
            self._record_failure(table.name, key, operation, reason)
            return False
        return True

    def _apply(self, table: sa.Table, operation: Operation, row: Mapping[str, Any]) -> None:
        with self.secondary.begin() as connection:
            if operation == "delete":
                connection.execute(sa.delete(table).where(*_key_match(table, row)))
            else:
                connection.execute(upsert_statement(self.secondary, table, "newer"), dict(row))

    def _record_failure(self, table: str, key: list[Any], operation: str, error: str) -> None:
        try:
            with self.primary.begin() as connection:
                connection.execute(
                    sa.insert(FAILURES).values(
                        table_name=table,
                        key=_json_key(key),
                        operation=operation,
                        error=error,
                        created_at=utcnow(),
                    )
                )
        except Exception as failure:
            log.error("could not record the dual-write failure of %s %s: %s", table, key, failure)

    def replay(self) -> ReplayResult:
        """Re-apply every pending failure from the primary's current rows, oldest first."""
        with self.primary.connect() as connection:
            pending = connection.execute(
                sa.select(FAILURES.c.id, FAILURES.c.table_name, FAILURES.c.key)
                .where(FAILURES.c.resolved_at.is_(None))
                .order_by(FAILURES.c.id)
            ).all()
        by_row: dict[tuple[str, str], tuple[str, list[Any], list[int]]] = {}
        for failure_id, table_name, key in pending:
            entry = by_row.setdefault((table_name, repr(key)), (table_name, key, []))
            entry[2].append(failure_id)
        tables = {table.name: table for table in application_tables()}
        result = ReplayResult()
        for table_name, key, ids in by_row.values():
            try:
                self._replay_one(tables[table_name], key)
            except Exception as error:
                result.failed += 1
                result.error = first_line(error)
                break
            self._resolve(ids)
            result.replayed += 1
        return result

    def _replay_one(self, table: sa.Table, key: list[Any]) -> None:
        match = dict(zip([c.name for c in table.primary_key.columns], key, strict=True))
        with self.primary.connect() as connection:
            row = connection.execute(sa.select(table).where(*_key_match(table, match))).first()
        with self.secondary.begin() as connection:
            if row is None:
                connection.execute(sa.delete(table).where(*_key_match(table, match)))
            else:
                upsert = upsert_statement(self.secondary, table, "replace")
                connection.execute(upsert, dict(row._mapping))

    def _resolve(self, ids: list[int]) -> None:
        with self.primary.begin() as connection:
            connection.execute(
                sa.update(FAILURES).where(FAILURES.c.id.in_(ids)).values(resolved_at=utcnow())
            )

    def close(self) -> None:
        if self._secondary is not None:
            self._secondary.dispose()


@dataclass
class ReplayResult:
    replayed: int = 0
    failed: int = 0
    error: str | None = None


def replay_both_ways(primary_url: str, secondary_url: str) -> ReplayResult:
    """Replay the primary's failures into the secondary, then the secondary's into the
    primary (those of the monolith mirroring from the old database), when it exists."""
    total = ReplayResult()
    directions = [(primary_url, secondary_url)]
    if not missing_sqlite_file(secondary_url):
        directions.append((secondary_url, primary_url))
    for source, target in directions:
        engine = make_engine(source)
        writer = DualWriter(engine, target, default_enabled=True)
        try:
            result = writer.replay() if pending_failures(source) else ReplayResult()
        finally:
            writer.close()
            engine.dispose()
        total.replayed += result.replayed
        if result.failed:
            total.failed += result.failed
            total.error = f"{describe_url(target)}: {result.error}"
            break
    return total


def _key_match(table: sa.Table, row: Mapping[str, Any]) -> list[sa.ColumnElement[bool]]:
    return [column == row[column.name] for column in table.primary_key.columns]


def _json_key(key: list[Any]) -> list[Any]:
    return [
        value if isinstance(value, (int, str)) or value is None else str(value) for value in key
    ]
