"""Tasks through the extracted task service's HTTP API (TASK_SERVICE_URL)."""

from __future__ import annotations

from functools import partial
from urllib.parse import quote

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.remote import ServiceClient
from weavenn_cli.runtime.tasks.models import (
    TASK_PAGE,
    Task,
    TaskCreate,
    TaskPage,
    TaskPatch,
    TaskQuery,
)
from weavenn_cli.runtime.tasks.service import in_database_thread


class RemoteTaskService:
    """The same interface as the database implementation, over `/v2/tasks`."""

    def __init__(self, base_url: str, settings: Settings) -> None:
        self.client = ServiceClient(base_url, settings)

    def create(self, data: TaskCreate, *, user_id: str | None = None) -> Task:
        body = data.model_dump(mode="json")
        response = self.client.call("POST", "/v2/tasks", json=body, user_id=user_id)
        return Task.model_validate(response.json())

    async def create_async(self, data: TaskCreate, *, user_id: str | None = None) -> Task:
        return await in_database_thread(partial(self.create, data, user_id=user_id))

    def get(self, task_id: str) -> Task:
        return Task.model_validate(self.client.call("GET", _path(task_id)).json())

    def list(self, query: TaskQuery) -> TaskPage:
        params = {name: value for name, value in vars(query).items() if value is not None}
        return TaskPage.model_validate(self.client.call("GET", "/v2/tasks", params=params).json())

    def list_json(self, query: TaskQuery) -> bytes:
        return TASK_PAGE.dump_json(self.list(query))

    async def list_page(self, query: TaskQuery) -> bytes:
        return await in_database_thread(partial(self.list_json, query))

    def update(self, task_id: str, patch: TaskPatch, *, user_id: str | None = None) -> Task:
        body = patch.model_dump(mode="json", exclude_unset=True)
        response = self.client.call("PATCH", _path(task_id), json=body, user_id=user_id)
        return Task.model_validate(response.json())

    def delete(self, task_id: str, *, user_id: str | None = None) -> None:
        self.client.call("DELETE", _path(task_id), user_id=user_id)

    async def aclose(self) -> None:
        pass

    def close(self) -> None:
        self.client.close()


def _path(task_id: str) -> str:
    return f"/v2/tasks/{quote(task_id, safe='')}"
