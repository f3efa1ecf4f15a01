"""Strangler-fig rollouts: the share of users each extracted service serves, and its record.

`rollouts` holds the current value per service, `rollout_events` every change (the audit
trail), `rollout_mismatches` samples of shadow comparisons that disagreed, `rollout_stats`
per-process windows of request counts and latencies, `rollout_users` who was seen recently
(a hash of the user id, never the id itself) so a change can say how many users it moves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from weavenn_cli.runtime.db.models.base import Base
from weavenn_cli.runtime.db.models.bus import AutoId
from weavenn_cli.runtime.db.types import PortableJSON, UTCDateTime, utcnow


class Rollout(Base):
    __tablename__ = "rollouts"
    __table_args__ = (CheckConstraint("percent >= 0 AND percent <= 100", name="percent_range"),)

    service: Mapped[str] = mapped_column(String(64), primary_key=True)
    percent: Mapped[int] = mapped_column(Integer)
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(255))


class RolloutEvent(Base):
    """One change: the state before (None for the first) and after, who, why, when."""

    __tablename__ = "rollout_events"
    __table_args__ = (Index("ix_rollout_events_service_id", "service", "id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(64))
    old_percent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    new_percent: Mapped[int] = mapped_column(Integer)
    old_shadow: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    new_shadow: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RolloutMismatch(Base):
    """A shadow comparison where the legacy and the new side answered differently."""

    __tablename__ = "rollout_mismatches"
    __table_args__ = (Index("ix_rollout_mismatches_service_id", "service", "id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)
    legacy_status: Mapped[int] = mapped_column(Integer)
    new_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    legacy_body: Mapped[str] = mapped_column(Text)
    new_body: Mapped[str] = mapped_column(Text)
    differences: Mapped[list[str]] = mapped_column(PortableJSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RolloutStat(Base):
    """What one gateway process saw of one service during one short window.

    Latencies are bucket counts (bounds in runtime/rollout/stats.py), so windows of several
    processes add up and a p95 can be estimated over any time range.
    """

    __tablename__ = "rollout_stats"
    __table_args__ = (Index("ix_rollout_stats_service_ended_at", "service", "ended_at"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(64))
    instance: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    legacy_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    legacy_errors: Mapped[int] = mapped_column(BigInteger, default=0)
    legacy_latency: Mapped[list[Any]] = mapped_column(PortableJSON)
    new_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    new_errors: Mapped[int] = mapped_column(BigInteger, default=0)
    new_fallbacks: Mapped[int] = mapped_column(BigInteger, default=0)
    new_latency: Mapped[list[Any]] = mapped_column(PortableJSON)
    shadow_compared: Mapped[int] = mapped_column(BigInteger, default=0)
    shadow_mismatched: Mapped[int] = mapped_column(BigInteger, default=0)
    shadow_dropped: Mapped[int] = mapped_column(BigInteger, default=0)


class RolloutUser(Base):
    """A user seen on a service's routes: `user_key` is SHA-256 of "service:user_id"."""

    __tablename__ = "rollout_users"
    __table_args__ = (Index("ix_rollout_users_service_last_seen_at", "service", "last_seen_at"),)

    service: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
