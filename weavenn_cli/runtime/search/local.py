"""Search on the shadow cache in the database (SQLite FTS5 or PostgreSQL full-text search)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from weavenn_cli.runtime.errors import UsageError
from weavenn_cli.runtime.files.errors import NoteNotFound
from weavenn_cli.runtime.search.service import Backlinks, InvalidQuery, Orphans, SearchResults
from weavenn_cli.runtime.vault import queries
from weavenn_cli.runtime.vault.queries import NoteDetails, VaultStats


class CacheSearchService:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def search(self, query: str | None, tag: str | None, limit: int) -> SearchResults:
        query, tag = _checked(query, "q"), _checked(tag, "tag")
        if not query and not tag:
            raise InvalidQuery("give q (words to search for), tag, or both")
        with self.sessions() as session:
            try:
                hits = queries.search(session, query, tag=tag, limit=limit)
            except UsageError as error:
                raise InvalidQuery(error.message) from None
        return SearchResults(items=hits)

    def note(self, path: str) -> NoteDetails:
        with self.sessions() as session:
            details = queries.note_details(session, path)
        if details is None:
            raise _not_cached(path)
        return details

    def backlinks(self, path: str) -> Backlinks:
        with self.sessions() as session:
            # Backlinks of a note the cache does not hold would be an empty answer, not a 404.
            if queries.find_note_path(session, path) != path:
                raise _not_cached(path)
            return Backlinks(path=path, items=queries.backlinks(session, path))

    def stats(self) -> VaultStats:
        with self.sessions() as session:
            return queries.stats(session)

    def orphans(self, limit: int) -> Orphans:
        # One more than asked tells whether there are more, without a COUNT.
        with self.sessions() as session:
            paths = queries.orphans(session, limit + 1)
        return Orphans(items=paths[:limit], truncated=len(paths) > limit)

    def close(self) -> None:
        bind = self.sessions.kw.get("bind")
        if bind is not None:
            bind.dispose()


def _checked(text: str | None, name: str) -> str | None:
    """Blank is absent; NUL is refused here because PostgreSQL text cannot hold it."""
    if text is None or not text.strip():
        return None
    if "\x00" in text:
        raise InvalidQuery(f"{name} contains a NUL character")
    return text


def _not_cached(path: str) -> NoteNotFound:
    return NoteNotFound(
        f"{path} is not in the search cache: check the path, or index the vault "
        "(`weavenn vault index`)",
        path=path,
    )
