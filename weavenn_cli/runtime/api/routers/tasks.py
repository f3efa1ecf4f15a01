"""`/v1/tasks`, `/v2/tasks` and `/tasks` (the current version, v2).

v1 is the design's first API (title, project_id) and stays readable for every task, whatever
version wrote it; its answers announce the deprecation (RFC 9745 `Deprecation`, RFC 8594
`Sunset`) and link to v2.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Annotated, cast
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import QueryParams
from starlette.routing import Match, Route
from starlette.types import Scope

from weavenn_cli.runtime.api import deps
from weavenn_cli.runtime.memo import kept_when_small
from weavenn_cli.runtime.tasks.models import (
    MAX_PAGE,
    TASK_QUERY,
    SortKey,
    Task,
    TaskCreate,
    TaskCreateV1,
    TaskPage,
    TaskPageV1,
    TaskPatch,
    TaskPatchV1,
    TaskQuery,
    TaskStatus,
    TaskV1,
    task_query_parameters,
)
from weavenn_cli.runtime.tasks.service import TaskService

V1_DEPRECATED_AT = datetime(2026, 12, 1, tzinfo=UTC)
V1_SUNSET_AT = datetime(2027, 6, 1, tzinfo=UTC)

# Longer list query strings are validated every time rather than kept (`list_query`).
MAX_KEPT_QUERY_BYTES = 512
Tasks = Annotated[TaskService, Depends(deps.tasks)]
UserId = Annotated[str | None, Depends(deps.user_id)]


async def task_query(
    project_id: str | None = None,
    status: TaskStatus | None = None,
    tag: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    sort: SortKey = "-created_at",
) -> TaskQuery:
    return TaskQuery(
        project_id=project_id, status=status, tag=tag, limit=limit, offset=offset, sort=sort
    )


Query_ = Annotated[TaskQuery, Depends(task_query)]


async def list_tasks(request: Request) -> Response:
    """The busiest route: its query string is validated in one call, not parameter by
    parameter through FastAPI's dependencies (which cost more than the rest of the route);
    the OpenAPI document still lists the parameters (`task_query_parameters`)."""
    query = list_query(request.scope["query_string"])
    return await page_response(cast(TaskService, request.app.state.services.tasks), query)


@kept_when_small(len, MAX_KEPT_QUERY_BYTES)
def list_query(query_string: bytes) -> TaskQuery:
    """A list's query string, validated once per distinct short string (clients repeat
    theirs); an invalid one is never kept and fails every time."""
    try:
        return TASK_QUERY.validate_python(dict(QueryParams(query_string)))
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in error.errors(include_url=False)]
        ) from None


async def page_response(service: TaskService, query: TaskQuery) -> Response:
    # Serialised once by the service (by PostgreSQL itself there); `response_model` still
    # documents the shape.
    return Response(await service.list_page(query), media_type="application/json")


async def create_task(body: TaskCreate, service: Tasks, user: UserId, request: Request) -> Response:
    task = await service.create_async(body, user_id=user)
    return Response(
        task.model_dump_json(),
        status_code=status.HTTP_201_CREATED,
        headers={"Location": f"{request.url.path}/{task.id}"},
        media_type="application/json",
    )


def get_task(task_id: str, service: Tasks) -> Task:
    return service.get(task_id)


def update_task(task_id: str, body: TaskPatch, service: Tasks, user: UserId) -> Task:
    return service.update(task_id, body, user_id=user)


def delete_task(task_id: str, service: Tasks, user: UserId) -> None:
    service.delete(task_id, user_id=user)


class ListRoute(Route):
    """`GET` of a task list as a plain Starlette route, placed before FastAPI's routes.

    FastAPI's handling of a route (its dependency solving, even for a lone `Request`) costs
    a list request more CPU than the rest of its routing; the `APIRoute` of the same path
    stays for the OpenAPI document and for the other methods. The route is in the scope as
    FastAPI's are, for the metrics' endpoint label.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def list_route(prefix: str) -> ListRoute:
    return ListRoute(prefix, list_tasks, methods=["GET"], include_in_schema=False)


def current_router(prefix: str) -> APIRouter:
    """The v2 API, mounted at `/v2/tasks` and at `/tasks`."""
    router = APIRouter(prefix=prefix, tags=["tasks"])
    router.add_api_route(
        "",
        list_tasks,
        methods=["GET"],
        response_model=TaskPage,
        openapi_extra={"parameters": task_query_parameters()},
    )
    router.add_api_route("", create_task, methods=["POST"], response_model=Task, status_code=201)
    router.add_api_route("/{task_id}", get_task, methods=["GET"], response_model=Task)
    router.add_api_route("/{task_id}", update_task, methods=["PATCH"], response_model=Task)
    router.add_api_route("/{task_id}", delete_task, methods=["DELETE"], status_code=204)
    return router


def announce_deprecation(request: Request, response: Response) -> None:
    # Headers are Latin-1: the path goes back percent-encoded, as clients sent it.
    successor = quote(request.url.path.replace("/v1/", "/v2/", 1), safe="/")
    response.headers["Deprecation"] = f"@{int(V1_DEPRECATED_AT.timestamp())}"
    response.headers["Sunset"] = format_datetime(V1_SUNSET_AT, usegmt=True)
    response.headers["Link"] = f'<{successor}>; rel="successor-version"'


def v1_router() -> APIRouter:
    router = APIRouter(
        prefix="/v1/tasks",
        tags=["tasks v1 (deprecated)"],
        deprecated=True,
        dependencies=[Depends(announce_deprecation)],
    )

    @router.get("", response_model=TaskPageV1)
    def list_tasks_v1(service: Tasks, query: Query_) -> TaskPage:
        return service.list(query)

    @router.post("", response_model=TaskV1, status_code=status.HTTP_201_CREATED)
    def create_task_v1(
        body: TaskCreateV1, service: Tasks, user: UserId, request: Request, response: Response
    ) -> Task:
        task = service.create(TaskCreate(**body.model_dump()), user_id=user)
        response.headers["Location"] = f"{request.url.path}/{task.id}"
        return task

    @router.get("/{task_id}", response_model=TaskV1)
    def get_task_v1(task_id: str, service: Tasks) -> Task:
        return service.get(task_id)

    @router.patch("/{task_id}", response_model=TaskV1)
    def update_task_v1(task_id: str, body: TaskPatchV1, service: Tasks, user: UserId) -> Task:
        patch = TaskPatch(**body.model_dump(exclude_unset=True))
        return service.update(task_id, patch, user_id=user)

    @router.delete("/{task_id}", status_code=status.HTTP_204_NO_CONTENT)
    def delete_task_v1(task_id: str, service: Tasks, user: UserId) -> None:
        service.delete(task_id, user_id=user)

    return router
