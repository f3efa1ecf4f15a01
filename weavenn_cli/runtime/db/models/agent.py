"""What the agent rules did: their write-backs to notes, and the links they suggest."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from weavenn_cli.runtime.db.models.base import Base
from weavenn_cli.runtime.db.models.vault import PATH
from weavenn_cli.runtime.db.types import UTCDateTime, utcnow


class AgentWriteback(Base):
    """A version of a note written by agent rules, known by its content hash.

    When that version comes back as a vault event, the rules see it is their own and do not
    run again (no loop), and git-auto-commit names the rules in the commit's trailer.
    """

    __tablename__ = "agent_writebacks"
    __table_args__ = (Index("ix_agent_writebacks_written_at", "written_at"),)

    path: Mapped[str] = mapped_column(PATH, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Comma-separated rule names, e.g. "auto-tag,auto-link".
    rules: Mapped[str] = mapped_column(String(255))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LinkSuggestion(Base):
    """A mention of another note's title or alias in a note's text, not yet a wikilink."""

    __tablename__ = "link_suggestions"

    source_path: Mapped[str] = mapped_column(PATH, primary_key=True)
    target_path: Mapped[str] = mapped_column(PATH, primary_key=True)
    mention: Mapped[str] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
