"""Tasks in the database; every write stores its `task.*` event in the outbox, same transaction.

During the database migration, each committed write is then handed to the dual writer, which
mirrors it to the secondary database while the dual-write flag is on.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any, cast

import orjson
from psycopg.types.json import Jsonb
from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    Table,
    bindparam,
    delete,
    exists,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, sessionmaker

from weavenn_cli.runtime.bus.outbox import enqueue
from weavenn_cli.runtime.db.engine import session_scope
from weavenn_cli.runtime.db.models import Task as TaskRow
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.events import TaskEvent, TaskEventType
from weavenn_cli.runtime.memo import kept_when_small
from weavenn_cli.runtime.tasks.models import (
    DONE,
    Task,
    TaskCreate,
    TaskPage,
    TaskPatch,
    TaskQuery,
    task_page_json,
)
from weavenn_cli.runtime.tasks.pages import PageReader, bound, page_bytes
from weavenn_cli.runtime.tasks.service import TaskNotFound, in_database_thread

if TYPE_CHECKING:
    from weavenn_cli.runtime.migration.dual_write import DualWriter, Operation

TASKS = cast(Table, TaskRow.__table__)
COLUMNS = TASKS.c
# A task as a dict of `Task`'s fields; a page of them and the next page's offset.
TaskFields = dict[str, Any]
Page = tuple[list[TaskFields], int | None]
EVENT_HEADERS = {"source": "task-service"}
# Pages filtering on longer texts are bound every time rather than kept (`_stored_json_page`).
MAX_KEPT_FILTER_CHARACTERS = 512


class DatabaseTaskService:
    """The task service on DATABASE_URL (SQLite or PostgreSQL)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        dual_writer: DualWriter | None = None,
        pages: PageReader | None = None,
    ) -> None:
        self.sessions = sessions
        self.dual_writer = dual_writer
        # On PostgreSQL, what answers the API's list (SQLite keeps the thread and `list_json`).
        self.pages = pages
        bind: Engine = sessions.kw["bind"]
        # Reads are one SELECT each: on PostgreSQL they run in autocommit, which spares the
        # BEGIN and ROLLBACK round trips a transaction would add around the query.
        self.reads = (
            bind.execution_options(isolation_level="AUTOCOMMIT")
            if bind.dialect.name == "postgresql"
            else bind
        )

    def create(self, data: TaskCreate, *, user_id: str | None = None) -> Task:
        task = _new_task(data)
        event = _event("task.created", task, user_id)
        if self.reads.dialect.name == "postgresql":
            # One statement, so one transaction and one round trip (autocommit): the task and
            # its event are written together or not at all, with no BEGIN or COMMIT to wait
            # for and none of the ORM's flush, which cost more than the inserts themselves.
            with self.reads.connect() as connection:
                connection.exec_driver_sql(_CREATE_POSTGRES, _create_params(task, event))
        else:
            with session_scope(self.sessions) as session:
                session.add(TaskRow(**task.model_dump()))
                enqueue(session, event, headers=EVENT_HEADERS)
        self._mirror("insert", task)
        return task

    async def create_async(self, data: TaskCreate, *, user_id: str | None = None) -> Task:
        if self.pages is None or self.dual_writer is not None:
            # SQLite, or a mirror to write after the commit: both block, in a thread then.
            return await in_database_thread(functools.partial(self.create, data, user_id=user_id))
        task = _new_task(data)
        params = _create_params(task, _event("task.created", task, user_id))
        await self.pages.write(_CREATE_POSTGRES, _json_as_text(params))
        return task

    def get(self, task_id: str) -> Task:
        with self.reads.connect() as connection:
            row = connection.execute(select(*COLUMNS).where(COLUMNS.id == task_id)).first()
        if row is None:
            raise TaskNotFound(f"task {task_id} not found", task_id=task_id)
        return Task.model_validate(task_fields(row._mapping))

    def list(self, query: TaskQuery) -> TaskPage:
        items, next_offset = self._page(query)
        return TaskPage(
            items=[Task.model_validate(item) for item in items],
            limit=query.limit,
            offset=query.offset,
            next_offset=next_offset,
        )

    def list_json(self, query: TaskQuery) -> bytes:
        # Rows come from our own table through typed columns: nothing to validate.
        items, next_offset = self._page(query)
        return task_page_json(items, query.limit, query.offset, next_offset)

    async def list_page(self, query: TaskQuery) -> bytes:
        if self.pages is None:
            return await in_database_thread(functools.partial(self.list_json, query))
        items = await self.pages.fetch_texts(*_stored_json_page(self.reads.dialect, query))
        return page_bytes(items, int(query.limit), int(query.offset))

    def _page(self, query: TaskQuery) -> Page:
        """The page's tasks as field dicts, and the offset of the next page (None at the end)."""
        # One row more than asked tells whether there is a next page without a COUNT.
        if self.reads.dialect.name == "postgresql":
            rows = self._fetch_postgresql(query)
        else:
            rows = self._fetch(query)
        items = [task_fields(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return items, query.offset + query.limit if more else None

    def _fetch(self, query: TaskQuery) -> Sequence[Mapping[Any, Any]]:
        statement = _page_statement(query, self.reads.dialect.name)
        statement = statement.offset(query.offset).limit(query.limit + 1)
        with self.reads.connect() as connection:
            return connection.execute(statement).mappings().all()

    def _fetch_postgresql(self, query: TaskQuery) -> Sequence[Mapping[Any, Any]]:
        """The hot path of the API: SQL compiled once per kind of query, rows as psycopg
        reads them (typed already: timestamptz, jsonb, boolean), without SQLAlchemy's
        per-value result processing, which costs more than the query itself."""
        sql = _page_sql(self.reads.dialect, _shape(query)) + _limit_offset(query)
        with self.reads.connect() as connection:
            return connection.exec_driver_sql(sql, _page_params(query)).mappings().all()

    def update(self, task_id: str, patch: TaskPatch, *, user_id: str | None = None) -> Task:
        changes = patch.changes()
        with session_scope(self.sessions) as session:
            row = _row(session, task_id, for_update=True)
            was_completed = bool(row.completed)
            _apply(row, changes)
            row.updated_at = utcnow()
            session.flush()
            task = _task(row)
            kind: TaskEventType = (
                "task.completed" if task.completed and not was_completed else "task.updated"
            )
            _record(session, kind, task, user_id)
        self._mirror("update", task)
        return task

    def delete(self, task_id: str, *, user_id: str | None = None) -> None:
        with session_scope(self.sessions) as session:
            task = _task(_row(session, task_id, for_update=True))
            session.execute(delete(TaskRow).where(TaskRow.id == task_id))
            _record(session, "task.deleted", task, user_id)
        self._mirror("delete", task)

    def _mirror(self, operation: Operation, task: Task) -> None:
        """After the commit: the secondary database gets the write too (never fails it)."""
        if self.dual_writer is not None:
            self.dual_writer.mirror(TASKS, operation, task.model_dump())

    async def aclose(self) -> None:
        if self.pages is not None:
            await self.pages.close()

    def close(self) -> None:
        if self.dual_writer is not None:
            self.dual_writer.close()
        bind = self.sessions.kw.get("bind")
        if bind is not None:
            bind.dispose()


def _row(session: Session, task_id: str, *, for_update: bool = False) -> TaskRow:
    statement = select(TaskRow).where(TaskRow.id == task_id)
    if for_update:
        statement = statement.with_for_update()
    row = session.scalars(statement).one_or_none()
    if row is None:
        raise TaskNotFound(f"task {task_id} not found", task_id=task_id)
    return row


def task_fields(row: Mapping[Any, Any]) -> TaskFields:
    """A row of `tasks` as the fields of `Task`, in its order (NULL tags and flags as empty,
    instants in UTC whatever the session's time zone)."""
    due_date = row["due_date"]
    return {
        "id": row["id"],
        "project_id": row["project_id"],
        "title": row["title"],
        "status": row["status"],
        "due_date": due_date.astimezone(UTC) if due_date is not None else None,
        "tags": list(row["tags"] or []),
        "completed": bool(row["completed"]),
        "created_at": row["created_at"].astimezone(UTC),
        "updated_at": row["updated_at"].astimezone(UTC),
    }


def _task(row: TaskRow) -> Task:
    return Task(
        id=row.id,
        project_id=row.project_id,
        title=row.title,
        status=row.status,
        due_date=row.due_date,
        tags=list(row.tags or []),
        completed=bool(row.completed),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _apply(row: TaskRow, changes: dict[str, Any]) -> None:
    """Apply a patch; `completed` and `status == "done"` always agree afterwards."""
    for name, value in changes.items():
        setattr(row, name, value)
    if "completed" in changes:
        if row.completed:
            row.status = DONE
        elif row.status == DONE:
            row.status = "todo"
    elif "status" in changes:
        row.completed = row.status == DONE


def _record(session: Session, kind: TaskEventType, task: Task, user_id: str | None) -> None:
    enqueue(session, _event(kind, task, user_id), headers=EVENT_HEADERS)


def _event(kind: TaskEventType, task: Task, user_id: str | None) -> TaskEvent:
    return TaskEvent(
        message_id=uuid.uuid4().hex,
        event_type=kind,
        task_id=task.id,
        project_id=task.project_id,
        task=task.model_dump(mode="json"),
        user_id=user_id,
    )


def _new_task(data: TaskCreate) -> Task:
    """The task `data` asks for, with its id and timestamps (`completed` and `done` agree)."""
    now = utcnow()
    completed = data.completed or data.status == DONE
    return Task(
        id=str(uuid.uuid4()),
        project_id=data.project_id,
        title=data.title,
        status=DONE if completed else data.status,
        due_date=data.due_date,
        tags=list(data.tags),
        completed=completed,
        created_at=now,
        updated_at=now,
    )


# The task and its outbox row (as `enqueue` writes it) in one statement: a data-modifying
# CTE runs in the statement's transaction, so either both rows are there or neither is.
_CREATE_POSTGRES = (
    "WITH task AS (INSERT INTO tasks "
    "(id, project_id, title, status, due_date, completed, tags, created_at, updated_at) "
    "VALUES (%(id)s, %(project_id)s, %(title)s, %(status)s, %(due_date)s, %(completed)s, "
    "%(tags)s, %(created_at)s, %(updated_at)s)) "
    "INSERT INTO outbox (message_id, routing_key, payload, headers, created_at, attempts) "
    "VALUES (%(message_id)s, %(routing_key)s, %(payload)s, %(headers)s, %(created_at)s, 0) "
    "ON CONFLICT (message_id) DO NOTHING"
)


def _create_params(task: Task, event: TaskEvent) -> dict[str, Any]:
    return {
        "id": task.id,
        "project_id": task.project_id,
        "title": task.title,
        "status": task.status,
        "due_date": task.due_date,
        "completed": task.completed,
        "tags": Jsonb(task.tags),
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "message_id": event.message_id,
        "routing_key": event.routing_key,
        "payload": event.model_dump_json(),
        "headers": Jsonb(EVENT_HEADERS),
    }


def _page_statement(
    query: TaskQuery, dialect: str, columns: Sequence[ColumnElement[Any]] = tuple(COLUMNS)
) -> Select[Any]:
    """SELECT ... WHERE (the query's filters, as named parameters) ORDER BY (its sort)."""
    statement = select(*columns).select_from(TaskRow)
    if query.project_id is not None:
        statement = statement.where(TaskRow.project_id == bindparam("project_id", query.project_id))
    if query.status is not None:
        statement = statement.where(TaskRow.status == bindparam("status", query.status))
    if query.tag is not None:
        statement = statement.where(_has_tag(query.tag, dialect))
    return statement.order_by(*_order(query.sort))


def _shape(query: TaskQuery) -> TaskQuery:
    """The query with placeholder values: the same SQL for every query of its kind."""
    return TaskQuery(
        project_id=None if query.project_id is None else "",
        status=None if query.status is None else "todo",
        tag=None if query.tag is None else "",
        sort=query.sort,
    )


def _limit_offset(query: TaskQuery) -> str:
    """One row more than the page, after the skipped ones.

    Written into the SQL, not sent as parameters: once psycopg prepares the statement,
    PostgreSQL would otherwise settle on a generic plan that cannot know the limit, sorting
    the whole table instead of reading the index.
    """
    return f" LIMIT {int(query.limit) + 1} OFFSET {int(query.offset)}"


def _page_params(query: TaskQuery) -> dict[str, Any]:
    return {"project_id": query.project_id, "status": query.status, "tag": Jsonb([query.tag])}


def _json_as_text(params: dict[str, Any]) -> dict[str, Any]:
    """psycopg's parameters for asyncpg, which takes JSON values as their text."""
    return {
        name: orjson.dumps(value.obj).decode() if isinstance(value, Jsonb) else value
        for name, value in params.items()
    }


@functools.lru_cache(maxsize=64)
def _page_sql(dialect: Dialect, shape: TaskQuery) -> str:
    return str(_page_statement(shape, dialect.name).compile(dialect=dialect))


def _filter_characters(_dialect: Dialect, query: TaskQuery) -> int:
    """How long the texts a page filters on are (what `_stored_json_page` keeps)."""
    return len(query.project_id or "") + len(query.tag or "")


@kept_when_small(_filter_characters, MAX_KEPT_FILTER_CHARACTERS)
def _stored_json_page(dialect: Dialect, query: TaskQuery) -> tuple[str, tuple[Any, ...]]:
    """A page's statement for asyncpg and its arguments, kept per query with usual, short
    filters: clients ask for the same few pages again and again, and building them cost a
    tenth of the list's CPU (the query's shape, the JSON of a tag, the numbering)."""
    sql = _stored_json_sql(dialect, _shape(query)) + _limit_offset(query)
    return bound(sql, _json_as_text(_page_params(query)))


@functools.lru_cache(maxsize=64)
def _stored_json_sql(dialect: Dialect, shape: TaskQuery) -> str:
    """The page's tasks as the JSON PostgreSQL stores beside each (revision 013)."""
    stored: ColumnElement[Any] = literal_column(f"{TaskRow.__tablename__}.api_json")
    return str(_page_statement(shape, dialect.name, [stored]).compile(dialect=dialect))


def _has_tag(tag: str, dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        # The column is JSONB on PostgreSQL: @> (containment), which a GIN index can serve.
        return type_coerce(TaskRow.tags, JSONB).contains(bindparam("tag", [tag], type_=JSONB))
    values = func.json_each(TaskRow.tags).table_valued("value")
    return exists(select(1).select_from(values).where(values.c.value == tag))


def _order(sort: str) -> list[Any]:
    """ORDER BY for a sort key; the id breaks ties so that pages never overlap or skip rows."""
    column = COLUMNS[sort.removeprefix("-")]
    descending = sort.startswith("-")
    ordered = column.desc() if descending else column.asc()
    if column.nullable:
        # Tasks without a due date come last either way. Only here: on NOT NULL columns an
        # explicit NULLS LAST would stop PostgreSQL from reading ix_tasks_created_at_id backwards.
        ordered = ordered.nulls_last()
    return [ordered, COLUMNS.id.desc() if descending else COLUMNS.id.asc()]
