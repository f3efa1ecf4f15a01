"""Schema migrations: alembic driven from code, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, exc, pool

from weavenn_cli.runtime.db.engine import connection_error, describe_url, make_engine
from weavenn_cli.runtime.db.models import Base
from weavenn_cli.runtime.db.unmanaged import include_name
from weavenn_cli.runtime.errors import DatabaseError, UsageError
from weavenn_cli.runtime.resources import migrations_dir


def alembic_config(database_url: str, output: io.StringIO | None = None) -> Config:
    config = Config(output_buffer=output) if output is not None else Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def head_revisions() -> list[str]:
    return list(script_directory().get_heads())


@contextmanager
def _alembic_errors(database_url: str) -> Iterator[None]:
    """Turn alembic and driver failures into one line that says what to do."""
    try:
        yield
    except CommandError as error:
        message = str(error).strip().splitlines()[0]
        if "Can't locate revision" in message or "No such revision" in message:
            raise UsageError(
                f"{message.rstrip('.')}: see `weavenn migrate history` for known revisions"
            ) from None
        raise DatabaseError(f"migration failed: {message}") from None
    except exc.OperationalError as error:
        if "connect" in str(error).lower() or "unable to open" in str(error).lower():
            engine_url = make_engine(database_url).url
            raise connection_error(engine_url, error) from None
        raise DatabaseError(
            f"migration failed on {describe_url(database_url)}: {error.orig}"
        ) from None


def upgrade(database_url: str, revision: str = "head", *, sql: bool = False) -> str | None:
    """Upgrade to `revision`; with `sql`, return the SQL instead of running it."""
    return _run(command.upgrade, database_url, revision, sql)


def downgrade(database_url: str, revision: str, *, sql: bool = False) -> str | None:
    return _run(command.downgrade, database_url, revision, sql)


def _run(operation: object, database_url: str, revision: str, sql: bool) -> str | None:
    output = io.StringIO() if sql else None
    config = alembic_config(database_url, output)
    with _alembic_errors(database_url):
        if sql:
            # Offline mode renders SQL for the URL's dialect without connecting.
            operation(config, revision, sql=True)  # type: ignore[operator]
            return output.getvalue() if output is not None else ""
        with _connected(database_url) as engine, engine.begin() as connection:
            config.attributes["connection"] = connection
            operation(config, revision)  # type: ignore[operator]
    return None


@contextmanager
def _connected(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, poolclass=pool.NullPool)
    try:
        try:
            with engine.connect() as probe:
                probe.exec_driver_sql("SELECT 1")
        except exc.DBAPIError as error:
            raise connection_error(engine.url, error) from None
        yield engine
    finally:
        engine.dispose()


def current_revisions(database_url: str) -> list[str]:
    """The revisions the database is at (empty when it was never migrated)."""
    with (
        _alembic_errors(database_url),
        _connected(database_url) as engine,
        engine.connect() as connection,
    ):
        return list(MigrationContext.configure(connection).get_current_heads())


@dataclass(frozen=True)
class RevisionInfo:
    revision: str
    down_revision: str | None
    message: str
    is_head: bool


def history() -> list[RevisionInfo]:
    """Every revision, newest first."""
    revisions = []
    for script in script_directory().walk_revisions():
        down = script.down_revision
        revisions.append(
            RevisionInfo(
                revision=script.revision,
                down_revision=down if isinstance(down, str) or down is None else ",".join(down),
                message=(script.doc or "").strip().splitlines()[0] if script.doc else "",
                is_head=script.is_head,
            )
        )
    return revisions


@dataclass
class SchemaCheck:
    heads: list[str]
    current: list[str]
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return len(self.heads) == 1 and not self.differences


def check(database_url: str) -> SchemaCheck:
    """Compare the models with a database migrated to head, as `alembic check` does."""
    heads = head_revisions()
    with (
        _alembic_errors(database_url),
        _connected(database_url) as engine,
        engine.connect() as connection,
    ):
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": include_name}
        )
        current = list(context.get_current_heads())
        result = SchemaCheck(heads=heads, current=current)
        if len(heads) == 1 and set(current) != set(heads):
            raise DatabaseError(
                f"database {describe_url(database_url)} is at "
                f"{', '.join(current) or 'no revision'}, not at head {heads[0]}: run "
                "`weavenn migrate db` on it first, then check again"
            )
        if len(heads) == 1:
            diffs = compare_metadata(context, Base.metadata)
            result.differences = [_describe_diff(diff) for diff in diffs]
        return result


def _describe_diff(diff: object) -> str:
    if isinstance(diff, tuple) and diff:
        kind = diff[0]
        details = ", ".join(_name_of(part) for part in diff[1:] if _name_of(part))
        return f"{kind}: {details}"
    if isinstance(diff, list):
        return "; ".join(_describe_diff(item) for item in diff)
    return str(diff)


def _name_of(part: object) -> str:
    name = getattr(part, "name", None)
    if name:
        table = getattr(getattr(part, "table", None), "name", None)
        return f"{table}.{name}" if table and table != name else str(name)
    if isinstance(part, (str, int, bool)) or part is None:
        return "" if part is None else str(part)
    return type(part).__name__


def is_at_head(database_url: str) -> bool:
    return set(current_revisions(database_url)) == set(head_revisions())
