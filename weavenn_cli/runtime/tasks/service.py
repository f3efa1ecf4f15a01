"""The task service interface, and the one place that picks its implementation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol, TypeVar

from weavenn_cli.runtime.problems import NotFound
from weavenn_cli.runtime.tasks.models import Task, TaskCreate, TaskPage, TaskPatch, TaskQuery

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from weavenn_cli.runtime.config import Settings
    from weavenn_cli.runtime.migration.dual_write import DualWriter


# The blocking routes (get, update, delete; every route on SQLite) and their threads.
THREADED_POOL_SIZE = 20
# A pooled connection unused for this long is checked before a request gets it.
PING_AFTER_IDLE_SECONDS = 1.0
T = TypeVar("T")
# As many threads as pooled connections: more could only wait for a connection.
DATABASE_THREADS = ThreadPoolExecutor(THREADED_POOL_SIZE, thread_name_prefix="weavenn-db")


async def in_database_thread(call: Callable[[], T]) -> T:
    """Run a blocking database call off the event loop, on the threads kept for that.

    The busiest routes use this instead of FastAPI's thread pool for plain functions:
    asyncio's executor hands the call over for about half the CPU time.
    """
    return await asyncio.get_running_loop().run_in_executor(DATABASE_THREADS, call)


class TaskNotFound(NotFound):
    code = "TASK_NOT_FOUND"


class TaskService(Protocol):
    """Create, read, list, update and delete tasks. `user_id` is who asked (for the event)."""

    def create(self, data: TaskCreate, *, user_id: str | None = None) -> Task: ...

    async def create_async(self, data: TaskCreate, *, user_id: str | None = None) -> Task:
        """`create` for the event loop: the API's create awaits this."""
        ...

    def get(self, task_id: str) -> Task: ...

    def list(self, query: TaskQuery) -> TaskPage: ...

    def list_json(self, query: TaskQuery) -> bytes:
        """The same page as `list`, as the JSON the API answers."""
        ...

    async def list_page(self, query: TaskQuery) -> bytes:
        """`list_json` for the event loop: the API's list awaits this."""
        ...

    def update(self, task_id: str, patch: TaskPatch, *, user_id: str | None = None) -> Task: ...

    def delete(self, task_id: str, *, user_id: str | None = None) -> None: ...

    async def aclose(self) -> None:
        """Release what lives on the event loop (before `close`, on the same loop)."""
        ...

    def close(self) -> None: ...


def task_service_for(settings: Settings, *, remote: bool) -> TaskService:
    """The database implementation, or the HTTP one that calls TASK_SERVICE_URL."""
    if remote:
        from weavenn_cli.runtime.tasks.remote import RemoteTaskService

        return RemoteTaskService(settings.task_service_url, settings)
    import orjson

    from weavenn_cli.runtime.db.engine import make_engine, ping_when_idle, session_factory
    from weavenn_cli.runtime.tasks.local import DatabaseTaskService

    # A fixed pool: SQLAlchemy's default closes every connection beyond 5 when it is returned,
    # so a burst of requests would pay a new PostgreSQL connection per request.
    engine = make_engine(
        settings.database_url,
        pool_size=THREADED_POOL_SIZE,
        max_overflow=0,
        pool_pre_ping=False,
        # Tags are JSON: every listed task parses some, and orjson does it several times faster.
        json_deserializer=orjson.loads,
    )
    if engine.dialect.name != "sqlite":
        ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    pages = None
    if engine.dialect.name == "postgresql":
        from weavenn_cli.runtime.tasks.pages import PageReader, asyncpg_dsn

        dsn, connect_timeout = asyncpg_dsn(engine.url)
        pages = PageReader(dsn, settings.database_pool_size, connect_timeout)
    return DatabaseTaskService(session_factory(engine), _dual_writer(settings, engine), pages)


def _dual_writer(settings: Settings, engine: Engine) -> DualWriter | None:
    """The mirror to SECONDARY_DATABASE_URL for the migration; none when it is not set."""
    if settings.secondary_database_url is None:
        return None
    from weavenn_cli.runtime.migration.dual_write import DualWriter

    return DualWriter(
        engine, settings.secondary_database_url, default_enabled=settings.dual_write_enabled
    )
