"""Writing events to the outbox and recording applied messages in the inbox.

Both take the caller's session: the event or the inbox entry commits or rolls back with the
change that caused it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from weavenn_cli.runtime.db.models import DeliveryAttempt, InboxEntry, OutboxMessage
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.events import Event


def dialect_insert(session: Session) -> Any:
    """INSERT with the dialect's ON CONFLICT support (both databases spell it the same way)."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def enqueue(
    session: Session,
    event: Event,
    *,
    headers: dict[str, Any] | None = None,
    correlation_id: str | None = None,
) -> bool:
    """Add `event` to the outbox; False when an event with its message id is already there."""
    statement = (
        dialect_insert(session)(OutboxMessage)
        .values(
            message_id=event.message_id,
            routing_key=event.routing_key,
            payload=event.model_dump_json(),
            headers=headers,
            correlation_id=correlation_id,
            created_at=utcnow(),
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["message_id"])
        .returning(OutboxMessage.id)
    )
    return session.execute(statement).first() is not None


# One statement with three array parameters: a row per statement (executemany) costs the
# client and the server several times more per event. WITH ORDINALITY and ORDER BY keep the
# ids in the order of the events, the order the relay publishes them in.
_ENQUEUE_MANY_POSTGRES = (
    "INSERT INTO outbox (message_id, routing_key, payload, created_at, attempts) "
    "SELECT message_id, routing_key, payload, %(now)s, 0 FROM unnest("
    "CAST(%(message_ids)b AS text[]), CAST(%(routing_keys)b AS text[]), "
    "CAST(%(payloads)b AS text[])"
    ") WITH ORDINALITY AS event(message_id, routing_key, payload, position) "
    "ORDER BY position "
    "ON CONFLICT (message_id) DO NOTHING"
)


def execute_binary(session: Session, statement: str, parameters: dict[str, Any]) -> None:
    """Run a psycopg statement on the session's connection, in its transaction.

    Give text arrays as `%(name)b` (binary): in the text format psycopg escapes every quote
    of every element in Python, which costs more than the insert itself for JSON payloads;
    the binary format copies the bytes.
    """
    driver = session.connection().connection.driver_connection
    with driver.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(statement, parameters)


def enqueue_many(
    session: Session, events: Sequence[Event], *, payloads: Sequence[str] | None = None
) -> None:
    """`enqueue` for many events in one round of statements (an event already there is kept).

    `payloads`: the events' JSON when the caller has serialised them already.
    """
    if not events:
        return
    if payloads is None:
        payloads = [event.model_dump_json() for event in events]
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        execute_binary(
            session,
            _ENQUEUE_MANY_POSTGRES,
            {
                "message_ids": [event.message_id for event in events],
                "routing_keys": [event.routing_key for event in events],
                "payloads": list(payloads),
                "now": now,
            },
        )
        return
    rows = [
        {
            "message_id": event.message_id,
            "routing_key": event.routing_key,
            "payload": payload,
            "headers": None,
            "correlation_id": None,
            "created_at": now,
            "attempts": 0,
        }
        for event, payload in zip(events, payloads, strict=True)
    ]
    outbox = OutboxMessage.__table__
    statement = dialect_insert(session)(outbox).on_conflict_do_nothing(
        index_elements=["message_id"]
    )
    session.execute(statement, rows)


def already_processed(session: Session, consumer: str, message_id: str) -> bool:
    query = select(InboxEntry.message_id).where(
        InboxEntry.consumer == consumer, InboxEntry.message_id == message_id
    )
    return session.execute(query).first() is not None


def record_processed(session: Session, consumer: str, message_id: str) -> None:
    """Remember that `consumer` applied `message_id`; commit it with the effect."""
    session.add(InboxEntry(consumer=consumer, message_id=message_id, processed_at=utcnow()))


def processed_among(session: Session, consumer: str, message_ids: Iterable[str]) -> set[str]:
    """Which of `message_ids` `consumer` has already applied (one query for a whole batch)."""
    ids = list(message_ids)
    if not ids:
        return set()
    query = select(InboxEntry.message_id).where(
        InboxEntry.consumer == consumer, InboxEntry.message_id.in_(ids)
    )
    return set(session.scalars(query))


def pending_count(session: Session) -> int:
    """Events the relay has not published yet."""
    query = select(func.count()).where(OutboxMessage.published_at.is_(None))
    return int(session.scalar(query) or 0)


def prune_inbox(session: Session, consumer: str, older_than: datetime, limit: int) -> int:
    """Forget up to `limit` messages `consumer` applied before `older_than`, and their
    delivery counts; returns how many inbox entries went."""
    old = (
        select(InboxEntry.message_id)
        .where(InboxEntry.consumer == consumer, InboxEntry.processed_at < older_than)
        .limit(limit)
        .scalar_subquery()
    )
    result = session.execute(
        delete(InboxEntry).where(InboxEntry.consumer == consumer, InboxEntry.message_id.in_(old))
    )
    session.execute(
        delete(DeliveryAttempt).where(
            DeliveryAttempt.consumer == consumer, DeliveryAttempt.last_delivered_at < older_than
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def count_delivery(session: Session, consumer: str, message_id: str) -> int:
    """Add one to the deliveries of `message_id` to `consumer`; returns the new count."""
    table = DeliveryAttempt.__table__
    statement = dialect_insert(session)(table).values(
        consumer=consumer, message_id=message_id, deliveries=1, last_delivered_at=utcnow()
    )
    statement = statement.on_conflict_do_update(
        index_elements=["consumer", "message_id"],
        set_={
            "deliveries": table.c.deliveries + 1,
            "last_delivered_at": statement.excluded.last_delivered_at,
        },
    ).returning(table.c.deliveries)
    return int(session.execute(statement).scalar_one())
