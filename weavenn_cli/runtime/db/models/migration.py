"""Bookkeeping of the SQLite → PostgreSQL move: flags, backfill, verify and dual-write."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from weavenn_cli.runtime.db.models.base import Base
from weavenn_cli.runtime.db.types import PortableJSON, UTCDateTime, utcnow

AutoId = BigInteger().with_variant(Integer(), "sqlite")


class RuntimeFlag(Base):
    """A switch operators flip at run time; every process re-reads it within seconds."""

    __tablename__ = "runtime_flags"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(PortableJSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class BackfillCheckpoint(Base):
    """Where the backfill of one table stands; committed with every chunk it copies."""

    __tablename__ = "backfill_checkpoints"

    table_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    last_key: Mapped[list[Any] | None] = mapped_column(PortableJSON, nullable=True)
    rows_read: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_written: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_skipped: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    source_rows: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BackfillReject(Base):
    """A source row the backfill could not write, with the reason, for an operator to fix."""

    __tablename__ = "backfill_rejects"
    __table_args__ = (Index("ix_backfill_rejects_table_name", "table_name"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    table_name: Mapped[str] = mapped_column(String(100))
    key: Mapped[list[Any]] = mapped_column(PortableJSON)
    row: Mapped[dict[str, Any]] = mapped_column(PortableJSON)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VerifyRun(Base):
    """One `weavenn migrate verify`: what was compared and whether it came out identical."""

    __tablename__ = "verify_runs"
    __table_args__ = (Index("ix_verify_runs_finished_at", "finished_at"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    tables: Mapped[list[str]] = mapped_column(PortableJSON)
    where: Mapped[str | None] = mapped_column(Text, nullable=True)
    identical: Mapped[bool] = mapped_column(Boolean)
    differences: Mapped[int] = mapped_column(BigInteger)
    repaired: Mapped[int] = mapped_column(BigInteger, default=0)
    report: Mapped[dict[str, Any]] = mapped_column(PortableJSON)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DualWriteFailure(Base):
    """A write mirrored to the secondary database that failed; pending until repaired."""

    __tablename__ = "dual_write_failures"
    __table_args__ = (Index("ix_dual_write_failures_pending", "resolved_at", "id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    table_name: Mapped[str] = mapped_column(String(100))
    key: Mapped[list[Any]] = mapped_column(PortableJSON)
    operation: Mapped[str] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
