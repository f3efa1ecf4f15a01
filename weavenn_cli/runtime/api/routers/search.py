"""`/search`, `/notes/...` and `/graph/stats`: the vault's shadow cache, read-only.

`/notes/orphans` and `/notes/{path}/backlinks` are declared before `/notes/{path}`, which would
otherwise take them as note paths; a note named `orphans.md` is still `/notes/orphans.md`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from weavenn_cli.runtime.api import deps
from weavenn_cli.runtime.files.paths import note_path
from weavenn_cli.runtime.search.service import (
    DEFAULT_ORPHANS_LIMIT,
    DEFAULT_SEARCH_LIMIT,
    MAX_ORPHANS_LIMIT,
    MAX_QUERY_LENGTH,
    MAX_SEARCH_LIMIT,
    MAX_TAG_LENGTH,
    Backlinks,
    Orphans,
    SearchResults,
    SearchService,
)
from weavenn_cli.runtime.vault.queries import NoteDetails, VaultStats

Search = Annotated[SearchService, Depends(deps.search)]

router = APIRouter(tags=["search"])


@router.get("/search", response_model=SearchResults)
def search_notes(
    service: Search,
    q: Annotated[
        str | None,
        Query(
            max_length=MAX_QUERY_LENGTH,
            description='Words (all must match), "a phrase", OR, -word; best match first.',
        ),
    ] = None,
    tag: Annotated[
        str | None,
        Query(max_length=MAX_TAG_LENGTH, description="Only notes with this tag or a nested one."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SEARCH_LIMIT)] = DEFAULT_SEARCH_LIMIT,
) -> SearchResults:
    return service.search(q, tag, limit)


@router.get("/graph/stats", response_model=VaultStats)
def graph_stats(service: Search) -> VaultStats:
    return service.stats()


@router.get("/notes/orphans", response_model=Orphans)
def orphan_notes(
    service: Search,
    limit: Annotated[int, Query(ge=1, le=MAX_ORPHANS_LIMIT)] = DEFAULT_ORPHANS_LIMIT,
) -> Orphans:
    return service.orphans(limit)


@router.get("/notes/{path:path}/backlinks", response_model=Backlinks)
def note_backlinks(path: str, service: Search) -> Backlinks:
    return service.backlinks(note_path(path))


@router.get("/notes/{path:path}", response_model=NoteDetails)
def note_metadata(path: str, service: Search) -> NoteDetails:
    return service.note(note_path(path))
