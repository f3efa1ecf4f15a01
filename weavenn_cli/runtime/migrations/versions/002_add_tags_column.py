"""add tags to tasks (the design's 002_add_tags_column)

Revision ID: 002
Revises: 001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "002"
down_revision = "001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "tasks",
        sa.Column("tags", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("tasks", copy_from=_tasks_with_tags()) as batch:
        batch.drop_column("tags")


def _tasks_with_tags() -> sa.Table:
    # The table as this revision leaves it, so SQLite's batch mode also works offline (--sql).
    return sa.Table(
        "tasks",
        sa.MetaData(),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("due_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.Index("ix_tasks_project_id", "project_id"),
        sa.Index("ix_tasks_status", "status"),
    )
