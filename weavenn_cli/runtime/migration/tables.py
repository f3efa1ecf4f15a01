"""Which tables the data migration moves, and the checks made before touching them.

Application tables are the data of Weave-NN: tasks and the shadow cache of notes, that is
every table of the schema except the operational ones below, which belong to one database
and its processes (events waiting to be published, messages already applied, migration
bookkeeping, rollout state) and would be wrong in the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from weavenn_cli.runtime.db import revisions
from weavenn_cli.runtime.db.engine import describe_url, parse_database_url
from weavenn_cli.runtime.db.models import Base
from weavenn_cli.runtime.errors import DatabaseError, UsageError
from weavenn_cli.runtime.migration.values import Kind, column_kind

OPERATIONAL_TABLES = frozenset(
    {
        "alembic_version",
        "outbox",
        "inbox",
        "dead_letters",
        "bus_messages",
        "bus_consumers",
        "leases",
        "delivery_attempts",
        "runtime_flags",
        "backfill_checkpoints",
        "backfill_rejects",
        "verify_runs",
        "dual_write_failures",
        "rollouts",
        "rollout_events",
        "rollout_mismatches",
        "rollout_stats",
        "rollout_users",
    }
)
UPDATED_AT = "updated_at"


@dataclass(frozen=True)
class TableSpec:
    """A table as the migration handles it: columns, their kinds, and the key."""

    table: sa.Table
    kinds: tuple[Kind, ...]

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def columns(self) -> list[sa.Column[Any]]:
        return list(self.table.columns)

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.table.columns]

    @property
    def key_names(self) -> list[str]:
        return [column.name for column in self.table.primary_key.columns]

    @property
    def key_positions(self) -> list[int]:
        names = self.column_names
        return [names.index(name) for name in self.key_names]

    @property
    def key_kinds(self) -> list[Kind]:
        return [self.kinds[position] for position in self.key_positions]

    @property
    def has_updated_at(self) -> bool:
        return UPDATED_AT in self.table.columns

    def key_of(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(row[position] for position in self.key_positions)

    @property
    def writable_table(self) -> sa.Table:
        """The table with JSON columns untyped: JSON text is written exactly as it was read
        (a float round trip would turn 2.50 into 2.5) and the database parses it."""
        columns = [
            sa.Column(
                column.name,
                sa.types.NullType() if kind is Kind.JSON else column.type,
                primary_key=column.primary_key,
            )
            for column, kind in zip(self.table.columns, self.kinds, strict=True)
        ]
        return sa.Table(self.name, sa.MetaData(), *columns)


def spec_for(table: sa.Table) -> TableSpec:
    if not table.primary_key.columns:
        raise UsageError(f"table {table.name} has no primary key: the data migration needs one")
    return TableSpec(table, tuple(column_kind(column) for column in table.columns))


def application_tables() -> list[sa.Table]:
    """Every table that holds application data, parents before children."""
    return [t for t in Base.metadata.sorted_tables if t.name not in OPERATIONAL_TABLES]


def resolve_tables(names: Sequence[str] | None) -> list[TableSpec]:
    """The tables named on the command line (all application tables when none), checked
    against the schema: a name is only ever looked up, never put into SQL."""
    known = {table.name: table for table in application_tables()}
    if not names:
        return [spec_for(table) for table in known.values()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UsageError(
            f"unknown table {unknown[0]!r}: the application tables are {', '.join(known)}"
        )
    wanted = set(names)
    return [spec_for(table) for name, table in known.items() if name in wanted]


def require_at_head(url: str, role: str) -> None:
    """Refuse a database whose schema is not at the head revision."""
    current = revisions.current_revisions(url)
    heads = revisions.head_revisions()
    if set(current) != set(heads):
        raise DatabaseError(
            f"{role} {describe_url(url)} is at revision {', '.join(current) or 'none'}, not at "
            f"head {', '.join(heads)}: run `weavenn migrate db --database-url URL` on it first"
        )


def require_tables(engine: sa.Engine, specs: Sequence[TableSpec], role: str) -> None:
    """Refuse a database that lacks one of the tables or columns to migrate."""
    inspector = sa.inspect(engine)
    present = set(inspector.get_table_names())
    for spec in specs:
        if spec.name not in present:
            raise DatabaseError(
                f"{role} {describe_url(engine.url)} has no table {spec.name}: upgrade it with "
                "`weavenn migrate db --database-url URL` or leave the table out with --table"
            )
        columns = {column["name"] for column in inspector.get_columns(spec.name)}
        missing = [name for name in spec.column_names if name not in columns]
        if missing:
            raise DatabaseError(
                f"{role} table {spec.name} has no column {missing[0]}: upgrade it with "
                "`weavenn migrate db --database-url URL` first"
            )


def require_distinct(source_url: str, target_url: str) -> None:
    """Refuse to copy or compare a database with itself."""
    source, target = parse_database_url(source_url), parse_database_url(target_url)
    if source.render_as_string(hide_password=False) == target.render_as_string(hide_password=False):
        raise UsageError(
            f"source and target are the same database ({describe_url(source_url)}): "
            "pass --source and --target (or set SECONDARY_DATABASE_URL)"
        )
