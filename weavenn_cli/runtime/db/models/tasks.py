from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from weavenn_cli.runtime.db.models.base import Base
from weavenn_cli.runtime.db.types import PortableJSON, UTCDateTime, utcnow


class Task(Base):
    """A task, as in the design's `001_create_tasks_table` plus `tags` and `updated_at`."""

    __tablename__ = "tasks"
    # Lists are newest first by default; the id breaks ties so pages never overlap.
    __table_args__ = (Index("ix_tasks_created_at_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    project_id: Mapped[str] = mapped_column(String, index=True)
    title: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String, index=True)
    due_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed: Mapped[bool | None] = mapped_column(Boolean, default=False, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    tags: Mapped[list[str] | None] = mapped_column(PortableJSON, nullable=True)
    # Set on every write: the migration tools use it to tell a newer row from an older one.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
