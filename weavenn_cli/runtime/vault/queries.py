"""Reading the shadow cache: note details, search, backlinks, stats, orphans.

The one place these queries live: the CLI uses them now, the HTTP API uses them as well.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    Float,
    Text,
    and_,
    exists,
    func,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.orm import Session, aliased

from weavenn_cli.runtime.db.models import Note, NoteHeading, NoteLink, NoteTag
from weavenn_cli.runtime.errors import UsageError, WeavennError


class HeadingView(BaseModel):
    level: int
    text: str
    line: int


class LinkView(BaseModel):
    target: str
    status: str  # resolved | unresolved | attachment
    resolved_path: str | None
    heading: str | None
    block: str | None
    alias: str | None
    embed: bool
    kind: str


class Backlink(BaseModel):
    path: str
    title: str
    links: int


class NoteDetails(BaseModel):
    path: str
    title: str
    node_type: str | None
    frontmatter: dict[str, Any]
    tags: list[str]
    aliases: list[str]
    headings: list[HeadingView]
    links: list[LinkView]
    backlinks: list[Backlink]
    content_hash: str
    size: int
    text_truncated: bool
    parse_error: str | None
    indexed_at: datetime


class SearchHit(BaseModel):
    path: str
    title: str
    score: float
    snippet: str


class VaultStats(BaseModel):
    notes: int
    tags: int
    links: int
    unresolved: int
    orphans: int


def find_note_path(session: Session, path: str) -> str | None:
    """The cached path for `path` as given: exact, else with `.md` added."""
    for candidate in (path, path + ".md"):
        if session.scalar(select(Note.path).where(Note.path == candidate)) is not None:
            return candidate
    return None


def cached_note_path(session: Session, path: str) -> str:
    """As `find_note_path`, for commands: a note missing from the cache is an error."""
    found = find_note_path(session, path)
    if found is None:
        raise WeavennError(
            f"{path} is not in the cache: check the path, or run `weavenn vault index`"
        )
    return found


def note_details(session: Session, path: str) -> NoteDetails | None:
    note = session.scalar(select(Note).where(Note.path == path))
    if note is None:
        return None
    tags = session.scalars(
        select(NoteTag.tag).where(NoteTag.note_id == note.id).order_by(NoteTag.tag_key)
    )
    headings = session.scalars(
        select(NoteHeading).where(NoteHeading.note_id == note.id).order_by(NoteHeading.position)
    )
    links = session.scalars(
        select(NoteLink).where(NoteLink.note_id == note.id).order_by(NoteLink.position)
    )
    return NoteDetails(
        path=note.path,
        title=note.title,
        node_type=note.node_type,
        frontmatter=note.frontmatter,
        tags=list(tags),
        aliases=note.aliases,
        headings=[HeadingView(level=h.level, text=h.text, line=h.line) for h in headings],
        links=[_link_view(link) for link in links],
        backlinks=backlinks(session, note.path),
        content_hash=note.content_hash,
        size=note.size,
        text_truncated=note.body_truncated,
        parse_error=note.parse_error,
        indexed_at=note.indexed_at,
    )


def _link_view(link: NoteLink) -> LinkView:
    if link.target_kind == "attachment":
        status = "attachment"
    else:
        status = "resolved" if link.resolved_path else "unresolved"
    return LinkView(
        target=link.target,
        status=status,
        resolved_path=link.resolved_path,
        heading=link.heading,
        block=link.block,
        alias=link.alias,
        embed=link.embed,
        kind=link.kind,
    )


def backlinks(session: Session, path: str) -> list[Backlink]:
    """Other notes linking to `path`, with how many links each has to it."""
    rows = session.execute(
        select(Note.path, Note.title, func.count(NoteLink.id))
        .join(NoteLink, NoteLink.note_id == Note.id)
        .where(NoteLink.resolved_path == path, Note.path != path)
        .group_by(Note.path, Note.title)
        .order_by(Note.path)
    )
    return [Backlink(path=p, title=t, links=n) for p, t, n in rows]


# -- search ------------------------------------------------------------------------------------


def search(
    session: Session, query: str | None, *, tag: str | None = None, limit: int = 20
) -> list[SearchHit]:
    """Notes matching `query`, best first; with only `tag`, the notes with that tag by title.

    Query syntax (as PostgreSQL's websearch): words all must match, "a phrase", OR, -word.
    A tag matches itself and its nested tags: `project` finds `project/alpha`.
    """
    if limit < 1:
        raise UsageError("--limit must be at least 1")
    query = (query or "").strip()
    if not query and not tag:
        raise UsageError("give words to search for, or --tag TAG")
    tag_filter = _tag_filter(tag) if tag else None
    if not query:
        statement = select(Note.path, Note.title).order_by(Note.title, Note.path).limit(limit)
        if tag_filter is not None:
            statement = statement.where(tag_filter)
        return [
            SearchHit(path=p, title=t, score=0.0, snippet="") for p, t in session.execute(statement)
        ]
    fts5_query = to_fts5_query(query)  # also refuses a query without a word, on both databases
    if session.get_bind().dialect.name == "postgresql":
        return _search_postgres(session, query, tag_filter, limit)
    return _search_sqlite(session, fts5_query, tag_filter, limit)


def _tag_filter(tag: str) -> ColumnElement[bool]:
    key = tag.strip().lstrip("#").lower()
    if not key:
        raise UsageError("--tag needs a tag name, e.g. --tag project")
    return exists().where(
        NoteTag.note_id == Note.id,
        or_(NoteTag.tag_key == key, NoteTag.tag_key.startswith(key + "/", autoescape=True)),
    )


def _search_sqlite(
    session: Session, fts5_query: str, tag_filter: ColumnElement[bool] | None, limit: int
) -> list[SearchHit]:
    # bm25 is lower for better matches; the title weighs ten times the body.
    score = literal_column("-bm25(notes_fts, 10.0, 1.0)", Float).label("score")
    snippet = literal_column("snippet(notes_fts, 1, '**', '**', '…', 12)", Text).label("snippet")
    statement = (
        select(Note.path, Note.title, score, snippet)
        .select_from(Note)
        .join(table("notes_fts"), literal_column("notes_fts.rowid") == Note.id)
        .where(literal_column("notes_fts").op("MATCH")(fts5_query))
        .order_by(score.desc(), Note.path)
        .limit(limit)
    )
    if tag_filter is not None:
        statement = statement.where(tag_filter)
    return [_hit(row) for row in session.execute(statement)]


def _search_postgres(
    session: Session, query: str, tag_filter: ColumnElement[bool] | None, limit: int
) -> list[SearchHit]:
    tsquery = func.websearch_to_tsquery(literal_column("'simple'"), query)
    vector: ColumnElement[Any] = literal_column("notes.search_vector")
    score = func.ts_rank_cd(vector, tsquery).label("score")
    best = (
        select(Note.id, Note.path, Note.title, score)
        .where(vector.op("@@")(tsquery))
        .order_by(score.desc(), Note.path)
        .limit(limit)
    )
    if tag_filter is not None:
        best = best.where(tag_filter)
    top = best.subquery()
    # ts_headline reads the whole text: run it on the best few only.
    headline = func.ts_headline(
        literal_column("'simple'"),
        Note.body,
        tsquery,
        "StartSel=**, StopSel=**, MaxWords=20, MinWords=8",
    )
    rows = session.execute(
        select(top.c.path, top.c.title, top.c.score, headline.label("snippet"))
        .join(Note, Note.id == top.c.id)
        .order_by(top.c.score.desc(), top.c.path)
    )
    return [_hit(row) for row in rows]


def _hit(row: Any) -> SearchHit:
    return SearchHit(path=row.path, title=row.title, score=float(row.score), snippet=row.snippet)


_QUERY_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def to_fts5_query(query: str) -> str:
    """websearch syntax (words, "phrases", OR, -word) as an FTS5 query that cannot fail.

    Every term is quoted, so FTS5 operators and punctuation in the input are plain text.
    """
    groups: list[list[str]] = [[]]
    excluded: list[str] = []
    for match in _QUERY_TOKEN.finditer(query):
        negated, phrase, word = match.group(1), match.group(2), match.group(3)
        if word == "OR" or word == "or":
            if groups[-1]:
                groups.append([])
            continue
        if word is not None and word.startswith("-") and len(word) > 1:
            negated, phrase, word = "-", word[1:], None
        term = phrase if word is None else word
        if not _has_token(term):
            continue
        quoted = '"' + term.replace('"', '""') + '"'
        (excluded if negated else groups[-1]).append(quoted)
    alternatives = [" AND ".join(group) for group in groups if group]
    if not alternatives:
        raise UsageError(f"nothing to search for in {query!r}: give at least one word")
    positive = " OR ".join(f"({alt})" for alt in alternatives)
    return positive + "".join(f" NOT {term}" for term in excluded)


def _has_token(term: str) -> bool:
    return any(ch.isalnum() for ch in term)


# -- stats -------------------------------------------------------------------------------------


def _linked_elsewhere() -> ColumnElement[bool]:
    """The note links to another note, or another note links to it."""
    outgoing = aliased(NoteLink)
    incoming = aliased(NoteLink)
    return or_(
        exists().where(
            outgoing.note_id == Note.id,
            outgoing.resolved_path.is_not(None),
            outgoing.resolved_path != Note.path,
        ),
        exists().where(incoming.resolved_path == Note.path, incoming.note_id != Note.id),
    )


def stats(session: Session) -> VaultStats:
    unresolved = and_(NoteLink.target_kind == "note", NoteLink.resolved_path.is_(None))
    return VaultStats(
        notes=session.scalar(select(func.count()).select_from(Note)) or 0,
        tags=session.scalar(select(func.count(func.distinct(NoteTag.tag_key)))) or 0,
        links=session.scalar(select(func.count()).select_from(NoteLink)) or 0,
        unresolved=session.scalar(select(func.count()).select_from(NoteLink).where(unresolved))
        or 0,
        orphans=session.scalar(select(func.count()).select_from(Note).where(~_linked_elsewhere()))
        or 0,
    )


def orphans(session: Session, limit: int | None = None) -> list[str]:
    """Notes with no link to or from another note (Obsidian's graph shows them alone)."""
    statement = select(Note.path).where(~_linked_elsewhere()).order_by(Note.path)
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.scalars(statement))
