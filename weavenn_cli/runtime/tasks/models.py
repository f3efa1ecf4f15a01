"""What a task looks like on the wire, per API version, and what a list query asks for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
)

TaskStatus = Literal["todo", "in_progress", "done", "cancelled"]
DONE = "done"
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
ProjectId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Tags = Annotated[list[Tag], Field(max_length=50)]

SORT_FIELDS = ("created_at", "updated_at", "due_date", "title", "status")
SortKey = Literal[
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "due_date",
    "-due_date",
    "title",
    "-title",
    "status",
    "-status",
]
MAX_PAGE = 500


class TaskV1(BaseModel):
    """A task as v1 clients know it (the design's v1: id, title, project_id)."""

    id: str
    project_id: str
    title: str


class Task(TaskV1):
    """The whole task: what v2 and every implementation of the service return."""

    model_config = ConfigDict(from_attributes=True)

    status: TaskStatus
    due_date: datetime | None = None
    tags: list[str] = Field(default_factory=list)
    completed: bool = False
    created_at: datetime
    updated_at: datetime

    @field_validator("due_date", "created_at", "updated_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """One spelling of each instant on the wire, whatever zone a client wrote it in."""
        return value.astimezone(UTC) if value is not None and value.tzinfo else value


class TaskCreateV1(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    project_id: ProjectId


class TaskCreate(TaskCreateV1):
    """v2 creation: v1's fields plus the optional ones (old clients keep working)."""

    due_date: AwareDatetime | None = None
    tags: Tags = Field(default_factory=list)
    status: TaskStatus = "todo"
    completed: bool = False


class TaskPatchV1(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    project_id: ProjectId | None = None


class TaskPatch(TaskPatchV1):
    """v2 update: only the fields sent change; `due_date: null` clears the date."""

    due_date: AwareDatetime | None = None
    tags: Tags | None = None
    status: TaskStatus | None = None
    completed: bool | None = None

    def changes(self) -> dict[str, Any]:
        sent = self.model_dump(exclude_unset=True)
        # null means "clear" only where a field can be empty; elsewhere it means "unchanged".
        return {k: v for k, v in sent.items() if v is not None or k == "due_date"}


@dataclass(frozen=True)
class TaskQuery:
    """A list's filters, page and sort; hashable, to key the SQL cached per kind of query."""

    project_id: str | None = None
    status: TaskStatus | None = None
    tag: str | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 50
    offset: Annotated[int, Field(ge=0)] = 0
    sort: SortKey = "-created_at"


# A list's query string, validated in one call (as FastAPI would, parameter by parameter).
TASK_QUERY = TypeAdapter(TaskQuery)


def task_query_parameters() -> list[dict[str, Any]]:
    """The query parameters of a list, for the OpenAPI document."""
    schema = TASK_QUERY.json_schema()
    return [
        {"name": name, "in": "query", "required": False, "schema": field}
        for name, field in schema["properties"].items()
    ]


class TaskPage(BaseModel):
    items: list[Task]
    limit: int
    offset: int
    next_offset: int | None = None


TASK_PAGE = TypeAdapter(TaskPage)


def task_page_json(
    items: list[dict[str, Any]], limit: int, offset: int, next_offset: int | None
) -> bytes:
    """A `TaskPage` as JSON, from tasks given as dicts of `Task`'s fields in its order.

    The same bytes as `TaskPage(...).model_dump_json()` for UTC datetimes (what the database
    returns), written by orjson without building a model per task: a page costs about a
    seventh of validating and dumping 50 models.
    """
    page = {"items": items, "limit": limit, "offset": offset, "next_offset": next_offset}
    return orjson.dumps(page, option=orjson.OPT_UTC_Z)


class TaskPageV1(BaseModel):
    items: list[TaskV1]
    limit: int
    offset: int
    next_offset: int | None = None
