"""outbox payloads compressed with lz4 on PostgreSQL

Revision ID: 012
Revises: 011

An event's JSON is a few kilobytes, so PostgreSQL compresses it when the watcher writes the
outbox and decompresses it when the relay reads it back; with its default (pglz) that is
about half of what the server spends on the outbox. lz4 costs a fraction of pglz and stores
less. Only rows written from now on use it; existing rows stay readable as they are. A server
built without lz4 (or older than PostgreSQL 14) keeps pglz and says so in a notice. SQLite:
nothing to do.
"""

from __future__ import annotations

from alembic import op

revision = "012"
down_revision = "011"
branch_labels = None
depends_on = None


def _set_compression(method: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # EXECUTE: a server that cannot parse SET COMPRESSION fails at run time, where the
    # handler catches it, not when the block is compiled.
    op.execute(
        "DO $$ BEGIN "
        f"EXECUTE 'ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION {method}'; "
        "EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN "
        f"RAISE NOTICE 'outbox payloads keep the default compression: %', SQLERRM; "
        "END $$"
    )


def upgrade() -> None:
    _set_compression("lz4")


def downgrade() -> None:
    _set_compression("pglz")
