"""Engines and sessions for the two supported databases: SQLite and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from weavenn_cli.runtime.config import mask_url
from weavenn_cli.runtime.errors import DatabaseError, UsageError

SQLITE_BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_SECONDS = 10
"""How long opening a connection to a database server may take before it counts as down."""


def parse_database_url(url: str) -> URL:
    """Validate a database URL and pick the driver we ship (psycopg 3 for PostgreSQL)."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise UsageError(
            f"{mask_url(url)!r} is not a database URL: use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DB"
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    raise UsageError(
        f"unsupported database {backend!r} in {mask_url(url)}: weavenn runs on sqlite:// or "
        "postgresql://"
    )


def describe_url(url: str | URL) -> str:
    """The URL as safe to print: password hidden."""
    if isinstance(url, URL):
        url = url.set(drivername=url.get_backend_name()).render_as_string(hide_password=False)
    return mask_url(url)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; for SQLite the parent folder is created and WAL mode is on."""
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _make_sqlite_engine(parsed, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("connect_args", {"connect_timeout": CONNECT_TIMEOUT_SECONDS})
    return create_engine(parsed, **kwargs)


def _make_sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Several processes write the same file (API, watcher, consumers). Taking the write
        # lock at BEGIN makes a waiting writer queue on busy_timeout instead of failing with
        # "database is locked" when a read transaction later tries to write.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection before use only when it sat unused for `idle_seconds`.

    For engines made with `pool_pre_ping=False` that serve a steady stream of short queries
    (the API): `pool_pre_ping` costs a round trip on every checkout, as much as the query.
    A connection idle long enough to have been cut (server restart, firewall) is checked
    and silently replaced; one used a moment ago is trusted, and if the server went away in
    that moment the query's disconnect error invalidates the whole pool at once.
    """

    @event.listens_for(engine, "checkin")
    def _stamp(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is not None and time.monotonic() - returned_at < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError(str(error)) from error


_readers: dict[str, Engine] = {}


def reader_engine(engine: Engine) -> Engine:
    """An engine for reads that must not queue for SQLite's write lock (polling loops).

    `make_engine` begins every SQLite transaction with BEGIN IMMEDIATE; a process that only
    looks for new rows several times a second would take the write lock each time and slow
    down the writers. In WAL mode a plain read needs no lock. PostgreSQL needs nothing else.
    """
    if engine.dialect.name != "sqlite":
        return engine
    key = engine.url.render_as_string(hide_password=False)
    if key not in _readers:
        _readers[key] = create_engine(
            engine.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
    return _readers[key]


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: committed when the block succeeds, rolled back when it raises."""
    with factory() as session, session.begin():
        yield session


def check_connection(engine: Engine) -> None:
    """Open a connection or raise a DatabaseError that says what to do."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except exc.DBAPIError as error:
        raise connection_error(engine.url, error) from None


def is_reachable(engine: Engine) -> bool:
    """Whether the database answers now (to tell an outage from an error in a query)."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except exc.DBAPIError:
        return False
    return True


def require_tables(engine: Engine, *tables: str) -> None:
    """Fail with what to do when the schema lacks `tables` (a database never migrated)."""
    from sqlalchemy import inspect

    try:
        present = set(inspect(engine).get_table_names())
    except exc.DBAPIError as error:
        raise connection_error(engine.url, error) from None
    missing = [table for table in tables if table not in present]
    if missing:
        raise DatabaseError(
            f"database {describe_url(engine.url)} has no table {', '.join(missing)}: "
            "run `weavenn migrate db` first"
        )


def connection_error(url: URL, error: BaseException) -> DatabaseError:
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    return DatabaseError(
        f"cannot reach database {describe_url(url)}: {reason}; check DATABASE_URL "
        "(or --database-url) and that the server is running"
    )
