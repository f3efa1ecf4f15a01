"""leases and delivery_attempts: one outbox relay at a time, a budget for crashing messages

Revision ID: 011
Revises: 010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "011"
down_revision = "010"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("acquired_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )
    op.create_table(
        "delivery_attempts",
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("last_delivered_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name="pk_delivery_attempts"),
    )
    op.create_index(
        "ix_delivery_attempts_last_delivered_at", "delivery_attempts", ["last_delivered_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_attempts_last_delivered_at", table_name="delivery_attempts")
    op.drop_table("delivery_attempts")
    op.drop_table("leases")
