"""Transactional outbox and consumer inbox: at-least-once delivery, exactly-once effects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from weavenn_cli.runtime.db.models.base import Base
from weavenn_cli.runtime.db.types import PortableJSON, UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
AutoId = BigInteger().with_variant(Integer(), "sqlite")


class OutboxMessage(Base):
    """An event waiting to be published, written in the same transaction as its cause.

    A relay publishes pending rows in id order and sets `published_at` once the transport
    confirmed them: a broker outage delays events, never loses them.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "published_at", "id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    routing_key: Mapped[str] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON, nullable=True)
    correlation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class InboxEntry(Base):
    """A message a consumer has applied, recorded in the transaction of its effect."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_processed_at", "processed_at"),)

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class QueuedMessage(Base):
    """A message waiting in a queue of the embedded transport (used when RABBITMQ_URL is unset).

    A consumer leases rows (`lease_owner`, `lease_expires_at`) instead of deleting them, so a
    consumer that dies returns its messages to the queue when the lease runs out. A retry
    moves `available_at` into the future; an ack deletes the row.
    """

    __tablename__ = "bus_messages"
    __table_args__ = (Index("ix_bus_messages_queue_available", "queue", "available_at", "id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[str] = mapped_column(String(255))
    routing_key: Mapped[str] = mapped_column(String(255))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON, nullable=True)
    correlation_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ConsumerPresence(Base):
    """A running consumer of the embedded transport, refreshed while it runs.

    `weavenn bus status` counts consumers from it, and a consumer reclaims at once the leases
    of a process on its own host that is gone (killed) instead of waiting for them to expire.
    """

    __tablename__ = "bus_consumers"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    queue: Mapped[str] = mapped_column(String(255))
    consumer: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeadLetter(Base):
    """A message that failed for good, with the error that killed it, on either transport.

    RabbitMQ's `dlq` queue is moved here (acked after the insert commits) whenever a dlq
    command runs, so listing is not destructive and a replay knows the queue it came from.
    `key` makes that move idempotent.
    """

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_queue", "queue"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    queue: Mapped[str | None] = mapped_column(String(255), nullable=True)
    consumer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    routing_key: Mapped[str] = mapped_column(String(255))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON, nullable=True)
    correlation_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Lease(Base):
    """A job only one process may run at a time (the outbox relay): who holds it, until when.

    The holder renews it while it works; another process takes it over once it expires.
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DeliveryAttempt(Base):
    """How often a consumer was handed a redelivered message, committed before handling it.

    A message that kills the consumer process never settles, so the broker's own retry count
    never moves; this count does, and the runner dead-letters the message past the budget.
    """

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_last_delivered_at", "last_delivered_at"),)

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deliveries: Mapped[int] = mapped_column(Integer)
    last_delivered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
