"""runtime flags, backfill checkpoints and rejects, verify runs, dual-write failures

Revision ID: 007
Revises: 006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "007"
down_revision = "006"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runtime_flags",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", JSON, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_runtime_flags"),
    )
    op.create_table(
        "backfill_checkpoints",
        sa.Column("table_name", sa.String(100), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("last_key", JSON, nullable=True),
        sa.Column("rows_read", sa.BigInteger(), nullable=False),
        sa.Column("rows_written", sa.BigInteger(), nullable=False),
        sa.Column("rows_skipped", sa.BigInteger(), nullable=False),
        sa.Column("rows_rejected", sa.BigInteger(), nullable=False),
        sa.Column("source_rows", sa.BigInteger(), nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("table_name", name="pk_backfill_checkpoints"),
    )
    op.create_table(
        "backfill_rejects",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("table_name", sa.String(100), nullable=False),
        sa.Column("key", JSON, nullable=False),
        sa.Column("row", JSON, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_backfill_rejects"),
    )
    op.create_index("ix_backfill_rejects_table_name", "backfill_rejects", ["table_name"])
    op.create_table(
        "verify_runs",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("tables", JSON, nullable=False),
        sa.Column("where", sa.Text(), nullable=True),
        sa.Column("identical", sa.Boolean(), nullable=False),
        sa.Column("differences", sa.BigInteger(), nullable=False),
        sa.Column("repaired", sa.BigInteger(), nullable=False),
        sa.Column("report", JSON, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_verify_runs"),
    )
    op.create_index("ix_verify_runs_finished_at", "verify_runs", ["finished_at"])
    op.create_table(
        "dual_write_failures",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("table_name", sa.String(100), nullable=False),
        sa.Column("key", JSON, nullable=False),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dual_write_failures"),
    )
    op.create_index("ix_dual_write_failures_pending", "dual_write_failures", ["resolved_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_dual_write_failures_pending", "dual_write_failures")
    op.drop_table("dual_write_failures")
    op.drop_index("ix_verify_runs_finished_at", "verify_runs")
    op.drop_table("verify_runs")
    op.drop_index("ix_backfill_rejects_table_name", "backfill_rejects")
    op.drop_table("backfill_rejects")
    op.drop_table("backfill_checkpoints")
    op.drop_table("runtime_flags")
