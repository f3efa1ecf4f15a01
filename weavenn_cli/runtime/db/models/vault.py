"""The shadow cache of the vault's notes, and what the watcher last published.

Full-text search lives outside these models because it differs per database: an FTS5 table
kept by triggers on SQLite, a generated tsvector column with a GIN index on PostgreSQL. The
migration creates them; `runtime/db/unmanaged.py` keeps schema comparison from seeing them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from weavenn_cli.runtime.db.models.base import Base
from weavenn_cli.runtime.db.models.bus import AutoId
from weavenn_cli.runtime.db.types import PortableJSON, UTCDateTime, utcnow

PATH = String(1024)


class Note(Base):
    """One note as the cache knows it; `id` survives a move, so links follow the note."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(PATH, unique=True)
    # Lower-case file name: the candidates when a link is resolved by name.
    name_key: Mapped[str] = mapped_column(String(255), index=True)
    title: Mapped[str] = mapped_column(Text)
    node_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    frontmatter: Mapped[dict[str, Any]] = mapped_column(PortableJSON)
    aliases: Mapped[list[str]] = mapped_column(PortableJSON)
    body: Mapped[str] = mapped_column(Text)
    body_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    size: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(64))
    parse_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    indexed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NoteTag(Base):
    __tablename__ = "note_tags"

    note_id: Mapped[int] = mapped_column(
        AutoId, ForeignKey("notes.id", ondelete="CASCADE"), primary_key=True
    )
    # Obsidian compares tags without case; `tag` keeps the first spelling.
    tag_key: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)
    tag: Mapped[str] = mapped_column(String(255))


class NoteHeading(Base):
    __tablename__ = "note_headings"

    note_id: Mapped[int] = mapped_column(
        AutoId, ForeignKey("notes.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    line: Mapped[int] = mapped_column(Integer)


class NoteLink(Base):
    """An outgoing link as written, and the note it resolves to (a vault path) if any."""

    __tablename__ = "note_links"
    __table_args__ = (Index("ix_note_links_resolved_path", "resolved_path"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    note_id: Mapped[int] = mapped_column(
        AutoId, ForeignKey("notes.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(Text)
    heading: Mapped[str | None] = mapped_column(Text, nullable=True)
    block: Mapped[str | None] = mapped_column(String(255), nullable=True)
    alias: Mapped[str | None] = mapped_column(Text, nullable=True)
    embed: Mapped[bool] = mapped_column(Boolean, default=False)
    kind: Mapped[str] = mapped_column(String(16))
    target_kind: Mapped[str] = mapped_column(String(16))
    # Lower-case file name the link asks for (note links only): re-resolve when it appears.
    target_name: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    resolved_path: Mapped[str | None] = mapped_column(PATH, nullable=True)


class NoteVersion(Base):
    """The newest change applied per path, deletes included: an older event never wins."""

    __tablename__ = "note_versions"

    path: Mapped[str] = mapped_column(PATH, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PublishedFile(Base):
    """What the watcher last published per file (content hash NULL: published as deleted).

    Written in the transaction of the outbox row, so a restart reconciles from exactly what
    went out. Rows of deleted files stay: `sequence` must keep growing across a re-creation.
    """

    __tablename__ = "published_files"

    vault_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    path: Mapped[str] = mapped_column(PATH, primary_key=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sequence: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
