"""What the agent rules keep in the database: their write-backs and their link suggestions.

Every function takes the caller's session and never commits, so it commits with the
consumer's inbox entry and the events it publishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, aliased

from weavenn_cli.runtime.bus.outbox import dialect_insert
from weavenn_cli.runtime.db.models import AgentWriteback, LinkSuggestion, Note
from weavenn_cli.runtime.db.types import utcnow

# A write-back must be recognised when its own event comes back (seconds later) and named
# by git-auto-commit's next commit; older rows only grow the table.
WRITEBACK_RETENTION = timedelta(days=7)


class SuggestionView(BaseModel):
    source_path: str
    target_path: str
    target_title: str
    mention: str
    score: float


def is_own_version(session: Session, path: str, content_hash: str) -> bool:
    """Whether the agent rules wrote this version of the note."""
    query = select(AgentWriteback.path).where(
        AgentWriteback.path == path, AgentWriteback.content_hash == content_hash
    )
    return session.execute(query).first() is not None


def record_writeback(session: Session, path: str, content_hash: str, rules: Sequence[str]) -> None:
    now = utcnow()
    session.execute(
        delete(AgentWriteback).where(
            AgentWriteback.path == path, AgentWriteback.written_at < now - WRITEBACK_RETENTION
        )
    )
    names = ",".join(rules)
    statement = dialect_insert(session)(AgentWriteback).values(
        path=path, content_hash=content_hash, rules=names, written_at=now
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["path", "content_hash"], set_={"rules": names, "written_at": now}
        )
    )


def rules_of(session: Session, path: str, content_hash: str) -> list[str]:
    """The rules that wrote this version of the note ([] when a person wrote it)."""
    names = session.scalar(
        select(AgentWriteback.rules).where(
            AgentWriteback.path == path, AgentWriteback.content_hash == content_hash
        )
    )
    return [name for name in (names or "").split(",") if name]


def replace_suggestions(
    session: Session, source_path: str, suggestions: Sequence[dict[str, Any]]
) -> bool:
    """The note's suggestions become `suggestions` (target_path, mention, score); True when
    that changes what was recorded."""
    current = session.execute(
        select(LinkSuggestion.target_path, LinkSuggestion.mention, LinkSuggestion.score).where(
            LinkSuggestion.source_path == source_path
        )
    ).all()
    wanted = {(s["target_path"], s["mention"], float(s["score"])) for s in suggestions}
    if {tuple(row) for row in current} == wanted:
        return False
    session.execute(delete(LinkSuggestion).where(LinkSuggestion.source_path == source_path))
    now = utcnow()
    session.add_all(
        LinkSuggestion(
            source_path=source_path,
            target_path=target,
            mention=mention,
            score=score,
            created_at=now,
        )
        for target, mention, score in sorted(wanted)
    )
    return True


def suggestions_for(session: Session, source_path: str) -> list[SuggestionView]:
    """Suggestions of a note, best first; only between notes the cache still has."""
    target = aliased(Note)
    rows = session.execute(
        select(
            LinkSuggestion.source_path,
            LinkSuggestion.target_path,
            target.title,
            LinkSuggestion.mention,
            LinkSuggestion.score,
        )
        .join(target, target.path == LinkSuggestion.target_path)
        .where(
            LinkSuggestion.source_path == source_path,
            select(Note.id).where(Note.path == source_path).exists(),
        )
        .order_by(LinkSuggestion.score.desc(), LinkSuggestion.target_path)
    )
    return [
        SuggestionView(
            source_path=row[0],
            target_path=row[1],
            target_title=row[2],
            mention=row[3],
            score=row[4],
        )
        for row in rows
    ]


def cache_fingerprint(session: Session) -> tuple[int, str]:
    """Changes whenever a note is added, removed or re-indexed: the candidates to rebuild."""
    count, newest = session.execute(select(func.count(Note.id), func.max(Note.indexed_at))).one()
    return int(count or 0), str(newest)


def note_names(session: Session) -> list[tuple[str, str, list[str]]]:
    """(path, title, aliases) of every cached note: the names mentions are looked up by."""
    rows = session.execute(select(Note.path, Note.title, Note.aliases))
    return [(path, title, list(aliases or [])) for path, title, aliases in rows]
