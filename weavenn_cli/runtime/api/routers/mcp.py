"""The MVP's MCP endpoints, kept on the monolith so old clients work during the migration.

Each one takes the tool-call style JSON body of the MVP and answers exactly what its new
counterpart answers (same status, same body, same errors), because it calls the same code.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from weavenn_cli.runtime.api.routers import files as file_routes
from weavenn_cli.runtime.api.routers import search as search_routes
from weavenn_cli.runtime.api.routers import tasks as task_routes
from weavenn_cli.runtime.files.notes import Note, NoteList
from weavenn_cli.runtime.files.service import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT
from weavenn_cli.runtime.search.service import (
    DEFAULT_SEARCH_LIMIT,
    MAX_QUERY_LENGTH,
    MAX_SEARCH_LIMIT,
    MAX_TAG_LENGTH,
    SearchResults,
)
from weavenn_cli.runtime.tasks.models import (
    MAX_PAGE,
    SortKey,
    Task,
    TaskCreate,
    TaskPage,
    TaskPatch,
    TaskQuery,
    TaskStatus,
)

router = APIRouter(prefix="/mcp", tags=["legacy MCP (MVP)"])


class NotePathBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str


class NoteUpdateBody(file_routes.NotePatch):
    path: str


class ListNotesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: Annotated[str, Field(max_length=500)] = "*"
    limit: Annotated[int, Field(ge=1, le=MAX_LIST_LIMIT)] = DEFAULT_LIST_LIMIT


class SearchNotesBody(BaseModel):
    """`/search`'s parameters as a tool-call body; the words are `query`, spelled out like the
    fields of the other MCP bodies."""

    model_config = ConfigDict(extra="forbid")

    query: Annotated[str | None, Field(max_length=MAX_QUERY_LENGTH)] = None
    tag: Annotated[str | None, Field(max_length=MAX_TAG_LENGTH)] = None
    limit: Annotated[int, Field(ge=1, le=MAX_SEARCH_LIMIT)] = DEFAULT_SEARCH_LIMIT


class ListTasksBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_id: str | None = None
    status: TaskStatus | None = None
    tag: str | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 50
    offset: Annotated[int, Field(ge=0)] = 0
    sort: SortKey = "-created_at"


class TaskIdBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_id: str


@router.post("/create_note", response_model=Note, status_code=status.HTTP_201_CREATED)
def create_note(
    body: file_routes.NoteCreate, service: file_routes.Files, response: Response
) -> Note:
    return file_routes.create_file(body, service, response)


@router.post("/read_note", response_model=Note)
def read_note(body: NotePathBody, service: file_routes.Files) -> Note:
    return file_routes.read_file(body.path, service)


@router.post("/update_note", response_model=Note)
def update_note(body: NoteUpdateBody, service: file_routes.Files) -> Note:
    patch = file_routes.NotePatch(content=body.content, frontmatter=body.frontmatter)
    return file_routes.patch_file(body.path, patch, service)


@router.post("/delete_note", status_code=status.HTTP_204_NO_CONTENT)
def delete_note(body: NotePathBody, service: file_routes.Files) -> None:
    # The MVP's clients cannot know about ?confirm=true: the call itself is their intent.
    file_routes.delete_file(body.path, service, confirm=True)


@router.post("/list_notes", response_model=NoteList)
def list_notes(body: ListNotesBody, service: file_routes.Files) -> NoteList:
    return file_routes.list_files(service, body.pattern, body.limit)


@router.post("/search_notes", response_model=SearchResults)
def search_notes(body: SearchNotesBody, service: search_routes.Search) -> SearchResults:
    return search_routes.search_notes(service, body.query, body.tag, body.limit)


@router.post("/list_tasks", response_model=TaskPage)
async def list_tasks(body: ListTasksBody, service: task_routes.Tasks) -> Response:
    return await task_routes.page_response(service, TaskQuery(**body.model_dump()))


@router.post("/create_task", response_model=Task, status_code=status.HTTP_201_CREATED)
def create_task(
    body: TaskCreate,
    service: task_routes.Tasks,
    user: task_routes.UserId,
    response: Response,
) -> Task:
    task = service.create(body, user_id=user)
    response.headers["Location"] = f"/tasks/{task.id}"
    return task


@router.post("/complete_task", response_model=Task)
def complete_task(body: TaskIdBody, service: task_routes.Tasks, user: task_routes.UserId) -> Task:
    return task_routes.update_task(body.task_id, TaskPatch(completed=True), service, user)
