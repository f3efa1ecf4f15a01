"""`/files`: notes of the vault, whichever implementation stores them."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from weavenn_cli.runtime.api import deps
from weavenn_cli.runtime.files.errors import ConfirmationRequired
from weavenn_cli.runtime.files.notes import Note, NoteList, check_frontmatter
from weavenn_cli.runtime.files.paths import note_path
from weavenn_cli.runtime.files.service import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, FileService

Files = Annotated[FileService, Depends(deps.files)]


class NoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    content: str = ""
    frontmatter: dict[str, Any] = Field(default_factory=dict)


class NoteReplace(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = ""
    frontmatter: dict[str, Any] = Field(default_factory=dict)


class NotePatch(BaseModel):
    """`content` replaces the body when sent; `frontmatter` is merged (null removes a key)."""

    model_config = ConfigDict(extra="forbid")

    content: str | None = None
    frontmatter: dict[str, Any] = Field(default_factory=dict)


router = APIRouter(prefix="/files", tags=["files"])


@router.get("", response_model=NoteList)
def list_files(
    service: Files,
    pattern: Annotated[str, Query(max_length=500)] = "*",
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = DEFAULT_LIST_LIMIT,
) -> NoteList:
    return service.list(pattern, limit)


@router.post("", response_model=Note, status_code=status.HTTP_201_CREATED)
def create_file(body: NoteCreate, service: Files, response: Response) -> Note:
    note = service.create(note_path(body.path), body.content, check_frontmatter(body.frontmatter))
    response.headers["Location"] = "/files/" + quote(note.path, safe="/")
    return note


@router.get("/{path:path}", response_model=Note)
def read_file(path: str, service: Files) -> Note:
    return service.read(note_path(path))


@router.put("/{path:path}", response_model=Note)
def replace_file(path: str, body: NoteReplace, service: Files) -> Note:
    return service.replace(note_path(path), body.content, check_frontmatter(body.frontmatter))


@router.patch("/{path:path}", response_model=Note)
def patch_file(path: str, body: NotePatch, service: Files) -> Note:
    return service.patch(note_path(path), body.content, check_frontmatter(body.frontmatter))


@router.delete("/{path:path}", status_code=status.HTTP_204_NO_CONTENT)
def delete_file(path: str, service: Files, confirm: bool = False) -> None:
    canonical = note_path(path)
    if not confirm:
        raise ConfirmationRequired(f"deleting {canonical} needs ?confirm=true")
    service.delete(canonical)
