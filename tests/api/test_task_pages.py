"""The task list's fast path answers byte for byte what validating and dumping models would."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select, text

from tests.support import drop_pg_database
from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.db.models import Task as TaskRow
from weavenn_cli.runtime.tasks.local import DatabaseTaskService
from weavenn_cli.runtime.tasks.models import (
    TASK_PAGE,
    Task,
    TaskCreate,
    TaskPage,
    TaskPatch,
    TaskQuery,
)
from weavenn_cli.runtime.tasks.pages import DatabaseUnreachable
from weavenn_cli.runtime.tasks.service import task_service_for

WINTER = timezone(timedelta(hours=1))


@pytest.fixture
def service(any_migrated_url: str) -> Iterator[DatabaseTaskService]:
    yield from _service_with_tasks(any_migrated_url)


@pytest.fixture
def pg_service(migrated_pg_url: str) -> Iterator[DatabaseTaskService]:
    yield from _service_with_tasks(migrated_pg_url)


def _service_with_tasks(url: str) -> Iterator[DatabaseTaskService]:
    tasks = task_service_for(Settings(database_url=url), remote=False)
    assert isinstance(tasks, DatabaseTaskService)
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    rows = [
        {
            "id": f"task-{i:02d}",
            "project_id": "p1" if i % 2 else "p2",
            "title": f'Tâche {i} « "quoted" \\ » \u2028 \x7f \t line',
            "status": "done" if i % 3 == 0 else "todo",
            "due_date": None if i % 4 == 0 else (start + timedelta(days=i)).astimezone(WINTER),
            # Rows written by older tools: NULL tags and a NULL flag read as empty and false.
            "completed": None if i == 5 else i % 3 == 0,
            "created_at": start + timedelta(minutes=i, microseconds=0 if i % 2 else 1234),
            "updated_at": start + timedelta(minutes=i),
            "tags": None if i == 7 else ["ops", f"t{i % 3}"],
        }
        for i in range(12)
    ]
    # Tags whose JSON holds what PostgreSQL's page could get wrong: `", "` inside a tag, a
    # tag ending in `", ` (written by an older tool: the API strips it) or in a backslash.
    rows[9]["tags"] = ["ops", 'mid", "dle', 'ends in ", ', "back\\", "\u00e9\n"]
    rows[11]["tags"] = ['x", "y', "ops"]
    with tasks.sessions.begin() as session:
        session.execute(insert(TaskRow), rows)
    yield tasks
    tasks.close()


def _through_models(service: DatabaseTaskService, query: TaskQuery) -> bytes:
    """The reference: ORM rows, `Task` models, pydantic's JSON (what the API answered before)."""
    with service.sessions() as session:
        rows = session.scalars(select(TaskRow)).all()
    tasks = [
        Task.model_validate(
            {
                **{column: getattr(row, column) for column in Task.model_fields},
                "tags": row.tags or [],
                "completed": bool(row.completed),
            }
        )
        for row in rows
    ]
    if query.project_id is not None:
        tasks = [task for task in tasks if task.project_id == query.project_id]
    if query.tag is not None:
        tasks = [task for task in tasks if query.tag in task.tags]
    tasks.sort(key=lambda task: (task.created_at, task.id), reverse=True)
    page = tasks[query.offset : query.offset + query.limit]
    more = len(tasks) > query.offset + query.limit
    next_offset = query.offset + query.limit if more else None
    return TASK_PAGE.dump_json(
        TaskPage(items=page, limit=query.limit, offset=query.offset, next_offset=next_offset)
    )


@pytest.mark.parametrize(
    "query",
    [TaskQuery(), TaskQuery(limit=5, offset=3), TaskQuery(project_id="p1", tag="ops", limit=2)],
    ids=["first page", "middle page", "filtered"],
)
def test_list_json_is_the_models_json(service: DatabaseTaskService, query: TaskQuery) -> None:
    assert service.list_json(query) == _through_models(service, query)
    assert TASK_PAGE.dump_json(service.list(query)) == service.list_json(query)


async def _pages(service: DatabaseTaskService, queries: list[TaskQuery]) -> list[bytes]:
    try:
        # Several times each: psycopg prepares a statement on its fifth execution.
        return [await service.list_page(query) for query in queries for _ in range(6)]
    finally:
        await service.aclose()


QUERIES = [
    TaskQuery(),
    TaskQuery(limit=5, offset=3),
    TaskQuery(project_id="p1", tag="ops", limit=2),
    TaskQuery(limit=3, offset=10),
    TaskQuery(offset=50),
    TaskQuery(tag="nowhere"),
]


