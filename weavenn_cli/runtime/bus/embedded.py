"""The embedded transport: queues in the main database, for one machine without RabbitMQ.

Same guarantees as the RabbitMQ transport: a published message is one durable row per bound
queue (fan-out with the topology's bindings); consumers lease rows (`FOR UPDATE SKIP LOCKED`
on PostgreSQL, the write lock that BEGIN IMMEDIATE takes on SQLite) and delete them on ack; a
retry makes the row invisible until its delay has passed; a dead letter moves to
`dead_letters` in the same transaction. Several processes on one machine share it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, delete, exc, func, or_, select, update
from sqlalchemy.orm import Session

from weavenn_cli.runtime.bus import deadletters, outbox
from weavenn_cli.runtime.bus import transport as bus
from weavenn_cli.runtime.bus.topology import Topology
from weavenn_cli.runtime.db.engine import (
    describe_url,
    is_reachable,
    reader_engine,
    require_tables,
    session_factory,
    session_scope,
)
from weavenn_cli.runtime.db.models import ConsumerPresence, QueuedMessage
from weavenn_cli.runtime.db.types import utcnow

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0
"""How long a delivered message stays invisible to other consumers; renewed while held."""
POLL_SECONDS = 0.1
"""How often an idle consumer looks for new rows (there is no push between processes)."""
PRESENCE_SECONDS = 5.0
"""How often a consumer refreshes its presence row and its leases."""


_abandoned_owners: set[str] = set()
"""Channels of this process that could not release their leases (database away at close)."""


class EmbeddedTransport:
    name = "embedded"

    def __init__(
        self, engine: Engine, topology: Topology, *, lease_seconds: float = LEASE_SECONDS
    ) -> None:
        self.topology = topology
        self.lease_seconds = lease_seconds
        self._engine = engine
        self._sessions = session_factory(engine)
        self._reader = reader_engine(engine)

    def describe(self) -> str:
        return f"embedded transport in {describe_url(self._engine.url)}"

    def setup(self) -> None:
        """Nothing to declare: the queues are rows of the tables that migrations create."""
        require_tables(self._engine, "bus_messages", "bus_consumers", "dead_letters")

    def publisher(self) -> EmbeddedPublisher:
        return EmbeddedPublisher(self)

    def consumer(self, queue: str, *, prefetch: int, consumer_name: str) -> EmbeddedConsumerChannel:
        self.topology.queue(queue)
        return EmbeddedConsumerChannel(self, queue, prefetch=prefetch, consumer_name=consumer_name)

    def has_ready(self, queue: str) -> bool:
        """Whether `queue` may have a message to lease, looked up without any lock."""
        query = select(QueuedMessage.id).where(_available(queue, utcnow())).limit(1)
        try:
            with self._reader.connect() as connection:
                return connection.execute(query).first() is not None
        except (exc.OperationalError, exc.InterfaceError) as error:
            reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
            raise bus.BrokerUnavailable(
                f"database of the embedded transport unreachable: {reason}"
            ) from error

    def send_to_queue(self, queue: str, message: bus.OutgoingMessage) -> None:
        with self.session() as session:
            session.add(_row(queue, message))

    def collect_dead_letters(self) -> int:
        return 0  # dead letters go straight into the table, in the transaction that fails them

    def close(self) -> None:
        return None

    def status(self) -> bus.BusStatus:
        now = utcnow()
        leased = QueuedMessage.lease_expires_at > now
        waiting = QueuedMessage.available_at > now
        columns = (
            QueuedMessage.queue,
            func.count().filter(~waiting, or_(QueuedMessage.lease_owner.is_(None), ~leased)),
            func.count().filter(QueuedMessage.lease_owner.is_not(None), leased),
            func.count().filter(waiting, or_(QueuedMessage.lease_owner.is_(None), ~leased)),
        )
        recent = now - timedelta(seconds=3 * PRESENCE_SECONDS)
        with self.session() as session:
            counts = {
                queue: (ready, unacked, delayed)
                for queue, ready, unacked, delayed in session.execute(
                    select(*columns).group_by(QueuedMessage.queue)
                )
            }
            consumers = {
                queue: count
                for queue, count in session.execute(
                    select(ConsumerPresence.queue, func.count())
                    .where(ConsumerPresence.seen_at > recent)
                    .group_by(ConsumerPresence.queue)
                )
            }
            pending = outbox.pending_count(session)
        dead = deadletters.DeadLetters(self._engine).counts_by_queue()
        queues = [
            bus.QueueStatus(
                queue=spec.name,
                bindings=spec.bindings,
                ready=counts.get(spec.name, (0, 0, 0))[0],
                unacknowledged=counts.get(spec.name, (0, 0, 0))[1],
                consumers=consumers.get(spec.name, 0),
                retrying=counts.get(spec.name, (0, 0, 0))[2],
                dead_letters=dead.get(spec.name, 0),
            )
            for spec in self.topology.queues
        ]
        return bus.BusStatus(self.name, describe_url(self._engine.url), queues, pending)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction; an unreachable database is the broker being unavailable."""
        try:
            with session_scope(self._sessions) as session:
                yield session
        except (exc.OperationalError, exc.InterfaceError) as error:
            if is_reachable(self._engine):
                raise
            reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
            raise bus.BrokerUnavailable(
                f"database of the embedded transport unreachable: {reason}"
            ) from error


