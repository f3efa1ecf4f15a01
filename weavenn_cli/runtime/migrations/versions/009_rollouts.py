"""rollouts, rollout_events (audit), rollout_mismatches, rollout_stats, rollout_users

Revision ID: 009
Revises: 008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "009"
down_revision = "008"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("shadow", sa.Boolean(), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("service", name="pk_rollouts"),
        sa.CheckConstraint("percent >= 0 AND percent <= 100", name="ck_rollouts_percent_range"),
    )
    op.create_table(
        "rollout_events",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("old_percent", sa.Integer(), nullable=True),
        sa.Column("new_percent", sa.Integer(), nullable=False),
        sa.Column("old_shadow", sa.Boolean(), nullable=True),
        sa.Column("new_shadow", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollout_events"),
    )
    op.create_index("ix_rollout_events_service_id", "rollout_events", ["service", "id"])
    op.create_table(
        "rollout_mismatches",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("legacy_status", sa.Integer(), nullable=False),
        sa.Column("new_status", sa.Integer(), nullable=True),
        sa.Column("legacy_body", sa.Text(), nullable=False),
        sa.Column("new_body", sa.Text(), nullable=False),
        sa.Column("differences", JSON, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollout_mismatches"),
    )
    op.create_index("ix_rollout_mismatches_service_id", "rollout_mismatches", ["service", "id"])
    op.create_table(
        "rollout_stats",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("instance", sa.String(255), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("ended_at", WHEN, nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in ("legacy_requests", "legacy_errors")
        ),
        sa.Column("legacy_latency", JSON, nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in ("new_requests", "new_errors", "new_fallbacks")
        ),
        sa.Column("new_latency", JSON, nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in ("shadow_compared", "shadow_mismatched", "shadow_dropped")
        ),
        sa.PrimaryKeyConstraint("id", name="pk_rollout_stats"),
    )
    op.create_index("ix_rollout_stats_service_ended_at", "rollout_stats", ["service", "ended_at"])
    op.create_table(
        "rollout_users",
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("user_key", sa.String(64), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("service", "user_key", name="pk_rollout_users"),
    )
    op.create_index(
        "ix_rollout_users_service_last_seen_at", "rollout_users", ["service", "last_seen_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_rollout_users_service_last_seen_at", "rollout_users")
    op.drop_table("rollout_users")
    op.drop_index("ix_rollout_stats_service_ended_at", "rollout_stats")
    op.drop_table("rollout_stats")
    op.drop_index("ix_rollout_mismatches_service_id", "rollout_mismatches")
    op.drop_table("rollout_mismatches")
    op.drop_index("ix_rollout_events_service_id", "rollout_events")
    op.drop_table("rollout_events")
    op.drop_table("rollouts")