def test_the_apis_page_is_the_models_json(service: DatabaseTaskService) -> None:
    """What the API answers (built by PostgreSQL there, by orjson on SQLite) is the models'."""
    assert (service.pages is not None) == (service.reads.dialect.name == "postgresql")
    pages = asyncio.run(_pages(service, QUERIES))
    expected = [_through_models(service, query) for query in QUERIES for _ in range(6)]
    assert pages == expected


def test_the_page_follows_every_writer(service: DatabaseTaskService) -> None:
    """Writes through the API's service, plain SQL (another tool, a dual-write mirror) and
    deletes show in the next page: on PostgreSQL each task's JSON is regenerated on write."""
    service.update("task-03", TaskPatch(title='renamed "again"', tags=["new"], completed=False))
    with service.sessions.begin() as session:
        session.execute(
            text("UPDATE tasks SET due_date = NULL, tags = NULL, status = 'done' WHERE id = :id"),
            {"id": "task-08"},
        )
    service.delete("task-10")
    pages = asyncio.run(_pages(service, QUERIES))
    expected = [_through_models(service, query) for query in QUERIES for _ in range(6)]
    assert pages == expected
    assert b'renamed \\"again\\"' in pages[0] and b"task-10" not in pages[0]


async def _page_across_a_restart(service: DatabaseTaskService) -> tuple[bytes, bytes]:
    assert service.pages is not None
    try:
        before = await service.list_page(TaskQuery())
        # What a server restart does to the reader's idle connections.
        with service.reads.connect() as connection:
            connection.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        after = await service.list_page(TaskQuery())
        await service.create_async(TaskCreate(title="after the cut", project_id="p1"))
        return before, after
    finally:
        await service.aclose()


def test_the_page_reader_comes_back_after_its_connections_are_cut(
    pg_service: DatabaseTaskService,
) -> None:
    before, after = asyncio.run(_page_across_a_restart(pg_service))
    assert after == before
    assert b"after the cut" in asyncio.run(_pages(pg_service, [TaskQuery(limit=1)]))[0]


def test_a_database_url_written_for_libpq_serves_pages(migrated_pg_url: str) -> None:
    """libpq's client-side parameters (asyncpg would send them on as server settings, which
    PostgreSQL refuses) are left out; the timeout is kept, server settings pass."""
    url = f"{migrated_pg_url}?connect_timeout=7&keepalives=1&application_name=weavenn-pages"
    tasks = task_service_for(Settings(database_url=url), remote=False)
    assert isinstance(tasks, DatabaseTaskService) and tasks.pages is not None
    assert tasks.pages.connect_timeout == 7.0
    assert "connect_timeout" not in tasks.pages.dsn and "keepalives" not in tasks.pages.dsn
    try:
        page = asyncio.run(_pages(tasks, [TaskQuery()]))[0]
    finally:
        tasks.close()
    assert page.startswith(b'{"items":[]') and b'"next_offset":null' in page


def test_concurrent_pages_and_creates_share_database_pool_size_connections(
    migrated_pg_url: str,
) -> None:
    """Twelve requests at once on a pool of two: all answered, on two connections."""
    application = "weavenn-pool-of-two"
    url = f"{migrated_pg_url}?application_name={application}"
    tasks = task_service_for(Settings(database_url=url, database_pool_size=2), remote=False)
    assert isinstance(tasks, DatabaseTaskService)

    async def at_once() -> tuple[list[object], int]:
        try:
            created = [
                tasks.create_async(TaskCreate(title=f"pooled {i}", project_id="p"))
                for i in range(4)
            ]
            pages = [tasks.list_page(TaskQuery(limit=10)) for _ in range(8)]
            answers = await asyncio.gather(*created, *pages)
            with tasks.reads.connect() as connection:
                backends = connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE application_name = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": application},
                )
            return answers, int(backends or 0)
        finally:
            await tasks.aclose()

    try:
        answers, backends = asyncio.run(at_once())
    finally:
        tasks.close()
    assert backends == 2
    assert all(isinstance(page, bytes) and page.startswith(b'{"items":[') for page in answers[4:])
    assert {task.title for task in answers[:4]} == {f"pooled {i}" for i in range(4)}  # type: ignore[attr-defined]


def test_a_database_that_went_away_is_unreachable_not_an_error(
    pg_service: DatabaseTaskService, migrated_pg_url: str
) -> None:
    """Dropped under the service (no such database at the next connect): 503, not 500."""
    drop_pg_database(migrated_pg_url.rsplit("/", 1)[1])
    with pytest.raises(DatabaseUnreachable, match="does not exist"):
        asyncio.run(_pages(pg_service, [TaskQuery()]))
    with pytest.raises(DatabaseUnreachable):
        asyncio.run(pg_service.create_async(TaskCreate(title="nowhere", project_id="p")))
