"""Creating a task writes the task and its `task.created` event together, or neither."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.db.models import OutboxMessage
from weavenn_cli.runtime.db.models import Task as TaskRow
from weavenn_cli.runtime.events import TaskEvent
from weavenn_cli.runtime.tasks.local import DatabaseTaskService
from weavenn_cli.runtime.tasks.models import TaskCreate
from weavenn_cli.runtime.tasks.service import task_service_for


@pytest.fixture
def service(any_migrated_url: str) -> Iterator[DatabaseTaskService]:
    tasks = task_service_for(Settings(database_url=any_migrated_url), remote=False)
    assert isinstance(tasks, DatabaseTaskService)
    yield tasks
    tasks.close()


def _outbox(service: DatabaseTaskService) -> list[OutboxMessage]:
    with service.sessions() as session:
        return list(session.scalars(sa.select(OutboxMessage)).all())


def test_create_writes_the_task_and_its_event(service: DatabaseTaskService) -> None:
    due = datetime(2026, 12, 24, 18, 30, tzinfo=timezone(timedelta(hours=2)))
    data = TaskCreate(
        title="  Wrap presents ", project_id="home", due_date=due, tags=["q4"], status="done"
    )

    task = service.create(data, user_id="alice")

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


def test_no_task_without_its_event(service: DatabaseTaskService) -> None:
    _refuse_events(service)

    with pytest.raises(sa.exc.DBAPIError):
        service.create(TaskCreate(title="Lost", project_id="home"), user_id=None)

    with service.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(TaskRow)) == 0
    assert _outbox(service) == []