class EmbeddedPublisher:
    """Fans messages out into one row per bound queue, in one transaction."""

    def __init__(self, transport: EmbeddedTransport) -> None:
        self._transport = transport

    def publish(self, messages: Sequence[bus.OutgoingMessage]) -> bus.PublishResult:
        topology = self._transport.topology
        with self._transport.session() as session:
            for message in messages:
                for queue in topology.queues_for(message.routing_key):
                    session.add(_row(queue, message))
        return bus.PublishResult(confirmed=[message.message_id for message in messages])

    def close(self) -> None:
        return None


class EmbeddedConsumerChannel:
    """Leases rows of one queue for one consumer process."""

    def __init__(
        self, transport: EmbeddedTransport, queue: str, *, prefetch: int, consumer_name: str
    ) -> None:
        self._transport = transport
        self._queue = queue
        self._prefetch = prefetch
        self._consumer = consumer_name
        self._host = socket.gethostname()
        self._owner = f"{uuid.uuid4().hex[:12]}:{self._host}:{os.getpid()}:{consumer_name}"[:128]
        self._lease_length = timedelta(seconds=transport.lease_seconds)
        # Renew well before a lease runs out, and refresh presence at least this often.
        self._refresh_every = min(PRESENCE_SECONDS, transport.lease_seconds / 3)
        self._held: set[int] = set()
        self._cancelled = False
        self._wake = threading.Event()
        self._refreshed = 0.0
        self._announce()

    # -- receiving --------------------------------------------------------------------------

    def receive(self, max_messages: int, timeout: float) -> list[bus.InboundMessage]:
        deadline = time.monotonic() + timeout
        while True:
            self._refresh_if_due()
            room = min(max_messages, self._prefetch - len(self._held))
            if room > 0 and not self._cancelled and self._transport.has_ready(self._queue):
                messages = self._lease(room)
                if messages:
                    return messages
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._wake.wait(min(POLL_SECONDS, remaining))
            self._wake.clear()

    def keep_alive(self, seconds: float) -> None:
        self._refresh_if_due()
        self._wake.wait(seconds)
        self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def _lease(self, limit: int) -> list[bus.InboundMessage]:
        now = utcnow()
        query = (
            select(QueuedMessage)
            .where(_available(self._queue, now))
            .order_by(QueuedMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._transport.session() as session:
            rows = list(session.scalars(query))
            for row in rows:
                row.lease_owner = self._owner
                row.lease_expires_at = now + self._lease_length
                row.deliveries += 1
        self._held.update(row.id for row in rows)
        return [self._inbound(row) for row in rows]

    def _inbound(self, row: QueuedMessage) -> bus.InboundMessage:
        headers = dict(row.headers or {})
        return bus.InboundMessage(
            handle=row.id,
            queue=self._queue,
            message_id=row.message_id,
            routing_key=str(headers.get(bus.ROUTING_KEY, row.routing_key)),
            body=row.body,
            headers=headers,
            correlation_id=row.correlation_id,
            timestamp=row.published_at,
            redelivered=row.deliveries > 1,
        )

    # -- settling ---------------------------------------------------------------------------

    def ack(self, messages: Sequence[bus.InboundMessage]) -> None:
        ids = [message.handle for message in messages]
        if ids:
            with self._transport.session() as session:
                session.execute(delete(QueuedMessage).where(QueuedMessage.id.in_(ids)))
        self._held.difference_update(ids)

    def requeue(self, messages: Sequence[bus.InboundMessage]) -> None:
        ids = [message.handle for message in messages]
        if ids:
            with self._transport.session() as session:
                session.execute(
                    update(QueuedMessage)
                    .where(QueuedMessage.id.in_(ids), QueuedMessage.lease_owner == self._owner)
                    .values(lease_owner=None, lease_expires_at=None)
                )
        self._held.difference_update(ids)

    def retry_later(
        self, message: bus.InboundMessage, *, delay: float, attempt: int, error: str
    ) -> None:
        headers = {**message.headers, bus.ATTEMPT: attempt, bus.ERROR: error[:4000]}
        with self._transport.session() as session:
            session.execute(
                update(QueuedMessage)
                .where(QueuedMessage.id == message.handle)
                .values(
                    headers=headers,
                    available_at=utcnow() + timedelta(seconds=delay),
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
        self._held.discard(message.handle)

    def dead_letter(self, message: bus.InboundMessage, info: bus.DeadLetterInfo) -> None:
        key = uuid.uuid4().hex
        # The same headers RabbitMQ's dlq carries, so both transports show the same thing.
        headers = {**message.headers, **info.headers(self._queue, key)}
        with self._transport.session() as session:
            deadletters.record(
                session,
                replace(message, headers=headers),
                key=key,
                error=info.error,
                attempts=info.attempts,
                queue=self._queue,
                consumer=info.consumer,
            )
            session.execute(delete(QueuedMessage).where(QueuedMessage.id == message.handle))
        self._held.discard(message.handle)

    def cancel(self) -> None:
        self._cancelled = True

    def close(self) -> None:
        try:
            with self._transport.session() as session:
                self._release(session, QueuedMessage.lease_owner == self._owner)
                session.execute(
                    delete(ConsumerPresence).where(ConsumerPresence.owner == self._owner)
                )
        except bus.BrokerUnavailable:
            # The database is away: the next channel of this process releases them.
            _abandoned_owners.add(self._owner)
        self._held.clear()

    # -- presence and leases ----------------------------------------------------------------

    def _announce(self) -> None:
        """Register this consumer and take back leases of consumers that are gone."""
        now = utcnow()
        with self._transport.session() as session:
            session.add(
                ConsumerPresence(
                    owner=self._owner,
                    queue=self._queue,
                    consumer=self._consumer,
                    host=self._host,
                    pid=os.getpid(),
                    started_at=now,
                    seen_at=now,
                )
            )
            gone = [*_abandoned_owners, *self._dead_local_owners(session)]
            self._release(session, QueuedMessage.lease_owner.in_(gone))
            session.execute(delete(ConsumerPresence).where(ConsumerPresence.owner.in_(gone)))
        _abandoned_owners.difference_update(gone)
        self._refreshed = time.monotonic()

    def _dead_local_owners(self, session: Session) -> list[str]:
        query = select(ConsumerPresence.owner, ConsumerPresence.pid).where(
            ConsumerPresence.host == self._host, ConsumerPresence.owner != self._owner
        )
        return [owner for owner, pid in session.execute(query) if not _alive(pid)]

    def _release(self, session: Session, which: Any) -> None:
        session.execute(
            update(QueuedMessage).where(which).values(lease_owner=None, lease_expires_at=None)
        )

    def _refresh_if_due(self) -> None:
        if time.monotonic() - self._refreshed < self._refresh_every:
            return
        now = utcnow()
        with self._transport.session() as session:
            session.execute(
                update(ConsumerPresence)
                .where(ConsumerPresence.owner == self._owner)
                .values(seen_at=now)
            )
            if self._held:
                session.execute(
                    update(QueuedMessage)
                    .where(
                        QueuedMessage.id.in_(list(self._held)),
                        QueuedMessage.lease_owner == self._owner,
                    )
                    .values(lease_expires_at=now + self._lease_length)
                )
        self._refreshed = time.monotonic()


def _available(queue: str, now: datetime) -> ColumnElement[bool]:
    """Rows of `queue` a consumer may take now: due, and not leased (or the lease ran out)."""
    return and_(
        QueuedMessage.queue == queue,
        QueuedMessage.available_at <= now,
        or_(QueuedMessage.lease_owner.is_(None), QueuedMessage.lease_expires_at < now),
    )


def _row(queue: str, message: bus.OutgoingMessage) -> QueuedMessage:
    now = utcnow()
    return QueuedMessage(
        queue=queue,
        message_id=message.message_id,
        routing_key=message.routing_key,
        body=message.body,
        headers=dict(message.headers) or None,
        correlation_id=message.correlation_id,
        published_at=now,
        available_at=now,
        deliveries=0,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
