"""agent_writebacks and link_suggestions: what the agent rules wrote and suggest

Revision ID: 010
Revises: 009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "010"
down_revision = "009"
branch_labels = None
depends_on = None

PATH = sa.String(1024)
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agent_writebacks",
        sa.Column("path", PATH, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("rules", sa.String(255), nullable=False),
        sa.Column("written_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("path", "content_hash", name="pk_agent_writebacks"),
    )
    op.create_index("ix_agent_writebacks_written_at", "agent_writebacks", ["written_at"])
    op.create_table(
        "link_suggestions",
        sa.Column("source_path", PATH, nullable=False),
        sa.Column("target_path", PATH, nullable=False),
        sa.Column("mention", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("source_path", "target_path", name="pk_link_suggestions"),
    )


def downgrade() -> None:
    op.drop_table("link_suggestions")
    op.drop_index("ix_agent_writebacks_written_at", table_name="agent_writebacks")
    op.drop_table("agent_writebacks")
