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
from weavenn_cli.runtime.problems import ServiceUnavailable
from weavenn_cli.runtime.tasks.service import TaskService


@dataclass
class Services:
    tasks: TaskService | None = None
    files: FileService | None = None
    git: GitRepository | None = None

    def close(self) -> None:
        for service in (self.tasks, self.files):
            if service is not None:
                service.close()


def _services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


def tasks(request: Request) -> TaskService:
    service = _services(request).tasks
    if service is None:
        raise ServiceUnavailable("this process does not serve tasks")
    return service


def files(request: Request) -> FileService:
    service = _services(request).files
    if service is None:
        raise ServiceUnavailable("this process does not serve files")
    return service


def git(request: Request) -> GitRepository:
    service = _services(request).git
    if service is None:
        raise ServiceUnavailable("this process does not serve git")
    return service


def user_id(request: Request) -> str | None:
    """Who is asking, for the events a write records (X-User-Id)."""
    return request.headers.get("x-user-id") or None
