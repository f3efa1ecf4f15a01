"""Low-level access shared by backfill and verify: engines, raw cursors, quoted SQL.

Reads go through the driver's own cursor: no ORM row objects, and on SQLite no write lock
(the engine's BEGIN IMMEDIATE is for writers; a long read must not block the application).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy import exc, pool
from sqlalchemy.sql.compiler import SQLCompiler

from weavenn_cli.runtime.db.engine import (
    check_connection,
    describe_url,
    make_engine,
    parse_database_url,
)
from weavenn_cli.runtime.errors import DatabaseError
from weavenn_cli.runtime.migration.tables import TableSpec


@contextmanager
def open_engine(url: str) -> Iterator[sa.Engine]:
    """An engine for one command run; the database must answer (and a SQLite file exist)."""
    missing = missing_sqlite_file(url)
    if missing:
        raise DatabaseError(
            f"database file {missing} does not exist: check the URL ({describe_url(url)})"
        )
    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        check_connection(engine)
        yield engine
    finally:
        engine.dispose()


def missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite URL whose file does not exist (opening it would create it)."""
    parsed = parse_database_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or not database or database.startswith(":"):
        return None
    return None if Path(database).is_file() else database


def is_postgres(engine: sa.Engine) -> bool:
    return engine.dialect.name == "postgresql"


def quote(engine: sa.Engine, name: str) -> str:
    """An identifier from the schema, quoted for the engine's dialect."""
    return engine.dialect.identifier_preparer.quote(name)


def quoted_columns(engine: sa.Engine, names: Sequence[str]) -> str:
    return ", ".join(quote(engine, name) for name in names)


def raw_table(spec: TableSpec) -> sa.TableClause:
    """The table without column types: values come back as the driver stores them."""
    return sa.table(spec.name, *(sa.column(name) for name in spec.column_names))


def compile_sql(engine: sa.Engine, statement: sa.ClauseElement) -> tuple[str, Any]:
    """SQL text and parameters of a Core statement, for the driver's own cursor."""
    compiled = cast(SQLCompiler, statement.compile(dialect=engine.dialect))
    if compiled.positional:
        positions = compiled.positiontup or []
        return str(compiled), tuple(compiled.params[name] for name in positions)
    return str(compiled), compiled.params


@contextmanager
def raw_connection(engine: sa.Engine) -> Iterator[Any]:
    """The driver connection (sqlite3 or psycopg), in autocommit for plain reads."""
    proxy = engine.raw_connection()
    try:
        driver = proxy.driver_connection
        if is_postgres(engine):
            from psycopg.types.string import TextLoader

            driver.autocommit = True  # type: ignore[union-attr]
            driver.execute("SET TIME ZONE 'UTC'")  # type: ignore[union-attr]
            # JSON as the server prints it: parsing it into floats would change its digits.
            for name in ("json", "jsonb"):
                driver.adapters.register_loader(name, TextLoader)  # type: ignore[union-attr]
        yield driver
    finally:
        proxy.close()


def fetch_all(connection: Any, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    """The rows as tuples: both drivers make tuples by default, so they are not copied."""
    cursor = connection.cursor()
    try:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows
    finally:
        cursor.close()


def first_line(error: BaseException) -> str:
    """The useful line of a driver error (psycopg adds context lines after it)."""
    original = error.orig if isinstance(error, exc.DBAPIError) and error.orig else error
    text = str(original).strip()
    return text.splitlines()[0] if text else type(original).__name__


ConflictRule = Literal["newer", "replace", "keep"]


def upsert_statement(engine: sa.Engine, table: sa.Table, on_conflict: ConflictRule) -> sa.Insert:
    """INSERT … ON CONFLICT (key) for either engine.

    `newer`: an existing row is replaced only by one with a later `updated_at`, so a copied
    or mirrored row never overwrites a newer one; `replace`: always; `keep`: never.
    """
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    statement = (pg_insert if is_postgres(engine) else sqlite_insert)(table)
    keys = [column.name for column in table.primary_key.columns]
    updates = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys}
    if on_conflict == "keep" or not updates:
        return statement.on_conflict_do_nothing(index_elements=keys)
    where = None
    if on_conflict == "newer" and "updated_at" in table.columns:
        where = table.c.updated_at < statement.excluded.updated_at
    return statement.on_conflict_do_update(index_elements=keys, set_=updates, where=where)
