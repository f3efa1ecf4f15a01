"""The services a process holds, handed to the routes (dependency injection, as the design says).

`create_app` puts one `Services` on `app.state`; routes ask for what they need. Which
implementation sits behind each interface is decided once, in `create_app`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from fastapi import Request

from weavenn_cli.runtime.files.service import FileService
from weavenn_cli.runtime.git.repository import GitRepository
from weavenn_cli.runtime.search.service import SearchService
from weavenn_cli.runtime.tasks.service import TaskService


@dataclass
class Services:
    tasks: TaskService | None = None
    files: FileService | None = None
    git: GitRepository | None = None
    search: SearchService | None = None

    async def aclose(self) -> None:
        if self.tasks is not None:
            await self.tasks.aclose()

    def close(self) -> None:
        for service in (self.tasks, self.files, self.search):
            if service is not None:
                service.close()


def _services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


# A router is only mounted where its service exists (see `create_app`), so these are set.
# Coroutines, because FastAPI runs a plain function dependency in its thread pool: a hand-off
# that costs more than these lookups.
async def tasks(request: Request) -> TaskService:
    return cast(TaskService, _services(request).tasks)


async def files(request: Request) -> FileService:
    return cast(FileService, _services(request).files)


async def git(request: Request) -> GitRepository:
    return cast(GitRepository, _services(request).git)


async def search(request: Request) -> SearchService:
    return cast(SearchService, _services(request).search)


async def user_id(request: Request) -> str | None:
    """Who is asking, for the events a write records (X-User-Id)."""
    return request.headers.get("x-user-id") or None
