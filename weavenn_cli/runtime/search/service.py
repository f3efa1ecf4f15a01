"""The search service interface, its answers, and the one place that picks its implementation.

Every implementation answers with the models of `vault.queries`, the queries the CLI runs too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from weavenn_cli.runtime.problems import Problem
from weavenn_cli.runtime.vault.queries import Backlink, NoteDetails, SearchHit, VaultStats

if TYPE_CHECKING:
    from weavenn_cli.runtime.config import Settings

DEFAULT_SEARCH_LIMIT = 20
MAX_SEARCH_LIMIT = 100
MAX_QUERY_LENGTH = 500
MAX_TAG_LENGTH = 200
DEFAULT_ORPHANS_LIMIT = 1000
MAX_ORPHANS_LIMIT = 10_000
# A search server holds few connections: each query is short and the pool is per process.
DATABASE_POOL_SIZE = 10


class InvalidQuery(Problem):
    code = "INVALID_QUERY"
    status = 400


class SearchResults(BaseModel):
    """Best match first; with only a tag, the tagged notes by title."""

    items: list[SearchHit]


class Backlinks(BaseModel):
    path: str
    items: list[Backlink]


class Orphans(BaseModel):
    items: list[str]
    truncated: bool


class SearchService(Protocol):
    """Reads of the shadow cache. Paths are canonical note paths (see `paths.note_path`)."""

    def search(self, query: str | None, tag: str | None, limit: int) -> SearchResults: ...

    def note(self, path: str) -> NoteDetails: ...

    def backlinks(self, path: str) -> Backlinks: ...

    def stats(self) -> VaultStats: ...

    def orphans(self, limit: int) -> Orphans: ...

    def close(self) -> None: ...


def search_service_for(settings: Settings, *, remote: bool) -> SearchService:
    """The shadow cache on DATABASE_URL, or the HTTP one that calls FILE_SERVICE_URL."""
    if remote:
        from weavenn_cli.runtime.search.remote import RemoteSearchService

        return RemoteSearchService(settings.file_service_url, settings)
    from weavenn_cli.runtime.db.engine import make_engine, session_factory
    from weavenn_cli.runtime.search.local import CacheSearchService

    engine = make_engine(settings.database_url, pool_size=DATABASE_POOL_SIZE, max_overflow=0)
    return CacheSearchService(session_factory(engine))
