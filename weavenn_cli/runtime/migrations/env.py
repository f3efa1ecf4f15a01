"""Alembic environment shared by `weavenn migrate` and plain `alembic`.

The database URL comes from, in order: `config.attributes["database_url"]` (set by weavenn),
`sqlalchemy.url` in alembic.ini, then the weavenn settings (DATABASE_URL or `.env`).
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection

from weavenn_cli.runtime.config import load_settings
from weavenn_cli.runtime.db.engine import make_engine, parse_database_url
from weavenn_cli.runtime.db.models import Base
from weavenn_cli.runtime.db.unmanaged import include_name

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    # Plain `alembic` with alembic.ini: log as alembic users expect.
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    return str(url or load_settings().database_url)


def run_migrations_offline() -> None:
    url = parse_database_url(database_url())
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place: batch mode recreates the table instead.
        render_as_batch=url.get_backend_name() == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = make_engine(database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _run_on(conn)
    finally:
        engine.dispose()


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
