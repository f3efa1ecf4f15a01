"""add updated_at to tasks, so migrations can tell newer rows from older ones

Revision ID: 003
Revises: 002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "003"
down_revision = "002"
branch_labels = None
depends_on = None


def _tasks(with_updated_at: bool, updated_at_nullable: bool = True) -> sa.Table:
    # The table as the previous revisions left it, so SQLite's batch mode also works offline.
    columns: list[sa.schema.SchemaItem] = [
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("due_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=True),
    ]
    if with_updated_at:
        columns.append(
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=updated_at_nullable)
        )
    return sa.Table(
        "tasks",
        sa.MetaData(),
        *columns,
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.Index("ix_tasks_project_id", "project_id"),
        sa.Index("ix_tasks_status", "status"),
    )


def upgrade() -> None:
    op.add_column("tasks", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    # Existing rows were last written when they were created, as far as anyone knows.
    op.execute("UPDATE tasks SET updated_at = created_at WHERE updated_at IS NULL")
    with op.batch_alter_table("tasks", copy_from=_tasks(with_updated_at=True)) as batch:
        batch.alter_column("updated_at", existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade() -> None:
    table = _tasks(with_updated_at=True, updated_at_nullable=False)
    with op.batch_alter_table("tasks", copy_from=table) as batch:
        batch.drop_column("updated_at")
