"""Creating a task writes the task and its `task.created` event together, or neither."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import psycopg
import pytest
import sqlalchemy as sa

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.db.models import OutboxMessage
from weavenn_cli.runtime.db.models import Task as TaskRow
from weavenn_cli.runtime.events import TaskEvent
from weavenn_cli.runtime.tasks.local import DatabaseTaskService
from weavenn_cli.runtime.tasks.models import Task, TaskCreate
from weavenn_cli.runtime.tasks.service import task_service_for


@pytest.fixture
def service(any_migrated_url: str) -> Iterator[DatabaseTaskService]:
    tasks = task_service_for(Settings(database_url=any_migrated_url), remote=False)
    assert isinstance(tasks, DatabaseTaskService)
    yield tasks
    tasks.close()


def _create(service: DatabaseTaskService, how: str, data: TaskCreate, user_id: str | None) -> Task:
    """Through `create` (v1, the CLI) or `create_async` (the v2 API, on asyncio on PostgreSQL)."""
    if how == "sync":
        return service.create(data, user_id=user_id)

    async def create() -> Task:
        try:
            return await service.create_async(data, user_id=user_id)
        finally:
            await service.aclose()

    return asyncio.run(create())


HOW = pytest.mark.parametrize("how", ["sync", "async"])


def _outbox(service: DatabaseTaskService) -> list[OutboxMessage]:
    with service.sessions() as session:
        return list(session.scalars(sa.select(OutboxMessage)).all())


@HOW
def test_create_writes_the_task_and_its_event(service: DatabaseTaskService, how: str) -> None:
    due = datetime(2026, 12, 24, 18, 30, tzinfo=timezone(timedelta(hours=2)))
    data = TaskCreate(
        title="  Wrap presents ", project_id="home", due_date=due, tags=["q4"], status="done"
    )

    task = _create(service, how, data, "alice")

    assert (task.title, task.status, task.completed, task.tags) == (
        "Wrap presents",
        "done",
        True,
        ["q4"],
    )
    assert task.due_date == due and task.due_date.tzinfo == UTC
    assert service.get(task.id) == task
    [message] = _outbox(service)
    assert message.routing_key == "task.created"
    assert message.headers == {"source": "task-service"}
    event = TaskEvent.model_validate_json(message.payload)
    assert (event.task_id, event.project_id, event.user_id) == (task.id, "home", "alice")
    assert event.task == json.loads(task.model_dump_json())


def _refuse_events(service: DatabaseTaskService) -> None:
    """Make every insert into the outbox fail, as a full disk or a lost connection would."""
    engine = service.sessions.kw["bind"]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "ALTER TABLE outbox ADD CONSTRAINT refuse_events CHECK (false) NOT VALID"
            )
        else:
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse_events BEFORE INSERT ON outbox "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )


@HOW
def test_no_task_without_its_event(service: DatabaseTaskService, how: str) -> None:
    _refuse_events(service)

    # The async create runs on asyncpg, the others through SQLAlchemy or psycopg.
    with pytest.raises((sa.exc.DBAPIError, psycopg.Error, asyncpg.PostgresError)):
        _create(service, how, TaskCreate(title="Lost", project_id="home"), None)

    with service.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(TaskRow)) == 0
    assert _outbox(service) == []
