"""embedded transport queues and consumers, and dead letters of both transports

Revision ID: 008
Revises: 007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "008"
down_revision = "007"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "bus_messages",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", JSON, nullable=True),
        sa.Column("correlation_id", sa.String(255), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_bus_messages"),
    )
    op.create_index(
        "ix_bus_messages_queue_available", "bus_messages", ["queue", "available_at", "id"]
    )
    op.create_table(
        "bus_consumers",
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", name="pk_bus_consumers"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(255), nullable=True),
        sa.Column("consumer", sa.String(64), nullable=True),
        sa.Column("message_id", sa.String(255), nullable=True),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", JSON, nullable=True),
        sa.Column("correlation_id", sa.String(255), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        sa.UniqueConstraint("key", name="uq_dead_letters_key"),
    )
    op.create_index("ix_dead_letters_queue", "dead_letters", ["queue"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_queue", "dead_letters")
    op.drop_table("dead_letters")
    op.drop_table("bus_consumers")
    op.drop_index("ix_bus_messages_queue_available", "bus_messages")
    op.drop_table("bus_messages")
